"""What a call needs from the rest of Gridline, with every blocking step moved off the event loop.

One ``Hotline`` serves all calls of a process: the intake, the attachment store, the case loop, the classifier and
geocoder the intake uses, the prompt folders, and one speech model shared by every call. Speech decoding runs in
thread pools of its own, so a burst of callers talking cannot starve database work (and the reverse): one pool
follows recordings while callers talk, another finishes the transcripts callers are waiting for, so a finished
utterance never queues behind the audio of others still talking.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.attachments import AttachmentError, AttachmentStore
from core.cases import SYSTEM, CaseError, CaseLoop
from core.geocoder import GazetteerGeocoder, Located, NotLocated
from core.intake import Incoming, Intake, ReportState
from ivr.prompts import PromptSet, catalogue
from nlp.classify import Classification, Classifier

log = logging.getLogger("gridline.ivr")
T = TypeVar("T")


class SpeechStream(Protocol):
    def accept(self, pcm: bytes) -> None: ...
    def result(self) -> str: ...


class Recogniser(Protocol):
    """What the IVR needs of speech recognition (``nlp.speech.Speech``, or a scripted one in tests)."""

    def stream(self, rate: int = 8000, grammar: Sequence[str] | None = None) -> SpeechStream: ...


@dataclass
class Hotline:
    intake: Intake
    attachments: AttachmentStore
    loop: CaseLoop
    geocoder: GazetteerGeocoder
    classifier: Classifier
    prompts: PromptSet
    workdir: Path  # recordings of calls in progress; Asterisk writes here, so it must see the same path
    speech: Recogniser | None = None
    speech_timeout: float = 20.0  # longest wait for a transcript after the caller stops talking
    squelch: bool = True  # keep long silences from the recogniser (off where the "audio" is typed text)
    speech_workers: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self._pools: dict[str, Executor] = {}

    def _pool(self, name: str) -> Executor:
        if name not in self._pools:
            self._pools[name] = ThreadPoolExecutor(self.speech_workers, thread_name_prefix=f"speech-{name}")
        return self._pools[name]

    @property
    def speech_pool(self) -> Executor:
        """Following recordings as they grow."""
        return self._pool("live")

    @property
    def final_pool(self) -> Executor:
        """Finishing transcripts a caller is waiting for."""
        return self._pool("final")

    def required_prompts(self) -> list[str]:
        return list(catalogue(self.intake.engine))

    def check(self) -> None:
        """Start-up: every prompt has a file (PromptsMissing otherwise) and the call folder is writable."""
        self.prompts.require(self.required_prompts())
        self.workdir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()

    # --- blocking work, off the loop ------------------------------------------------------------------------
    @staticmethod
    async def _thread(func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def classify(self, text: str) -> Classification:
        return await self._thread(self.classifier.classify, text)

    async def locate(self, text: str) -> Located | NotLocated:
        return await self._thread(self.geocoder.locate, text)

    async def submit(self, incoming: Incoming) -> ReportState:
        report, _created = await self._thread(self.intake.submit, incoming)
        return report

    async def store_audio(self, path: Path) -> dict[str, str] | None:
        """A finished recording into the attachment store, as a report's media item; None when there is none."""

        def put() -> dict[str, str] | None:
            try:
                data = path.read_bytes()
            except OSError:
                return None
            if len(data) <= 44:  # a header and no sound
                return None
            try:
                stored = self.attachments.put(data, "audio/wav")
            except AttachmentError as exc:
                log.warning("recording %s not kept: %s", path.name, exc)
                return None
            return {"sha256": stored.sha256, "media_type": stored.media_type, "kind": stored.kind}

        return await self._thread(put)

    async def case_state(self, number: str) -> str | None:
        """A case's state by its number (what a caller may learn about it), or None when there is no such case."""

        def get() -> str | None:
            try:
                case, _events = self.loop.get(number, SYSTEM)
            except CaseError:
                return None
            return case.state

        return await self._thread(get)
