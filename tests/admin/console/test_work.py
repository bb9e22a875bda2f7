"""我的案卷 and 我的任务 through HTTP: a department sees its own cases and no other's; a collector sees the 核实 and
核查 tasks in its grid scope."""

from __future__ import annotations

from core import users
from tests.admin.console.conftest import password
from tests.admin.console.test_filing import GARBAGE, OPERATOR, case, department, drive, row_of


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


async def test_a_collectors_tasks_are_the_cases_to_verify_and_check_in_its_scope(console):
    users.add_user(console.runtime.engine, "far", "collector", scope=["339905"], password=password("far"))
    loop = console.runtime.loop
    to_verify = console.report(GARBAGE)
    loop.act(to_verify, "send_verify", OPERATOR)
    to_check = drive(console, "处置中")
    loop.act(to_check, "complete", department("HW"), {"attachments": ["a" * 64]})
    assert case(console, to_verify).grid_code.startswith("339901")
    col = await console.login("col")
    status, html = await col.get("/console/tasks")
    assert status == 200 and "<h1>我的任务</h1>" in html
    verify = html[html.index('id="h-1"') : html.index('id="h-2"')]
    assert "待核实" in row_of(verify, to_verify) and to_check not in verify
    assert "待核查" in row_of(html[html.index('id="h-2"') :], to_check)
    status, html = await col.get(f"/console/cases/{to_verify}")
    assert status == 200 and f"/console/cases/{to_verify}/do/verify" in html
    far = await console.login("far")
    _, html = await far.get("/console/tasks")
    assert to_verify not in html and to_check not in html
    for path in ("/console/inbox", "/console/filing"):
        assert (await far.get(path))[0] == 403
