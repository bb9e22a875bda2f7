"""Test doubles for the hotline: a scripted recogniser for Chinese content and a fake Asterisk on loopback.

The recogniser knows a set of utterances (audio → the words said in it) and recognises audio that matches one of
them by normalised cross-correlation, so it works on the exact bytes the fake writes and on what a real Asterisk
recorded through a real channel alike. The fake Asterisk speaks FastAGI like Asterisk 22 does (header block, reply
forms, HANGUP notices, 511 on a dead channel) and plays a caller's script against the IVR's commands.
"""

from __future__ import annotations

import asyncio
import io
import re
import shlex
import threading
import time
import wave
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nlp.speech import wav_bytes

RATE = 8000
DEAD = "511 Command Not Permitted on a dead channel or intercepted"


# --------------------------------------------------------------------------------------------- audio helpers
def tone_pcm(seed: int, seconds: float = 1.2) -> bytes:
    """Speech-like audio that differs for every seed (noise in a syllable-rate envelope), 8 kHz 16-bit."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    envelope = 0.55 + 0.45 * np.sin(np.arange(n) / RATE * 2 * np.pi * 4.0)
    return (rng.normal(0, 4000, n) * envelope).clip(-32000, 32000).astype("<i2").tobytes()


def wav_pcm(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.readframes(wav.getnframes())


def best_match(signal: np.ndarray, template: np.ndarray) -> tuple[float, int]:
    """(peak normalised cross-correlation, offset) of ``template`` inside ``signal``."""
    signal = signal.astype(np.float64)
    template = template.astype(np.float64)
    if signal.size < template.size or not template.any():
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(signal.size + template.size)))
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(template, size)), size)[
        : signal.size - template.size + 1
    ]
    energy = np.concatenate(([0.0], np.cumsum(signal**2)))
    window = np.sqrt(np.maximum(energy[template.size :] - energy[: -template.size], 1e-9))
    score = corr / (window * np.linalg.norm(template))
    at = int(np.argmax(score))
    return float(score[at]), at


# --------------------------------------------------------------------------------------- scripted recogniser
class ScriptedStream:
    def __init__(self, owner: ScriptedSpeech, grammar: Sequence[str] | None) -> None:
        self.owner = owner
        self.grammar = grammar
        self.chunks: list[tuple[float, int]] = []  # (monotonic time, bytes) of each accept
        self.data = bytearray()

    def accept(self, pcm: bytes) -> None:
        self.chunks.append((time.monotonic(), len(pcm)))
        self.data += pcm

    def result(self) -> str:
        if self.owner.delay:
            time.sleep(self.owner.delay)
        audio = np.frombuffer(bytes(self.data[: len(self.data) // 2 * 2]), dtype="<i2")
        best_text, best_score = "", self.owner.threshold
        for text, template in self.owner.utterances.items():
            score, _ = best_match(audio, template)
            if score > best_score:
                best_text, best_score = text, score
        self.score = best_score
        if self.grammar is not None and not _fits(best_text, self.grammar):
            return ""  # a restricted grammar hears nothing outside itself
        return best_text


def _fits(text: str, phrases: Sequence[str]) -> bool:
    """Whether text is a run of grammar phrases (longest first), like a grammar-restricted Vosk result."""
    if not text:
        return False
    ordered = sorted(phrases, key=len, reverse=True)
    pos = 0
    while pos < len(text):
        step = next((len(p) for p in ordered if p and text.startswith(p, pos)), 0)
        if not step:
            return False
        pos += step
    return True


@dataclass
class ScriptedSpeech:
    """A recogniser that knows what is said in each utterance it was given."""

    utterances: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = 0.8
    delay: float = 0.0
    streams: list[ScriptedStream] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def say(self, text: str, pcm: bytes | None = None) -> bytes:
        """Register ``text`` with its audio (made up when not given) and return the audio."""
        if pcm is None:
            if text in self.utterances:
                return self.utterances[text].tobytes()
            pcm = tone_pcm(zlib.crc32(text.encode()))
        self.utterances[text] = np.frombuffer(pcm, dtype="<i2")
        return pcm

    def stream(self, rate: int = RATE, grammar: Sequence[str] | None = None) -> ScriptedStream:
        stream = ScriptedStream(self, grammar)
        with self._lock:
            self.streams.append(stream)
        return stream


# ------------------------------------------------------------------------------------------- the fake caller
@dataclass(frozen=True)
class Press:
    """Keys pressed; ``barge`` presses them during a prompt that takes them."""

    keys: str
    barge: bool = False


@dataclass(frozen=True)
class Say:
    """Speech into the next recording; ``end`` '#' ends it with the key, otherwise silence ends it."""

    pcm: bytes
    end: str = ""


@dataclass(frozen=True)
class Silence:
    """Nothing, for one prompt/recording/wait."""


@dataclass
class CallLog:
    commands: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    digits_said: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    recordings: list[Path] = field(default_factory=list)
    record_replied_at: list[float] = field(default_factory=list)
    ended: str = ""  # "ivr-hangup" (HANGUP command), "ivr-closed" (script ended, dialplan goes on), "caller"
    steps_left: int = 0

    @property
    def names(self) -> list[str]:
        return [Path(p).name for p in self.played]


HEADER = """agi_network: yes
agi_network_script: 12319
agi_request: agi://127.0.0.1:{port}/12319
agi_channel: Local/s@peer-caller-00000001;1
agi_language: en
agi_type: Local
agi_uniqueid: {uniqueid}
agi_version: 22.10.1
agi_callerid: {callerid}
agi_calleridname: unknown
agi_callingpres: 0
agi_callingani2: 0
agi_callington: 0
agi_callingtns: 0
agi_dnid: unknown
agi_rdnis: unknown
agi_context: ivr
agi_extension: s
agi_priority: 2
agi_enhanced: 0.0
agi_accountcode:
agi_threadid: 139862209660608

