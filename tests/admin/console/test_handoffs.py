"""人工会话 through HTTP: a citizen writes “人工” on Telegram, the console lists the conversation with the citizen
masked and what they sent, a reply goes to the outbox for their channel, and refusals send nothing."""

from __future__ import annotations

import re
import uuid

from bots import storage
from bots.dialogue import Inbound, waiting_handoffs
from bots.privacy import mask
from tests.bots.fakes import png


def telegram_chat_id() -> str:
    return str(7_000_000_000_000 + uuid.uuid4().int % 10**12)


def handed_over(runtime, *messages: Inbound) -> str:
    """A Telegram citizen who asked for a person and then wrote ``messages``: their chat id."""
    chat_id = telegram_chat_id()
    assert "人工受理员" in runtime.dialogue.handle(Inbound("telegram", chat_id, text="人工"))[0].text
    for message in messages:
        runtime.dialogue.handle(Inbound("telegram", chat_id, **message))
    return chat_id


def outbox(runtime, chat_id: str) -> list:
    return [r for r in storage.due(runtime.engine, ("telegram",)) if r.recipient == chat_id]


async def test_a_handed_over_conversation_is_listed_masked_with_its_messages_and_photos(console):
    runtime = console.runtime
    photo = png(7)
    chat_id = handed_over(
        runtime,
        {"text": "人民路88号的井盖没了，快来人"},
        {"photo": photo, "photo_type": "image/png"},
        {"lon": 120.5981418, "lat": 29.9999542},
    )
    op = await console.login("op")
    status, page = await op.get("/console/handoffs")
    assert status == 200 and chat_id not in page and mask(chat_id) in page
    [conversation] = re.findall(r'id="conv-(\d+)"', page)
    assert "人民路88号的井盖没了，快来人" in page and "Telegram" in page
    assert "发送位置：人民路88号" in page and "339901001003004" in page
    [sha] = re.findall(rf'src="/console/handoffs/{conversation}/files/([0-9a-f]{{64}})"', page)
    async with op.http.get(f"/console/handoffs/{conversation}/files/{sha}") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
    status, _ = await op.get(f"/console/handoffs/{conversation}/files/{'0' * 64}")
    assert status == 404
    assert f'hx-get="/console/handoffs?shown={conversation}"' in page  # the page keeps itself up to date

    # the poll: new messages appear, a new conversation is announced, an ended one says so
    runtime.dialogue.handle(Inbound("telegram", chat_id, text="还有路灯也坏了"))
    other = handed_over(runtime, {"text": "垃圾没人清"})
    status, update = await op.get(f"/console/handoffs?shown={conversation},424242")
    assert status == 200 and "还有路灯也坏了" in update and "有 1 个新会话" in update and mask(other) in update
    assert re.search(r'id="msgs-424242"><li><p class="flash error">市民已结束人工服务', update)

    runtime.dialogue.handle(Inbound("telegram", chat_id, text="取消"))
    status, page = await op.get(f"/console/handoffs?shown={conversation}")
    assert f'id="conv-{conversation}"' not in page and f'id="msgs-{conversation}"><li><p class="flash error">' in page
    status, _ = await op.get(f"/console/handoffs/{conversation}/files/{sha}")
    assert status == 404  # the photo was for the hand-over, which has ended


async def test_a_reply_goes_to_the_outbox_of_the_citizens_channel(console):
    runtime = console.runtime
    chat_id = handed_over(runtime, {"text": "路灯三天没亮了"})
    for name in ("op", "lead", "adm"):
        staff = await console.login(name)
        _, page = await staff.get("/console/handoffs")
        [conversation] = re.findall(r'id="conv-(\d+)"', page)
        status, page = await staff.post(f"/console/handoffs/{conversation}/reply", {"text": " 马上派人 "})
        assert status == 200 and f"已回复会话 {conversation}" in page
    rows = outbox(runtime, chat_id)
    assert [(r.kind, r.payload["replies"]) for r in rows] == [
        ("reply", [{"text": f"受理员{name}：马上派人"}]) for name in ("op", "lead", "adm")
    ]


async def test_empty_or_long_replies_and_ended_conversations_are_refused_and_nothing_is_sent(console):
    runtime = console.runtime
    chat_id = handed_over(runtime, {"text": "路灯三天没亮了"})
    op = await console.login("op")
    _, page = await op.get("/console/handoffs")
    [conversation] = re.findall(r'id="conv-(\d+)"', page)
    reply = f"/console/handoffs/{conversation}/reply"
    for text, says in (("", "不能为空"), ("   ", "不能为空"), ("长" * 501, "最多 500 字"), ("好\x00", "NUL")):
        status, page = await op.post(reply, {"text": text})
        assert status == 422 and says in page and "未执行" in page
    for other in ("0", "999999", "abc", "9" * 30):
        status, page = await op.post(f"/console/handoffs/{other}/reply", {"text": "你好"})
        assert status == 404 and "没有等待人工服务" in page
    runtime.dialogue.handle(Inbound("telegram", chat_id, text="取消"))
    status, page = await op.post(reply, {"text": "还在吗"})
    assert status == 404 and "已结束人工服务" in page
    assert outbox(runtime, chat_id) == []


async def test_staff_outside_the_centre_seats_may_not_open_or_answer(console):
    runtime = console.runtime
    chat_id = handed_over(runtime, {"text": "路灯三天没亮了"})
    [waiting] = waiting_handoffs(runtime.engine)
    for name in ("col", "hw", "disp"):
        staff = await console.login(name)
        status, page = await staff.get("/console/handoffs")
        assert status == 403 and "路灯三天没亮了" not in page
        status, _ = await staff.post(f"/console/handoffs/{waiting['conversation']}/reply", {"text": "你好"})
        assert status == 403
    assert outbox(runtime, chat_id) == []
