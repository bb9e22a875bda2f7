"""综合评价 pages through HTTP and in Debian's Chromium: the 部门, 区域 and 岗位 tables of a period with every
indicator ``core.evaluation`` gives, sorted by a clicked column, the bar charts and the grade map, a row's cases,
who may see them, and the XLSX and CSV exports checked against ``gridline evaluate`` for the same period.

The cases run through the real loop by the staff of the console fixture, so every figure is the loop's own. A
screenshot goes to ``$GRIDLINE_SCREENSHOTS/evaluation.png`` (``make screenshots``), else to the test's folder."""

from __future__ import annotations

import html
import io
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import openpyxl
import pytest
from sqlalchemy import select

from admin.cli import main
from core import evaluation as ev
from core import users
from core.cases import LOCAL
from core.models import GridCell
from tests.admin.console.conftest import password
from tests.bots.fakes import png

CHROMIUM = Path("/usr/bin/chromium")
ECHARTS = "/console/static/node_modules/echarts/dist/echarts.min.js"
KINDS = ("dept", "region", "post")


def people(console) -> dict:
    engine = console.runtime.engine
    return {n: users.actor_for_password(engine, n, password(n)) for n in ("op", "lead", "disp", "hw", "col")}


async def login(console, name: str):
    """Logged in and sent here (a 领导's home is the wall, which this test does not need)."""
    staff = console.browser()
    _, form = await staff.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    fields = {"csrf_token": token, "username": name, "password": password(name), "next": "/console/evaluation"}
    status, _ = await staff.post("/console/login", fields, csrf=False)
    assert status == 200, staff.last[:300]
    return staff


def run_cases(console) -> dict[str, str]:
    """Cases in two streets taken through the loop by the fixture's staff: two for HW, one to 结案 and one 返工
    and done again, one waiting in 处置 at SZ, one voided and one rejected, plus a 监督员's own report."""
    p, loop = people(console), console.runtime.loop
    with console.runtime.engine.connect() as conn:
        cells = conn.execute(select(GridCell).order_by(GridCell.code)).all()
    east = next(c for c in cells if c.street_code == "339901001")
    west = next(c for c in cells if c.street_code == "339901002")
    at = {"east": (east.centroid_lon, east.centroid_lat), "west": (west.centroid_lon, west.centroid_lat)}

    def report(text: str, where: str, **kw) -> str:
        lon, lat = at[where]
        return console.report(text, lon=lon, lat=lat, **kw)

    closed, reworked, open_ = (
        report("路边垃圾堆了好几天", "east"),
        report("井盖缺了一块", "east"),
        report("路灯不亮", "west"),
    )
    voided, rejected = report("广告乱贴", "west"), report("楼上吵架", "west")
    done_photo, check_photo = ([console.runtime.attachments.put(png(seed), "image/png").sha256] for seed in (3, 4))
    for number in (closed, reworked, open_, voided):
        loop.act(number, "accept", p["op"], {"matter_code": "01001"})
    loop.act(rejected, "reject", p["op"], {"reason": "不属于城管范围"})
    loop.act(voided, "void", p["lead"], {"reason": "重复上报"})
    for number, department in ((closed, "HW"), (reworked, "HW"), (open_, "SZ")):
        loop.act(number, "file", p["lead"], {"level": 1})
        loop.act(number, "dispatch", p["disp"], {"department": department})
    loop.act(closed, "complete", p["hw"], {"attachments": done_photo})
    loop.act(closed, "check", p["col"], {"passed": True, "attachments": check_photo})
    loop.act(closed, "close", p["lead"])
    loop.act(reworked, "complete", p["hw"], {"attachments": done_photo})
    loop.act(reworked, "check", p["col"], {"passed": False, "attachments": check_photo})
    loop.act(reworked, "complete", p["hw"], {"attachments": done_photo})
    own = report("人行道地砖松动", "east", channel="collector", sender="col")
    return {"closed": closed, "reworked": reworked, "open": open_, "voided": voided, "rejected": rejected, "own": own}


def period_of(console) -> str:
    """Yesterday to tomorrow in Beijing time: the cases of the test, whatever the hour it runs."""
    today = console.runtime.loop.clock().astimezone(LOCAL).date()
    return f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"


def shown(value) -> str:
    return "—" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def section(page: str, kind: str) -> str:
    found = re.search(rf'<section class="card evaltable" id="eval-{kind}".*?</section>', page, re.S)
    assert found, kind
    return found.group(0)


