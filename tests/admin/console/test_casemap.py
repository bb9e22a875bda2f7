"""The 案件地图 through HTTP: the page and its local scripts, the city's own base map as GeoJSON (cells, the cells
around a point, borders and roads), the open cases with the lights the case loop gives them, the filters, who may
see it, and the tile layer only when one is configured."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime, timedelta

import shapely
from shapely import affinity
from sqlalchemy import select, update

from core.cases import SYSTEM, TERMINAL, Actor
from core.models import CaseFile, GridCell, Place, Region, TaxonomyItem

LEAFLET = "/console/static/node_modules/leaflet/dist/leaflet.js"
CLUSTER = "/console/static/node_modules/leaflet.markercluster/dist/leaflet.markercluster.js"
OPERATOR = Actor(None, "受理员", "operator")
LEAD = Actor(None, "值班长", "shift_lead")
DISPATCHER = Actor(None, "派遣员", "dispatcher")


async def get_json(staff, path: str) -> tuple[int, dict]:
    async with staff.http.get(path) as resp:
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return resp.status, await resp.json()


def cell_rows(console) -> list[GridCell]:
    with console.runtime.engine.connect() as conn:
        return list(conn.execute(select(GridCell).order_by(GridCell.code)).all())


def case_of(console, number: str) -> CaseFile:
    return console.runtime.loop.get(number, SYSTEM)[0]


def by_number(collection: dict) -> dict[str, dict]:
    return {f["properties"]["number"]: f for f in collection["features"]}


def metres(geometry: dict, lon: float, lat: float) -> float:
    """Distance from the point to a GeoJSON shape, on a local flat projection (plenty within a district)."""
    shape = affinity.translate(shapely.geometry.shape(geometry), -lon, -lat)
    shape = affinity.scale(shape, math.cos(math.radians(lat)) * 111_320, 111_320, origin=(0, 0))
    return shape.distance(shapely.Point(0, 0))


def restage(console, number: str, **values) -> None:
    """Put a case's clock where a test needs it (a new version, as every change to a case has)."""
    with console.runtime.engine.begin() as conn:
        conn.execute(
            update(CaseFile.__table__).where(CaseFile.number == number).values(**values, version=CaseFile.version + 1)
        )


def ago_iso(now: datetime, hours: float) -> str:
    return (now - timedelta(hours=hours)).isoformat()


async def test_the_page_loads_leaflet_from_the_console_and_offers_the_citys_filters(console):
    op = await console.login("op")
    status, page = await op.get("/console/map")
    assert status == 200
    assert f'<script src="{LEAFLET}">' in page and f'<script src="{CLUSTER}">' in page
    assert '<script src="/console/static/casemap.js">' in page and 'class="bigmap"' in page
    assert all(url.startswith("/") for url in re.findall(r'(?:src|href)="([^"]*)"', page))  # nothing from outside
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # the CSP allows no inline script
    assert "data-tiles" not in page
    for text in ("城关街道", "人民社区", "青川区环境卫生管理处", "处置中", "红灯 已超时", "黄灯", "绿灯"):
        assert text in page
    assert '<option value="已结案"' not in page  # the map is of open cases
    for path in (LEAFLET, CLUSTER, "/console/static/casemap.js", "/console/static/minimap.js"):
        async with op.http.get(path) as resp:
            assert resp.status == 200 and "javascript" in resp.content_type, path
            assert len(await resp.read()) > 1000


async def test_the_cells_are_the_demo_citys_783_with_their_codes_and_regions(console):
    op = await console.login("op")
    status, cells = await get_json(op, "/console/map/cells.geojson")
    assert status == 200 and cells["type"] == "FeatureCollection"
    codes = [f["properties"]["code"] for f in cells["features"]]
    assert len(codes) == 783 and len(set(codes)) == 783
    assert codes == [c.code for c in cell_rows(console)]
    assert all(re.fullmatch(r"[0-9A-Z]{15}", code) for code in codes)
    first = cells["features"][0]
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert first["properties"]["street"] == "城关街道" and first["properties"]["community"] == "人民社区"


async def test_near_gives_the_cell_of_the_point_and_those_within_300_metres(console):
    op = await console.login("op")
    cell = cell_rows(console)[400]
    lon, lat = cell.centroid_lon, cell.centroid_lat
    status, near = await get_json(op, f"/console/map/cells.geojson?near={lon},{lat}")
    assert status == 200
    found = {f["properties"]["code"] for f in near["features"]}
    assert cell.code in found and 4 < len(found) < 100
    _, everything = await get_json(op, "/console/map/cells.geojson")
    distance = {f["properties"]["code"]: metres(f["geometry"], lon, lat) for f in everything["features"]}
    assert all(distance[code] <= 310 for code in found)
    assert {code for code, d in distance.items() if d < 290} <= found
    for bad in ("abc", "120.6", "120.6,30,1", "nan,30", "200,30", "120.6,-91"):
        status, body = await get_json(op, f"/console/map/cells.geojson?near={bad}")
        assert status == 400 and "near" in body["error"], bad


