"""监督指挥 through HTTP and in Debian's Chromium: the wall page with its local scripts, its JSON (the figures of
``core.wall``), who may see it, a 领导 who may look but never act, and a month of the city on a 1920×1080 wall:
counts, the grid's heat, markers by light, collectors, charts, and a click through to the case.

The screenshot goes to ``$GRIDLINE_SCREENSHOTS`` (docs/console/ for the README), else to the test's own folder."""

from __future__ import annotations

import os
import random
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from core import wall
from core.cases import Actor, now_utc
from core.democity import BBOX
from core.models import AppUser
from tests.admin.console.conftest import password
from tests.admin.console.test_full_day import CHROMIUM
from tests.admin.console.test_posts import console_posts, snapshot
from tests.core.test_wall import GARBAGE, POSTERS, report, walk

ECHARTS = "/console/static/node_modules/echarts/dist/echarts.min.js"
LEAFLET = "/console/static/node_modules/leaflet/dist/leaflet.js"
WALL = {"width": 1920, "height": 1080}


async def get_json(staff, path: str) -> tuple[int, dict]:
    async with staff.http.get(path) as resp:
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return resp.status, await resp.json()


@pytest.mark.parametrize("name", ["lead", "boss", "adm"])
async def test_the_wall_loads_echarts_and_leaflet_from_the_console(console, name):
    staff = await console.login(name)
    status, page = await staff.get("/console/wall")
    assert status == 200
    for script in (LEAFLET, ECHARTS, "/console/static/wall.js"):
        assert f'<script src="{script}"' in page
    assert all(url.startswith("/") for url in re.findall(r'(?:src|href)="([^"]*)"', page))  # nothing from outside
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # the CSP allows no inline script
    for text in (
        "监督指挥",
        "今日上报",
        "待受理",
        "待立案",
        "待派遣",
        "处置中",
        "待核查",
        "待结案",
        "红灯",
        "按期结案率",
    ):
        assert text in page
    for path in (ECHARTS, "/console/static/wall.js"):
        async with staff.http.get(path) as resp:
            assert resp.status == 200 and "javascript" in resp.content_type, path
            assert len(await resp.read()) > 5000


async def test_the_json_is_the_figures_of_the_wall_with_the_names_shown(console):
    numbers = [console.report(), console.report("解放路口电线杆上贴满小广告", channel="wechat")]
    boss = await console.login("boss")
    status, body = await get_json(boss, "/console/wall.json")
    assert status == 200
    figures = wall.figures(console.runtime.loop)
    assert {k: v for k, v in body.items() if k not in ("now", "names", "poll_seconds", "max_markers")} == {
        k: v for k, v in figures.items() if k != "now"
    }
    assert body["today"] == {"total": 2, "channels": {"webchat": 1, "wechat": 1}}
    assert body["groups"][0] == {"name": "待受理", "count": 2, "parts": {"待受理": 2, "待核实": 0}}
    assert sorted(m["number"] for m in body["markers"]) == sorted(numbers)
    assert body["names"]["channels"]["webchat"] == "网页" and body["names"]["stages"]["待受理"] == "受理"
    assert body["poll_seconds"] == 30


@pytest.mark.parametrize("name", ["op", "disp", "hw", "col"])
async def test_other_roles_may_not_see_the_wall(console, name):
    staff = await console.login(name)
    async with staff.http.get("/console/wall", allow_redirects=False) as resp:
        assert resp.status == 403 and "值班长" in await resp.text()
    status, body = await get_json(staff, "/console/wall.json")
    assert status == 403 and "领导" in body["error"]


async def test_a_leader_looks_and_never_acts(console):
    number = console.report()
    boss = await console.login("boss")
    status, home = await boss.get("/console/")
    assert status == 200 and "监督指挥" in home and 'id="wall-map"' in home  # a 领导's home is the wall
    menu = re.findall(r"<nav>(.*?)</nav>", home, re.S)[0]
    assert re.findall(r">([^<]+)</a>", menu) == ["监督指挥", "综合评价"]
    status, page = await boss.get(f"/console/cases/{number}")
    assert status == 200 and number in page and "/do/" not in page  # the case, and no action to take on it
    before = snapshot(console)
    for path in console_posts(console, number):
        status, page = await boss.post(path, {"version": "1", "reason": "x", "text": "x", "name": "x"})
        assert status == 403 and "本次操作未执行" in page, (path, status, page[:300])
    for action in ("accept", "reject", "file", "dispatch", "urge", "close"):
        status, page = await boss.post(f"/console/cases/{number}/do/{action}", {"version": "1", "reason": "x"})
        assert status == 403 and "领导不能执行" in page, action
    assert snapshot(console) == before


