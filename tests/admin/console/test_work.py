"""我的案卷 through HTTP: a department sees its own cases and no other's (the 监督员's 我的任务: test_tasks.py)."""

from __future__ import annotations

from core import users
from tests.admin.console.conftest import password
from tests.admin.console.test_filing import department, drive, row_of


async def test_a_departments_inbox_shows_its_own_cases_and_another_departments_case_is_not_found(console):
    users.add_user(console.runtime.engine, "ps", "department", department="PS", password=password("ps"))
    older, ours, theirs = drive(console, "处置中"), drive(console, "处置中"), drive(console, "处置中", dept="PS")
    console.runtime.loop.act(older, "complete", department("HW"), {"attachments": ["a" * 64]})
    hw = await console.login("hw")
    status, html = await hw.get("/console/inbox")
    assert status == 200 and "<h1>我的案卷" in html
    open_cases = html[html.index('id="h-open"') : html.index('id="h-done"')]
    assert "处置中" in row_of(open_cases, ours) and "未签收" in row_of(open_cases, ours)
    assert "待核查" in row_of(html[html.index('id="h-done"') :], older) and older not in open_cases
    assert theirs not in html
    status, html = await hw.get(f"/console/cases/{theirs}")
    assert status == 404 and "数据没有改变" in html
    status, html = await hw.get(f"/console/cases/{ours}")
    assert status == 200 and f"/console/cases/{ours}/do/sign" in html
    ps = await console.login("ps")
    _, html = await ps.get("/console/inbox")
    assert theirs in html and ours not in html