async def test_the_base_map_has_the_community_and_street_borders_and_the_roads(console):
    op = await console.login("op")
    status, base = await get_json(op, "/console/map/base.geojson")
    assert status == 200
    kinds: dict[str, dict[str, dict]] = {}
    for f in base["features"]:
        kinds.setdefault(f["properties"]["kind"], {})[f["properties"]["name"]] = f
    with console.runtime.engine.connect() as conn:
        regions = conn.execute(select(Region.level, Region.name)).all()
        roads = conn.execute(select(Place.name).where(Place.kind == "街巷", Place.geometry_wkt.is_not(None))).all()
    assert set(kinds["community"]) == {name for level, name in regions if level == "community"}
    assert len(kinds["community"]) == 16 and len(kinds["street"]) == 5
    assert set(kinds["road"]) == {name for (name,) in roads} and "新华路" in kinds["road"]
    assert kinds["road"]["新华路"]["geometry"]["type"] in ("LineString", "MultiLineString")
    assert kinds["community"]["人民社区"]["geometry"]["type"] in ("Polygon", "MultiPolygon")


async def test_open_cases_come_with_their_light_and_ended_ones_do_not(console):
    fresh, late, refused = console.report(), console.report("人民路88号井盖破了"), console.report("人民路90号有垃圾")
    restage(console, late, stage_started_at=datetime.now(UTC) - timedelta(days=30))
    op = await console.login("op")
    await op.get(f"/console/cases/{refused}")
    status, _ = await op.post(f"/console/cases/{refused}/do/reject", {"version": "1", "reason": "重复反映"})
    assert status == 200 and case_of(console, refused).state == "不予受理"
    status, cases = await get_json(op, "/console/map/cases.geojson")
    assert status == 200 and cases["type"] == "FeatureCollection"
    shown = by_number(cases)
    assert set(shown) == {fresh, late} and cases["count"] == 2
    assert cases["lights"] == {"none": 0, "green": 1, "yellow": 0, "red": 1}
    case = case_of(console, fresh)
    assert shown[fresh]["geometry"] == {"type": "Point", "coordinates": [case.lon, case.lat]}
    assert shown[fresh]["properties"] == {
        "number": fresh,
        "state": "待受理",
        "code": case.matter_code or "",
        "name": case.matter_name,
        "address": case.address,
        "department": "",
        "light": "green",
    }
    assert shown[late]["properties"]["light"] == "red"
    assert [f["properties"]["number"] for f in cases["features"]] == [fresh, late]  # red drawn last, on top


async def test_each_light_is_the_one_the_case_loops_timer_gives(console):
    now = datetime.now(UTC)
    stages = [  # (hours ago, limit, extension, unit, pauses as hours-ago spans)
        (0.1, 8, 0, "工作时", []),
        (30 * 24, 1, 0, "工作时", []),
        (9, 10, 0, "自然时", []),  # 90 %: yellow on any day
        (9, 8, 4, "自然时", []),  # 75 % with the extension: green
        (20, 10, 0, "自然时", [(18, 3)]),  # 5 of 20 hours count
        (30, 10, 0, "自然时", [(29, None)]),  # paused after an hour, still paused
        (10 * 24, 3, 0, "工作日", []),
        (2 * 24, 2, 0, "工作日", []),
        (26, 4, 0, "工作时", [(25, 2)]),
        (5 * 24, 16, 0, "工作时", []),
        (50, 12, 0, "工作时", [(60, 40), (45, 30)]),
        (3, 0, 0, "工作时", []),  # no limit: no light
    ]
    numbers = []
    cells = cell_rows(console)
    for i, (ago, limit, extra, unit, pauses) in enumerate(stages):
        number = console.report("有垃圾", lon=cells[i * 50].centroid_lon, lat=cells[i * 50].centroid_lat)
        spans = [[ago_iso(now, a), None if b is None else ago_iso(now, b)] for a, b in pauses]
        restage(
            console,
            number,
            stage_started_at=now - timedelta(hours=ago),
            stage_limit=limit,
            stage_extra_hours=extra,
            stage_unit=unit,
            pauses=spans,
        )
        numbers.append(number)
    op = await console.login("op")
    _, cases = await get_json(op, "/console/map/cases.geojson")
    shown = by_number(cases)
    expected = {}
    for number in numbers:
        timer = console.runtime.loop.timer(case_of(console, number))
        expected[number] = timer.light if timer else "none"
    assert {n: shown[n]["properties"]["light"] for n in numbers} == expected
    assert set(expected.values()) == {"green", "yellow", "red", "none"}


