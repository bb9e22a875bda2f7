"""The notifier through its module API: delivery passes in one process do not overlap."""

from __future__ import annotations

import asyncio

from bots import storage
from bots.notify import Notifier


async def test_a_pass_asked_for_during_another_waits_for_it_and_nothing_is_sent_twice(engine):
    gate, sends = asyncio.Event(), []

    async def slow(recipient: str, replies: list[dict], kind: str) -> None:
        sends.append(recipient)
        await gate.wait()

    notifier = Notifier(engine, {"telegram": slow})
    row = {"channel": "telegram", "recipient": "42", "kind": "reply", "payload": {"replies": [{"text": "您好"}]}}
    storage.enqueue(engine, [{"dedup_key": "reply:telegram:1", **row}])
    first = asyncio.create_task(notifier.deliver())
    while not sends:
        await asyncio.sleep(0.01)
    second = asyncio.create_task(notifier.tick())  # the background loop's pass, or a manual one
    await asyncio.sleep(0.2)
    assert not second.done()  # it waits for the pass in flight rather than returning with the row still unsent
    gate.set()
    assert await first == 1
    await second
    assert sends == ["42"]
