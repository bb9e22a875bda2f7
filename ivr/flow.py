"""One call to 12319, whatever carries it (Asterisk over FastAGI, or the terminal simulator).

answer → welcome → menu (1 反映问题, 2 查询进度, 0 人工) → the problem in the caller's words → what we understood
(the 事项 name) → the place → where we found it → 1 确认 / 2 重说 / 0 人工 → report → receipt number → goodbye.

Nothing is stored until the caller confirms, so a caller who hangs up at any point before that leaves no report
behind, only the call's temporary folder, which is removed. When the caller asks for a person, stays silent, or
is not understood twice, the call is handed over to the 受理员 seat queue: whatever the caller already said is
filed as a report first (transcript, the classifier's guess, both recordings), and the channel variables
``GRIDLINE_ACTION=handover``, ``GRIDLINE_REASON`` and ``GRIDLINE_CASE`` tell the dialplan to queue the call and
the seat which case to open.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import wave
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from core.geocoder import Located
from core.intake import Incoming
from ivr.agi import ChannelGone
from ivr.hotline import Hotline, SpeechStream
from ivr.prompts import STATE_PROMPTS, matter_key, place_key
from nlp.classify import Classification
from nlp.speech import SpeechError

log = logging.getLogger("gridline.ivr")

RATE = 8000
DIGIT_WAIT_S = 6.0
CHOICE_MAX_S, CHOICE_SILENCE_S = 8.0, 4
PROBLEM_MAX_S, PROBLEM_SILENCE_S = 60.0, 3
PLACE_MAX_S, PLACE_SILENCE_S = 20.0, 2
NUMBER_MAX_S, NUMBER_SILENCE_S = 15.0, 3
NUMBER_DIGIT_WAIT_S, NUMBER_MAX_DIGITS = 8.0, 20

#: Spoken answers to the key menus (a restricted grammar each), key → phrases.
MENU_WORDS: dict[str, tuple[str, ...]] = {
    "1": ("反映问题", "反映", "投诉", "报告问题", "一"),
    "2": ("查询", "查询进度", "进度", "二"),
    "0": ("人工", "转人工", "人工服务", "零"),
}
CONFIRM_WORDS: dict[str, tuple[str, ...]] = {
    "1": ("确认", "对", "对的", "是", "是的", "没错", "好", "一"),
    "2": ("重说", "重新说", "不对", "不是", "错了", "二"),
    "0": ("人工", "转人工", "人工服务", "零"),
}
SPOKEN_DIGITS = {"零": "0", "洞": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
                 "六": "6", "七": "7", "八": "8", "九": "9"}  # fmt: skip
VAR_ACTION, VAR_REASON, VAR_CASE = "GRIDLINE_ACTION", "GRIDLINE_REASON", "GRIDLINE_CASE"
SPEECH_RMS = 300  # 16-bit; a 50 ms frame this loud is someone talking (line noise stays far below)


def audible(path: Path) -> bool:
    """Whether a recording holds anything louder than line noise, so silent recordings are not filed."""
    try:
        with wave.open(str(path), "rb") as wav:
            frames = wav.readframes(wav.getnframes())
            rate = wav.getframerate()
    except (OSError, EOFError, wave.Error):
        return False
    samples = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.float64)
    step = max(rate // 20, 1)
    usable = samples[: samples.size // step * step].reshape(-1, step)
    return bool(usable.size) and float(np.sqrt((usable**2).mean(axis=1)).max()) > SPEECH_RMS


class HandOver(Exception):
    """Stop the self-service flow and queue the call for a 受理员; ``reason`` goes to the dialplan."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Recorded:
    """How a recording ended: the key that stopped it (if any) and the file Asterisk wrote."""

    path: Path
    digit: str | None = None


class Line(Protocol):
    """The telephone, as the flow uses it. Every method raises ChannelGone once the caller has hung up."""

    async def answer(self) -> None: ...
    async def play(self, name: str, escape: str = "") -> str | None: ...
    async def wait_digit(self, seconds: float) -> str | None: ...
    async def get_digits(self, prompt: str, seconds: float, max_digits: int) -> str: ...
    async def record(
        self, path: Path, *, max_s: float, silence_s: int, escape: str, beep: bool, listening: Listening | None
    ) -> Recorded: ...
    async def say_digits(self, digits: str) -> None: ...
    async def set_var(self, name: str, value: str) -> None: ...
    async def hangup(self) -> None: ...