def month(console, rng: random.Random) -> None:
    """Thirty days of reports all over the demo city and random walks of their cases (the last 20 hours busier), on a
    clock that ends now."""
    loop = console.runtime.loop
    end = now_utc()
    clock = SimpleNamespace(at=end - timedelta(days=30))
    loop.clock = lambda: clock.at
    with console.runtime.engine.connect() as conn:
        users = conn.execute(AppUser.__table__.select()).all()
    people = {u.name: Actor(u.id, u.name, u.role, u.department_code, tuple(u.grid_scope)) for u in users}
    world = SimpleNamespace(
        loop=loop, intake=console.runtime.intake, engine=console.runtime.engine, people=people, clock=loop.clock
    )
    numbers: list[str] = []
    channels = ("wechat", "wechat", "hotline", "webchat", "telegram", "collector")
    busy = end - timedelta(hours=20)
    times = sorted(clock.at + (busy - clock.at) * rng.random() for _ in range(600))
    times += sorted(busy + (end - busy) * rng.random() for _ in range(100))
    for step, when in enumerate(times):
        clock.at = when
        if step % 4 == 0:
            lon, lat = rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])
            code = rng.choice((GARBAGE, GARBAGE, POSTERS, "06001", "09001", None))
            numbers.append(report(world, f"m{step}", rng.choice(channels), code, lon=lon, lat=lat))
        for number in rng.sample(numbers[-40:], min(2, len(numbers))):
            walk(world, rng, number)
    loop.clock = now_utc


PLACES = """() => {
  const map = document.getElementById('wall-map').map, box = map.getContainer().getBoundingClientRect(), out = [];
  map.eachLayer((l) => {
    if (!l.getLatLng || !l.options.radius) return;
    const p = map.latLngToContainerPoint(l.getLatLng());
    out.push([box.left + p.x, box.top + p.y, l.options.fillColor]);
  });
  return out;
}"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")
async def test_a_month_on_the_wall_in_chromium(console, tmp_path):
    from playwright.async_api import async_playwright

    month(console, random.Random(16))
    figures = wall.figures(console.runtime.loop)
    assert figures["markers"] and figures["collectors"] and figures["departments"] and figures["stages"]
    shots = Path(os.environ.get("GRIDLINE_SCREENSHOTS") or tmp_path)  # as in test_full_day
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = await (await browser.new_context(locale="zh-CN", viewport=WALL)).new_page()
        await page.goto(f"{console.base}/console/")
        await page.fill("input[name=username]", "boss")
        await page.fill("input[name=password]", password("boss"))
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console/wall")
        await page.get_by_text("更新于").wait_for()
        assert await page.locator('[data-figure="today"]').text_content() == str(figures["today"]["total"])
        for group in figures["groups"]:
            tile = page.locator(f'[data-group="{group["name"]}"] .value')
            assert await tile.text_content() == str(group["count"])
        assert await page.locator('[data-light="red"]').text_content() == str(figures["lights"]["red"])
        series = await page.evaluate(
            """() => Array.from(document.querySelectorAll('.chart')).map((el) => {
                 const option = echarts.getInstanceByDom(el).getOption();
                 return option.series.map((s) => s.data.length);
               })"""
        )
        assert len(series) == 6 and all(sum(s) > 0 for s in series), series
        heat = await page.evaluate(
            """() => { const out = {}; document.getElementById('wall-map').map.eachLayer((l) => {
                 if (l.feature && l.feature.properties.area_class) out[l.feature.properties.code] = l.options.fillColor;
               }); return out; }"""
        )
        hot = {code for code, colour in heat.items() if colour != "#1b2d4a"}
        assert hot == set(figures["cells"]) and len(heat) == 783
        await page.wait_for_timeout(500)  # the charts' entry animation
        await page.screenshot(path=str(shots / "wall.png"))
        assert not await page.evaluate("document.documentElement.scrollHeight > innerHeight")  # one screen

        # a click on a red case, the one farthest from any other dot, opens it
        dots = await page.evaluate(PLACES)
        reds = [d for d in dots if d[2] == "#d64545"]
        x, y, _ = max(reds, key=lambda r: min((r[0] - o[0]) ** 2 + (r[1] - o[1]) ** 2 for o in dots if o is not r))
        await page.mouse.click(x, y)
        await page.wait_for_url(re.compile(r"/console/cases/\d+$"))
        opened = page.url.rsplit("/", 1)[1]
        assert opened in {m["number"] for m in figures["markers"] if m["light"] == "red"}
        assert f"{opened}" in await page.content()
        assert await page.locator("form[action*='/do/']").count() == 0  # a 领导 sees no action
        await browser.close()
