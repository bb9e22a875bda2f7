"""A day at the centre in Debian's Chromium (through Playwright): a citizen reports by web chat → the 受理员 confirms
it from the queue with the keyboard → the 值班长 files it → the 派遣员 dispatches it → a 12319 seat registers a phone
report → a hand-over is answered → the case page shows the whole timeline.

Screenshots of each page go to ``$GRIDLINE_SCREENSHOTS`` (``make screenshots`` points it at docs/console/), else
to the test's own folder."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bots.routes import BOTS
from core.cases import SYSTEM
from core.models import CaseFile, Report
from tests.admin.console.conftest import password
from tests.bots.conftest import DOOR_88
from tests.bots.fakes import png

CHROMIUM = Path("/usr/bin/chromium")
DESK = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("ffmpeg") is None, reason="needs Debian's chromium (make test installs it)"
)


def state(console, number: str) -> str:
    return console.runtime.loop.get(number, SYSTEM)[0].state


async def staff_page(browser, console, name: str, shots: Path, shot: str | None = None):
    context = await browser.new_context(locale="zh-CN", viewport=DESK)
    page = await context.new_page()
    await page.goto(f"{console.base}/console/")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password(name))
    if shot:
        await page.screenshot(path=str(shots / shot))
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return page


async def test_a_day_at_the_centre(console, tmp_path):
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("GRIDLINE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])

        # a citizen, on a phone, by web chat
        citizen_context = await browser.new_context(
            geolocation={"longitude": DOOR_88[0], "latitude": DOOR_88[1]},
            permissions=["geolocation"],
            locale="zh-CN",
            viewport={"width": 390, "height": 780},
        )
        citizen = await citizen_context.new_page()
        await citizen.goto(f"{console.base}/chat")
        await citizen.fill("#text", "路灯晚上不亮，好几天了")
        await citizen.press("#text", "Enter")
        await citizen.get_by_text("问题在什么位置").wait_for()
        await citizen.get_by_role("button", name="发送当前位置").click()
        await citizen.get_by_text("已收到位置").wait_for()
        await citizen.set_input_files("#photo", files=[{"name": "lamp.png", "mimeType": "image/png", "buffer": png(7)}])
        await citizen.get_by_text("照片：1 张").wait_for()
        await citizen.get_by_role("button", name="确认").click()
        receipt = await citizen.get_by_text("已登记，编号").text_content()
        number = re.search(r"编号 (\d{12})", receipt).group(1)
        assert state(console, number) == "待受理"

        # the 受理员 confirms the suggestion from the queue, with the keyboard only
        op = await staff_page(browser, console, "op", shots, "login.png")
        assert op.url.endswith("/console/queue")
        await op.locator(f"#queue-rows >> text={number}").first.wait_for()
        await op.goto(f"{console.base}/console/queue?case={number}")
        await op.screenshot(path=str(shots / "queue.png"))
        await op.keyboard.press("Enter")
        await op.get_by_text(f"已受理：{number}").wait_for()
        assert state(console, number) == "待立案"

        # the 值班长 files it
        lead = await staff_page(browser, console, "lead", shots)
        assert lead.url.endswith("/console/filing")
        await lead.screenshot(path=str(shots / "filing.png"))
        await lead.locator(f"form[action='/console/cases/{number}/do/file'] button").click()
        await lead.get_by_text(f"已立案：{number}").wait_for()
        assert state(console, number) == "待派遣"

        # the 派遣员 dispatches it to the suggested department
        disp = await staff_page(browser, console, "disp", shots)
        await disp.screenshot(path=str(shots / "dispatch.png"))
        await disp.locator(f"form[action='/console/cases/{number}/do/dispatch'] button").click()
        await disp.get_by_text(f"已派遣：{number}").wait_for()
        assert state(console, number) == "处置中"

        # a 12319 seat registers a caller's report, with live suggestions
        await op.goto(f"{console.base}/console/phone")
        await op.fill("input[name=caller]", "13812345678")
        await op.fill("#phone-text", "解放路100号门口井盖不见了，晚上很危险")
        await op.fill("#phone-place", "解放路100号")
        await op.locator("#suggest-class").get_by_text("%").first.wait_for()
        await op.locator("#suggest-place").get_by_text("网格").first.wait_for()
        await op.screenshot(path=str(shots / "phone.png"))
        await op.locator("#phone-form button[type=submit]").first.click()
        await op.get_by_text("已登记").first.wait_for()
        with Session(console.runtime.engine) as s:
            phoned = s.exec(select(Report).where(Report.channel == "hotline")).one()
            assert phoned.sender == "13812345678" and phoned.case_id is not None
            assert s.get(CaseFile, phoned.case_id).state == "待受理"
        assert "13812345678" not in await op.content()

        # the citizen asks for a person; the 受理员 answers from the hand-over page
        await citizen.fill("#text", "人工")
        await citizen.press("#text", "Enter")
        await citizen.get_by_text("已为您转接人工受理员").wait_for()
        await citizen.fill("#text", "路灯什么时候能修好？")
        await citizen.press("#text", "Enter")
        await citizen.get_by_text("已转达受理员").wait_for()
        await op.goto(f"{console.base}/console/handoffs")
        await op.get_by_text("路灯什么时候能修好").first.wait_for()
        await op.screenshot(path=str(shots / "handoffs.png"))
        await op.locator("textarea[name=text]").first.fill("您好，路灯问题已派遣处理，请耐心等待")
        await op.locator("form[action$='/reply'] button[type=submit]").first.click()
        await op.get_by_text("已回复会话").first.wait_for()
        await console.app[BOTS].notifier.tick()
        await citizen.get_by_text("路灯问题已派遣处理").wait_for()

        # the case page tells the whole story
        await op.goto(f"{console.base}/console/cases/{number}")
        timeline = await op.locator(".timeline").inner_text()
        for step in ("上报", "受理", "立案", "派遣"):
            assert step in timeline
        assert await op.locator(".photos img").count() >= 1
        await op.screenshot(path=str(shots / "case.png"), full_page=True)

        await op.goto(f"{console.base}/console/map")
        await op.locator("#map-count", has_text="件未办结案件").wait_for()
        assert await op.locator("#map-list li").count() >= 2  # the two open cases of the day
        await op.screenshot(path=str(shots / "map.png"))

        # the same pages on a tablet held upright: nothing wider than the screen
        await op.set_viewport_size(TABLET)
        for path, shot in (("/console/queue", "queue-tablet.png"), (f"/console/cases/{number}", None)):
            await op.goto(f"{console.base}{path}")
            assert await op.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            if shot:
                await op.screenshot(path=str(shots / shot))
        await browser.close()