class Squelch:
    """Keeps long silences of a recording from the recogniser: a phone recording is mostly the wait before the
    caller speaks and the silence that ends it, and decoding silence costs a third of decoding speech. Speech is
    passed on with ``LEAD_S`` of the silence before it and ``HANG_S`` after it, so words keep their edges."""

    FRAME_S, LEAD_S, HANG_S = 0.02, 0.3, 0.6

    def __init__(self, rate: int = RATE, threshold: float = SPEECH_RMS / 3) -> None:
        self.frame = int(rate * self.FRAME_S) * 2
        self.threshold = threshold
        self.hang = int(self.HANG_S / self.FRAME_S)
        self.quiet = self.hang  # silence before any speech is held back, not passed on
        self.lead: deque[bytes] = deque(maxlen=int(self.LEAD_S / self.FRAME_S))
        self.rest = b""

    def __call__(self, pcm: bytes) -> bytes:
        data = self.rest + pcm
        usable = len(data) // self.frame * self.frame
        self.rest = data[usable:]
        if not usable:
            return b""
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64).reshape(-1, self.frame // 2)
        loud = np.sqrt((samples**2).mean(axis=1)) > self.threshold
        out: list[bytes] = []
        for i, is_loud in enumerate(loud):
            frame = data[i * self.frame : (i + 1) * self.frame]
            if is_loud:
                out.extend(self.lead)
                self.lead.clear()
                self.quiet = 0
                out.append(frame)
            elif self.quiet < self.hang:
                self.quiet += 1
                out.append(frame)
            else:
                self.lead.append(frame)
        return b"".join(out)


class Listening:
    """One recording on its way to the recogniser. When ``live``, chunks are fed in order in the speech pool while
    the caller is still talking, so only the tail is left to decode when the recording ends. Short answers to a
    key menu are not live: most callers press a key, and their recording need not be decoded at all."""

    def __init__(self, stream: SpeechStream, hotline: Hotline, live: bool = True) -> None:
        self.stream = stream
        self.hotline = hotline
        self.live = live
        self.failed = False
        self.squelch = Squelch() if hotline.squelch else None

    async def feed(self, pcm: bytes, urgent: bool = False) -> None:
        """Decode a piece of audio; ``urgent`` for the last piece, which the caller is already waiting for."""
        if self.squelch is not None:
            pcm = self.squelch(pcm)
        if self.failed or not pcm:
            return
        pool = self.hotline.final_pool if urgent else self.hotline.speech_pool
        try:
            await asyncio.get_running_loop().run_in_executor(pool, self.stream.accept, pcm)
        except SpeechError as exc:
            log.warning("speech stream failed: %s", exc)
            self.failed = True

    async def text(self) -> str:
        """The transcript; empty when recognition failed or took longer than the hotline allows."""
        if self.failed:
            return ""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.hotline.final_pool, self.stream.result), self.hotline.speech_timeout
            )
        except (TimeoutError, SpeechError) as exc:
            log.warning("no transcript: %s", type(exc).__name__)
            return ""


@dataclass
class Heard:
    text: str = ""
    path: Path | None = None
    digit: str | None = None


@dataclass
class Outcome:
    """How a call ended: ``reported``, ``handover``, ``queried``, ``hangup`` (caller left) or ``error``."""

    kind: str = "hangup"
    call_id: str = ""
    caller: str = ""
    reason: str = ""
    case_number: str | None = None
    transcript: str = ""
    address: str = ""
    steps: list[str] = field(default_factory=list)


