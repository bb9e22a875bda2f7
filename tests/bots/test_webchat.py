"""The web chat: its JSON face through HTTP, and the page itself walked in headless Chromium (Debian's, through
Playwright) with a photo upload and the browser's geolocation."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import aiohttp
import pytest

from bots.routes import BOTS
from core.crs import distance_m
from tests.bots.conftest import DOOR_88, DOOR_88_CELL, case_of, reports_of, walk
from tests.bots.fakes import png

CHROMIUM = Path("/usr/bin/chromium")
HEADERS = {"X-Gridline-Chat": "1"}


def visitor(cookie: str) -> str:
    return "w" + hashlib.sha256(cookie.encode()).hexdigest()[:40]


async def open_chat(client) -> str:
    resp = await client.get("/chat")
    assert resp.status == 200 and "城市管理问题反映" in await resp.text()
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["gridline_chat"].value


async def say(client, **fields) -> dict:
    body = {"id": uuid.uuid4().hex, **fields}
    resp = await client.post("/chat/api/messages", json=body, headers=HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_the_json_face_needs_the_cookie_and_header_and_answers_a_resend_once(world, client):
    rt = world.runtime
    anonymous = await client.post("/chat/api/messages", json={"id": "a1", "text": "你好"}, headers=HEADERS)
    assert anonymous.status == 401
    cookie = await open_chat(client)
    no_header = await client.post("/chat/api/messages", json={"id": "a2", "text": "你好"})
    assert no_header.status == 403
    assert (await client.post("/chat/api/messages", data=b"[1,", headers=HEADERS)).status == 400
    assert (await client.post("/chat/api/messages", json={"text": "x"}, headers=HEADERS)).status == 400
    await say(client, text="路灯晚上不亮")
    await say(client, lon=DOOR_88[0], lat=DOOR_88[1])
    form = aiohttp.FormData()
    form.add_field("id", "photo-1")
    form.add_field("photo", png(41), filename="p.png", content_type="image/png")
    resp = await client.post("/chat/api/messages", data=form, headers=HEADERS)
    summary = (await resp.json())["replies"][-1]
    assert "路灯异常" in summary["text"] and summary["options"] == ["确认", "取消"]
    confirm = {"id": "confirm-1", "text": "确认"}
    first = await (await client.post("/chat/api/messages", json=confirm, headers=HEADERS)).json()
    again = await (await client.post("/chat/api/messages", json=confirm, headers=HEADERS)).json()
    assert again["replies"] == first["replies"] and again["repeated"] is True
    [report] = reports_of(rt, "webchat", visitor(cookie))
    case = case_of(rt, report)
    assert f"编号 {case.number}" in first["replies"][0]["text"]
    assert case.matter_code == "01037" and case.grid_code == DOOR_88_CELL
    assert "gridline_chat" not in str(first) and visitor(cookie) not in str(first)


async def test_case_news_reach_the_page_with_the_after_photo_only_its_reporter_may_see(world, client, aiohttp_client):
    rt = world.runtime
    await open_chat(client)
    await say(client, text="人民路88号门口一大堆垃圾没人清")
    await say(client, text="跳过")
    receipt = (await say(client, text="确认"))["replies"][0]["text"]
    number = receipt.split("编号 ")[1][:12]
    after = rt.attachments.put(png(42)).sha256
    walk(rt, number, after)
    await client.server.app[BOTS].notifier.tick()
    news = await (await client.get("/chat/api/updates", params={"after": 0})).json()
    texts = [r["text"] for u in news["updates"] for r in u["replies"]]
    assert sum("已处理完毕并结案" in t for t in texts) == 1 and not any("已登记" in t for t in texts)
    [photo_url] = [r["photo_url"] for u in news["updates"] for r in u["replies"] if r.get("photo_url")]
    shown = await client.get(photo_url)
    assert shown.status == 200 and await shown.read() == rt.attachments.open(after)
    later = await (await client.get("/chat/api/updates", params={"after": news["last"]})).json()
    assert later["updates"] == []
    stranger = await aiohttp_client(client.server.app)
    await open_chat(stranger)
    assert (await stranger.get(photo_url)).status == 404
    assert "没有找到" in (await say(stranger, text=f"查询 {number}"))["replies"][0]["text"]


@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("ffmpeg") is None, reason="needs Debian's chromium")
async def test_a_citizen_reports_through_the_page_in_chromium(world, client, tmp_path):
    from playwright.async_api import async_playwright

    rt = world.runtime
    base = str(client.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        context = await browser.new_context(
            geolocation={"longitude": DOOR_88[0], "latitude": DOOR_88[1]},
            permissions=["geolocation"],
            locale="zh-CN",
            viewport={"width": 390, "height": 780},
        )
        page = await context.new_page()
        await page.goto(f"{base}/chat")
        await page.fill("#text", "路灯晚上不亮，好几天了")
        await page.press("#text", "Enter")
        await page.get_by_text("问题在什么位置").wait_for()
        await page.get_by_role("button", name="发送当前位置").click()
        await page.get_by_text("已收到位置").wait_for()
        await page.set_input_files("#photo", files=[{"name": "lamp.png", "mimeType": "image/png", "buffer": png(43)}])
        await page.get_by_text("照片：1 张").wait_for()
        await page.get_by_role("button", name="确认").click()
        await page.get_by_text("已登记，编号").wait_for()
        await page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        cookie = next(c["value"] for c in await context.cookies() if c["name"] == "gridline_chat")
        await browser.close()
    [report] = reports_of(rt, "webchat", visitor(cookie))
    case = case_of(rt, report)
    assert case.matter_code == "01037" and case.grid_code == DOOR_88_CELL
    assert distance_m(report.lon, report.lat, *DOOR_88) < 0.01 and [m["kind"] for m in report.media] == ["photo"]
