"""立案与审批 through HTTP: the 值班长's queue with 立案条件 and limits, 立案 and 作废, a stale form, a 延期 request
with its quota, and the centre's pages closed to the other roles."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from sqlmodel import Session, select

from core.cases import SYSTEM, Actor
from core.models import CaseEvent, CaseFile, FilingCondition

OPERATOR = Actor(None, "受理员甲", "operator")
LEAD = Actor(None, "值班长甲", "shift_lead")
DISPATCHER = Actor(None, "派遣员甲", "dispatcher")
GARBAGE = "人民路88号门口一大堆垃圾没人清"  # the demo city's 06010 暴露垃圾, in an A-class cell


def department(code: str) -> Actor:
    return Actor(None, f"{code} 处置人员", "department", code)


def drive(console: Any, until: str, code: str = "06010", dept: str = "HW", text: str = GARBAGE) -> str:
    """A new citizen report moved through the loop to ``until`` (待立案, 待派遣 or 处置中) with core's own actions."""
    loop = console.runtime.loop
    number = console.report(text)
    loop.act(number, "accept", OPERATOR, {"matter_code": code})
    if until in ("待派遣", "处置中"):
        loop.act(number, "file", LEAD, {"level": 1})
    if until == "处置中":
        loop.act(number, "dispatch", DISPATCHER, {"department": dept})
    assert case(console, number).state == until
    return number


def case(console: Any, number: str) -> CaseFile:
    return console.runtime.loop.get(number, SYSTEM)[0]


def form_of(html: str, number: str, action: str) -> dict[str, str]:
    """The hidden fields (CSRF token, version, next) of one action form on a page, as the browser would send them."""
    found = re.search(rf'<form method="post" action="/console/cases/{number}/do/{action}".*?</form>', html, re.S)
    assert found, f"the page has no {action} form for {number}"
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', found.group(0)))


def row_of(html: str, number: str) -> str:
    """The table row that shows one case."""
    found = re.search(rf"<tr>(?:(?!</tr>).)*?/console/cases/{number}\".*?</tr>", html, re.S)
    assert found, f"the page does not list {number}"
    return found.group(0)


async def test_a_case_waiting_to_be_filed_is_listed_with_its_conditions_and_limits(console):
    number = drive(console, "待立案", code="06001")
    area = case(console, number).area_class
    with Session(console.runtime.engine) as session:
        conditions = session.exec(select(FilingCondition).where(FilingCondition.matter_code == "06001")).all()
    lead = await console.login("lead")
    status, html = await lead.get("/console/filing")
    assert status == 200
    row = row_of(html, number)
    assert len(conditions) == 3
    for c in conditions:
        limit = {"A": c.limit_a, "B": c.limit_b, "C": c.limit_c}[area]
        assert c.condition in row and f"处置时限 {limit:g} {c.unit}（{area} 类）" in row
        assert f'<option value="{c.level}">' in row
    assert "立案时限" in html and "绿灯" in row
    assert form_of(html, number, "void")["next"] == "/console/filing"


async def test_filing_by_post_moves_the_case_to_dispatch(console):
    number = drive(console, "待立案")
    lead = await console.login("lead")
    _, html = await lead.get("/console/filing")
    status, html = await lead.post(f"/console/cases/{number}/do/file", {**form_of(html, number, "file"), "level": "1"})
    assert status == 200 and f"已立案：{number}" in html and "<h1>立案与审批</h1>" in html
    filed = case(console, number)
    assert filed.state == "待派遣" and filed.condition_level == 1
    assert f"/console/cases/{number}/do/" not in html  # no longer waiting


async def test_voiding_without_a_reason_is_refused_readably_and_changes_nothing(console):
    number = drive(console, "待立案")
    before = case(console, number)
    lead = await console.login("lead")
    _, html = await lead.get("/console/filing")
    status, html = await lead.post(f"/console/cases/{number}/do/void", {**form_of(html, number, "void"), "reason": " "})
    assert status == 422 and "作废" in html and "数据没有改变" in html
    after = case(console, number)
    assert (after.state, after.version) == ("待立案", before.version)


async def test_a_second_shift_leads_stale_form_is_a_conflict(console):
    number = drive(console, "待立案")
    first, second = await console.login("lead"), await console.login("lead")
    _, first_page = await first.get("/console/filing")
    _, second_page = await second.get("/console/filing")
    status, _ = await first.post(
        f"/console/cases/{number}/do/file", {**form_of(first_page, number, "file"), "level": "1"}
    )
    assert status == 200
    stale = {**form_of(second_page, number, "void"), "reason": "重复上报"}
    status, html = await second.post(f"/console/cases/{number}/do/void", stale)
    assert status == 409 and "已被他人更新" in html and "请刷新后再操作" in html
    assert case(console, number).state == "待派遣"


async def test_an_extension_request_shows_the_departments_quota_and_can_be_approved(console):
    loop = console.runtime.loop
    number = drive(console, "处置中")
    loop.act(number, "request_extension", department("HW"), {"hours": 4, "reason": "需调配清运车辆"})
    lead = await console.login("lead")
    loop.rules = replace(loop.rules, extension_quota=1.0)  # HW: one case dispatched this month, none extended
    _, html = await lead.get("/console/filing")
    assert "批准后仍在限额内" in row_of(html, number) and "批准将超出" not in row_of(html, number)
    loop.rules = replace(loop.rules, extension_quota=0.03)  # the default: 3 % of one case allows none
    _, html = await lead.get("/console/filing")
    row = row_of(html, number)
    assert "申请延期</span> 4 工作时" in row and "需调配清运车辆" in row
    assert "本月该部门已批准延期 0 件，本月派遣 1 件（限额 3%）" in row and "批准将超出本月延期限额" in row
    status, html = await lead.post(f"/console/cases/{number}/do/approve", form_of(html, number, "approve"))
    assert status == 200 and f"已批准申请：{number}" in html
    assert f'/console/cases/{number}"' not in html  # no request left: off the page
    approved = case(console, number)
    assert approved.state == "处置中" and approved.pending is None and approved.stage_extra_hours == 4
    with Session(console.runtime.engine) as session:
        last = session.exec(
            select(CaseEvent).where(CaseEvent.case_id == approved.id).order_by(CaseEvent.seq.desc())
        ).first()
    assert last.action == "approve" and last.data["over_quota"] is True  # what the page said


async def test_the_centres_pages_are_closed_to_the_other_roles(console):
    for name in ("op", "hw", "col", "disp"):
        staff = await console.login(name)
        for path in ("/console/filing", "/console/dispatch"):
            if (name, path) == ("disp", "/console/dispatch"):
                continue
            status, html = await staff.get(path)
            assert status == 403 and "仅限" in html, (name, path)
            assert 'href="/console/filing"' not in html
    lead = await console.login("lead")
    assert (await lead.get("/console/dispatch"))[0] == 200
