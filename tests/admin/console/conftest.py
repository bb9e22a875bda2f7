"""The console through HTTP: an app on a demo-city database of the test's own, a member of staff per role with a
password, and a logged-in browser-like session per person (its own cookie jar, the CSRF token of its last page)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from admin.app import build_app
from admin.runtime import Runtime
from core import users
from core.config import load_settings
from core.intake import Incoming

STAFF = (
    ("op", "operator", None, None),
    ("lead", "shift_lead", None, None),
    ("disp", "dispatcher", None, None),
    ("adm", "admin", None, None),
    ("hw", "department", "HW", None),
    ("col", "collector", None, ["339901"]),
    ("boss", "leader", None, None),
)
CSRF = re.compile(r'name="csrf-token" content="([^"]*)"')


def password(name: str) -> str:
    return f"{name}-pw-2026"


@dataclass
class Staff:
    """One person's browser: cookies, and the CSRF token of the last page it loaded."""

    http: aiohttp.ClientSession
    csrf: str = ""
    last: str = field(default="", repr=False)

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(path, **kw) as resp:
            text = await resp.text()
        if found := CSRF.search(text):
            self.csrf = found.group(1) or self.csrf
        self.last = text
        return resp.status, text

    async def post(self, path: str, data: dict[str, Any] | aiohttp.FormData, *, csrf: bool = True) -> tuple[int, str]:
        if isinstance(data, dict):
            data = {**({"csrf_token": self.csrf} if csrf else {}), **data}
        async with self.http.post(path, data=data, allow_redirects=True) as resp:
            text = await resp.text()
        if found := CSRF.search(text):
            self.csrf = found.group(1) or self.csrf
        self.last = text
        return resp.status, text


@dataclass
class Console:
    runtime: Runtime
    base: str
    app: web.Application
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def browser(self) -> Staff:
        http = aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(http)
        return Staff(http)

    async def login(self, name: str) -> Staff:
        staff = self.browser()
        status, page = await staff.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        status, _ = await staff.post(
            "/console/login", {"csrf_token": token, "username": name, "password": password(name)}, csrf=False
        )
        assert status == 200, staff.last[:500]
        return staff

    def report(self, text: str = "人民路88号门口一大堆垃圾没人清", **kw: Any) -> str:
        """A citizen's report through the intake, as any channel files it: the number of its 待受理 case."""
        incoming = Incoming(
            channel=kw.pop("channel", "webchat"),
            channel_ref=uuid.uuid4().hex,
            received_at=datetime.now(UTC),
            sender=kw.pop("sender", "w" + uuid.uuid4().hex[:20]),
            text=text,
            **kw,
        )
        report, _ = self.runtime.intake.submit(incoming)
        assert report.case_number, report.steps
        return report.case_number


@pytest.fixture
async def console(aiohttp_server, demo_url, tmp_path) -> AsyncIterator[Console]:
    settings = load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path / "var")})
    runtime = Runtime(settings)
    for name, role, dept, scope in STAFF:
        users.add_user(runtime.engine, name, role, department=dept, scope=scope, password=password(name))
    server = await aiohttp_server(build_app(runtime))
    world = Console(runtime, str(server.make_url("")).rstrip("/"), server.app)
    yield world
    for http in world.sessions:
        await http.close()
    runtime.close()