"""

_ids = iter(range(1, 1_000_000))


class FakeAsterisk:
    """Places calls to the IVR's FastAGI port and answers its commands from a caller's script.

    ``hangup_at=n``: the caller hangs up while the IVR's n-th command (from 0) runs; ``hangup_notice`` says
    whether Asterisk's bare HANGUP line comes before or after the reply to that command.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host

    async def call(
        self,
        script: Sequence[Press | Say | Silence],
        *,
        callerid: str = "13800138000",
        uniqueid: str | None = None,
        hangup_at: int | None = None,
        hangup_notice: str = "after",
        refuse: Sequence[str] = (),
        write_delay: float = 0.02,
        timeout: float = 30.0,
    ) -> CallLog:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        uniqueid = uniqueid or f"{int(time.time())}.{next(_ids)}"
        writer.write(HEADER.format(port=self.port, uniqueid=uniqueid, callerid=callerid).encode())
        await writer.drain()
        steps = list(script)
        log = CallLog()
        dead = False
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await reader.readline()
                    if not raw:
                        log.ended = log.ended or ("caller" if dead else "ivr-closed")
                        break
                    line = raw.decode().rstrip("\n")
                    log.commands.append(line)
                    if dead:
                        writer.write(f"{DEAD}\n".encode())
                        await writer.drain()
                        continue
                    if hangup_at is not None and len(log.commands) - 1 == hangup_at:
                        dead = True
                        reply = _hangup_reply(line)
                        lines = [reply, "HANGUP"] if hangup_notice == "after" else ["HANGUP", reply]
                        writer.write(("\n".join(lines) + "\n").encode())
                        await writer.drain()
                        continue
                    words = shlex.split(line)
                    verb = " ".join(words[:2]).upper() if len(words) > 1 else words[0].upper()
                    if any(verb.startswith(r) for r in refuse):
                        reply = "510 Invalid or unknown command"
                    else:
                        reply = await self._answer(verb, words, steps, log, write_delay)
                    writer.write(f"{reply}\n".encode())
                    await writer.drain()
                    if verb == "HANGUP":
                        log.ended = "ivr-hangup"
                        writer.write(b"HANGUP\n")
                        await writer.drain()
        finally:
            log.steps_left = len(steps)
            writer.close()
        return log

    async def _answer(self, verb: str, words: list[str], steps: list, log: CallLog, write_delay: float) -> str:
        nxt = steps[0] if steps else None
        if verb == "ANSWER":
            return "200 result=0"
        if verb in ("CHANNEL STATUS",):
            return "200 result=6"
        if verb == "SET VARIABLE":
            log.variables[words[2]] = words[3]
            return "200 result=1"
        if verb == "SAY DIGITS":
            log.digits_said.append(words[2])
            return "200 result=0"
        if verb == "HANGUP":
            return "200 result=1"
        if verb == "STREAM FILE":
            path, escape = words[2], words[3] if len(words) > 3 else ""
            if not _playable(path):
                return "200 result=-1 endpos=0"
            log.played.append(path)
            if isinstance(nxt, Press) and nxt.barge and nxt.keys[0] in escape:
                steps.pop(0)
                return f"200 result={ord(nxt.keys[0])} endpos=4000"
            return "200 result=0 endpos=16000"
        if verb == "WAIT FOR":  # WAIT FOR DIGIT
            if isinstance(nxt, Press):
                steps.pop(0)
                return f"200 result={ord(nxt.keys[0])}"
            if isinstance(nxt, Silence):
                steps.pop(0)
            return "200 result=0"
        if verb == "GET DATA":
            log.played.append(words[2])
            if isinstance(nxt, Press):
                steps.pop(0)
                return f"200 result={nxt.keys.rstrip('#')}"
            if isinstance(nxt, Silence):
                steps.pop(0)
            return "200 result= (timeout)"
        if verb == "RECORD FILE":
            return await self._record(words, steps, log, write_delay)
        return "510 Invalid or unknown command"

    async def _record(self, words: list[str], steps: list, log: CallLog, write_delay: float) -> str:
        path = Path(f"{words[2]}.{words[3]}")
        escape = words[4]
        nxt = steps.pop(0) if steps else Silence()
        log.recordings.append(path)
        if isinstance(nxt, Press) and nxt.keys[0] in escape:
            path.write_bytes(wav_bytes(b"", RATE))
            log.record_replied_at.append(time.monotonic())
            return f"200 result={ord(nxt.keys[0])} (dtmf) endpos=0"
        pcm = nxt.pcm if isinstance(nxt, Say) else b"\x00\x00" * (RATE // 2)
        if isinstance(nxt, Press):  # a key the recording does not stop on: silence
            pcm = b"\x00\x00" * (RATE // 2)
        data = wav_bytes(pcm, RATE)
        # write it as Asterisk does, a header first and the audio as it comes, so the IVR can follow the file
        with path.open("wb") as f:
            f.write(data[:44])
            f.flush()
            step = max(len(pcm) // 8 // 2 * 2, 2)
            for start in range(44, len(data), step):
                f.write(data[start : start + step])
                f.flush()
                await asyncio.sleep(write_delay)
        log.record_replied_at.append(time.monotonic())
        if isinstance(nxt, Say) and nxt.end == "#":
            return f"200 result=35 (dtmf) endpos={len(pcm) // 2}"
        return f"200 result=0 (timeout) endpos={len(pcm) // 2}"


def _playable(path: str) -> bool:
    base = Path(path)
    return any(base.with_name(base.name + ext).is_file() for ext in (".wav", ".gsm", ".sln", ".ulaw"))


def _hangup_reply(line: str) -> str:
    """What Asterisk answers to a command during which the caller hung up."""
    verb = line.upper()
    if verb.startswith("RECORD FILE"):
        return "200 result=-1 (hangup) endpos=0"
    if re.match(r"(STREAM FILE|WAIT FOR DIGIT|GET DATA|SAY DIGITS|ANSWER)", verb):
        return "200 result=-1" + (" endpos=0" if verb.startswith("STREAM") else "")
    return DEAD
