"""The 受理 queue through HTTP: the waiting reports oldest first with their lights, the selected one with its top
three and possible duplicates, and each decision (受理 with the suggested or another code and a corrected place, 不予
受理, 合并, 发核实) posted to the generic action route, refused readably and without a change when it must be."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from core import users
from core.cases import SYSTEM, Actor
from core.models import CaseFile
from tests.admin.console.conftest import password

OPERATOR = Actor(None, "受理员", "operator")  # for a test's set-up through core
RUBBISH = "人民路88号门口一大堆垃圾没人清"
ROW = re.compile(r'<tr data-case="(\d+)"')
TARGET = re.compile(r'name="target" value="(\d+)"')
CODES = re.compile(r'name="matter_code" value="(\d+)" data-key="(\d)" required( checked)?')


def case(console, number: str) -> CaseFile:
    return console.runtime.loop.get(number, SYSTEM)[0]


def age(console, number: str, hours: float) -> None:
    """Make a case as old as a report that has waited this long (its 受理 clock started then)."""
    at = case(console, number).created_at - timedelta(hours=hours)
    with console.runtime.engine.begin() as conn:
        conn.execute(update(CaseFile).where(CaseFile.number == number).values(created_at=at, stage_started_at=at))


def recode(console, number: str, code: str) -> None:
    with console.runtime.engine.begin() as conn:
        conn.execute(update(CaseFile).where(CaseFile.number == number).values(matter_code=code))


def duplicates_of(html: str) -> str:
    found = re.search(r'<ul class="dups">(.*?)</ul>', html, re.S)
    return found.group(1) if found else ""


async def test_the_queue_lists_waiting_reports_oldest_first_with_the_light_of_their_limit(console):
    first, second, third = (
        console.report(),
        console.report("解放路100号路灯不亮"),
        console.report("解放路100号路灯坏了"),
    )
    age(console, third, 24 * 7)  # filed last but received a week ago: waiting longest, and late
    console.runtime.loop.act(second, "accept", SYSTEM)
    op = await console.login("op")
    status, html = await op.get("/console/queue")
    assert status == 200
    assert ROW.findall(html) == [third, first]
    assert "共 2 件待受理" in html
    light = re.compile(r'<tr data-case="(\d+)"[^>]*>\s*<td><span class="light (\w+)"')
    assert dict(light.findall(html)) == {third: "red", first: "green"}
    # nothing asked for: the oldest is the one shown beside the list
    assert f'data-case="{third}">' in html and f'action="/console/cases/{third}/do/accept"' in html


async def test_only_the_operator_and_the_shift_lead_may_open_the_queue(console):
    number = console.report()
    for name in ("hw", "col", "disp"):
        staff = await console.login(name)
        for path in ("/console/queue", "/console/queue/rows"):
            status, html = await staff.get(path)
            assert status == 403 and "受理员" in html and number not in html, (name, path)
    lead = await console.login("lead")
    status, html = await lead.get("/console/queue")
    assert status == 200 and number in html
    assert "/do/accept" not in html and "由受理员办理" in html  # the shift lead looks on; the loop offers no action


async def test_the_detail_shows_the_top_three_and_open_related_cases_nearby_but_not_far_or_closed_ones(console):
    closed = console.report()
    console.runtime.loop.act(closed, "reject", OPERATOR, {"reason": "重复"})
    far = console.report("解放路100号门口一大堆垃圾没人清")
    related, unrelated = console.report(), console.report()
    recode(console, related, "06042")  # 垃圾站（箱）满溢: the same 大类 06
    recode(console, unrelated, "01037")  # 路灯异常: another 大类
    original = console.report()
    again = console.report("人民路88号 垃圾堆满了")
    assert {case(console, n).matter_code for n in (closed, far, original, again)} == {"06010"}
    assert case(console, closed).grid_code == case(console, again).grid_code != case(console, far).grid_code
    op = await console.login("op")
    status, html = await op.get(f"/console/queue?case={again}")
    assert status == 200
    assert "人民路88号 垃圾堆满了" in html  # the citizen's words
    codes = CODES.findall(html)
    assert len(codes) == 3 and codes[0] == ("06010", "1", " checked") and [k for _, k, _ in codes] == ["1", "2", "3"]
    shown = re.search(r"06010 暴露垃圾 <span class=\"tag\">建议</span>\s*<span class=\"p\">(\d+)%</span>", html)
    assert shown and int(shown.group(1)) >= 90
    assert "置信度高" in html  # the classifier's decision
    assert 'class="minimap" data-lon="120.598' in html and "339901001003004" in html
    dups = duplicates_of(html)
    assert TARGET.findall(dups) == [original, related] and "相距约 0 米" in dups  # the same code first
    assert far not in dups and closed not in dups and unrelated not in dups
    status, html = await op.get(f"/console/queue?case={original}")  # a later report is not a merge target
    assert TARGET.findall(duplicates_of(html)) == [related]
    age(console, original, 24 * 8)  # older than the 7-day window
    status, html = await op.get(f"/console/queue?case={again}")
    assert TARGET.findall(duplicates_of(html)) == [related]


async def test_confirming_accepts_with_the_suggested_code_or_the_second_one(console):
    suggested, other = console.report(), console.report("解放路100号门口一大堆垃圾没人清")
    op = await console.login("op")
    _, html = await op.get(f"/console/queue?case={suggested}")
    [code] = [c for c, _, checked in CODES.findall(html) if checked]
    status, html = await op.post(
        f"/console/cases/{suggested}/do/accept", {"version": "1", "matter_code": code, "next": "/console/queue"}
    )
    assert status == 200 and f"已受理：{suggested}" in html and ROW.findall(html) == [other]
    accepted = case(console, suggested)
    assert (accepted.state, accepted.matter_code, accepted.version) == ("待立案", "06010", 2)
    second = dict((k, c) for c, k, _ in CODES.findall(html))["2"]  # the page now shows the other report
    assert second != "06010"
    status, _ = await op.post(
        f"/console/cases/{other}/do/accept", {"version": "1", "matter_code": second, "next": "/console/queue"}
    )
    accepted = case(console, other)
    assert status == 200 and (accepted.state, accepted.matter_code) == ("待立案", second)
    assert accepted.matter_name and accepted.matter_name != "暴露垃圾"


async def test_a_corrected_place_moves_the_case_to_that_grid_cell(console):
    number = console.report()
    there = console.runtime.geocoder.locate("解放路100号")
    assert there.grid.code != case(console, number).grid_code
    op = await console.login("op")
    await op.get(f"/console/queue?case={number}")
    status, _ = await op.post(
        f"/console/cases/{number}/do/accept",
        {
            "version": "1",
            "matter_code": "06010",
            "lon": str(there.lon),
            "lat": str(there.lat),
            "address": there.matched,
        },
    )
    moved = case(console, number)
    assert status == 200 and moved.state == "待立案"
    assert (moved.grid_code, moved.address, moved.area_class) == (there.grid.code, "解放路100号", there.grid.area_class)


async def test_rejecting_without_a_reason_is_refused_readably_and_changes_nothing(console):
    number = console.report()
    op = await console.login("op")
    _, html = await op.get(f"/console/queue?case={number}")
    assert f'action="/console/cases/{number}/do/reject"' in html and 'name="reason" required' in html
    status, html = await op.post(f"/console/cases/{number}/do/reject", {"version": "1", "reason": "  "})
    assert status == 422 and "不予受理" in html and "需要填写" in html
    kept = case(console, number)
    assert (kept.state, kept.version) == ("待受理", 1)
    status, html = await op.post(
        f"/console/cases/{number}/do/reject", {"version": "1", "reason": "非城管职责", "next": "/console/queue"}
    )
    assert status == 200 and "已不予受理" in html and case(console, number).state == "不予受理"


async def test_two_operators_on_one_case_the_second_gets_a_clear_409_and_nothing_changes(console):
    number, later = console.report(), console.report("解放路100号路灯不亮")
    users.add_user(console.runtime.engine, "op2", "operator", password=password("op2"))
    op, op2 = await console.login("op"), await console.login("op2")
    await op.get(f"/console/queue?case={number}")
    await op2.get(f"/console/queue?case={number}")
    status, _ = await op.post(f"/console/cases/{number}/do/accept", {"version": "1", "matter_code": "06010"})
    assert status == 200
    for action, fields in (("accept", {"matter_code": "06011"}), ("merge", {"target": later})):
        status, html = await op2.post(f"/console/cases/{number}/do/{action}", {"version": "1", **fields})
        assert status == 409 and "已被他人更新" in html and "刷新" in html
    kept = case(console, number)
    assert (kept.state, kept.version, kept.matter_code, kept.duplicate_of) == ("待立案", 2, "06010", None)
    # the second operator's list says so at its next poll, and no longer shows the case
    status, html = await op2.get(f"/console/queue/rows?case={number}")
    assert status == 200 and "已不在待受理队列" in html and ROW.findall(html) == [later]
    status, html = await op2.get(f"/console/queue?case={number}")
    assert "已不在待受理队列（当前状态：待立案）" in html and f'data-case="{later}">' in html


async def test_the_polled_rows_show_a_report_filed_after_the_page_was_loaded_and_keep_the_selection(console):
    first = console.report()
    op = await console.login("op")
    _, html = await op.get(f"/console/queue?case={first}")
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 3s"', html).group(1)
    assert poll == f"/console/queue/rows?case={first}" and "htmx.org/dist/htmx.min.js" in html
    arrived = console.report("解放路100号路灯不亮")
    status, rows = await op.get(poll)
    assert status == 200 and ROW.findall(rows) == [first, arrived] and "共 2 件待受理" in rows
    assert re.search(rf'<tr data-case="{first}"[^>]*class="selected"', rows)
    assert "<html" not in rows  # a fragment for the list, not a page


async def test_merge_into_a_duplicate_and_send_for_verification_from_the_page(console):
    original, again, elsewhere = (
        console.report(),
        console.report("人民路88号 垃圾堆满了"),
        console.report("解放路100号路灯不亮"),
    )
    op = await console.login("op")
    _, html = await op.get(f"/console/queue?case={again}")
    form = re.search(r'<form[^>]*class="act act-merge dup-merge".*?</form>', html, re.S).group(0)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    assert fields["target"] == original and fields["next"] == "/console/queue"
    status, _ = await op.post(f"/console/cases/{again}/do/merge", fields)
    merged = case(console, again)
    assert status == 200 and (merged.state, merged.duplicate_of) == ("已合并", original)
    status, _ = await op.post(f"/console/cases/{elsewhere}/do/send_verify", {"version": "1"})
    sent = case(console, elsewhere)
    assert status == 200 and sent.state == "待核实" and sent.collector_id is not None


async def test_the_page_masks_the_reporter_and_names_its_keys(console):
    number = console.report("解放路100号路灯不亮", channel="hotline", sender="13812345678")
    op = await console.login("op")
    status, html = await op.get(f"/console/queue?case={number}")
    assert status == 200 and "13812345678" not in html and "138****5678" in html
    for key in ("j", "k", "1", "2", "3", "Enter", "a", "v", "r", "m", "/", "Esc"):
        assert f'<kbd class="kbd">{key}</kbd>' in html, key
    assert "/console/static/queue.js" in html
    status, html = await op.get("/console/queue?case=209901019999")
    assert status == 404 and "不存在" in html


LETTER = (
    "人民路占道经营严重\n尊敬的领导：您好！人民路88号门口每天傍晚都有大量商贩占道摆摊，卖水果卖小吃的摊位把人行道"
    "占满了，我们多次反映，来了就走，走了又来。另外路口东侧的路灯坏了一个多月，晚上一片漆黑。恳请尽快整治！"
)


async def test_the_detail_says_why_a_report_looks_out_of_scope_and_names_a_letters_second_problem(console):
    other = console.report("我要投诉物业不退押金，物业费还年年涨")
    letter = console.report(LETTER)
    op = await console.login("op")
    _, html = await op.get(f"/console/queue?case={other}")
    assert 'id="scope-reason"' in html and "物业服务问题" in html
    _, html = await op.get(f"/console/queue?case={letter}")
    assert case(console, letter).matter_code == "09006" and 'id="scope-reason"' not in html
    second = console.runtime.classifier.classify(LETTER).secondary  # shown exactly when the classifier names one
    shown = re.search(r'id="secondary">来信另提到：(\d{5}) ', html)
    assert (shown.group(1) if shown else None) == (second.code if second else None)
