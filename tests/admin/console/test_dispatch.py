"""派遣 through HTTP: the suggested department and why (a routing rule, the nearest component's owner, or none), the
处置时限 a case will get, 派遣 to the chosen department, and the late cases with 督办."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlmodel import Session, select

from core.cases import SYSTEM
from core.models import Component, FilingCondition, RoutingRule
from tests.admin.console.test_filing import case, drive, form_of, row_of


async def test_the_dispatch_page_explains_each_suggestion_and_the_limit_it_will_get(console):
    with Session(console.runtime.engine) as session:
        session.add(RoutingRule(matter_prefix="06010", region_prefix="339901", department_code="HW"))
        session.commit()
    ruled = drive(console, "待派遣")
    manhole = drive(console, "待派遣", code="01003", text="人民路88号的雨水井盖没了")
    unruled = drive(console, "待派遣", code="06001", text="人民路88号有人正在搭违章建筑")
    disp = await console.login("disp")
    status, html = await disp.get("/console/dispatch")
    assert status == 200

    row = row_of(html, ruled)
    assert "青川区环境卫生管理处" in row and "依据：派遣规则：事项前缀 06010 × 区域 339901" in row
    assert '<option value="HW" selected>' in row
    area = case(console, ruled).area_class
    with Session(console.runtime.engine) as session:
        condition = session.exec(
            select(FilingCondition).where(FilingCondition.matter_code == "06010", FilingCondition.level == 1)
        ).one()
    limit = {"A": condition.limit_a, "B": condition.limit_b, "C": condition.limit_c}[area]
    assert f"<td>{limit:g} {condition.unit}<div" in row and f"1 级 · {area} 类区域" in row

    row = row_of(html, manhole)
    component_id = re.search(r"依据：最近的部件 (\d{17}) 的权属单位", row).group(1)
    with Session(console.runtime.engine) as session:
        component = session.get(Component, component_id)
    assert component.type_code == "01003" and component.dept_code == "PS" and "青川区排水管理处" in row
    assert '<option value="PS" selected>' in row

    row = row_of(html, unruled)
    assert "无建议：没有匹配的派遣规则" in row and " selected>" not in row


async def test_dispatch_moves_the_case_to_disposal_with_the_chosen_department(console):
    number = drive(console, "待派遣")
    disp = await console.login("disp")
    _, html = await disp.get("/console/dispatch")
    status, html = await disp.post(
        f"/console/cases/{number}/do/dispatch", {**form_of(html, number, "dispatch"), "department": "PS"}
    )
    assert status == 200 and f"已派遣：{number}" in html and "<h1>派遣</h1>" in html
    dispatched = case(console, number)
    assert dispatched.state == "处置中" and dispatched.department_code == "PS"
    assert dispatched.stage == "处置" and dispatched.stage_limit > 0


async def test_red_cases_in_disposal_are_listed_for_urging_and_redispatch(console):
    number = drive(console, "处置中")
    loop = console.runtime.loop
    disp = await console.login("disp")
    _, html = await disp.get("/console/dispatch")
    assert f'/console/cases/{number}"' not in html  # on time: not on this page
    clock = loop.clock
    later = clock() + timedelta(days=30)
    loop.clock = lambda: later
    try:
        _, html = await disp.get("/console/dispatch")
        red = html[html.index('id="h-red"') : html.index('id="h-yellow"')]
        row = row_of(red, number)
        assert "红灯" in row and "超时" in row and f"/console/cases/{number}/do/redispatch" in row
        urge = {**form_of(html, number, "urge"), "note": "请今日内处置完毕"}
        status, html = await disp.post(f"/console/cases/{number}/do/urge", urge)
    finally:
        loop.clock = clock
    assert status == 200 and f"已督办：{number}" in html
    _, events = loop.get(number, SYSTEM)
    assert (events[-1].action, events[-1].note, events[-1].on_time) == ("urge", "请今日内处置完毕", False)
