"""The FastAGI server: one asyncio task per call, many calls at once, none left behind.

Asterisk connects once per call (``AGI(agi://host:4573/12319)`` in the dialplan), sends the call's ``agi_*``
variables and waits for commands. A call ends when the flow ends, when the caller hangs up (a 511 reply, a bare
HANGUP, a -1 result on a dead channel, or the socket closing) or when it has run longer than any call should;
in every case the connection is closed and the call's recordings are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from ivr.agi import AgiChannel, AgiError, ChannelGone
from ivr.flow import Call, Listening, Outcome, Recorded
from ivr.hotline import Hotline

log = logging.getLogger("gridline.ivr")

DEFAULT_PORT = 4573
MAX_CALL_SECONDS = 30 * 60
TAIL_POLL_S = 0.2


def mask_number(number: str) -> str:
    """A caller number for the log: enough to tell calls apart, not enough to call back."""
    return number[:3] + "****" + number[-4:] if len(number) >= 8 else "****"


def caller_number(env: dict[str, str]) -> str:
    raw = env.get("agi_callerid", "")
    number = re.sub(r"[^\d+]", "", raw) if raw.lower() not in ("", "unknown", "anonymous") else ""
    return number[:32]


class AgiLine:
    """The flow's telephone over one FastAGI connection."""

    def __init__(self, channel: AgiChannel, hotline: Hotline) -> None:
        self.channel = channel
        self.hotline = hotline

    async def _alive(self) -> None:
        """After a -1 result: ChannelGone if the channel is dead, so a missing prompt is not taken for a hang-up."""
        reply = await self.channel.command("CHANNEL STATUS", timeout=5)
        if reply.value < 0:
            raise ChannelGone("channel status -1")

    async def answer(self) -> None:
        reply = await self.channel.command("ANSWER")
        if reply.value < 0:
            raise ChannelGone("answer failed")

    async def play(self, name: str, escape: str = "") -> str | None:
        try:
            path = self.hotline.prompts.path(name)
        except KeyError:
            log.error("prompt %s has no file; skipped", name)
            return None
        reply = await self.channel.command("STREAM FILE", path, escape, timeout=300)
        if reply.value < 0:
            await self._alive()
            log.error("Asterisk could not play %s", path)
            return None
        return reply.digit

    async def wait_digit(self, seconds: float) -> str | None:
        reply = await self.channel.command("WAIT FOR DIGIT", int(seconds * 1000), timeout=seconds + 10)
        if reply.value < 0:
            await self._alive()
            return None
        return reply.digit

    async def get_digits(self, prompt: str, seconds: float, max_digits: int) -> str:
        path = self.hotline.prompts.path(prompt)
        reply = await self.channel.command("GET DATA", path, int(seconds * 1000), max_digits, timeout=300)
        if reply.result.startswith("-"):
            await self._alive()
            return ""
        return reply.result if re.fullmatch(r"[0-9*#]*", reply.result) else ""

    async def record(
        self, path: Path, *, max_s: float, silence_s: int, escape: str, beep: bool, listening: Listening | None
    ) -> Recorded:
        """RECORD FILE, with the growing file fed to the recogniser while the caller talks."""
        args: list[str | int] = [str(path), "wav", escape, int(max_s * 1000)]
        if beep:
            args += [0, "BEEP"]
        args.append(f"s={silence_s}")
        wav = path.with_suffix(".wav")
        stop = asyncio.Event()
        live = listening is not None and listening.live
        tail = asyncio.create_task(_tail(wav, listening, stop)) if live and listening else None
        try:
            reply = await self.channel.command("RECORD FILE", *args, timeout=max_s + 30)
        finally:
            stop.set()
            if tail is not None:
                await tail
        if reply.value < 0 or reply.data == "hangup":
            if reply.data in ("writefile", "randomerror"):
                log.error("RECORD FILE %s failed: %s", path, reply.data)
                return Recorded(path)
            raise ChannelGone("hang-up while recording")
        if listening is not None and not live and reply.digit is None:
            await _tail(wav, listening, _set())  # the whole answer at once
        return Recorded(path, reply.digit)

    async def say_digits(self, digits: str) -> None:
        reply = await self.channel.command("SAY DIGITS", digits, "", timeout=120)
        if reply.value < 0:
            await self._alive()

    async def set_var(self, name: str, value: str) -> None:
        await self.channel.command("SET VARIABLE", name, value)

    async def hangup(self) -> None:
        with contextlib.suppress(ChannelGone):
            await self.channel.command("HANGUP", timeout=5)


