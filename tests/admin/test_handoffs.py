"""The 受理员's hand-over queue through the REST API: a citizen writes “人工” on the web chat or Telegram, staff see
the conversation with the citizen masked and answer it, and the answer reaches the citizen's channel."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from admin.app import build_app
from admin.runtime import Runtime
from bots import storage
from bots.dialogue import Inbound
from bots.privacy import mask
from core import users
from core.config import load_settings

CHAT = {"X-Gridline-Chat": "1"}


@pytest.fixture
def runtime(demo_url, tmp_path):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    yield runtime
    runtime.close()


@pytest.fixture
async def staff(aiohttp_client, runtime):
    """An API client, and ``call(who, method, path, expect, **kw)`` as one person per role (JSON body back)."""
    tokens = {}
    for name, role, dept in (
        ("op", "operator", None),
        ("lead", "shift_lead", None),
        ("boss", "admin", None),
        ("disp", "dispatcher", None),
        ("hw", "department", "HW"),
    ):
        users.add_user(runtime.engine, name, role, department=dept)
        tokens[name] = users.create_token(runtime.engine, name)
    client = await aiohttp_client(build_app(runtime))

    async def call(who: str, method: str, path: str, expect: int, **kw):
        headers = {"Authorization": f"Bearer {tokens[who]}", **kw.pop("headers", {})}
        resp = await client.request(method, path, headers=headers, **kw)
        text = await resp.text()
        assert resp.status == expect, (method, path, resp.status, text)
        return resp.headers["Content-Type"], text, await resp.json()

    return client, call


async def web_citizen(aiohttp_client, client) -> tuple[object, str]:
    """A web-chat visitor on the same app: (their client, the user id the dialogue knows them by)."""
    citizen = await aiohttp_client(client.server.app)
    assert (await citizen.get("/chat")).status == 200
    key = citizen.session.cookie_jar.filter_cookies(citizen.make_url("/"))["gridline_chat"].value
    return citizen, "w" + hashlib.sha256(key.encode()).hexdigest()[:40]


async def chat(citizen, text: str) -> str:
    resp = await citizen.post("/chat/api/messages", json={"id": uuid.uuid4().hex, "text": text}, headers=CHAT)
    assert resp.status == 200, await resp.text()
    return "\n".join(r["text"] for r in (await resp.json())["replies"])


def telegram_chat_id() -> str:
    return str(7_000_000_000_000 + uuid.uuid4().int % 10**12)


async def test_staff_see_the_queue_masked_and_oldest_first_and_answers_reach_each_channel(
    aiohttp_client, runtime, staff
):
    client, call = staff
    citizen, visitor = await web_citizen(aiohttp_client, client)
    assert "人工受理员" in await chat(citizen, "人工")
    assert "已转达受理员" in await chat(citizen, "人民路88号的井盖没了，快来人")
    chat_id = telegram_chat_id()
    runtime.dialogue.handle(Inbound("telegram", chat_id, text="人工"))
    runtime.dialogue.handle(Inbound("telegram", chat_id, text="路灯三天没亮了"))

    kind, raw, body = await call("op", "GET", "/api/v1/handoffs", 200)
    assert kind.startswith("application/json")
    assert visitor not in raw and visitor[1:] not in raw and chat_id not in raw  # only masked tags
    web, tg = body["handoffs"]  # oldest first
    assert (web["channel"], web["user"]) == ("webchat", mask(visitor))
    assert [m["text"] for m in web["messages"]] == ["人民路88号的井盖没了，快来人"]
    assert (tg["channel"], tg["user"]) == ("telegram", mask(chat_id))
    assert tg["messages"][-1]["text"] == "路灯三天没亮了" and web["since"] <= tg["since"]

    _, _, answer = await call(
        "op", "POST", f"/api/v1/handoffs/{web['conversation']}/reply", 200, json={"text": "您好，已通知市政部门处理"}
    )
    assert answer == {"conversation": web["conversation"], "queued": True}
    news = await (await citizen.get("/chat/api/updates", params={"after": 0})).json()
    assert [r["text"] for u in news["updates"] for r in u["replies"]] == ["受理员op：您好，已通知市政部门处理"]

    await call("lead", "POST", f"/api/v1/handoffs/{tg['conversation']}/reply", 200, json={"text": " 马上派人 "})
    [row] = [r for r in storage.due(runtime.engine, ("telegram",)) if r.recipient == chat_id]
    assert row.kind == "reply" and row.payload["replies"] == [{"text": "受理员lead：马上派人"}]
    _, _, still = await call("boss", "GET", "/api/v1/handoffs", 200)
    assert len(still["handoffs"]) == 2  # answering does not end the hand-over: the citizen does, with “取消”


async def test_refusals(runtime, staff):
    _, call = staff
    chat_id = telegram_chat_id()
    runtime.dialogue.handle(Inbound("telegram", chat_id, text="人工"))
    _, _, body = await call("op", "GET", "/api/v1/handoffs", 200)
    [waiting] = body["handoffs"]
    reply = f"/api/v1/handoffs/{waiting['conversation']}/reply"

    for who in ("hw", "disp"):
        _, _, refused = await call(who, "GET", "/api/v1/handoffs", 403)
        assert "受理员" in refused["error"]
        await call(who, "POST", reply, 403, json={"text": "你好"})
    for bad in ({}, {"text": ""}, {"text": "   "}, {"text": "长" * 501}, {"text": "好", "to": "x"}, {"text": 5}, []):
        _, _, refused = await call("op", "POST", reply, 400, json=bad)
        assert refused["error"]
    await call("op", "POST", reply, 400, data=b"{not json", headers={"Content-Type": "application/json"})
    for not_a_number in ("abc", "-1", "1.5", "%EF%BC%91"):  # the last is a full-width １
        await call("op", "POST", f"/api/v1/handoffs/{not_a_number}/reply", 400, json={"text": "你好"})
    for unknown in ("0", "999999", "99999999999999999999999"):  # the last is past BIGINT
        _, _, missing = await call("op", "POST", f"/api/v1/handoffs/{unknown}/reply", 404, json={"text": "你好"})
        assert "没有等待人工服务的会话" in missing["error"]
    assert [r for r in storage.due(runtime.engine, ("telegram",)) if r.recipient == chat_id] == []

    assert "已结束人工服务" in runtime.dialogue.handle(Inbound("telegram", chat_id, text="取消"))[0].text
    await call("op", "POST", reply, 404, json={"text": "还在吗"})  # ended by the citizen: nothing is sent
    assert [r for r in storage.due(runtime.engine, ("telegram",)) if r.recipient == chat_id] == []
    _, _, body = await call("op", "GET", "/api/v1/handoffs", 200)
    assert body["handoffs"] == []
