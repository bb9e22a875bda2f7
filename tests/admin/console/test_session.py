"""Logging in and out, the session cookie, CSRF and the pages each role may open."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select
from yarl import URL

from core.cases import SYSTEM
from core.models import ConsoleSession
from tests.admin.console.conftest import password

HOMES = (
    ("op", "/console/queue"),
    ("lead", "/console/filing"),
    ("disp", "/console/dispatch"),
    ("adm", "/console/admin/users"),
    ("hw", "/console/inbox"),
    ("col", "/console/tasks"),
)


async def test_login_sends_each_role_to_its_page_and_the_cookie_is_httponly_and_strict(console):
    for name, home in HOMES:
        staff = console.browser()
        _, page = await staff.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        async with staff.http.post(
            "/console/login",
            data={"csrf_token": token, "username": name, "password": password(name)},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == home
            cookie = resp.headers.getall("Set-Cookie")
        [session] = [c for c in cookie if c.startswith("gridline_console=")]
        assert "HttpOnly" in session and "SameSite=Strict" in session and "Secure" not in session
        async with staff.http.get("/console/", allow_redirects=False) as resp:
            assert resp.headers["Location"] == home


async def test_logged_out_visitors_go_to_the_login_page_and_a_wrong_password_is_refused(console):
    staff = console.browser()
    async with staff.http.get("/console/queue", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login?next=/console/queue")
    _, page = await staff.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, page = await staff.post(
        "/console/login", {"csrf_token": token, "username": "op", "password": "x"}, csrf=False
    )
    assert status == 401 and "用户名或密码不正确" in page
    status, page = await staff.post(
        "/console/login", {"csrf_token": "forged", "username": "op", "password": password("op")}, csrf=False
    )
    assert status == 403 and "gridline_console" not in str(staff.http.cookie_jar.filter_cookies(URL(console.base)))


async def test_logout_ends_the_session_on_the_server(console):
    op = await console.login("op")
    cookie = op.http.cookie_jar.filter_cookies(URL(console.base))["gridline_console"].value
    status, _ = await op.post("/console/logout", {})
    assert status == 200
    thief = console.browser()
    thief.http.cookie_jar.update_cookies({"gridline_console": cookie})
    async with thief.http.get("/console/queue", allow_redirects=False) as resp:
        assert resp.status == 303 and "/console/login" in resp.headers["Location"]


async def test_a_post_without_the_sessions_csrf_token_changes_nothing(console):
    number = console.report()
    op = await console.login("op")
    await op.get(f"/console/cases/{number}")
    for token in (None, "wrong"):
        data = {"version": "1", **({"csrf_token": token} if token else {})}
        status, page = await op.post(f"/console/cases/{number}/do/accept", data, csrf=False)
        assert status == 403 and "CSRF" in page
    case, _ = console.runtime.loop.get(number, SYSTEM)
    assert case.state == "待受理" and case.version == 1


async def test_an_idle_session_ends_and_a_pages_own_polling_does_not_keep_it_alive(console):
    op = await console.login("op")
    engine = console.runtime.engine

    def idle_for(minutes: float) -> None:
        with Session(engine) as s:
            s.execute(update(ConsoleSession).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=minutes)))
            s.commit()

    def last_seen() -> datetime:
        with Session(engine) as s:
            return s.exec(select(ConsoleSession.last_seen_at)).one()

    idle_for(20)
    async with op.http.get("/console/queue/rows", headers={"X-Console-Poll": "1"}) as resp:
        assert resp.status == 200
    assert datetime.now(UTC) - last_seen() > timedelta(minutes=19)  # the poll did not move the idle clock
    async with op.http.get("/console/queue", allow_redirects=False) as resp:
        assert resp.status == 200
    assert datetime.now(UTC) - last_seen() < timedelta(minutes=1)  # the person did
    idle_for(31)  # past console_idle_minutes (30)
    async with op.http.get("/console/queue", allow_redirects=False) as resp:
        assert resp.status == 303 and "/console/login" in resp.headers["Location"]
