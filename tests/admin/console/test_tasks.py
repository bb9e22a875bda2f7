"""The 监督员's pages (城管通 in the browser) through HTTP and in Chromium on a phone: tasks in the scope nearest
first, 核实 and 核查 with a photo and the GPS position (its distance from the case and the far flag recorded), a
resent submission done once, 返工, a new problem reported by the collector once however often it is sent, the
pages closed to other roles and to cases outside the scope, and a submission made offline sent when the network
returns."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import Session, select

from core import users
from core.cases import SYSTEM
from core.crs import distance_m
from core.models import CaseEvent, CaseFile, Report
from tests.admin.console.conftest import password
from tests.admin.console.test_filing import GARBAGE, OPERATOR, case, department, drive
from tests.bots.conftest import DOOR_88
from tests.bots.fakes import png

CHROMIUM = Path("/usr/bin/chromium")
EAST = (DOOR_88[0] + 0.003, DOOR_88[1])  # about 290 m east of 人民路88号, in cell 339901001004001
PHONE = {"width": 375, "height": 812}


def to_verify(console, point: tuple[float, float] = DOOR_88, text: str = GARBAGE) -> str:
    number = console.report(text, lon=point[0], lat=point[1])
    console.runtime.loop.act(number, "send_verify", OPERATOR)
    return number


def to_check(console) -> str:
    number = drive(console, "处置中")
    console.runtime.loop.act(number, "complete", department("HW"), {"attachments": ["a" * 64]})
    return number


def events(console, number: str, action: str) -> list[CaseEvent]:
    return [e for e in console.runtime.loop.get(number, SYSTEM)[1] if e.action == action]


def hidden(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the page's form that posts to ``action``, as the browser sends them."""
    found = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)
    assert found, f"no form for {action}"
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', found.group(0)))


def multipart(fields: dict[str, str], photo: bytes | None) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, str(value))
    if photo is not None:
        data.add_field("photo", photo, filename="site.png", content_type="image/png")
    return data


async def test_tasks_in_the_scope_are_listed_nearest_first_and_a_case_outside_the_scope_is_not_found(console):
    users.add_user(console.runtime.engine, "east", "collector", scope=["339901001004"], password=password("east"))
    door, east = to_verify(console), to_verify(console, EAST)
    checking = to_check(console)
    col = await console.login("col")

    status, html = await col.get("/console/tasks", params={"lon": EAST[0], "lat": EAST[1]})
    assert status == 200 and "<h1>我的任务</h1>" in html
    verify = html[html.index('id="h-1"') : html.index('id="h-2"')]
    assert verify.index(f'id="task-{east}"') < verify.index(f'id="task-{door}"')
    assert re.search(rf'id="task-{east}".*?距你 0 米', verify, re.S)
    apart = distance_m(*EAST, *DOOR_88)
    assert 280 < apart < 300 and re.search(rf'id="task-{door}".*?距你 {apart:.0f} 米', verify, re.S)
    assert f'id="task-{checking}"' in html[html.index('id="h-2"') :]
    _, html = await col.get("/console/tasks", params={"lon": DOOR_88[0], "lat": DOOR_88[1]})
    assert html.index(f'id="task-{door}"') < html.index(f'id="task-{east}"')
    _, html = await col.get("/console/tasks")  # no position yet: longest waiting first, and the page asks for one
    assert html.index(f'id="task-{door}"') < html.index(f'id="task-{east}"') and 'data-sorted=""' in html
    assert (await col.get("/console/tasks", params={"lon": "东", "lat": "1"}))[0] == 400

    narrow = await console.login("east")
    _, html = await narrow.get("/console/tasks")
    assert f'id="task-{east}"' in html and door not in html and checking not in html
    for path in (f"/console/tasks/{door}", f"/console/cases/{door}"):
        status, html = await narrow.get(path)
        assert status == 404 and "数据没有改变" in html
    status, html = await narrow.get(f"/console/tasks/{east}")
    assert (
        status == 200 and f"/console/cases/{east}/do/verify" in html and f"/console/cases/{east}/do/self_handle" in html
    )


