"""The case loop through the REST API, role by role, with deadlines counted across a 调休 Saturday and a weekend."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from admin.app import build_app
from admin.runtime import Runtime
from core import users
from core.cases import CaseLoop, rules_from_settings
from core.config import load_settings
from core.models import RoutingRule

SH = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def png(seed: int) -> bytes:
    """A real 1×1 PNG; ``seed`` makes each one different."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(bytes([0, seed % 256, 0, 0]))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def world(demo_url, tmp_path):
    """The demo city with one person per role and a clock the test moves."""
    settings = load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)})
    runtime = Runtime(settings)
    clock = Clock(datetime(2026, 10, 9, 15, 0, tzinfo=SH))  # a Friday; Saturday 10-10 is a 调休 working day
    runtime.__dict__["loop"] = CaseLoop(runtime.engine, runtime.calendar, rules_from_settings(settings), clock)
    engine = runtime.engine
    tokens = {}
    for name, role, dept, scope in (
        ("op", "operator", None, []),
        ("col", "collector", None, ["339901"]),
        ("lead", "shift_lead", None, []),
        ("disp", "dispatcher", None, []),
        ("sz", "department", "SZ", []),
        ("hw", "department", "HW", []),
        ("boss", "leader", None, []),
    ):
        users.add_user(engine, name, role, department=dept, scope=scope)
        tokens[name] = users.create_token(engine, name)
    with Session(engine) as s:
        s.add(RoutingRule(matter_prefix="06010", department_code="HW"))
        s.commit()
    yield runtime, clock, tokens
    runtime.close()


@pytest.fixture
async def api(aiohttp_client, world):
    runtime, clock, tokens = world
    client = await aiohttp_client(build_app(runtime))

    async def call(who: str, method: str, path: str, expect: int, **kw):
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
        headers.update(kw.pop("headers", {}))
        resp = await client.request(method, path, headers=headers, **kw)
        body = await resp.json()
        assert resp.status == expect, (method, path, resp.status, body)
        return body

    return call, clock


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=SH)


async def upload(call, who: str, seed: int) -> str:
    body = await call(
        who, "POST", "/api/v1/attachments", 201, data=io.BytesIO(png(seed)), headers={"Content-Type": "image/png"}
    )
    return body["sha256"]


async def test_closed_loop_for_every_role(api):
    call, clock = api
    report = await call(
        "op",
        "POST",
        "/api/v1/reports",
        201,
        json={
            "channel": "operator",
            "channel_ref": "call-0001",
            "text": "人民路88号门口一大堆垃圾没人清",
            "address": "人民路88号",
        },
    )
    number = report["case"]
    again = await call(
        "op",
        "POST",
        "/api/v1/reports",
        200,
        json={"channel": "operator", "channel_ref": "call-0001", "text": "人民路88号门口一大堆垃圾没人清"},
    )
    assert again["case"] == number and again["created"] is False

    case = await call("op", "GET", f"/api/v1/cases/{number}", 200)
    assert case["state"] == "待受理" and case["grid_code"].startswith("339901") and case["timer"]["stage"] == "受理"
    act = f"/api/v1/cases/{number}/actions"
    clock.at = at(9, 15, 10)
    await call("op", "POST", f"{act}/send_verify", 200, json={"matter_code": "06010"})
    await call("col", "POST", f"{act}/verify", 200, json={"confirmed": True})
    refused = await call("op", "POST", f"{act}/accept", 409, json={})  # not in 待受理 any more
    assert "待立案" in refused["error"]
    assert report["classification"]["top"] and report["steps"]["locate"]["status"] == "ok"


