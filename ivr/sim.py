"""``gridline call-sim``: a call in the terminal, through the same flow as a real one, for demos and debugging.

The IVR's prompts are printed as text. Where the caller would press keys, type them; where the caller would speak,
type what they say (a lone key such as ``0`` or ``#`` is a key press, an empty line is silence). End of input is
hanging up. The report goes into the real intake, so it gets a real case number.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ivr.agi import ChannelGone
from ivr.flow import Call, Listening, Outcome, Recorded
from ivr.hotline import Hotline
from ivr.prompts import FIXED, PromptSet, catalogue


class TypedSpeech:
    """The simulator's recogniser: the "audio" it is fed is the typed text itself."""

    class _Stream:
        def __init__(self) -> None:
            self.data = b""

        def accept(self, pcm: bytes) -> None:
            self.data += pcm

        def result(self) -> str:
            return self.data.decode("utf-8", "replace")

    def stream(self, rate: int = 8000, grammar: Sequence[str] | None = None) -> TypedSpeech._Stream:
        return self._Stream()


class SimLine:
    """The flow's telephone on a terminal: prompts out as text, keys and speech in as typed lines."""

    def __init__(self, texts: dict[str, str], stdin: TextIO, stdout: TextIO) -> None:
        self.texts = texts
        self.stdin = stdin
        self.stdout = stdout
        self.variables: dict[str, str] = {}

    def _out(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    async def _in(self, label: str) -> str:
        self.stdout.write(f"{label}> ")
        self.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        if not line:
            self._out("（来电者挂机）")
            raise ChannelGone("end of input")
        if not getattr(self.stdin, "isatty", lambda: False)():
            self._out(line.rstrip("\n"))
        return line.strip()

    async def answer(self) -> None:
        self._out("（接通）")

    async def play(self, name: str, escape: str = "") -> str | None:
        self._out(f"IVR: {self.texts.get(name, name)}")
        return None

    async def wait_digit(self, seconds: float) -> str | None:
        typed = await self._in("按键")
        return typed[:1] or None

    async def get_digits(self, prompt: str, seconds: float, max_digits: int) -> str:
        await self.play(prompt)
        typed = await self._in("按键")
        return "".join(ch for ch in typed if ch.isdigit())[:max_digits]

    async def record(
        self, path: Path, *, max_s: float, silence_s: int, escape: str, beep: bool, listening: Listening | None
    ) -> Recorded:
        if beep:
            self._out("（嘀）")
        typed = await self._in("说话或按键")
        if len(typed) == 1 and typed in escape:
            return Recorded(path, typed)
        if typed:
            _voice(path.with_suffix(".wav"), typed)
            if listening is not None:
                await listening.feed(typed.encode("utf-8"))
        return Recorded(path)

    async def say_digits(self, digits: str) -> None:
        self._out(f"IVR 报号: {' '.join(digits)}")

    async def set_var(self, name: str, value: str) -> None:
        self.variables[name] = value
        self._out(f"（通道变量 {name}={value}）")

    async def hangup(self) -> None:
        self._out("（IVR 挂机）")


def _voice(path: Path, text: str) -> None:
    """The "recording" kept with the report: espeak-ng reading the typed words, or a second of silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    espeak = shutil.which("espeak-ng")
    if espeak:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([espeak, "-v", "cmn", "-w", str(path), text], check=True, capture_output=True, timeout=30)
            return
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000)


@dataclass(frozen=True)
class TextPrompts(PromptSet):
    """Prompts as their texts: the simulator prints them, so every prompt with a text "has a file"."""

    texts: dict[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.texts

    def path(self, name: str) -> str:
        return name


def simulate(hotline: Hotline, stdin: TextIO, stdout: TextIO, caller: str = "13800138000") -> Outcome:
    """One simulated call from ``caller``, start to end."""
    texts = {**FIXED, **catalogue(hotline.intake.engine)}
    line = SimLine(texts, stdin, stdout)
    hotline.prompts = TextPrompts(hotline.prompts.root, texts)
    hotline.squelch = False
    call_id = f"sim-{uuid.uuid4().hex}"
    call = Call(line, hotline, call_id=call_id, caller=caller, workdir=hotline.workdir / call_id)
    try:
        return asyncio.run(call.run())
    finally:
        hotline.close()
