"""The field side of a case in Debian's Chromium, on phones (375 px, geolocation granted): the 派遣员 dispatches →
the department's inbox shows it → 签收 → 处置完成 with a camera photo → the 监督员's 核查 task, answered with a photo
and the phone's GPS → the 值班长 closes it (结案); and a 监督员 files a problem of their own from the phone.

Screenshots go to ``$GRIDLINE_SCREENSHOTS`` (``make screenshots``: docs/console/), else to the test's own folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlmodel import Session, select

from core.cases import SYSTEM, Actor
from core.models import CaseEvent, CaseFile, Report
from tests.admin.console.conftest import password
from tests.admin.console.test_full_day import CHROMIUM, DESK, pytestmark  # noqa: F401  (skip without Chromium)
from tests.bots.conftest import DOOR_88
from tests.bots.fakes import png

PHONE = {"width": 375, "height": 812}
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def state(console, number: str) -> str:
    return console.runtime.loop.get(number, SYSTEM)[0].state


def last(console, number: str, action: str) -> CaseEvent:
    return [e for e in console.runtime.loop.get(number, SYSTEM)[1] if e.action == action][-1]


async def signed_in(browser, console, name: str, **context):
    ctx = await browser.new_context(locale="zh-CN", **context)
    page = await ctx.new_page()
    await page.goto(f"{console.base}/console/")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password(name))
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return ctx, page


async def test_a_case_worked_in_the_field_from_dispatch_to_close(console, tmp_path):
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("GRIDLINE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    loop = console.runtime.loop
    number = console.report("人民路88号门口一大堆垃圾没人清")
    loop.act(number, "accept", Actor(None, "op", "operator"))
    loop.act(number, "file", Actor(None, "lead", "shift_lead"), {"level": 1})
    phone = {"viewport": PHONE, "is_mobile": True}
    where = {"longitude": DOOR_88[0], "latitude": DOOR_88[1], "accuracy": 12}
    gps = {"geolocation": where, "permissions": ["geolocation"]}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])

        _, disp = await signed_in(browser, console, "disp", viewport=DESK)
        dispatch = disp.locator(f"form[action='/console/cases/{number}/do/dispatch']")
        await dispatch.locator("select[name=department]").select_option("HW")
        await dispatch.locator("button").click()
        await disp.get_by_text(f"已派遣：{number}").wait_for()

        _, hw = await signed_in(browser, console, "hw", **phone)
        await hw.locator(f"a.inbox-open[href$='/{number}']").first.wait_for()
        assert await hw.evaluate(FITS)
        await hw.screenshot(path=str(shots / "inbox-phone.png"), full_page=True)
        await hw.click(f"a.inbox-open[href$='/{number}']")
        await hw.locator(f"form[action='/console/cases/{number}/do/sign'] button").click()
        await hw.get_by_text(f"已签收：{number}").wait_for()
        complete = hw.locator(f"form[action='/console/cases/{number}/do/complete']")
        await complete.locator("input[name=photo]").set_input_files(
            files=[{"name": "after.png", "mimeType": "image/png", "buffer": png(51)}]
        )
        await complete.locator("button").click()
        await hw.get_by_text(f"已处置完成：{number}").wait_for()
        assert state(console, number) == "待核查"

        col_context, col = await signed_in(browser, console, "col", **phone, **gps)
        await col.wait_for_url(re.compile(r"/console/tasks\?.*lon="))  # nearest first, by the phone's position
        await col.get_by_text("距你").first.wait_for()
        assert await col.evaluate(FITS)
        await col.screenshot(path=str(shots / "tasks-phone.png"), full_page=True)
        await col.goto(f"{console.base}/console/tasks/{number}")
        await col.get_by_text("已定位，精度 ±12 米").wait_for()
        await col.screenshot(path=str(shots / "task-phone.png"), full_page=True)
        check = col.locator("form.act-check")
        await check.get_by_label("通过", exact=True).check()
        await check.locator("input[type=file]").set_input_files(
            files=[{"name": "seen.png", "mimeType": "image/png", "buffer": png(52)}]
        )
        await check.get_by_role("button", name="提交核查").click()
        await col.get_by_text(f"已核查：{number}").wait_for()
        position = last(console, number, "check").data["position"]
        assert position["accuracy_m"] == 12 and position["far"] is False and state(console, number) == "待结案"

        _, lead = await signed_in(browser, console, "lead", viewport=DESK)
        await lead.locator(f"form[action='/console/cases/{number}/do/close'] button").click()
        await lead.get_by_text(f"已结案：{number}").wait_for()
        assert state(console, number) == "已结案"

        # the 监督员 sees a problem on the way and reports it from the phone
        await col.goto(f"{console.base}/console/tasks/new")
        form = col.locator("#report-form")
        await form.locator("input[name=photo]").set_input_files(
            files=[{"name": "pile.png", "mimeType": "image/png", "buffer": png(53)}]
        )
        await col.fill("#report-text", "人行道上堆了一堆建筑垃圾")
        await form.locator("select[name=matter_code]").select_option("06010")
        assert await col.evaluate(FITS)
        await col.screenshot(path=str(shots / "tasks-new-phone.png"), full_page=True)
        await form.get_by_role("button", name="上报").click()
        await col.get_by_text("已上报：案卷").wait_for()
        await col_context.close()
        await browser.close()

    with Session(console.runtime.engine) as session:
        [own] = session.exec(select(Report).where(Report.channel == "collector")).all()
        case = session.get(CaseFile, own.case_id)
    assert own.sender == "col" and own.chosen_code == "06010" and case.matter_code == "06010"
    assert own.lon is not None and abs(own.lon - DOOR_88[0]) < 1e-6 and case.source == "collector"