async def test_scripted_loop_with_deadlines(api):
    call, clock = api
    number = (
        await call(
            "op",
            "POST",
            "/api/v1/reports",
            201,
            json={"channel": "operator", "channel_ref": "call-0002", "text": "垃圾堆在路边", "address": "人民路88号"},
        )
    )["case"]
    act = f"/api/v1/cases/{number}/actions"
    await call("op", "POST", f"{act}/accept", 200, json={"matter_code": "06010"})
    filed = await call("lead", "POST", f"{act}/file", 200, json={"level": 1})
    assert filed["state"] == "待派遣" and filed["suggested_department"] == "HW"

    clock.at = at(9, 16, 30)  # Friday 16:30: one working hour left today, Saturday 10-10 is a 调休 working day
    case = await call("disp", "POST", f"{act}/dispatch", 200, json={"department": "SZ"})
    expected = {"A": at(10, 11, 30), "B": at(10, 15, 0), "C": at(10, 17, 0)}[case["area_class"]]
    assert datetime.fromisoformat(case["timer"]["deadline"]) == expected
    await call("hw", "GET", f"/api/v1/cases/{number}", 404)  # another department's case
    await call("sz", "POST", f"{act}/sign", 200, json={})
    await call("sz", "POST", f"{act}/request_return", 200, json={"reason": "不属于市政设施"})
    await call("sz", "POST", f"{act}/request_return", 409, json={"reason": "again"})
    clock.at = at(10, 17, 0)  # Saturday 17:00, then Sunday off
    back = await call("lead", "POST", f"{act}/approve", 200, json={})
    assert back["state"] == "待派遣" and back["department"] is None
    await call("sz", "GET", f"/api/v1/cases/{number}", 404)  # no longer theirs

    case = await call("disp", "POST", f"{act}/dispatch", 200, json={"department": "HW"})
    expected = {"A": at(12, 12, 0), "B": at(12, 15, 30), "C": at(12, 17, 30)}[case["area_class"]]
    assert datetime.fromisoformat(case["timer"]["deadline"]) == expected
    assert case["dispatch_count"] == 2

    clock.at = at(12, 9, 0)
    await call("hw", "POST", f"{act}/complete", 422, json={})  # the after-photo is missing
    photo = await upload(call, "hw", 1)
    await call("hw", "POST", f"{act}/complete", 200, json={"attachments": [photo]})
    check_photo = await upload(call, "col", 2)
    rework = await call("col", "POST", f"{act}/check", 200, json={"passed": False, "attachments": [check_photo]})
    assert rework["state"] == "处置中" and rework["rework_count"] == 1 and rework["department"] == "HW"
    await call("hw", "POST", f"{act}/complete", 200, json={"attachments": [photo]})
    await call("col", "POST", f"{act}/check", 200, json={"passed": True, "attachments": [check_photo]})
    closed = await call("lead", "POST", f"{act}/close", 200, json={})
    assert closed["state"] == "已结案" and closed["timer"] is None

    events = (await call("lead", "GET", f"/api/v1/cases/{number}", 200))["events"]
    assert [e["action"] for e in events] == [
        "report",
        "accept",
        "file",
        "dispatch",
        "sign",
        "request_return",
        "approve",
        "dispatch",
        "complete",
        "check",
        "complete",
        "check",
        "close",
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[8]["attachments"] == [photo]


@pytest.mark.parametrize(
    ("who", "action", "body", "status"),
    [
        ("hw", "accept", {"matter_code": "06010"}, 403),  # wrong role
        ("col", "file", {"level": 1}, 403),  # wrong role
        ("lead", "close", {}, 409),  # wrong state
        ("op", "reject", {}, 422),  # missing reason
        ("op", "frobnicate", {}, 404),  # no such action
        ("op", "accept", {"matter_code": "99999"}, 422),  # unknown code
        ("op", "accept", {"version": 7, "matter_code": "06010"}, 409),  # stale version
        ("op", "accept", {"bogus": 1}, 400),  # unknown field
    ],
)
async def test_forbidden_actions_change_nothing(api, who, action, body, status):
    call, _ = api
    number = (
        await call(
            "op",
            "POST",
            "/api/v1/reports",
            201,
            json={"channel": "operator", "channel_ref": f"x-{who}-{action}", "text": "垃圾", "address": "人民路88号"},
        )
    )["case"]
    before = await call("lead", "GET", f"/api/v1/cases/{number}", 200)
    await call(who, "POST", f"/api/v1/cases/{number}/actions/{action}", status, json=body)
    after = await call("lead", "GET", f"/api/v1/cases/{number}", 200)
    assert after == before


async def test_evaluation_is_for_the_overseers_and_a_leader_uploads_nothing(api):
    call, clock = api
    clock.at = at(9, 15, 30)
    body = {"channel": "operator", "channel_ref": "e1", "text": "人民路88号门口一大堆垃圾", "address": "人民路88号"}
    report = await call("op", "POST", "/api/v1/reports", 201, json=body)
    await call("op", "POST", f"/api/v1/cases/{report['case']}/actions/accept", 200, json={"matter_code": "06010"})
    for who in ("lead", "boss"):
        body = await call(who, "GET", "/api/v1/evaluation?period=2026-10&object=post", 200)
        assert [(r["name"], r["indicators"]["受理数"]) for r in body["rows"]] == [("op", 1)], body
    for who in ("op", "disp", "hw", "col"):
        body = await call(who, "GET", "/api/v1/evaluation?period=2026-10&object=dept", 403)
        assert "综合评价" in body["error"]
    body = await call(
        "boss", "POST", "/api/v1/attachments", 403, data=io.BytesIO(png(1)), headers={"Content-Type": "image/png"}
    )
    assert body == {"error": "该角色不能上传附件"}
    await upload(call, "hw", 1)  # a department uploads its 处置 photos


async def test_authentication_is_required(api):
    call, _ = api
    await call("", "GET", "/api/v1/cases", 401)
    doc = await call("", "GET", "/api/v1/openapi.json", 200)
    assert doc["openapi"].startswith("3.")


async def test_bad_paging_is_refused_with_a_message(api):
    call, _ = api
    for query in ("offset=-1", f"offset={2**64}", "limit=0", "limit=501", "limit=x", "light=blue"):
        body = await call("lead", "GET", f"/api/v1/cases?{query}", 400)
        assert body["error"]  # an offset past SQLite's integers was a 500
    assert (await call("lead", "GET", f"/api/v1/cases?offset={2**31 - 1}", 200))["cases"] == []


async def test_bad_reports_are_refused_and_not_stored(api):
    call, _ = api
    for body in (
        {"channel": "pigeon", "channel_ref": "1", "text": "x"},
        {"channel": "operator", "channel_ref": "2"},
        {"channel": "operator", "channel_ref": "3", "text": "x", "lon": 120.6},
        {"channel": "operator", "channel_ref": "4", "text": "x" * 6000},
    ):
        await call("op", "POST", "/api/v1/reports", 400, json=body)
    listed = await call("lead", "GET", "/api/v1/cases", 200)
    assert listed["total"] == 0


async def test_text_no_database_can_keep_is_refused_alike_on_both_databases(api):
    """A NUL (PostgreSQL's text cannot hold one) or a lone surrogate (JSON's \\ud800; neither database can encode
    one): before these checks each of these requests was a 500 on one database or both."""
    call, _ = api
    for text in ("井盖\x00没了", "井盖\ud800没了"):
        body = {"channel": "operator", "channel_ref": "n", "text": text}
        assert "NUL" in (await call("op", "POST", "/api/v1/reports", 400, json=body))["error"]
    assert (await call("lead", "GET", "/api/v1/cases", 200))["total"] == 0
    for path in ("/api/v1/cases?q=%00", "/api/v1/cases?state=%E5%BE%85%00", "/api/v1/cases/2026%00"):
        assert "NUL" in (await call("lead", "GET", path, 400))["error"]
    body = {"channel": "operator", "channel_ref": "m", "text": "井盖没了"}
    created = await call("op", "POST", "/api/v1/reports", 201, json=body)
    for reason in ("\x00", "\udfff"):
        await call("op", "POST", f"/api/v1/cases/{created['case']}/actions/reject", 400, json={"reason": reason})
    assert (await call("lead", "GET", f"/api/v1/cases/{created['case']}", 200))["state"] == "待受理"


async def test_console_login_sets_a_session_cookie(aiohttp_client, world):
    runtime, _, _ = world
    users.add_user(runtime.engine, "zhang", "operator", password="correct horse")
    client = await aiohttp_client(build_app(runtime))
    bad = await client.post("/api/v1/session", json={"name": "zhang", "password": "wrong"})
    assert bad.status == 401 and "error" in await bad.json()
    good = await client.post("/api/v1/session", json={"name": "zhang", "password": "correct horse"})
    assert (
        good.status == 200
        and "HttpOnly" in good.headers["Set-Cookie"]
        and "SameSite=Strict" in good.headers["Set-Cookie"]
    )
    me = await client.get("/api/v1/me")  # the client keeps the cookie
    assert me.status == 200 and (await me.json())["role"] == "operator"