def table_rows(part: str) -> list[list[str]]:
    """The cells of a section's tables, as text, row by row (header rows left out)."""
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", re.sub(r"<thead>.*?</thead>", "", part, flags=re.S), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def column(part: str, name: str) -> list[str]:
    """One column of a section's (first) table, as shown."""
    header = re.findall(r'title="按([^"]+)排序"', part)
    return [cells[header.index(name)] for cells in table_rows(part)]


def cli_json(monkeypatch, capsys, console, *argv: str):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", console.runtime.settings.database_url)
    monkeypatch.setenv("GRIDLINE_DATA_DIR", str(console.runtime.settings.data_dir))
    capsys.readouterr()
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


async def test_the_three_tables_show_every_indicator_score_and_grade_of_core_evaluation(console):
    run_cases(console)
    period = period_of(console)
    lead = await login(console, "lead")
    status, page = await lead.get(f"/console/evaluation?period={period}&level=community")
    assert status == 200 and period in page
    assert f'<script src="{ECHARTS}">' in page and '<script src="/console/static/evaluation.js">' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # the CSP allows no inline script
    for kind in KINDS:
        rows = ev.evaluate(console.runtime.engine, period, kind, "community")
        assert rows, kind
        part = section(page, kind)
        for name in {n for r in rows for n in r.indicators} | {"综合指标值", "等级"}:
            assert f">{name}" in part, (kind, name)
        got = {(cells[0], cells[1]): cells for cells in table_rows(part)}
        assert len(got) == len(rows)
        for r in rows:
            cells = got[(r.object_code, r.object_name)]
            assert cells[-3:] == [shown(r.score), r.grade, f"{len(r.cases)} 件"], (kind, r.object_code)
            for value in r.indicators.values():
                assert shown(value) in cells
        chart = json.loads(html.unescape(re.search(r"data-chart='([^']*)'", part).group(1)))
        assert sorted(chart["scores"]) == sorted(r.score for r in rows) and len(chart["links"]) == len(rows)
    dept = {r.object_code: r for r in ev.evaluate(console.runtime.engine, period, "dept")}
    assert dept["HW"].indicators["应处置数"] == 2 and dept["HW"].indicators["返工数"] == 1 and "SZ" in dept
    regions = json.loads(html.unescape(re.search(r"data-regions='([^']*)'", page).group(1)))
    assert regions["size"] == 12 and set(regions["regions"]) == {
        r.object_code for r in ev.evaluate(console.runtime.engine, period, "region", "community")
    }
    for path in (ECHARTS, "/console/static/evaluation.js"):
        async with lead.http.get(path) as resp:
            assert resp.status == 200 and "javascript" in resp.content_type, path


async def test_a_click_on_a_header_sorts_by_that_column_and_bad_values_are_a_400(console):
    run_cases(console)
    period = period_of(console)
    boss = await login(console, "boss")
    _, page = await boss.get(f"/console/evaluation?period={period}")
    scores = [float(v) for v in column(section(page, "dept"), "综合指标值")]
    assert len(scores) == 2 and scores == sorted(scores, reverse=True)  # by default the best first

    def sort_link(page: str, kind: str, name: str) -> str:
        hrefs = dict(re.findall(rf'<a href="([^"]*)#eval-{kind}" title="按([^"]+)排序"', section(page, kind)))
        return html.unescape(next(href for href, head in hrefs.items() if head == name))

    status, page = await boss.get(sort_link(page, "dept", "处置率"))  # a first click: the biggest first
    assert status == 200 and 'aria-sort="descending"' in section(page, "dept")
    rates = [float(v) for v in column(section(page, "dept"), "处置率")]
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[1]
    scores = [float(v) for v in column(section(page, "region"), "综合指标值")]
    assert scores == sorted(scores, reverse=True)  # the other tables keep their order
    status, page = await boss.get(sort_link(page, "dept", "处置率"))  # again: the other way round
    assert [float(v) for v in column(section(page, "dept"), "处置率")] == sorted(rates)
    status, page = await boss.get(sort_link(page, "region", "对象名称"))
    names = column(section(page, "region"), "对象名称")
    assert names == sorted(names, reverse=True) and "sort_dept=处置率" in unquote(html.unescape(page))  # both kept
    status, page = await boss.get(sort_link(page, "post", "上报数"))
    assert status == 200 and 'aria-sort="descending"' in section(page, "post")
    for query, words in (
        ("period=2026-13", "评价周期"),
        ("period=November", "评价周期"),
        ("from=2026-11-09&to=2026-11-01", "结束日期早于开始日期"),
        (f"period={period}&level=city", "区域层级"),
        (f"period={period}&sort_dept=密码", "不能按"),
    ):
        status, page = await boss.get(f"/console/evaluation?{query}")
        assert status == 400 and words in html.unescape(page), query
    status, page = await boss.get("/console/evaluation?from=2026-11-01&to=2026-11-09")
    assert status == 200 and "2026-11-01..2026-11-09" in page, re.findall(r'role="alert">(.*?)<', page)
    status, page = await boss.get("/console/evaluation")  # this month by default
    month = console.runtime.loop.clock().astimezone(LOCAL).strftime("%Y-%m")
    assert status == 200 and f'value="{month}"' in page


