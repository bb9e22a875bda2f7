"""我的案卷 on a phone, through HTTP: a 专业部门 sees its own cases (unsigned new dispatches first), signs one,
completes it only with an after-photo, asks for more time seeing the month's quota, reads what the citizen is told;
another department's case is a 404 on every page, attachment and API route; the case view fits a 375 px screen."""

from __future__ import annotations

import os
import re
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import Session, select

from bots.privacy import mask
from core import users
from core.cases import SYSTEM
from core.models import Department, Report
from tests.admin.console.conftest import password
from tests.admin.console.test_filing import LEAD, case, department, drive, form_of
from tests.bots.fakes import png

HW = department("HW")
CHROMIUM = Path("/usr/bin/chromium")


def section(html: str, start: str, end: str | None = None) -> str:
    """The part of a page between two headings' ids."""
    begin = html.index(f'id="{start}"')
    return html[begin : html.index(f'id="{end}"', begin)] if end else html[begin:]


def view_path(number: str) -> str:
    return f"/console/inbox/{number}"


async def other_department(console) -> object:
    users.add_user(console.runtime.engine, "ps", "department", department="PS", password=password("ps"))
    return await console.login("ps")


async def test_the_inbox_lists_only_its_own_cases_with_unsigned_new_dispatches_first(console):
    loop = console.runtime.loop
    older, signed, newer = drive(console, "处置中"), drive(console, "处置中"), drive(console, "处置中")
    theirs = drive(console, "处置中", dept="PS")
    loop.act(signed, "sign", HW)
    hw = await console.login("hw")
    status, html = await hw.get("/console/inbox")
    assert status == 200 and "<h1>我的案卷" in html
    new = section(html, "h-new", "h-working")
    assert new.index(newer) < new.index(older), "the most recent dispatch is on top"
    assert signed not in new and "未签收" in new
    working = section(html, "h-working", "h-done")
    assert signed in working and "已签收" in working
    assert "light green" in html and "处置时限" in html and "截止" in html
    assert f'href="{view_path(newer)}"' in html
    assert theirs not in html
    op = await console.login("op")
    assert (await op.get("/console/inbox"))[0] == 403
    assert (await op.get(view_path(newer)))[0] == 403


async def test_signing_from_the_phone_view(console):
    number = drive(console, "处置中")
    hw = await console.login("hw")
    status, html = await hw.get(view_path(number))
    assert status == 200 and "未签收" in html
    fields = form_of(html, number, "sign")
    assert fields["next"] == view_path(number)
    status, html = await hw.post(f"/console/cases/{number}/do/sign", fields)
    assert status == 200 and f"已签收：{number}" in html and "<h1>案卷" in html
    assert case(console, number).signed
    assert f"/console/cases/{number}/do/sign" not in html and f"/console/cases/{number}/do/complete" in html


async def test_completing_needs_an_after_photo_which_only_those_who_see_the_case_may_open(console):
    number = drive(console, "处置中")
    console.runtime.loop.act(number, "sign", HW)
    hw = await console.login("hw")
    _, html = await hw.get(view_path(number))
    assert re.search(r'<input type="file" name="photo" accept="image/\*" capture="environment" required', html)
    fields = form_of(html, number, "complete")
    before = case(console, number)
    status, html = await hw.post(f"/console/cases/{number}/do/complete", fields)
    assert status == 422 and "需要上传现场照片" in html and "数据没有改变" in html
    after = case(console, number)
    assert (after.state, after.version) == ("处置中", before.version)

    upload = aiohttp.FormData(fields)
    upload.add_field("photo", png(41), filename="after.png", content_type="image/png")
    status, html = await hw.post(f"/console/cases/{number}/do/complete", upload)
    assert status == 200 and f"已处置完成：{number}" in html
    assert case(console, number).state == "待核查"
    sha = console.runtime.loop.get(number, SYSTEM)[1][-1].attachments[0]
    url = f"/console/cases/{number}/files/{sha}"
    assert f'src="{url}"' in html
    async with hw.http.get(url) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
    col = await console.login("col")  # the 监督员 of the cell, who checks the work
    async with col.http.get(url) as resp:
        assert resp.status == 200
    users.add_user(console.runtime.engine, "far", "collector", scope=["339905"], password=password("far"))
    ps, far = await other_department(console), await console.login("far")
    for stranger in (ps, far):
        async with stranger.http.get(url) as resp:
            assert resp.status == 404


async def test_asking_for_more_time_shows_the_months_quota_and_files_a_pending_request(console):
    loop = console.runtime.loop
    extended_before = drive(console, "处置中")
    loop.act(extended_before, "request_extension", HW, {"hours": 2, "reason": "材料未到"})
    loop.act(extended_before, "approve", LEAD)
    number = drive(console, "处置中")
    with Session(console.runtime.engine) as session:
        extended, dispatched, over = loop.quota_use(session, "HW", loop.clock())
    assert extended >= 1 and dispatched >= 2
    hw = await console.login("hw")
    _, html = await hw.get(view_path(number))
    quota = section(html, "quota")
    assert f"已延期 <strong>{extended}</strong> 件，派遣 <strong>{dispatched}</strong> 件" in quota
    assert ("再延期一件将超出本月限额" in quota) == over
    fields = form_of(html, number, "request_extension")
    status, html = await hw.post(f"/console/cases/{number}/do/request_extension", {**fields, "hours": "abc"})
    assert status == 422 and case(console, number).pending is None
    status, html = await hw.post(
        f"/console/cases/{number}/do/request_extension", {**fields, "hours": "4", "reason": "需要封路施工"}
    )
    assert status == 200 and f"已申请延期：{number}" in html
    assert case(console, number).pending == {"type": "延期", "hours": 4.0, "reason": "需要封路施工"}
    assert "已申请延期 4.0 工作时，等待值班长审批" in html
    assert "/do/request_" not in html, "one pending request at a time"