async def test_verify_with_a_photo_and_gps_records_the_position_far_flag_and_is_done_once_when_resent(console):
    number = to_verify(console)
    col = await console.login("col")
    status, html = await col.get(f"/console/tasks/{number}")
    assert status == 200 and 'name="gps_lon"' in html and 'capture="environment" required' in html
    fields = hidden(html, f"/console/cases/{number}/do/verify")
    assert fields["next"] == "/console/tasks" and len(fields["key"]) >= 16
    far = {**fields, "confirmed": "true", "gps_lon": DOOR_88[0] + 0.01, "gps_lat": DOOR_88[1], "gps_accuracy": "12.5"}
    for _ in range(2):  # the phone sends it again after the connection dropped: the same key, done once
        status, html = await col.post(f"/console/cases/{number}/do/verify", multipart(far, png(1)))
        assert status == 200 and "已核实" in html and "<h1>我的任务</h1>" in html
    [event] = events(console, number, "verify")
    position = event.data["position"]
    assert position["far"] is True and 900 < position["distance_m"] < 1000 and position["accuracy_m"] == 12.5
    assert event.data["key"] == fields["key"] and event.data["confirmed"] is True and len(event.attachments) == 1
    assert case(console, number).state == "待立案"
    _, html = await col.get(f"/console/tasks/{number}")
    assert "不在现场附近" in html and "精度 ±12 米" in html and "/do/verify" not in html

    unplaced = to_verify(console)  # no position: allowed, and shown as such
    fields = hidden((await col.get(f"/console/tasks/{unplaced}"))[1], f"/console/cases/{unplaced}/do/verify")
    status, _ = await col.post(
        f"/console/cases/{unplaced}/do/verify", multipart({**fields, "confirmed": "false"}, png(2))
    )
    assert status == 200 and "position" not in events(console, unplaced, "verify")[0].data
    assert "无定位" in (await col.get(f"/console/tasks/{unplaced}"))[1]


async def test_check_not_passed_sends_the_case_back_for_rework_and_a_check_without_a_photo_changes_nothing(console):
    number = to_check(console)
    col = await console.login("col")
    _, html = await col.get(f"/console/tasks/{number}")
    fields = {**hidden(html, f"/console/cases/{number}/do/check"), "passed": "false", "note": "垃圾仍在"}
    status, html = await col.post(f"/console/cases/{number}/do/check", multipart(fields, None))
    assert status == 422 and "照片" in html and case(console, number).state == "待核查"
    near = {"gps_lon": DOOR_88[0] + 0.0001, "gps_lat": DOOR_88[1], "gps_accuracy": "6"}
    status, html = await col.post(f"/console/cases/{number}/do/check", multipart({**fields, **near}, png(3)))
    assert status == 200 and "已核查" in html
    after = case(console, number)
    assert after.state == "处置中" and after.rework_count == 1 and after.signed is False
    [event] = events(console, number, "check")
    assert event.data["rework"] is True and event.data["position"]["far"] is False and event.note == "垃圾仍在"


async def test_a_collectors_own_report_is_filed_once_with_channel_collector_and_the_chosen_matter(console):
    col = await console.login("col")
    status, html = await col.get("/console/tasks/new")
    assert status == 200 and '<option value="06010">暴露垃圾（06010）</option>' in html
    fields = hidden(html, "/console/tasks/new")
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", fields["key"])
    report = {**fields, "text": "门口一大堆垃圾", "matter_code": "06010", "lon": DOOR_88[0], "lat": DOOR_88[1]}
    status, html = await col.post("/console/tasks/new", multipart({**report, "matter_code": "99999"}, png(4)))
    assert status == 422 and "99999 不在分类代码表中" in html and "门口一大堆垃圾" in html
    status, html = await col.post("/console/tasks/new", multipart(report, None))
    assert status == 422 and "请拍摄现场照片" in html
    status, html = await col.post("/console/tasks/new", multipart(report, png(4)))
    assert status == 200 and "已上报：案卷" in html
    number = re.search(r"案卷 (\d{12})", html).group(1)
    status, html = await col.post("/console/tasks/new", multipart(report, png(4)))  # resent after a dropped line
    assert status == 200 and f"未重复登记：案卷 {number}" in html
    with Session(console.runtime.engine) as session:
        [stored] = session.exec(select(Report).where(Report.channel == "collector")).all()
        filed = session.exec(select(CaseFile).where(CaseFile.number == number)).one()
    assert stored.sender == "col" and stored.channel_ref.endswith(fields["key"]) and stored.media[0]["kind"] == "photo"
    assert filed.state == "待受理" and filed.source == "collector" and filed.public is False
    assert filed.description == "门口一大堆垃圾" and filed.grid_code.startswith("339901001003")
    assert filed.matter_code == "06010" and stored.chosen_code == "06010" and stored.classification["top"]

    status, found = await col.get(
        "/console/tasks/suggest", params={"text": "井盖没了", "lon": DOOR_88[0], "lat": DOOR_88[1]}
    )
    answer = json.loads(found)
    assert status == 200 and answer["classification"]["top"] and answer["place"]["grid"]["code"].startswith("339901")


