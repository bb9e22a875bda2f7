"""The 管理员's pages through HTTP: each change leaves exactly one audit event (who, before, after) and takes effect
(logins, tokens, dispatch suggestions, the working calendar); a refused change leaves no event and changes nothing;
other roles are refused every admin page and POST."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from admin.runtime import Runtime
from core import users
from core.cases import LOCAL
from core.models import AppUser, AuditEvent, CalendarDay, CaseFile, Department, RoutingRule
from tests.admin.console.conftest import STAFF, password

PAGES = ("/console/admin/users", "/console/admin/departments", "/console/admin/calendar", "/console/admin/audit")


def events(console) -> list[AuditEvent]:
    with Session(console.runtime.engine) as s:
        return list(s.exec(select(AuditEvent).order_by(AuditEvent.id)).all())


def user(console, name: str) -> AppUser:
    with Session(console.runtime.engine) as s:
        return s.exec(select(AppUser).where(AppUser.name == name)).one()


def rules(console) -> list[tuple[str, str, str]]:
    with Session(console.runtime.engine) as s:
        return sorted((r.matter_prefix, r.region_prefix, r.department_code) for r in s.exec(select(RoutingRule)))


def suggestion(console, matter: str, grid: str) -> str | None:
    now = datetime.now(UTC)
    case = CaseFile(
        number="x", state="待派遣", matter_code=matter, grid_code=grid, source="test", stage="派遣",
        stage_started_at=now, created_at=now, updated_at=now,
    )  # fmt: skip
    with Session(console.runtime.engine) as s:
        return console.runtime.loop.suggest_department(s, case)


def only_event(console, action: str) -> AuditEvent:
    [event] = events(console)
    adm = user(console, "adm")
    assert (event.action, event.actor, event.role, event.user_id) == (action, "adm", "admin", adm.id)
    return event


async def try_login(console, name: str, secret: str) -> int:
    browser = console.browser()
    _, page = await browser.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, _ = await browser.post(
        "/console/login", {"csrf_token": token, "username": name, "password": secret}, csrf=False
    )
    return status


async def test_an_admin_adds_a_user_who_then_logs_in(console):
    adm = await console.login("adm")
    status, page = await adm.post(
        "/console/admin/users",
        {"name": "op2", "role": "operator", "department": "", "scope": "", "password": password("op2")},
    )
    assert status == 200 and "已新增用户 op2" in page and "op2" in page and "受理员" in page
    event = only_event(console, "user.add")
    assert event.target == "用户 op2" and event.data["before"] is None
    assert event.data["after"] == {"name": "op2", "role": "operator", "department": None, "scope": [], "active": True}
    assert password("op2") not in json.dumps(event.data) and "argon2" not in json.dumps(event.data)
    op2 = await console.login("op2")
    assert (await op2.get("/console/admin/users"))[0] == 403


async def test_refused_user_changes_leave_no_event_and_change_nothing(console):
    adm = await console.login("adm")
    await adm.get("/console/admin/users")
    op = user(console, "op")
    attempts = (
        ("/console/admin/users", {"name": "op", "role": "operator", "password": "long-enough-1"}, 409, "已存在"),
        ("/console/admin/users", {"name": "x y", "role": "operator", "password": "long-enough-1"}, 422, "用户名"),
        ("/console/admin/users", {"name": "new", "role": "boss", "password": "long-enough-1"}, 422, "角色"),
        ("/console/admin/users", {"name": "new", "role": "department", "password": "long-enough-1"}, 422, "所属部门"),
        ("/console/admin/users", {"name": "new", "role": "operator", "password": "short"}, 422, "密码"),
        (f"/console/admin/users/{op.id}/update", {"role": "department", "department": "NOPE"}, 422, "NOPE"),
        (f"/console/admin/users/{op.id}/update", {"role": "collector", "scope": "12"}, 422, "范围"),
        (f"/console/admin/users/{op.id}/password", {"password": "short"}, 422, "密码"),
        (f"/console/admin/users/{user(console, 'adm').id}/active", {"active": "0"}, 422, "自己"),
        (f"/console/admin/users/{user(console, 'adm').id}/update", {"role": "operator"}, 422, "自己的角色"),
        ("/console/admin/users/99999/update", {"role": "operator"}, 404, "不存在"),
    )
    for path, data, expected, words in attempts:
        status, page = await adm.post(path, data)
        assert (status, words in page) == (expected, True), (path, data, page[-600:])
    assert events(console) == []
    assert len(users.staff(console.runtime.engine)) == len(STAFF)
    after = user(console, "op")
    assert (after.role, after.department_code, after.grid_scope, after.password_hash) == (
        "operator", None, [], op.password_hash)  # fmt: skip


async def test_changing_a_role_records_before_and_after_and_the_user_gets_the_new_role(console):
    op = await console.login("op")
    adm = await console.login("adm")
    target = user(console, "op")
    status, page = await adm.post(
        f"/console/admin/users/{target.id}/update",
        {"role": "collector", "department": "", "scope": "339901001, 339901002"},
    )
    assert status == 200 and "已保存" in page
    event = only_event(console, "user.update")
    assert (event.data["before"]["role"], event.data["after"]["role"]) == ("operator", "collector")
    assert (event.data["before"]["scope"], event.data["after"]["scope"]) == ([], ["339901001", "339901002"])
    async with op.http.get("/console/", allow_redirects=False) as resp:  # the open session carries the new role
        assert resp.headers["Location"] == "/console/tasks"
    _, page = await adm.get("/console/admin/audit")
    assert "修改用户" in page and "adm（管理员）" in page and "<del>受理员</del> → <ins>监督员</ins>" in page
    status, _ = await adm.post(
        f"/console/admin/users/{target.id}/update", {"role": "collector", "scope": "339901001,339901002"}
    )
    assert status == 200 and len(events(console)) == 1  # the same values again: no change, no event


async def test_a_reset_password_logs_in_and_the_old_one_does_not(console):
    hw = await console.login("hw")
    adm = await console.login("adm")
    target = user(console, "hw")
    status, page = await adm.post(f"/console/admin/users/{target.id}/password", {"password": "brand-new-2026"})
    assert status == 200 and "已重置" in page
    event = only_event(console, "user.reset_password")
    assert event.target == "用户 hw" and event.data == {"before": None, "after": {"ended_sessions": 1}}
    assert "brand-new-2026" not in json.dumps(event.data) and user(console, "hw").password_hash not in json.dumps(
        event.data
    )
    assert await try_login(console, "hw", password("hw")) == 401
    assert await try_login(console, "hw", "brand-new-2026") == 200
    async with hw.http.get("/console/inbox", allow_redirects=False) as resp:  # the session opened before the reset
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")


async def test_a_disabled_user_loses_console_session_and_api_token_until_enabled(console):
    hw = await console.login("hw")
    token = users.create_token(console.runtime.engine, "hw")
    api = console.browser()

    async def me() -> int:
        async with api.http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status

    assert await me() == 200
    adm = await console.login("adm")
    target = user(console, "hw")
    status, page = await adm.post(f"/console/admin/users/{target.id}/active", {"active": "0"})
    assert status == 200 and "已停用" in page
    event = only_event(console, "user.disable")
    assert (event.data["before"]["active"], event.data["after"]["active"]) == (True, False)
    assert event.data["after"]["ended_sessions"] == 1
    async with hw.http.get("/console/inbox", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    assert await me() == 401
    assert await try_login(console, "hw", password("hw")) == 401
    status, _ = await adm.post(f"/console/admin/users/{target.id}/active", {"active": "1"})
    assert status == 200 and [e.action for e in events(console)] == ["user.disable", "user.enable"]
    assert await me() == 200 and await try_login(console, "hw", password("hw")) == 200


async def test_departments_are_added_and_renamed_with_their_events(console):
    adm = await console.login("adm")
    status, page = await adm.post(
        "/console/admin/departments", {"code": "wy", "name": "青川区物业管理办", "kind": "物业"}
    )
    assert status == 200 and "已新增部门" in page and "青川区物业管理办" in page
    event = only_event(console, "department.add")
    assert event.data == {"before": None, "after": {"code": "WY", "name": "青川区物业管理办", "kind": "物业"}}
    status, _ = await adm.post("/console/admin/departments/WY/rename", {"name": "青川区物业服务中心"})
    assert status == 200
    renamed = events(console)[-1]
    assert renamed.action == "department.rename" and len(events(console)) == 2
    assert (renamed.data["before"]["name"], renamed.data["after"]["name"]) == ("青川区物业管理办", "青川区物业服务中心")
    with Session(console.runtime.engine) as s:
        assert s.get(Department, "WY").name == "青川区物业服务中心"


async def test_refused_department_changes_leave_no_event(console):
    adm = await console.login("adm")
    await adm.get("/console/admin/departments")
    before = _departments(console)
    for path, data, expected in (
        ("/console/admin/departments", {"code": "HW", "name": "又一个环卫"}, 409),
        ("/console/admin/departments", {"code": "NEW", "name": "青川区环境卫生管理处"}, 409),
        ("/console/admin/departments", {"code": "坏 码", "name": "新部门"}, 422),
        ("/console/admin/departments", {"code": "NEW", "name": " "}, 422),
        ("/console/admin/departments/HW/rename", {"name": "青川区市政设施管理处"}, 409),
        ("/console/admin/departments/NOPE/rename", {"name": "新名"}, 404),
    ):
        status, page = await adm.post(path, data)
        assert status == expected, (path, data, page[-500:])
    assert events(console) == [] and _departments(console) == before


def _departments(console) -> list[tuple[str, str]]:
    with Session(console.runtime.engine) as s:
        return sorted((d.code, d.name) for d in s.exec(select(Department)))


async def test_a_routing_rule_steers_the_dispatch_suggestion_and_its_deletion_undoes_it(console):
    adm = await console.login("adm")
    street, elsewhere = "339901001001001", "339901002001001"
    assert suggestion(console, "06010", street) is None
    status, page = await adm.post(
        "/console/admin/routing", {"matter_prefix": "06010", "region_prefix": "339901001", "department": "ZF"}
    )
    assert status == 200 and "已新增派遣规则" in page and "暴露垃圾" in page and "城关街道" in page
    event = only_event(console, "routing.add")
    assert event.data["after"] == {"matter_prefix": "06010", "region_prefix": "339901001", "department": "ZF"}
    assert suggestion(console, "06010", street) == "ZF" and suggestion(console, "06010", elsewhere) is None
    await adm.post("/console/admin/routing", {"matter_prefix": "06", "region_prefix": "", "department": "HW"})
    assert suggestion(console, "06010", street) == "ZF" and suggestion(console, "06010", elsewhere) == "HW"
    with Session(console.runtime.engine) as s:
        rule = s.exec(select(RoutingRule).where(RoutingRule.department_code == "ZF")).one()
    status, _ = await adm.post(f"/console/admin/routing/{rule.id}/delete", {})
    assert status == 200 and suggestion(console, "06010", street) == "HW"
    deleted = events(console)[-1]
    assert deleted.action == "routing.delete" and deleted.data["before"]["department"] == "ZF"
    assert deleted.data["after"] is None and len(events(console)) == 3
    assert rules(console) == [("06", "", "HW")]


async def test_refused_routing_rules_leave_no_event_and_no_rule(console):
    adm = await console.login("adm")
    await adm.post("/console/admin/routing", {"matter_prefix": "06010", "region_prefix": "", "department": "HW"})
    assert len(events(console)) == 1
    for data, expected, words in (
        ({"matter_prefix": "6a", "department": "HW"}, 422, "事项前缀"),
        ({"matter_prefix": "6", "department": "HW"}, 422, "事项前缀"),
        ({"matter_prefix": "99999", "department": "HW"}, 422, "不对应"),
        ({"matter_prefix": "06010", "region_prefix": "12345", "department": "HW"}, 422, "区域前缀"),
        ({"matter_prefix": "06010", "region_prefix": "999999", "department": "HW"}, 422, "不对应"),
        ({"matter_prefix": "06010", "region_prefix": "339901001", "department": "NOPE"}, 422, "NOPE"),
        ({"matter_prefix": "06010", "region_prefix": "", "department": "ZF"}, 409, "已有"),
    ):
        status, page = await adm.post("/console/admin/routing", data)
        assert (status, words in page) == (expected, True), (data, page[-500:])
    status, _ = await adm.post("/console/admin/routing/99999/delete", {})
    assert status == 404
    assert len(events(console)) == 1 and rules(console) == [("06010", "", "HW")]


def next_working_day(console) -> date:
    day = datetime.now(LOCAL).date() + timedelta(days=1)
    while not console.runtime.loop.calendar.is_workday(day):
        day += timedelta(days=1)
    return day


async def test_a_holiday_set_on_the_calendar_page_stops_the_clock_that_day(console):
    adm = await console.login("adm")
    day = next_working_day(console)
    status, page = await adm.post(
        "/console/admin/calendar", {"day": day.isoformat(), "kind": "off", "note": "本地假日"}
    )
    assert status == 200 and f"已将 {day.isoformat()} 设为休息日" in page and "中心设置：本地假日" in page
    event = only_event(console, "calendar.set")
    assert event.data == {"before": None, "after": {"day": day.isoformat(), "workday": False, "note": "本地假日"}}
    assert not console.runtime.loop.calendar.is_workday(day)
    start = datetime.combine(day, datetime.min.time(), LOCAL)
    assert console.runtime.loop.calendar.working_hours(start, start + timedelta(days=1)) == 0
    fresh = Runtime(console.runtime.settings)  # another process, started after the change
    try:
        assert not fresh.loop.calendar.is_workday(day)
    finally:
        fresh.close()
    status, _ = await adm.post(f"/console/admin/calendar/{day.isoformat()}/delete", {})
    assert status == 200 and console.runtime.loop.calendar.is_workday(day)
    assert [e.action for e in events(console)] == ["calendar.set", "calendar.delete"]


async def test_a_weekend_made_a_working_day_and_refused_calendar_changes(console):
    adm = await console.login("adm")
    await adm.get("/console/admin/calendar")
    saturday = datetime.now(LOCAL).date() + timedelta(days=1)
    while console.runtime.loop.calendar.is_workday(saturday):
        saturday += timedelta(days=1)
    yesterday = datetime.now(LOCAL).date() - timedelta(days=1)
    for data, expected in (
        ({"day": yesterday.isoformat(), "kind": "off"}, 422),
        ({"day": "2026-13-01", "kind": "off"}, 422),
        ({"day": saturday.isoformat(), "kind": "maybe"}, 422),
        ({"day": saturday.isoformat(), "kind": "work", "note": "x" * 61}, 422),
    ):
        status, _ = await adm.post("/console/admin/calendar", data)
        assert status == expected, data
    status, _ = await adm.post(f"/console/admin/calendar/{saturday.isoformat()}/delete", {})
    assert status == 404
    assert events(console) == [] and console.runtime.loop.calendar.is_workday(saturday) is False
    status, _ = await adm.post("/console/admin/calendar", {"day": saturday.isoformat(), "kind": "work", "note": "调休"})
    assert status == 200 and console.runtime.loop.calendar.is_workday(saturday)
    assert only_event(console, "calendar.set").data["after"]["workday"] is True


async def test_the_audit_trail_pages_newest_first(console):
    adm = await console.login("adm")
    for n in range(51):
        await adm.post("/console/admin/departments", {"code": f"T{n:02d}", "name": f"测试部门{n:02d}"})
    assert len(events(console)) == 51
    status, first = await adm.get("/console/admin/audit")
    assert status == 200 and "共 51 条" in first and "第 1 / 2 页" in first
    assert first.index("测试部门50") < first.index("测试部门49") and "测试部门00" not in first
    _, second = await adm.get("/console/admin/audit?page=2")
    assert "测试部门00" in second and "测试部门50" not in second
    assert (await adm.get("/console/admin/audit?page=x"))[0] == 200


@pytest.mark.parametrize("name", ["op", "hw", "col"])
async def test_other_roles_are_refused_every_admin_page_and_change(console, name):
    staff = await console.login(name)
    target = user(console, "disp")
    with Session(console.runtime.engine) as s:
        s.add(RoutingRule(matter_prefix="06010", department_code="HW"))
        s.add(CalendarDay(day=datetime.now(LOCAL).date() + timedelta(days=3), workday=False))
        s.commit()
        rule = s.exec(select(RoutingRule)).one()
    day = (datetime.now(LOCAL).date() + timedelta(days=3)).isoformat()
    for path in PAGES:
        status, page = await staff.get(path)
        assert status == 403 and "仅限管理员" in page, path
    assert staff.csrf  # the refusal page carries the session's token, so the POSTs below fail on the role alone
    posts = (
        ("/console/admin/users", {"name": "mole", "role": "admin", "password": "long-enough-1"}),
        (f"/console/admin/users/{target.id}/update", {"role": "admin"}),
        (f"/console/admin/users/{target.id}/password", {"password": "long-enough-1"}),
        (f"/console/admin/users/{target.id}/active", {"active": "0"}),
        ("/console/admin/departments", {"code": "MOLE", "name": "鼹鼠部门"}),
        ("/console/admin/departments/HW/rename", {"name": "鼹鼠部门"}),
        ("/console/admin/routing", {"matter_prefix": "06", "department": "ZF"}),
        (f"/console/admin/routing/{rule.id}/delete", {}),
        ("/console/admin/calendar", {"day": day, "kind": "work"}),
        (f"/console/admin/calendar/{day}/delete", {}),
    )
    for path, data in posts:
        status, page = await staff.post(path, data)
        assert status == 403 and "仅限管理员" in page, path
    assert events(console) == [] and rules(console) == [("06010", "", "HW")]
    after = user(console, "disp")
    assert (after.role, after.active, after.password_hash) == ("dispatcher", True, target.password_hash)
    assert len(users.staff(console.runtime.engine)) == len(STAFF)
    assert _departments(console)[0] == ("GD", "青川区供电公司")
    with Session(console.runtime.engine) as s:
        assert s.get(Department, "HW").name == "青川区环境卫生管理处"
        assert [d.workday for d in s.exec(select(CalendarDay))] == [False]
