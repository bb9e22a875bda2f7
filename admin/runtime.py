"""The composition root: settings → engine → the in-memory indexes and services, each built once and on demand."""

from __future__ import annotations

import gc
from functools import cached_property
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine

from bots.dialogue import Dialogue
from core import db, notices, taxonomy
from core.attachments import AttachmentStore
from core.cases import CaseLoop, rules_from_settings
from core.config import Settings
from core.gazetteer import Gazetteer
from core.geocoder import GazetteerGeocoder, PlaceLocator, fallback_geocoders
from core.grid import GridIndex
from core.intake import Intake, Services
from core.scope import load_scope
from core.setup import calendar_days
from core.worktime import WorkCalendar
from ivr.hotline import Hotline, Recogniser
from ivr.prompts import PromptSet
from nlp.classify import Classifier, KeywordClassifier, Thresholds
from nlp.model import DEFAULT_MODEL, TrainedClassifier
from nlp.speech import Speech


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def grid(self) -> GridIndex:
        return GridIndex.load(self.engine)

    @cached_property
    def gazetteer(self) -> Gazetteer:
        return Gazetteer.load(self.engine)

    @cached_property
    def geocoder(self) -> GazetteerGeocoder:
        s = self.settings
        fallbacks = fallback_geocoders(
            s.geocoder_fallbacks,
            user_agent=s.nominatim_user_agent,
            nominatim_domain=s.nominatim_domain,
            baidu_api_key=s.baidu_api_key,
        )
        return GazetteerGeocoder(PlaceLocator(self.gazetteer, self.grid), fallbacks)

    @cached_property
    def calendar(self) -> WorkCalendar:
        """The settings' working windows and extra days, under the centre's own days (table calendar_day, set on
        the console's calendar page). Read once per process: a change on that page rebuilds this process's
        calendar (``reload_calendar``); other processes (channel workers, the hotline) see it when they restart."""
        s = self.settings
        return WorkCalendar.from_config(
            {"work_windows": s.work_windows, "extra_holidays": s.extra_holidays, "extra_workdays": s.extra_workdays}
        ).overridden(calendar_days(self.engine))

    def reload_calendar(self) -> WorkCalendar:
        """After a change to the centre's days: the calendar again, and the case loop's timers on it."""
        self.__dict__.pop("calendar", None)
        if "loop" in self.__dict__:
            self.loop.calendar = self.calendar
        return self.calendar

    @cached_property
    def loop(self) -> CaseLoop:
        loop = CaseLoop(
            self.engine,
            self.calendar,
            rules_from_settings(self.settings),
            cell_at=lambda lon, lat: self.grid.cell_at(lon, lat),  # the grid loads on the first corrected place
        )
        loop.on_event.append(notices.hook(loop, self.settings.public_url))  # the departments' notices
        return loop

    @cached_property
    def attachments(self) -> AttachmentStore:
        return AttachmentStore(Path(self.settings.data_dir) / "attachments")

    @cached_property
    def classifier(self) -> Classifier:
        """The trained model (``gridline train``); the keyword classifier when asked for, or when this checkout
        has no model file and none is configured."""
        s = self.settings
        path = Path(s.classifier_model) if s.classifier_model not in ("", "keyword") else DEFAULT_MODEL
        if s.classifier_model == "keyword" or (not s.classifier_model and not path.exists()):
            return KeywordClassifier(taxonomy.labels(self.engine))
        codes = frozenset(label.code for label in taxonomy.labels(self.engine))
        model = TrainedClassifier.load(path, scope=load_scope(s.scope_file or None, codes))
        given = {"auto": s.classifier_auto, "review": s.classifier_review, "margin": s.classifier_margin}
        if any(given.values()):
            stored = model.thresholds
            model.thresholds = Thresholds(**{k: v or getattr(stored, k) for k, v in given.items()})
        return model

    @cached_property
    def speech(self) -> Speech | None:
        """The Vosk model (``GRIDLINE_VOSK_MODEL``), loaded on first use and shared by hotline calls and chat voice
        messages; None when none is configured."""
        return Speech(self.settings.vosk_model) if self.settings.vosk_model else None

    @cached_property
    def intake(self) -> Intake:
        services = Services(
            classifier=self.classifier,
            geocoder=self.geocoder,
            transcriber=self.speech,
            media_path=lambda sha: str(self.attachments.path(sha)),
        )
        return Intake(self.loop, services)

    @cached_property
    def dialogue(self) -> Dialogue:
        """The chat dialogue over this runtime's intake, geocoder and attachments (one per process)."""
        return Dialogue(self)

    def hotline(self, prompts: PromptSet, workdir: Path, speech: Recogniser | None, **options: Any) -> Hotline:
        """A 12319 hotline over this runtime's intake, case loop, geocoder and classifier."""
        return Hotline(
            intake=self.intake,
            attachments=self.attachments,
            loop=self.loop,
            geocoder=self.geocoder,
            classifier=self.intake.services.classifier,
            prompts=prompts,
            workdir=workdir,
            speech=speech,
            **options,
        )

    def warm(self) -> None:
        """Load what the first requests would otherwise wait for (the classifier, jieba, the indexes), then freeze
        the heap: those are some 160,000 long-lived objects, and a full collection scanning them stops every thread
        for 100–300 ms, which was the whole of the intake's p99 under load. Frozen, they are never scanned again."""
        self.dialogue.warm()
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


RUNTIME = web.AppKey("runtime", Runtime)
