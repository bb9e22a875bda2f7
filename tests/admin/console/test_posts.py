"""Every POST of the console, found from the app's routes so a new page cannot forget it: without the session's CSRF
token, or from a role the page is not for, it is refused with a readable page and nothing in the database changes."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from core.models import AppUser, AuditEvent, CaseEvent, CaseFile, Department, Outbox, Report, RoutingRule

TABLES = (AppUser, AuditEvent, CaseEvent, CaseFile, Department, Outbox, Report, RoutingRule)
OPEN = {"/console/login", "/console/logout"}  # the login has its own double-submit check, tested in test_session
COLLECTOR_POSTS = {"/console/tasks/new"}  # the 监督员's own new report; test_tasks refuses it to the other roles


def snapshot(console) -> tuple:
    with console.runtime.engine.connect() as conn:
        counts = tuple(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES)
        versions = conn.execute(select(func.coalesce(func.sum(CaseFile.version), 0))).scalar_one()
    return (*counts, versions)


def console_posts(console, number: str) -> list[str]:
    paths = []
    for resource in console.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        if not path.startswith("/console") or path in OPEN:
            continue
        if any(route.method == "POST" for route in resource):
            filled = re.sub(r"\{number\}", number, path)
            filled = re.sub(r"\{action\}", "accept", filled)
            paths.append(re.sub(r"\{[^}]+\}", "1", filled))
    return paths


async def test_every_console_post_needs_the_csrf_token_and_changes_nothing_without_it(console):
    number = console.report()
    staff = await console.login("adm")
    await staff.get("/console/")
    paths = console_posts(console, number)
    assert f"/console/cases/{number}/do/accept" in paths and len(paths) >= 3, paths
    before = snapshot(console)
    for path in paths:
        for token in (None, "forged"):
            data = {"version": "1", "reason": "x", "text": "x", "name": "x"}
            status, page = await staff.post(path, {**data, **({"csrf_token": token} if token else {})}, csrf=False)
            assert status == 403 and "CSRF" in page, (path, status)
    assert snapshot(console) == before


async def test_every_console_post_refuses_a_role_it_is_not_for(console):
    """A collector may act only on 核实/核查 tasks: every centre page's POST, and a case action it may not take, is
    a 403 (or a 404 for a case it may not see) with a readable page."""
    number = console.report()
    staff = await console.login("col")
    await staff.get("/console/tasks")
    before = snapshot(console)
    for path in console_posts(console, number):
        if path in COLLECTOR_POSTS:
            continue
        status, page = await staff.post(path, {"version": "1", "reason": "x", "text": "x", "name": "x"})
        assert status in (403, 404) and "本次操作未执行" in page, (path, status, page[:200])
    assert snapshot(console) == before


FIELD_PAGES = {  # what a department user or a 监督员 may open: their own list, the cases they see, the base map
    "/console",
    "/console/",
    "/console/inbox",
    "/console/tasks",
    "/console/tasks/new",
    "/console/tasks/suggest",
    "/console/tasks/{number}",
    "/console/map/cells.geojson",
    "/console/map/base.geojson",
}


def console_pages(console) -> list[str]:
    paths = []
    for resource in console.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        own = path in OPEN | FIELD_PAGES or path.startswith("/console/cases/")  # a case page checks Actor.sees
        centre = path.startswith("/console") and not own
        if centre and any(route.method == "GET" for route in resource):
            paths.append(re.sub(r"\{[^}]+\}", "1", path))
    return paths


async def test_a_department_user_and_a_collector_see_none_of_the_centres_pages(console):
    pages = console_pages(console)
    assert {"/console/queue", "/console/filing", "/console/dispatch", "/console/map", "/console/admin/users"} <= set(
        pages
    )
    for name in ("hw", "col"):
        staff = await console.login(name)
        for path in pages:
            async with staff.http.get(path, allow_redirects=False) as resp:
                assert resp.status in (403, 404), (name, path, resp.status)
