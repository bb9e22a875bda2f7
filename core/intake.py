"""Intake: every report is stored first, in its own transaction, idempotently on (channel, channel_ref); then
enriched (transcript, classification, place) in the caller's thread, and filed as a case in the 受理 queue after a
look for open cases of the same matter nearby, in one transaction with whatever other reports are being filed at
that moment (``core.groupcommit``).

A step that fails is recorded as failed and can be retried (``retry``); the report itself is never lost, and a
report is filed as at most one case even when two workers process it at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.cases import SYSTEM, TERMINAL, CaseLoop, Collectors, allocate_numbers
from core.crs import UnknownCRS, near_distance_m, parse_crs, to_wgs84
from core.db import UNSTORABLE, storable
from core.geocoder import GazetteerGeocoder, Located
from core.groupcommit import GroupCommit
from core.models import CaseEvent, CaseFile, Report, TaxonomyItem, row_defaults
from nlp.classify import Classifier

CHANNELS = ("wechat", "telegram", "webchat", "hotline", "collector", "open311", "operator")
MAX_TEXT = 5000
ENRICH = ("transcribe", "classify", "locate")
STEPS = (*ENRICH, "duplicates", "file")


class BadReport(ValueError):
    """A report that cannot be taken as it is; the message names the field."""


class Transcriber(Protocol):
    def transcribe_file(self, path: str) -> str: ...


@dataclass(frozen=True)
class Incoming:
    """A report as a channel hands it over."""

    channel: str
    channel_ref: str
    received_at: datetime
    sender: str = ""
    text: str = ""
    media: tuple[dict[str, Any], ...] = ()
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str = ""
    chosen_code: str | None = None  # the 事项 the reporter chose (staff and client channels)

    def checked(self) -> Incoming:
        if self.channel not in CHANNELS:
            raise BadReport(f"channel 应为 {'、'.join(CHANNELS)} 之一")
        if not self.channel_ref or len(self.channel_ref) > 128:
            raise BadReport("channel_ref 不能为空，且不超过 128 个字符")
        if len(self.text) > MAX_TEXT or len(self.address) > 200 or len(self.sender) > 128:
            raise BadReport(f"text 最多 {MAX_TEXT} 字，address 最多 200 字")
        if not all(storable(v) for v in (self.channel_ref, self.sender, self.text, self.address)):
            raise BadReport(f"上报内容中{UNSTORABLE}")
        if self.received_at.tzinfo is None:
            raise BadReport("received_at 需带时区")
        if not (self.text.strip() or self.media or self.address.strip()):
            raise BadReport("上报内容为空：需要文字、语音/照片或地址")
        if (self.lon is None) != (self.lat is None):
            raise BadReport("经度 lon 与纬度 lat 需同时提供")
        if self.lon is not None and not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90 and math.isfinite(self.lon)):
            raise BadReport("坐标超出经纬度范围")
        try:
            parse_crs(self.crs)
        except UnknownCRS as exc:
            raise BadReport(str(exc)) from None
        if self.chosen_code is not None and not (self.chosen_code.isascii() and self.chosen_code.isdigit()):
            raise BadReport("chosen_code 应为事项代码（数字）")
        return self


@dataclass
class Services:
    """What the pipeline needs from the rest of the system; each may be absent, and its step is then skipped."""

    classifier: Classifier | None = None
    geocoder: GazetteerGeocoder | None = None
    transcriber: Transcriber | None = None
    media_path: Callable[[str], str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportState:
    """A report as the pipeline sees it: the stored columns, the outcome of each step and the case it became."""

    id: int | None
    channel: str
    channel_ref: str
    sender: str
    text: str
    media: list[dict[str, Any]]
    lon: float | None
    lat: float | None
    address: str
    received_at: datetime
    transcript: str = ""
    classification: dict[str, Any] | None = None
    place: dict[str, Any] | None = None
    steps: dict[str, Any] = field(default_factory=dict)
    case_id: int | None = None
    chosen_code: str | None = None
    case_number: str | None = None
    filed_now: bool = False  # this run made the case (rather than finding it made)

    def done(self, step: str) -> bool:
        return self.steps.get(step, {}).get("status") in ("ok", "skipped")

    def record(self, step: str, status: str, detail: str = "") -> None:
        self.steps[step] = {"status": status, **({"detail": detail} if detail else {})}

    @property
    def code(self) -> str | None:
        """The 事项 the case takes: the reporter's own choice where there is one, else the classifier's."""
        if self.chosen_code:
            return self.chosen_code
        cls = self.classification or {}
        return cls.get("code") if cls.get("decision") != "out_of_scope" else None


COLUMNS = tuple(f.name for f in fields(ReportState) if f.name in Report.model_fields)
_R, _C = Report.__table__, CaseFile.__table__
# Statements built once: building and coercing a statement cost more than running it.
_LOCK_REPORTS = select(_R.c.id, _R.c.case_id).where(_R.c.id.in_(bindparam("ids", expanding=True))).with_for_update()
_MATTER_NAMES = select(TaxonomyItem.__table__.c.code, TaxonomyItem.__table__.c.name).where(
    TaxonomyItem.__table__.c.kind == "matter", TaxonomyItem.__table__.c.code.in_(bindparam("codes", expanding=True))
)


class Intake:
    def __init__(self, loop: CaseLoop, services: Services) -> None:
        self.loop = loop
        self.engine = loop.engine
        self.services = services
        # SQLite: one writing transaction at a time from this process (its busy wait sleeps for milliseconds);
        # PostgreSQL: storing and filing overlap, so a store waiting for its commit to reach the disk holds up no one.
        sqlite = self.engine.dialect.name == "sqlite"
        writer = threading.Lock() if sqlite else None
        dialect_insert = sqlite_insert if sqlite else pg_insert
        self._insert_report = (
            dialect_insert(_R)
            .on_conflict_do_nothing(index_elements=["channel", "channel_ref"])
            .returning(_R.c.id, _R.c.channel, _R.c.channel_ref)
        )
        self._storing = GroupCommit(self._store, writer)
        self._filing = GroupCommit(self._file_or_fail, writer)

    def store(self, incoming: Incoming) -> tuple[ReportState, bool]:
        """Store first (with whatever else is being stored at this moment, in one statement); the same (channel,
        channel_ref) again returns the stored report and False."""
        incoming = incoming.checked()
        lon, lat = incoming.lon, incoming.lat
        if lon is not None and lat is not None:
            lon, lat = to_wgs84(lon, lat, incoming.crs)
        report = ReportState(
            id=None,
            channel=incoming.channel,
            channel_ref=incoming.channel_ref,
            sender=incoming.sender,
            text=incoming.text.strip(),
            media=list(incoming.media),
            lon=lon,
            lat=lat,
            address=incoming.address.strip(),
            received_at=incoming.received_at,
            chosen_code=incoming.chosen_code,
        )
        self._storing.run(report)
        if report.id is None:
            return self.find(incoming.channel, incoming.channel_ref), False
        return report, True

    def _store(self, batch: Sequence[ReportState]) -> None:
        """One INSERT … ON CONFLICT DO NOTHING for the batch (SQLAlchemy sends it as multi-row VALUES, compiled once
        per process): a repeated (channel, channel_ref), even within the batch, gets no id back and is found instead."""
        rows = [{c: getattr(r, c) for c in COLUMNS if c != "id"} for r in batch]
        with self.engine.begin() as conn:
            ids = {(channel, ref): report_id for report_id, channel, ref in conn.execute(self._insert_report, rows)}
        for report in batch:
            report.id = ids.pop((report.channel, report.channel_ref), None)

    def _load(self, where: Any) -> ReportState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*(getattr(Report, c) for c in COLUMNS), CaseFile.number)
                .outerjoin(CaseFile, CaseFile.id == Report.case_id)
                .where(where)
            ).first()
        return ReportState(*row) if row else None

    def find(self, channel: str, channel_ref: str) -> ReportState:
        found = self._load(and_(Report.channel == channel, Report.channel_ref == channel_ref))
        if found is None:
            raise LookupError(f"没有上报 {channel}/{channel_ref}")
        return found

    def submit(self, incoming: Incoming) -> tuple[ReportState, bool]:
        """Store, then run the pipeline for a new report (a repeated delivery is not processed again)."""
        report, created = self.store(incoming)
        if created:
            self.run(report)
        return report, created

    def process(self, report_id: int) -> ReportState:
        """Run the steps not yet done for a stored report."""
        report = self._load(Report.id == report_id)
        if report is None:
            raise LookupError(f"没有上报 {report_id}")
        self.run(report)
        return report

    def retry(self) -> int:
        """Run the pipeline again for every report with a failed step or without a case; returns how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Report.id, Report.case_id, Report.steps)).all()
        todo = [
            report_id
            for report_id, case_id, steps in rows
            if case_id is None or any(s.get("status") == "failed" for s in steps.values())
        ]
        for report_id in todo:
            self.process(report_id)
        return len(todo)

    # --- the pipeline -----------------------------------------------------------------------------------------
    def run(self, report: ReportState) -> None:
        """Enrich here, where a slow step (speech) delays only its own report, then file with the group."""
        for name in ENRICH:
            if report.done(name):
                continue
            try:
                report.record(name, *getattr(self, f"_step_{name}")(report))
            except Exception as exc:  # a step must never lose the report: record why and go on
                report.steps[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
        self._filing.run(report)
        if report.filed_now:
            self._auto_accept(report)

    def _step_transcribe(self, report: ReportState) -> tuple[str, str]:
        audio = [m for m in report.media if m.get("kind") == "audio"]
        if not audio or report.text:
            return "skipped", "无语音"
        if self.services.transcriber is None or self.services.media_path is None:
            return "skipped", "未配置语音识别"
        report.transcript = self.services.transcriber.transcribe_file(self.services.media_path(audio[0]["sha256"]))
        return "ok", ""

    def _step_classify(self, report: ReportState) -> tuple[str, str]:
        text = report.text or report.transcript
        if self.services.classifier is None or not text:
            return "skipped", "无文字或未配置分类器"
        result = self.services.classifier.classify(text)
        report.classification = result.as_dict()
        return "ok", ""

    def _step_locate(self, report: ReportState) -> tuple[str, str]:
        geocoder = self.services.geocoder
        if geocoder is None:
            return "skipped", "未配置地理编码"
        if report.lon is not None and report.lat is not None:
            found = geocoder.locator.reverse(report.lon, report.lat)
            if isinstance(found, Located):
                report.place = {**found.as_dict(), "lon": report.lon, "lat": report.lat}
            else:
                cell = geocoder.locator.grid.cell_at(report.lon, report.lat)
                report.place = {
                    "lon": report.lon,
                    "lat": report.lat,
                    "matched": "",
                    "method": "坐标",
                    "confidence": 1.0,
                    "grid": cell.__dict__ if cell else None,
                }
            return "ok", ""
        text = report.address or report.text or report.transcript
        found = geocoder.locate(text) if text else None
        if isinstance(found, Located):
            report.place = found.as_dict()
            return "ok", ""
        report.place = {"found": False, "reason": found.reason if found else "无地址"}
        return "ok", "未能定位"

    # --- filing, for a group of reports at once --------------------------------------------------------------
    def _file_or_fail(self, batch: Sequence[ReportState]) -> None:
        """A group that cannot be filed is tried report by report (``GroupCommit``); a report that cannot be filed
        alone is recorded as failed, or, when the database itself is failing, left without its case for ``retry``."""
        try:
            self._file(batch)
        except Exception as exc:
            if len(batch) > 1:
                raise
            batch[0].steps["file"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
            with suppress(Exception):
                self._write_steps(batch)

    def _file(self, batch: Sequence[ReportState]) -> None:
        at = self.loop.clock()
        ids = [r.id for r in batch]
        # Core statements on a plain connection: the ORM's per-statement bookkeeping cost more than the database.
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # The stored report is the durable record; a filing lost in a crash is redone by ``retry`` (run at
                # every start), so this commit need not wait for the disk.
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            # lock the reports: another worker may be filing one of them right now
            filed = dict(conn.execute(_LOCK_REPORTS, {"ids": ids}).all())
            todo = []
            for report in batch:
                report.case_id = filed[report.id]
                if report.case_id is None:
                    todo.append(report)
                elif not report.done("file"):
                    report.record("file", "ok")
            names = self._matter_names(conn, {r.code for r in todo if r.code})
            for report in todo:
                if report.code and report.code not in names:
                    report.classification = {**(report.classification or {}), "decision": "review"}
                    report.steps["classify"] = {"status": "failed", "error": f"事项代码 {report.code} 不在分类代码表中"}
            numbers = allocate_numbers(conn, at, len(todo)) if todo else []
            for report, number in zip(todo, numbers, strict=True):
                report.case_number = number
            self._duplicates(conn, batch)
            if todo:
                self._insert_cases(conn, todo, names, at)
            self._write_steps(batch, conn)

    def _matter_names(self, conn: Connection, codes: set[str]) -> dict[str, str]:
        if not codes:
            return {}
        return dict(conn.execute(_MATTER_NAMES, {"codes": sorted(codes)}).all())

    def _duplicates(self, conn: Connection, batch: Sequence[ReportState]) -> None:
        """The nearest open original case (not itself a duplicate) of the same 事项 within the radius and time
        window: in the database, or filed earlier in this same group."""
        rules = self.loop.rules
        box = rules.duplicate_radius_m / 90_000  # degrees, generous at these latitudes
        located = [r for r in batch if r.code and "lon" in (r.place or {}) and not r.done("duplicates")]
        for report in batch:
            if report not in located and not report.done("duplicates"):
                report.record("duplicates", "skipped", "无事项代码或位置")
        if not located:
            return
        c = _C.c
        near_any = or_(
            *(
                and_(
                    c.matter_code == r.code,
                    c.created_at >= r.received_at - timedelta(days=rules.duplicate_window_days),
                    c.lon.between(r.place["lon"] - box * 2, r.place["lon"] + box * 2),
                    c.lat.between(r.place["lat"] - box, r.place["lat"] + box),
                )
                for r in located
            )
        )
        candidates = [
            tuple(row)
            for row in conn.execute(
                select(c.number, c.matter_code, c.lon, c.lat, c.created_at).where(
                    c.state.not_in(TERMINAL), c.duplicate_of.is_(None), near_any
                )
            )
        ]
        for report in located:
            place = report.place
            since = report.received_at - timedelta(days=rules.duplicate_window_days)
            near = [
                (near_distance_m(lon, lat, place["lon"], place["lat"]), number)
                for number, code, lon, lat, created in candidates
                if code == report.code and lon is not None and created >= since and number != report.case_number
            ]
            near = [n for n in near if n[0] <= rules.duplicate_radius_m]
            place["duplicate_of"] = min(near)[1] if near else None
            report.record("duplicates", "ok")
            if report.case_number and not place["duplicate_of"]:  # later reports of the group may repeat this one
                candidates.append((report.case_number, report.code, place["lon"], place["lat"], report.received_at))

    def _insert_cases(self, conn: Connection, todo: Sequence[ReportState], names: dict[str, str], at: datetime) -> None:
        collectors = Collectors.load(conn)
        stage_limit = self.loop.rules.stage_hours.get("受理", 1.0)
        rows = []
        for report in todo:
            cls, place = report.classification or {}, report.place or {}
            grid = place.get("grid") or {}
            code = report.code if report.code in names else None
            rows.append(
                {
                    **row_defaults(CaseFile),
                    "number": report.case_number,
                    "state": "待受理",
                    "matter_code": code,
                    "matter_name": names.get(code, ""),
                    "severity": cls.get("severity") or "一般",
                    "description": report.text or report.transcript,
                    "address": report.address or place.get("matched") or "",
                    "lon": place.get("lon"),
                    "lat": place.get("lat"),
                    "grid_code": grid.get("code"),
                    "area_class": grid.get("area_class") or "B",
                    "source": report.channel,
                    "public": report.channel != "collector",
                    "duplicate_of": place.get("duplicate_of"),
                    "collector_id": collectors.for_cell(grid.get("code")),
                    "stage": "受理",
                    "stage_started_at": at,
                    "stage_limit": stage_limit,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        case_ids = conn.execute(insert(_C).returning(_C.c.id, sort_by_parameter_order=True), rows).scalars().all()
        events = []
        for report, case_id in zip(todo, case_ids, strict=True):
            report.case_id = case_id
            report.record("file", "ok", report.case_number)
            report.filed_now = True
            events.append(
                {
                    **row_defaults(CaseEvent),
                    "case_id": case_id,
                    "seq": 1,
                    "at": at,
                    "actor": report.channel,
                    "role": "system",
                    "action": "report",
                    "from_state": "",
                    "to_state": "待受理",
                    "data": {"report_id": report.id, "classification": report.classification or {}},
                    "attachments": [m["sha256"] for m in report.media if "sha256" in m],
                }
            )
        conn.execute(insert(CaseEvent.__table__), events)

    def _write_steps(self, batch: Sequence[ReportState], conn: Connection | None = None) -> None:
        stmt = (
            update(_R)
            .where(_R.c.id == bindparam("rid"))
            .values(
                steps=bindparam("steps"),
                transcript=bindparam("transcript"),
                classification=bindparam("classification"),
                place=bindparam("place"),
                case_id=bindparam("cid"),
            )
        )
        rows = [
            {
                "rid": r.id,
                "steps": r.steps,
                "transcript": r.transcript,
                "classification": r.classification,
                "place": r.place,
                "cid": r.case_id,
            }
            for r in batch
        ]
        if conn is None:
            with self.engine.begin() as own:
                own.execute(stmt, rows)
        else:
            conn.execute(stmt, rows)

    def _auto_accept(self, report: ReportState) -> None:
        cls = report.classification or {}
        top = (cls.get("top") or [{}])[0].get("p", 0.0)
        threshold = self.loop.rules.auto_accept_confidence
        if report.code and threshold and cls.get("decision") == "auto" and top >= threshold:
            self.loop.act(report.case_number, "accept", SYSTEM, {"note": f"置信度 {top:.2f}，按配置自动受理"})