def _wav_data_offset(head: bytes) -> int | None:
    """Where the samples start in a WAV file being written (None until the header is complete)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)
    return None


def _set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def _tail(path: Path, listening: Listening, stop: asyncio.Event) -> None:
    """Follow a recording as Asterisk writes it and feed each new piece of audio to the recogniser."""
    handle = None
    offset: int | None = None
    try:
        while True:
            stopping = stop.is_set()
            if handle is None and path.is_file():
                handle = path.open("rb")
            if handle is not None:
                if offset is None:
                    handle.seek(0)
                    offset = _wav_data_offset(handle.read(4096))
                    if offset is not None:
                        handle.seek(offset)
                if offset is not None:
                    chunk = handle.read()
                    if chunk:
                        await listening.feed(chunk, urgent=stopping)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TAIL_POLL_S)
    finally:
        if handle is not None:
            handle.close()


class AgiServer:
    """Accepts FastAGI connections and runs one ``Call`` per connection."""

    def __init__(self, hotline: Hotline, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.hotline = hotline
        self.host = host
        self.port = port
        self.calls: set[asyncio.Task] = set()
        self.outcomes: Counter[str] = Counter()
        self.finished: list[Outcome] = []
        self._server: asyncio.Server | None = None

    @property
    def active(self) -> int:
        return len(self.calls)

    async def start(self) -> None:
        """Bind (port 0 picks a free one, then ``self.port`` says which)."""
        self._server = await asyncio.start_server(self._connection, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        mode = "" if self.hotline.speech is not None else "（未配置语音模型：只转人工）"
        log.info("12319 FastAGI listening on %s:%s%s", self.host, self.port, mode)

    async def close(self) -> None:
        """Stop accepting, end every call in progress (closing its connection) and wait for them."""
        if self._server is not None:
            self._server.close()
        for task in list(self.calls):
            task.cancel()
        if self.calls:
            await asyncio.gather(*self.calls, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        channel = AgiChannel(reader, writer)
        outcome = Outcome(kind="error")
        started = time.monotonic()
        call_id = ""
        try:
            env = await channel.read_env()
            call_id = env.get("agi_uniqueid") or uuid.uuid4().hex
            caller = caller_number(env)
            folder = self.hotline.workdir / re.sub(r"[^\w.-]", "_", f"{call_id}-{uuid.uuid4().hex[:8]}")
            call = Call(AgiLine(channel, self.hotline), self.hotline, call_id=call_id, caller=caller, workdir=folder)
            log.info("call %s from %s", call_id, mask_number(caller))
            async with asyncio.timeout(MAX_CALL_SECONDS):
                outcome = await call.run()
        except (ChannelGone, AgiError) as exc:
            log.warning("call %s: %s", call_id or "?", exc)
        except TimeoutError:
            log.error("call %s ran longer than %s s; closed", call_id, MAX_CALL_SECONDS)
        except asyncio.CancelledError:
            outcome = Outcome(kind="cancelled", call_id=call_id)
        finally:
            await channel.close()
            self.calls.discard(task)
            self.outcomes[outcome.kind] += 1
            self.finished.append(outcome)
            del self.finished[:-1000]
            log.info(
                "call %s ended: %s %s %s (%.1f s)",
                call_id or "?",
                outcome.kind,
                outcome.reason,
                outcome.case_number or "",
                time.monotonic() - started,
            )


def serve(hotline: Hotline, host: str, port: int) -> None:
    """Run the server in this thread until interrupted (``gridline ivr``)."""

    async def main() -> None:
        server = AgiServer(hotline, host, port)
        await server.start()
        await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        hotline.close()


class Background:
    """The server in a thread of its own with its own event loop (``gridline serve`` runs HTTP in the main one)."""

    def __init__(self, hotline: Hotline, host: str, port: int) -> None:
        self.hotline = hotline
        self.server = AgiServer(hotline, host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="agi", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()

    def start(self) -> Background:
        """Start and wait until the port is bound; re-raises a failure to bind."""
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.hotline.close()
