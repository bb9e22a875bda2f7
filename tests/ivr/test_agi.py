"""The FastAGI protocol layer against the reply forms Asterisk 22 sends, over a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ivr.agi import AgiChannel, AgiError, ChannelGone, parse_reply, quote
from tests.ivr.fakes import HEADER


@pytest.mark.parametrize(
    ("line", "result", "data", "extra", "digit"),
    [
        ("200 result=0 (timeout) endpos=16000", "0", "timeout", {"endpos": "16000"}, None),
        ("200 result=49", "49", "", {}, "1"),
        ("200 result=35 (dtmf) endpos=8000", "35", "dtmf", {"endpos": "8000"}, "#"),
        ("200 result=-1 (hangup) endpos=0", "-1", "hangup", {"endpos": "0"}, None),
        ("200 result= (timeout)", "", "timeout", {}, None),
        ("200 result=123", "123", "", {}, None),
        ("200 result=1 (a value (with) brackets)", "1", "a value (with) brackets", {}, None),
    ],
)
def test_success_replies(line, result, data, extra, digit):
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data, reply.extra, reply.digit) == (200, result, data, extra, digit)


def test_error_replies_and_garbage():
    assert parse_reply("510 Invalid or unknown command").code == 510
    assert parse_reply("511 Command Not Permitted on a dead channel or intercepted").code == 511
    assert parse_reply("200 result=-1").value == -1
    with pytest.raises(AgiError):
        parse_reply("HELLO there")


def test_arguments_are_quoted_only_when_needed():
    assert quote("#0") == "#0"
    assert quote("") == '""'
    assert quote("a b") == '"a b"'
    assert quote('say "hi"') == '"say \\"hi\\""'
    assert quote(8000) == "8000"
    with pytest.raises(ValueError):
        quote("two\nlines")


@pytest.fixture
async def pair():
    """An AgiChannel on one end of a loopback connection; the test plays Asterisk on the other."""
    made = []

    async def make(timeout: float = 2.0) -> tuple[AgiChannel, asyncio.StreamReader, asyncio.StreamWriter]:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_connect(reader, writer):
            accepted.set_result((reader, writer))

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ast_reader, ast_writer = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await accepted
        made.append((server, ast_writer, writer))
        return AgiChannel(reader, writer, timeout=timeout), ast_reader, ast_writer

    yield make
    for server, a, b in made:
        a.close()
        b.close()
        server.close()


async def _reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *lines: str) -> str:
    command = (await reader.readline()).decode().strip()
    writer.write("".join(f"{line}\n" for line in lines).encode())
    await writer.drain()
    return command


async def test_the_real_header_is_read(pair: Callable):
    channel, _r, w = await pair()
    w.write(HEADER.format(port=4573, uniqueid="1700000000.7", callerid="13800138000").encode())
    env = await channel.read_env()
    assert env["agi_callerid"] == "13800138000"
    assert env["agi_uniqueid"] == "1700000000.7"
    assert env["agi_request"] == "agi://127.0.0.1:4573/12319"
    assert env["agi_accountcode"] == ""


async def test_a_hangup_notice_before_the_reply_is_remembered(pair: Callable):
    channel, r, w = await pair()
    answer = asyncio.create_task(_reply(r, w, "HANGUP", "200 result=49"))
    reply = await channel.command("WAIT FOR DIGIT", 5000)
    assert await answer == "WAIT FOR DIGIT 5000"
    assert reply.digit == "1"  # a key pressed before hanging up still counts
    with pytest.raises(ChannelGone):
        await channel.command("STREAM FILE", "goodbye", "")


async def test_a_dead_channel_reply_means_the_caller_is_gone(pair: Callable):
    channel, r, w = await pair()
    answer = asyncio.create_task(_reply(r, w, "511 Command Not Permitted on a dead channel or intercepted"))
    with pytest.raises(ChannelGone):
        await channel.command("SAY DIGITS", "123", "")
    await answer
    assert channel.hung_up


async def test_usage_text_and_unknown_commands_are_errors_not_hangups(pair: Callable):
    channel, r, w = await pair()
    usage = (
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: RECORD FILE <filename> <format> <escape digits> <timeout>",
        "520 End of proper usage.",
    )
    answer = asyncio.create_task(_reply(r, w, *usage))
    with pytest.raises(AgiError, match="520"):
        await channel.command("RECORD FILE", "x")
    await answer
    answer = asyncio.create_task(_reply(r, w, "510 Invalid or unknown command"))
    with pytest.raises(AgiError, match="510"):
        await channel.command("FLY AWAY")
    await answer
    answer = asyncio.create_task(_reply(r, w, "200 result=1"))
    assert (await channel.command("SET VARIABLE", "A", "b c")).value == 1
    assert await answer == 'SET VARIABLE A "b c"'


async def test_a_closed_connection_or_silence_from_asterisk_ends_the_call(pair: Callable):
    channel, _r, w = await pair(timeout=0.3)
    with pytest.raises(ChannelGone):
        await channel.command("ANSWER")  # nobody answers
    channel, _r, w = await pair()
    w.close()
    with pytest.raises(ChannelGone):
        await channel.command("ANSWER")