async def test_the_filters_by_state_code_region_and_department(console):
    cells = cell_rows(console)
    east = next(c for c in cells if c.street_code == "339901001")
    west = next(c for c in cells if c.street_code == "339901002")
    with console.runtime.engine.connect() as conn:
        codes = dict(
            conn.execute(select(TaxonomyItem.major_code, TaxonomyItem.code).where(TaxonomyItem.kind == "matter")).all()
        )
    handled = console.report("路面有个坑", lon=east.centroid_lon, lat=east.centroid_lat)
    waiting = console.report("这里停车乱", lon=west.centroid_lon, lat=west.centroid_lat)
    loop = console.runtime.loop
    loop.act(handled, "accept", OPERATOR, {"matter_code": codes["01"]})
    loop.act(handled, "file", LEAD, {"level": 1})
    loop.act(handled, "dispatch", DISPATCHER, {"department": "HW"})
    loop.act(waiting, "accept", OPERATOR, {"matter_code": codes["02"]})
    assert case_of(console, handled).grid_code == east.code and case_of(console, waiting).grid_code == west.code
    op = await console.login("disp")

    async def numbers(query: str) -> set[str]:
        status, cases = await get_json(op, f"/console/map/cases.geojson?{query}")
        assert status == 200, cases
        return set(by_number(cases))

    assert await numbers("") == {handled, waiting}
    assert await numbers("state=处置中") == {handled}
    assert await numbers("state=待立案") == {waiting}
    assert await numbers("state=待受理") == set()
    assert await numbers("code=01") == {handled}
    assert await numbers(f"code={codes['02']}") == {waiting}
    assert await numbers("region=339901001") == {handled}
    assert await numbers(f"region={west.community_code}") == {waiting}
    assert await numbers("region=339901003") == set()
    assert await numbers("department=HW") == {handled}
    assert await numbers("department=SZ") == set()
    assert await numbers("state=处置中&department=HW&region=339901001&code=01") == {handled}
    assert await numbers("state=处置中&code=02") == set()


async def test_a_bad_filter_is_a_400_with_the_reason(console):
    op = await console.login("op")
    for query, word in (
        ("state=已结案", "未办结"),
        ("state=随便", "状态"),
        ("code=01%25", "事项代码"),
        ("code=123456789", "事项代码"),
        ("region=999", "街道或社区"),
        ("region=339901001999", "街道或社区"),
        ("department=NOPE", "专业部门"),
    ):
        status, body = await get_json(op, f"/console/map/cases.geojson?{query}")
        assert status == 400 and word in body["error"], (query, body)


async def test_a_changed_case_is_drawn_as_it_is_now(console):
    first, second = console.report(), console.report("人民路90号有垃圾")
    op = await console.login("op")
    _, before = await get_json(op, "/console/map/cases.geojson")
    assert by_number(before)[first]["properties"]["state"] == "待受理"
    console.runtime.loop.act(first, "accept", OPERATOR, {"matter_code": "01001"})
    console.runtime.loop.act(second, "reject", OPERATOR, {"reason": "不属于城管范围"})
    _, after = await get_json(op, "/console/map/cases.geojson")
    assert set(by_number(after)) == {first}
    assert by_number(after)[first]["properties"]["state"] == "待立案"
    assert by_number(after)[first]["properties"]["code"] == "01001"
    assert case_of(console, second).state in TERMINAL


async def test_departments_and_collectors_may_not_open_the_map_but_may_read_the_grid(console):
    for name in ("hw", "col"):
        staff = await console.login(name)
        status, page = await staff.get("/console/map")
        assert status == 403 and "受理员" in page and "bigmap" not in page
        status, body = await get_json(staff, "/console/map/cases.geojson")
        assert status == 403 and "案件地图" in body["error"] and "features" not in body
        cell = cell_rows(console)[0]
        status, near = await get_json(staff, f"/console/map/cells.geojson?near={cell.centroid_lon},{cell.centroid_lat}")
        assert status == 200 and cell.code in {f["properties"]["code"] for f in near["features"]}


async def test_a_tile_layer_only_when_map_tile_url_is_set(console):
    op = await console.login("lead")
    async with op.http.get("/console/map") as resp:
        page, csp = await resp.text(), resp.headers["Content-Security-Policy"]
    assert "data-tiles" not in page and "img-src 'self' blob: data:" in csp
    runtime = console.runtime
    runtime.settings = dataclasses.replace(
        runtime.settings, map_tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    )
    async with op.http.get("/console/map") as resp:
        page, csp = await resp.text(), resp.headers["Content-Security-Policy"]
    assert 'data-tiles="https://{s}.tiles.example.org/{z}/{x}/{y}.png"' in page
    assert "img-src 'self' https://*.tiles.example.org blob: data:" in csp
    assert csp.count("tiles.example.org") == 1