async def test_return_and_suspend_requests_need_a_reason(console):
    number = drive(console, "处置中")
    hw = await console.login("hw")
    _, html = await hw.get(view_path(number))
    suspend, back = form_of(html, number, "request_suspend"), form_of(html, number, "request_return")
    status, html = await hw.post(f"/console/cases/{number}/do/request_suspend", suspend)
    assert status == 422 and "理由" in html and case(console, number).pending is None
    status, html = await hw.post(f"/console/cases/{number}/do/request_return", {**back, "reason": "属排水管网"})
    assert status == 200 and f"已申请回退：{number}" in html
    assert case(console, number).pending == {"type": "回退", "reason": "属排水管网"}


async def test_the_view_shows_what_the_citizen_is_told_and_never_who_the_citizen_is(console):
    number = drive(console, "处置中")
    with Session(console.runtime.engine) as session:
        sender = session.exec(select(Report.sender).where(Report.case_id == case(console, number).id)).one()
        name = session.get(Department, "HW").name
    hw = await console.login("hw")
    _, html = await hw.get(view_path(number))
    citizen = section(html, "citizen", "h-history")
    assert f"已派给{name}，正在处置" in citizen
    assert f"最近一次通知市民：编号 {number}（暴露垃圾）已派给{name}处置" in citizen
    assert sender not in html and mask(sender) not in html
    console.runtime.loop.act(number, "complete", HW, {"attachments": ["a" * 64]})
    _, html = await hw.get(view_path(number))
    assert f"{name}已处置完毕，等待监督员现场核查" in section(html, "citizen", "h-history")
    history = section(html, "h-history")
    assert history.index("处置完成") < history.index("派遣") < history.index("上报"), "newest first"


async def test_another_departments_case_is_not_found_on_any_page_file_or_api_route(console):
    runtime = console.runtime
    number = drive(console, "处置中")
    sha = runtime.attachments.put(png(42), "image/png").sha256
    runtime.loop.act(number, "sign", HW)
    runtime.loop.act(number, "complete", HW, {"attachments": [sha]})
    users.add_user(runtime.engine, "ps", "department", department="PS", password=password("ps"))
    tokens = {name: users.create_token(runtime.engine, name) for name in ("hw", "ps")}
    hw, ps = await console.login("hw"), await console.login("ps")
    for path in (view_path(number), f"/console/cases/{number}", f"/console/cases/{number}/files/{sha}"):
        async with hw.http.get(path) as resp:
            assert resp.status == 200, path
        status, html = await ps.get(path)
        assert status == 404 and "数据没有改变" in html and sha not in html, path
    assert number not in (await ps.get("/console/inbox"))[1]
    for name, expected in (("hw", 200), ("ps", 404)):
        headers = {"Authorization": f"Bearer {tokens[name]}"}
        async with ps.http.get(f"/api/v1/cases/{number}", headers=headers) as resp:
            assert resp.status == expected, name
            body = await resp.json()
        assert (body.get("number") == number) == (expected == 200)
        async with ps.http.get(f"/api/v1/attachments/{sha}", headers=headers) as resp:
            assert resp.status == expected, name
    async with hw.http.get(f"/console/cases/{number}/files/{'b' * 64}") as resp:
        assert resp.status == 404, "a file that is not the case's own"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")
async def test_the_case_view_fits_a_phone_and_completes_with_a_camera_photo(console, tmp_path):
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("GRIDLINE_SCREENSHOTS") or tmp_path)  # as in test_full_day
    shots.mkdir(parents=True, exist_ok=True)
    number = drive(console, "处置中")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        context = await browser.new_context(locale="zh-CN", viewport={"width": 375, "height": 812}, is_mobile=True)
        phone = await context.new_page()
        await phone.goto(f"{console.base}/console/")
        await phone.fill("input[name=username]", "hw")
        await phone.fill("input[name=password]", password("hw"))
        await phone.click("button[type=submit]")
        await phone.wait_for_url("**/console/inbox")
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        assert await phone.evaluate(fits), "the inbox scrolls sideways at 375 px"
        await phone.screenshot(path=str(shots / "inbox-phone.png"), full_page=True)
        await phone.click(f"a.inbox-open[href='{view_path(number)}']")
        await phone.locator("#minimap.leaflet-container").wait_for()
        assert await phone.evaluate(fits), "the case view scrolls sideways at 375 px"
        await phone.screenshot(path=str(shots / "inbox-case-phone.png"), full_page=True)
        await phone.locator(f"form[action='/console/cases/{number}/do/sign'] button").click()
        await phone.get_by_text(f"已签收：{number}").wait_for()
        complete = phone.locator(f"form[action='/console/cases/{number}/do/complete']")
        await complete.locator("input[name=photo]").set_input_files(
            files=[{"name": "after.png", "mimeType": "image/png", "buffer": png(43)}]
        )
        await complete.locator("button").click()
        await phone.get_by_text(f"已处置完成：{number}").wait_for()
        assert await phone.evaluate(fits)
        await browser.close()
    assert case(console, number).state == "待核查"