async def test_each_row_opens_the_cases_it_counts(console):
    numbers = run_cases(console)
    period = period_of(console)
    adm = await login(console, "adm")
    _, page = await adm.get(f"/console/evaluation?period={period}&level=street")
    links = {
        parse_qs(urlsplit(html.unescape(href)).query)["code"][0] + "/" + kind: html.unescape(href)
        for kind in KINDS
        for href in re.findall(r'<a href="(/console/evaluation/cases\?[^"]*)">\d+ 件', section(page, kind))
    }
    status, hw = await adm.get(links["HW/dept"])
    assert status == 200 and "青川区环境卫生管理处" in hw
    listed = set(re.findall(r'href="/console/cases/(\d{12})"', hw))
    assert listed == {numbers["closed"], numbers["reworked"]}
    _, east = await adm.get(links["339901001/region"])
    assert set(re.findall(r'href="/console/cases/(\d{12})"', east)) == {numbers["closed"], numbers["reworked"]}
    lead_id = str(people(console)["lead"].user_id)
    _, lead = await adm.get(links[f"{lead_id}/post"])
    assert set(re.findall(r'href="/console/cases/(\d{12})"', lead)) == {
        numbers["closed"], numbers["reworked"], numbers["open"], numbers["voided"]
    }  # fmt: skip
    status, case = await adm.get(f"/console/cases/{numbers['closed']}")
    assert status == 200 and "已结案" in case
    status, _ = await adm.get(f"/console/evaluation/cases?period={period}&object=dept&code=NOPE")
    assert status == 404
    for query in ("object=city&code=HW", "object=dept&code=HW&start=-1", "object=dept&code=HW&start=x"):
        status, _ = await adm.get(f"/console/evaluation/cases?period={period}&{query}")
        assert status == 400, query