class Call:
    def __init__(self, line: Line, hotline: Hotline, *, call_id: str, caller: str, workdir: Path) -> None:
        self.line = line
        self.hotline = hotline
        self.call_id = call_id
        self.caller = caller
        self.workdir = workdir
        self.received_at = datetime.now(UTC)
        self.outcome = Outcome(call_id=call_id, caller=caller)
        self.problem = Heard()
        self.place = Heard()
        self.guess: Classification | None = None
        self._recordings = 0

    # --- the whole call -------------------------------------------------------------------------------------
    async def run(self) -> Outcome:
        """Run the call to its end; the caller hanging up ends it quietly, a fault hands it to a person."""
        try:
            await self.line.answer()
            if self.hotline.speech is None:
                await self._say("welcome", "no_speech")
                raise HandOver("no_speech")
            await self._say("welcome")
            await self.menu()
        except HandOver as decision:
            await self._hand_over(decision.reason)
        except ChannelGone:
            if self.outcome.kind != "reported":
                self.outcome.kind = "hangup"
        except Exception:
            if self.outcome.kind == "reported":  # filed and told its number: nothing left for a seat to do
                log.exception("call %s failed after its report was filed", self.call_id)
            else:
                log.exception("call %s failed; handing it over", self.call_id)
                await self._hand_over("error")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.outcome

    async def menu(self) -> None:
        for attempt in range(3):
            key = await self.choose("menu", MENU_WORDS)
            if key == "1":
                return await self.report()
            if key == "2":
                return await self.query()
            if key == "0":
                raise HandOver("caller")
            if key is None and attempt >= 1:
                raise HandOver("silence")
            if key is not None:
                await self._say("invalid_key")
        raise HandOver("menu")

    # --- menu 1: a report --------------------------------------------------------------------------------------
    async def report(self) -> None:
        for round_ in range(2):
            await self.hear_problem()
            await self.hear_place()
            key = await self.choose("confirm", CONFIRM_WORDS)
            if key is None:
                key = await self.choose("confirm_again", CONFIRM_WORDS)
            if key == "1":
                number = await self._file()
                self.outcome.kind = "reported"
                await self._say("receipt")
                await self.line.say_digits(number)
                await self._say("receipt_after", "goodbye")
                await self.line.hangup()
                return
            if key == "0":
                raise HandOver("caller")
            if key is None:
                raise HandOver("silence")
            if round_ == 0:
                await self._say("redo")
        raise HandOver("repeated")

    async def hear_problem(self) -> None:
        """The problem in the caller's words, asked twice at most; tells the caller the 事项 it was taken for."""
        for attempt in range(2):
            heard = await self.listen(
                "problem", "ask_problem" if attempt == 0 else "ask_problem_again", PROBLEM_MAX_S, PROBLEM_SILENCE_S
            )
            if heard.text or (heard.path and not self.problem.text):
                self.problem = heard
            if heard.digit == "0":
                raise HandOver("caller")
            if not heard.text:
                continue
            guess = await self.hotline.classify(heard.text)
            self.guess = guess
            if guess.decision == "out_of_scope" or not guess.top:
                continue
            self.outcome.transcript = heard.text
            name = matter_key(guess.top[0].code)
            if self.hotline.prompts.has(name):
                await self._say("understood", name)
            else:
                await self._say("understood_generic")
            return
        raise HandOver("not_understood" if self.problem.text or self.problem.path else "silence")

    async def hear_place(self) -> None:
        """Where the problem is, asked again once when the gazetteer cannot find it; tells the caller the 社区."""
        for attempt in range(2):
            heard = await self.listen(
                "place", "ask_place" if attempt == 0 else "ask_place_again", PLACE_MAX_S, PLACE_SILENCE_S
            )
            if heard.text or (heard.path and not self.place.text):
                self.place = heard
            if heard.digit == "0":
                raise HandOver("caller")
            if not heard.text:
                continue
            found = await self.hotline.locate(heard.text)
            if isinstance(found, Located) and found.grid is not None:
                self.outcome.address = heard.text
                name = place_key(found.grid.code[:12])
                if self.hotline.prompts.has(name):
                    await self._say("place_found", name)
                else:
                    await self._say("place_found_generic")
                return
        raise HandOver("place")

    # --- menu 2: the state of a case ---------------------------------------------------------------------------
    async def query(self) -> None:
        number = await self.line.get_digits("ask_number", NUMBER_DIGIT_WAIT_S, NUMBER_MAX_DIGITS)
        number = number.strip("#*")
        if not number:
            heard = await self.listen(
                "number", "ask_number_voice", NUMBER_MAX_S, NUMBER_SILENCE_S, grammar=tuple(SPOKEN_DIGITS)
            )
            number = "".join(SPOKEN_DIGITS.get(ch, ch if ch.isdigit() else "") for ch in heard.text)
        if not number:
            await self._say("number_not_heard")
            raise HandOver("silence")
        state = await self.hotline.case_state(number)
        self.outcome.kind = "queried"
        self.outcome.case_number = number if state else None
        await self._say(STATE_PROMPTS.get(state, "case_not_found") if state else "case_not_found", "goodbye")
        await self.line.hangup()

    # --- building blocks ---------------------------------------------------------------------------------------
    async def _say(self, *names: str, escape: str = "") -> str | None:
        """Play prompts in order; a key in ``escape`` cuts them short and is returned."""
        for name in names:
            self.outcome.steps.append(name)
            digit = await self.line.play(name, escape)
            if digit:
                return digit
        return None

    async def choose(self, prompt: str, words: Mapping[str, Sequence[str]]) -> str | None:
        """A key from ``words`` pressed during or after the prompt, or one of its phrases said; None for silence,
        and any other key as it is."""
        keys = "".join(words)
        digit = await self._say(prompt, escape=keys)
        if digit:
            return digit
        if self.hotline.speech is None:
            return await self.line.wait_digit(DIGIT_WAIT_S)
        phrases = {phrase: key for key, group in words.items() for phrase in group}
        heard = await self.listen("answer", None, CHOICE_MAX_S, CHOICE_SILENCE_S, escape=keys, grammar=tuple(phrases))
        if heard.digit:
            return heard.digit
        hits = [(heard.text.find(p), -len(p), key) for p, key in phrases.items() if p in heard.text]
        return min(hits)[2] if hits else None

    async def listen(
        self,
        label: str,
        prompt: str | None,
        max_s: float,
        silence_s: int,
        *,
        escape: str = "#0",
        grammar: Sequence[str] | None = None,
    ) -> Heard:
        """Ask (with a beep when there is a prompt), record, and transcribe while the caller talks."""
        if prompt is not None:
            digit = await self._say(prompt, escape="0")
            if digit == "0":
                return Heard(digit="0")
        self._recordings += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / f"{self._recordings:02d}-{label}"
        listening = None
        if self.hotline.speech is not None:
            try:
                stream = await asyncio.get_running_loop().run_in_executor(
                    self.hotline.speech_pool, self.hotline.speech.stream, RATE, grammar
                )
                listening = Listening(stream, self.hotline, live=grammar is None)
            except SpeechError as exc:
                log.warning("no recogniser for %s: %s", label, exc)
        recorded = await self.line.record(
            path, max_s=max_s, silence_s=silence_s, escape=escape, beep=prompt is not None, listening=listening
        )
        wav = path.with_suffix(".wav")
        text = await listening.text() if listening is not None and recorded.digit in (None, "#") else ""
        kept = wav if await asyncio.to_thread(audible, wav) else None  # silence is not worth filing
        return Heard(text=text.strip(), path=kept, digit=recorded.digit)

    async def _file(self, handover: bool = False) -> str:
        """File what the caller said as a report (once per call) and return its case number."""
        if self.outcome.case_number:
            return self.outcome.case_number
        media = []
        for heard in (self.problem, self.place):
            if heard.path is not None:
                item = await self.hotline.store_audio(heard.path)
                if item is not None:
                    media.append(item)
        incoming = Incoming(
            channel="hotline",
            channel_ref=self.call_id,
            received_at=self.received_at,
            sender=self.caller,
            text=self.problem.text,
            media=tuple(media),
            address=self.place.text,
        )
        report = await self.hotline.submit(incoming)
        if not report.case_number:
            raise RuntimeError(f"report {report.id} was stored but not filed: {report.steps}")
        self.outcome.case_number = report.case_number
        log.info("call %s: %s report %s", self.call_id, "handover" if handover else "confirmed", report.case_number)
        return report.case_number

    async def _hand_over(self, reason: str) -> None:
        """Queue the call for a 受理员 with what the caller said already filed; the dialplan acts on the variables.
        A caller who hangs up during the hand-over prompt leaves nothing behind."""
        self.outcome.kind, self.outcome.reason = "handover", reason
        try:
            await self._say("handover")
            if self.problem.text or self.problem.path or self.place.text:
                try:
                    await self._file(handover=True)
                except Exception:
                    log.exception("call %s: could not file the report before the hand-over", self.call_id)
            await self.line.set_var(VAR_ACTION, "handover")
            await self.line.set_var(VAR_REASON, reason)
            if self.outcome.case_number:
                await self.line.set_var(VAR_CASE, self.outcome.case_number)
        except ChannelGone:
            if not self.outcome.case_number:
                self.outcome.kind = "hangup"
        except Exception:
            log.exception("call %s: hand-over failed", self.call_id)
