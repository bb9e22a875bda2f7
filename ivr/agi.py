"""FastAGI, the protocol Asterisk speaks to an IVR over TCP: a block of ``agi_*: value`` lines, then one command
per line from us and one reply per command from Asterisk.

Replies come in these forms, all handled here:
- ``200 result=<n>[ (<data>)][ endpos=<n>]`` — e.g. ``200 result=0 (timeout) endpos=16000`` after RECORD FILE,
  ``200 result=49`` for the digit 1, ``200 result= (timeout)`` from GET DATA with nothing pressed;
- ``510 Invalid or unknown command``;
- ``511 Command Not Permitted on a dead channel or intercepted`` — the caller has gone;
- ``520-Invalid command syntax. Proper usage follows:`` … ``520 End of proper usage.`` (several lines);
- a bare ``HANGUP`` line, which Asterisk sends by itself when the caller hangs up, before or after a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

MAX_HEADER_LINES = 200
_REPLY = re.compile(r"result=(?P<result>\S*)\s*(?:\((?P<data>.*)\))?\s*(?P<rest>.*)$")


class AgiError(RuntimeError):
    """Asterisk refused a command (510/520) or said something that is not AGI."""


class ChannelGone(Exception):
    """The caller hung up, or Asterisk closed the connection: nothing more can be said on this call."""


@dataclass(frozen=True)
class Reply:
    code: int
    result: str = ""
    data: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> int:
        """``result`` as a number (-1 when it is not one, as Asterisk uses -1 for failure)."""
        try:
            return int(self.result)
        except ValueError:
            return -1

    @property
    def digit(self) -> str | None:
        """The DTMF digit in ``result`` (WAIT FOR DIGIT, STREAM FILE, RECORD FILE send its ASCII code)."""
        n = self.value
        return chr(n) if n > 0 and chr(n) in "0123456789*#ABCD" else None


def parse_reply(line: str) -> Reply:
    """One reply line (the last one, for the multi-line 520) → Reply; AgiError when it is not a reply."""
    head, _, rest = line.partition(" ")
    if len(head) != 3 or not head.isdigit():
        raise AgiError(f"not an AGI reply: {line[:80]!r}")
    code = int(head)
    if code != 200:
        return Reply(code, data=rest)
    m = _REPLY.match(rest)
    if m is None:
        raise AgiError(f"AGI reply without result: {line[:80]!r}")
    extra = dict(kv.split("=", 1) for kv in m["rest"].split() if "=" in kv)
    return Reply(200, m["result"], m["data"] or "", extra)


def quote(arg: str | int) -> str:
    """One AGI argument: quoted when empty or holding spaces or quotes; a line break can never be sent."""
    text = str(arg)
    if "\n" in text or "\r" in text:
        raise ValueError("AGI arguments cannot hold line breaks")
    if text and not re.search(r'[\s"\\]', text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiChannel:
    """One FastAGI connection: the call's ``agi_*`` variables and its command/reply exchange."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout: float = 30.0) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.env: dict[str, str] = {}
        self.hung_up = False  # a bare HANGUP arrived: every later command would meet a dead channel

    async def _line(self, timeout: float) -> str:
        try:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
        except (TimeoutError, ConnectionError) as exc:
            raise ChannelGone(f"no answer from Asterisk: {type(exc).__name__}") from None
        if not raw:
            raise ChannelGone("Asterisk closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def read_env(self, timeout: float = 10.0) -> dict[str, str]:
        """The ``agi_*`` block up to its empty line."""
        for _ in range(MAX_HEADER_LINES):
            line = await self._line(timeout)
            if not line:
                return self.env
            key, sep, value = line.partition(":")
            if not sep or not key.startswith("agi_"):
                raise AgiError(f"not an AGI header line: {line[:80]!r}")
            self.env[key.strip()] = value.strip()
        raise AgiError("AGI header too long")

    async def command(self, *words: str | int, timeout: float | None = None) -> Reply:
        """Send one command and wait for its reply; ChannelGone once the caller is known to have hung up."""
        if self.hung_up:
            raise ChannelGone("caller hung up")
        line = " ".join([str(words[0]), *(quote(w) for w in words[1:])])
        try:
            self.writer.write(line.encode("utf-8") + b"\n")
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ChannelGone(f"connection lost: {exc}") from None
        limit = self.timeout if timeout is None else timeout
        while True:
            text = await self._line(limit)
            if text.strip() == "HANGUP":
                self.hung_up = True
                continue
            if text.startswith("520-"):  # usage text follows, up to "520 End of proper usage."
                while not text.startswith("520 "):
                    text = await self._line(limit)
            reply = parse_reply(text)
            if reply.code == 511:
                self.hung_up = True
                raise ChannelGone("dead channel")
            if reply.code != 200:
                raise AgiError(f"{line.split()[0]} refused: {reply.code} {reply.data}".strip())
            return reply

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