async def test_only_the_shift_lead_the_leader_and_admin_may_see_it(console):
    period = period_of(console)
    paths = (
        f"/console/evaluation?period={period}",
        f"/console/evaluation.xlsx?period={period}",
        f"/console/evaluation.csv?period={period}&object=dept",
        f"/console/evaluation/cases?period={period}&object=dept&code=HW",
    )
    for name in ("op", "disp", "hw", "col"):
        staff = await console.login(name)
        _, home = await staff.get("/console/")
        assert "/console/evaluation" not in home  # not in their menu
        for path in paths:
            status, text = await staff.get(path)
            assert status == 403 and "领导" in text and "综合指标值" not in text, (name, path)
    for name in ("lead", "boss", "adm"):
        staff = await login(console, name)
        status, page = await staff.get(paths[0])
        assert status == 200 and 'href="/console/evaluation"' in page, name
    anonymous = console.browser()
    async with anonymous.http.get(paths[1], allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")


async def test_the_workbook_has_a_sheet_per_object_with_the_numbers_of_gridline_evaluate(
    console, monkeypatch, capsys, tmp_path
):
    run_cases(console)
    period = period_of(console)
    lead = await login(console, "lead")
    async with lead.http.get(f"/console/evaluation.xlsx?period={period}&level=grid") as resp:
        assert resp.status == 200 and resp.content_type == ev_xlsx_type()
        assert "attachment" in resp.headers["Content-Disposition"]
        body = await resp.read()
    book = openpyxl.load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["部门", "区域（单元网格）", "岗位"]
    for kind, sheet in zip(KINDS, book.worksheets, strict=True):
        assert sheet.freeze_panes == "A2" and all(c.font.bold for c in sheet[1])
        header = [c.value for c in sheet[1]]
        lines = {
            (line[0], line[2] if kind == "post" else ""): line for line in sheet.iter_rows(min_row=2, values_only=True)
        }
        expected = cli_json(monkeypatch, capsys, console, "--period", period, "--object", kind, "--level", "grid")
        assert expected and len(lines) == len(expected)
        for row in expected:
            line = lines[(row["object"], ev.ROLE_NAMES[row["role"]] if kind == "post" else "")]
            assert line[1] == row["name"] and line[header.index("等级")] == row["grade"]
            assert line[header.index("综合指标值")] == row["score"] and isinstance(row["score"], float)
            for name, value in row["indicators"].items():
                cell = line[header.index(name)]
                assert cell == value and (value is None or isinstance(cell, int | float)), (kind, name, cell)
    saved = tmp_path / "cli.xlsx"
    cli_json(
        monkeypatch, capsys, console, "--period", period, "--object", "dept", "--level", "grid", "--xlsx", str(saved)
    )
    cli_book = openpyxl.load_workbook(saved)
    assert cli_book.sheetnames == book.sheetnames
    for mine, theirs in zip(book.worksheets, cli_book.worksheets, strict=True):
        assert list(mine.iter_rows(values_only=True)) == list(theirs.iter_rows(values_only=True))
    async with lead.http.get("/console/evaluation.xlsx?period=2026-13") as resp:
        assert resp.status == 400 and "评价周期" in (await resp.json())["error"]
    code = main(["evaluate", "--period", period, "--object", "dept", "--xlsx", str(tmp_path / "no" / "e.xlsx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "无法写入" in err and len(err.splitlines()) == 1


async def test_the_csv_is_the_one_gridline_evaluate_writes(console, monkeypatch, capsys, tmp_path):
    run_cases(console)
    period = period_of(console)
    boss = await login(console, "boss")
    for kind in KINDS:
        async with boss.http.get(f"/console/evaluation.csv?period={period}&object={kind}&level=community") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv" and resp.charset == "utf-8"
            body = await resp.read()
        saved = tmp_path / f"{kind}.csv"
        cli_json(monkeypatch, capsys, console, "--period", period, "--object", kind, "--level", "community",
                 "--csv", str(saved))  # fmt: skip
        assert body == saved.read_bytes() and body.startswith("\ufeff对象代码".encode())
    async with boss.http.get(f"/console/evaluation.csv?period={period}&object=city") as resp:
        assert resp.status == 400 and "object" in (await resp.json())["error"]


def ev_xlsx_type() -> str:
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")
async def test_in_chromium_charts_map_sorting_and_drill_down(console, tmp_path):
    from playwright.async_api import async_playwright

    numbers = run_cases(console)
    period = period_of(console)
    shots = Path(os.environ.get("GRIDLINE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768})
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(  # CSP refusals and script errors; the browser's own favicon request is no page's
            "console",
            lambda m: (
                problems.append(f"{m.text} {m.location['url']}")
                if m.type == "error" and not m.location["url"].endswith("/favicon.ico")
                else None
            ),
        )
        await page.goto(f"{console.base}/console/login?next=/console/evaluation")
        await page.fill("input[name=username]", "boss")
        await page.fill("input[name=password]", password("boss"))
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
        await page.goto(f"{console.base}/console/evaluation?period={period}&level=street")
        for kind in KINDS:  # ECharts drew each chart on a canvas
            await page.locator(f"#eval-{kind} .evalchart canvas").first.wait_for()
        await page.locator("#evalmap[data-ready='1']").wait_for()
        coloured = await page.evaluate(
            """() => { const out = []; document.getElementById('evalmap').map.eachLayer(
                 (l) => { if (l.feature && l.feature.properties.area_class && l.options.fillColor !== '#e5e8ec')
                            out.push(l.feature.properties.code); }); return out; }"""
        )
        with console.runtime.engine.connect() as conn:
            east = conn.execute(select(GridCell.code).where(GridCell.street_code == "339901001")).scalars().all()
            west = conn.execute(select(GridCell.code).where(GridCell.street_code == "339901002")).scalars().all()
        assert set(coloured) == set(east) | set(west)  # the two streets evaluated, the others grey
        await page.screenshot(path=str(shots / "evaluation.png"), full_page=True)

        await page.locator("#eval-dept th a", has_text="返工率").click()
        await page.wait_for_load_state()
        assert "sort_dept=-" in page.url and "返工率 ▼" in await page.locator("#eval-dept thead").inner_text()
        await page.locator("#eval-dept td a", has_text="青川区环境卫生管理处").click()
        await page.wait_for_load_state()
        assert "/console/evaluation/cases" in page.url
        await page.get_by_role("link", name=numbers["closed"]).click()
        await page.wait_for_load_state()
        assert page.url.endswith(f"/console/cases/{numbers['closed']}")
        await browser.close()
    assert not problems, problems