async def test_the_tasks_pages_are_closed_to_other_roles(console):
    number = to_verify(console)
    hw = await console.login("hw")
    for path in ("/console/tasks", "/console/tasks/new", f"/console/tasks/{number}", "/console/tasks/suggest?text=x"):
        status, html = await hw.get(path)
        assert status == 403 and "仅限监督员" in html, path
    status, _ = await hw.post("/console/tasks/new", {"key": "k" * 20, "text": "门口垃圾", "address": "人民路88号"})
    assert status == 403
    with Session(console.runtime.engine) as session:
        assert session.exec(select(Report).where(Report.channel == "collector")).all() == []


@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("ffmpeg") is None, reason="needs Debian's chromium")
async def test_a_check_on_a_phone_with_gps_and_one_made_offline_that_is_sent_once_when_the_network_returns(console):
    from playwright.async_api import async_playwright

    online, offline = to_check(console), to_check(console)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        context = await browser.new_context(
            geolocation={"longitude": DOOR_88[0], "latitude": DOOR_88[1], "accuracy": 9},
            permissions=["geolocation"],
            locale="zh-CN",
            viewport=PHONE,
        )
        page = await context.new_page()
        await page.goto(f"{console.base}/console/")
        await page.fill("input[name=username]", "col")
        await page.fill("input[name=password]", password("col"))
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/console/tasks\?.*lon="))  # tasks.js sorts by the phone's position
        await page.get_by_text("距你").first.wait_for()

        await page.goto(f"{console.base}/console/tasks/{online}")
        await page.get_by_text("已定位，精度 ±9 米").wait_for()
        form = page.locator("form.act-check")
        await form.get_by_label("通过", exact=True).check()
        await form.locator("input[type=file]").set_input_files(
            files=[{"name": "after.png", "mimeType": "image/png", "buffer": png(5)}]
        )
        await form.get_by_role("button", name="提交核查").click()
        await page.wait_for_url(re.compile(r"/console/tasks\?lon=.*&ok="))
        await page.get_by_text(f"已核查：{online}").wait_for()

        await page.goto(f"{console.base}/console/tasks/{offline}")
        await page.get_by_text("已定位").wait_for()
        form = page.locator("form.act-check")
        await form.get_by_label("不通过（返工）").check()
        await form.locator("input[type=file]").set_input_files(
            files=[{"name": "still.png", "mimeType": "image/png", "buffer": png(6)}]
        )
        await context.set_offline(True)
        await form.get_by_role("button", name="提交核查").click()
        await page.get_by_text("网络不通：已保存在手机上").wait_for()
        assert await page.locator("#outbox-count").text_content() == "1"
        assert events(console, offline, "check") == []
        await context.set_offline(False)
        await page.get_by_text(f"已发送：核查 {offline}").wait_for()
        assert await page.locator("#outbox").is_hidden()
        await browser.close()

    [event] = events(console, online, "check")
    assert event.data["passed"] is True and event.data["position"]["accuracy_m"] == 9
    assert event.data["position"]["distance_m"] < 50 and event.data["position"]["far"] is False
    assert case(console, online).state == "待结案"
    [event] = events(console, offline, "check")
    assert event.data["rework"] is True and event.data["position"]["far"] is False and len(event.attachments) == 1
    assert case(console, offline).state == "处置中"
