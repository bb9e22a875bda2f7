"""案件地图: the city's own base map (万米单元网格, 社区 and 街道 borders, roads — all from the database, so it works
on an intranet; tiles only when the centre configured ``map_tile_url``) with the open cases as markers coloured by
their light, filtered by state, 事项, region and department without a reload.

The base map changes only on a grid import, so it is built once per process, like the runtime's grid index (restart
the server after ``gridline import-grid``). The case layer reads which open cases match (id and version) and
re-reads only those changed since this process last drew them; the lights of all of them come from one
``CaseLoop.lights`` call (one vectorised pass), because ``CaseLoop.timer`` walks the calendar day by day (~70 µs a
case), seconds for a city."""

from __future__ import annotations

import json
import math
import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from aiohttp import web
from shapely import STRtree, affinity
from shapely.geometry import Point, mapping
from sqlalchemy import Float, cast, extract, select
from sqlalchemy.engine import Engine

from admin.console.session import CENTRE, actor, allow, page
from admin.responses import in_thread, json_error, json_response
from admin.runtime import RUNTIME, Runtime
from core.cases import LIGHTS, STATES, TERMINAL, Actor, CaseLoop
from core.models import CaseFile, Department, GridCell, Place, Region, TaxonomyItem

OPEN_STATES = tuple(s for s in STATES if s not in TERMINAL)
NEAR_M = 300.0  # the minimap's neighbourhood: the cell of the point and those around it
M_PER_DEG_LAT = 111_320.0
MATTER_PREFIX = re.compile(r"^[0-9A-Za-z]{1,8}$")


class BadFilter(ValueError):
    """A filter value the map cannot use: a 400 with the reason."""


# --- the base map -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseMap:
    """The grid as GeoJSON, with an index for the cells around a point and the regions to filter by."""

    cells: list[dict[str, Any]]
    borders: list[dict[str, Any]]
    tree: STRtree
    regions: tuple[tuple[str, str, str], ...]  # (code, level, name) of every 街道 and 社区, in code order

    def near(self, lon: float, lat: float, metres: float = NEAR_M) -> list[dict[str, Any]]:
        """The cells within ``metres`` of the point (an ellipse in degrees: a degree of longitude is shorter)."""
        reach = metres / M_PER_DEG_LAT
        circle = affinity.scale(
            Point(lon, lat).buffer(reach, quad_segs=8),
            xfact=1 / max(math.cos(math.radians(lat)), 0.01),
            yfact=1.0,
            origin=(lon, lat),
        )
        return [self.cells[i] for i in sorted(self.tree.query(circle, predicate="intersects"))]


def _feature(geom: Any, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": properties}


def build_basemap(engine: Engine) -> BaseMap:
    """Cells, 社区 and 街道 outlines (the union of their cells: regions have no geometry of their own) and the
    roads (街巷 places with a line)."""
    with engine.connect() as conn:
        cells = conn.execute(select(GridCell).order_by(GridCell.code)).all()
        regions = conn.execute(select(Region.code, Region.level, Region.name).order_by(Region.code)).all()
        roads = conn.execute(
            select(Place.name, Place.geometry_wkt)
            .where(Place.kind == "街巷", Place.geometry_wkt.is_not(None))
            .order_by(Place.name)
        ).all()
    names = {code: name for code, _, name in regions}
    geoms = shapely.from_wkt([c.geometry_wkt for c in cells])
    features = [
        _feature(
            geom,
            code=c.code,
            name=c.name,
            street=names.get(c.street_code, ""),
            community=names.get(c.community_code, ""),
            area_class=c.area_class,
        )
        for c, geom in zip(cells, geoms, strict=True)
    ]
    members: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for c, geom in zip(cells, geoms, strict=True):
        members["street", c.street_code].append(geom)
        members["community", c.community_code].append(geom)
    borders = [
        _feature(shapely.union_all(parts), kind=kind, code=code, name=names.get(code, code))
        for (kind, code), parts in sorted(members.items())
    ]
    borders += [_feature(shapely.from_wkt(wkt), kind="road", name=name) for name, wkt in roads]
    shown = tuple((code, level, name) for code, level, name in regions if level in ("street", "community"))
    return BaseMap(features, borders, STRtree(geoms), shown)


class Once:
    """The base map of this process, built by the first request that needs it (the others wait for it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: BaseMap | None = None

    def get(self, engine: Engine) -> BaseMap:
        with self.lock:
            if self.value is None:
                self.value = build_basemap(engine)
            return self.value


BASEMAP = web.AppKey("console_basemap", Once)


async def basemap(request: web.Request) -> BaseMap:
    once = request.app[BASEMAP]
    return once.value or await in_thread(once.get, request.app[RUNTIME].engine)


# --- lights in one pass -------------------------------------------------------------------------------------------
def marker_lights(loop: CaseLoop, markers: Sequence[Marker], now: datetime) -> np.ndarray:
    """Each marker's light as an index into LIGHTS (also the drawing order: red last, on top), as
    ``CaseLoop.timer`` gives it, from the columns the markers keep."""
    clocks = np.array([m.clock for m in markers], dtype=float).reshape(len(markers), 3)
    started, limits, extras = clocks.T
    states, units, pauses = [m.state for m in markers], [m.unit for m in markers], [m.pauses for m in markers]
    return loop.lights(states, started, limits, extras, units, pauses, now)


# --- the open cases -----------------------------------------------------------------------------------------------
_C = CaseFile.__table__.c
MARKER_COLUMNS = (
    _C.id,
    _C.version,
    _C.number,
    _C.state,
    _C.matter_code,
    _C.matter_name,
    _C.address,
    _C.lon,
    _C.lat,
    _C.grid_code,
    _C.department_code,
    _C.stage_limit,
    _C.stage_extra_hours,
    _C.stage_unit,
    cast(extract("epoch", _C.stage_started_at), Float).label("started"),  # no datetime objects for 20 000 rows
    _C.pauses,
)
REFETCH_ALL = 1000  # more changed cases than this: read them all again rather than by id
ID_CHUNK = 500
MAX_MARKERS = 200_000  # kept when only filtered layers are asked for (the whole layer forgets the ended cases)


@dataclass(frozen=True, slots=True)
class Marker:
    """One open case as the map draws it, kept until its version changes: the feature's JSON up to its light
    (worked out on every request, as time passes), the stage clock, and what ``Actor.sees`` reads."""

    version: int
    state: str
    grid_code: str | None
    department_code: str | None
    unit: str
    clock: tuple[float, float, float]  # stage start (epoch s), stage_limit, stage_extra_hours
    pauses: tuple[tuple[str, str | None], ...]
    head: str

    @classmethod
    def of(cls, row: Any) -> Marker:
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]},
            "properties": {
                "number": row.number,
                "state": row.state,
                "code": row.matter_code or "",
                "name": row.matter_name,
                "address": row.address,
                "department": row.department_code or "",
            },
        }
        text = json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        pauses = tuple((a, b) for a, b in row.pauses or ())
        return cls(
            row.version,
            row.state,
            row.grid_code,
            row.department_code,
            row.stage_unit,
            (row.started, row.stage_limit, row.stage_extra_hours),
            pauses,
            text[:-2] + ',"light":"',  # …,"department":"HW"}} → …,"department":"HW","light":"
        )


@dataclass(frozen=True)
class CaseFilter:
    state: str | None = None
    code: str | None = None
    region: str | None = None
    department: str | None = None


def parse_filter(query: Any, regions: set[str]) -> CaseFilter:
    """The filters of the query string; BadFilter for a value that cannot match an open case."""
    state = query.get("state", "").strip() or None
    code = query.get("code", "").strip() or None
    region = query.get("region", "").strip() or None
    department = query.get("department", "").strip() or None
    if state and state not in OPEN_STATES:
        if state in TERMINAL:
            raise BadFilter(f"地图只显示未办结的案件，不能按“{state}”筛选")
        raise BadFilter(f"没有“{state[:20]}”这个案件状态，可选：{'、'.join(OPEN_STATES)}")
    if code and not MATTER_PREFIX.match(code):
        raise BadFilter("事项代码应为 1–8 位数字或字母（代码或其前几位，如 01 表示第 01 大类）")
    if region and region not in regions:
        raise BadFilter(f"没有代码为“{region[:20]}”的街道或社区")
    return CaseFilter(state, code, region, department)


class CaseLayer:
    """The open cases of the map, each kept as its ready JSON until its version changes (every change to a case
    is a new version): reading and encoding all of a city's open cases on every request takes most of a second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.markers: dict[int, Marker] = {}

    def features(self, runtime: Runtime, who: Actor, where: CaseFilter) -> str:
        """The FeatureCollection as JSON text. The filters mean what ``CaseLoop.query``'s do (state, 事项 prefix,
        grid prefix, department); what the viewer may see is ``Actor.sees``."""
        clauses = [_C.state.in_([where.state] if where.state else OPEN_STATES), _C.lon.is_not(None)]
        clauses.append(_C.lat.is_not(None))
        if where.code:
            clauses.append(_C.matter_code.startswith(where.code, autoescape=True))
        if where.region:
            clauses.append(_C.grid_code.startswith(where.region, autoescape=True))
        if where.department:
            clauses.append(_C.department_code == where.department)
        with runtime.engine.connect() as conn:
            exists = select(Department.code).where(Department.code == where.department)
            if where.department and not conn.execute(exists).first():
                raise BadFilter(f"没有代码为“{where.department[:20]}”的专业部门")
            current = conn.execute(select(_C.id, _C.version).where(*clauses)).all()
            known = self.markers
            stale = [i for i, version in current if (m := known.get(i)) is None or m.version != version]
            if len(stale) > REFETCH_ALL:
                fresh = conn.execute(select(*MARKER_COLUMNS).where(*clauses)).all()
            else:
                chunks = (stale[k : k + ID_CHUNK] for k in range(0, len(stale), ID_CHUNK))
                fresh = [r for chunk in chunks for r in conn.execute(select(*MARKER_COLUMNS).where(_C.id.in_(chunk)))]
        with self.lock:
            self.markers.update((r.id, Marker.of(r)) for r in fresh)
            if where == CaseFilter() or len(self.markers) > MAX_MARKERS:  # forget the cases no longer shown
                self.markers = {i: self.markers[i] for i, _ in current if i in self.markers}
            known = self.markers
        shown = [m for i, _ in current if (m := known.get(i)) is not None and who.sees(m)]  # type: ignore[arg-type]
        codes = marker_lights(runtime.loop, shown, runtime.loop.clock())
        counts = np.bincount(codes, minlength=len(LIGHTS)).tolist()
        groups = []
        for k, colour in enumerate(LIGHTS):  # the red ones last, drawn on top
            heads = [shown[i].head for i in np.flatnonzero(codes == k).tolist()]
            if heads:
                end = colour + '"}}'  # closes the light, the properties and the feature
                groups.append((end + ",").join(heads) + end)
        summary = {"type": "FeatureCollection", "count": len(shown), "lights": dict(zip(LIGHTS, counts, strict=True))}
        return json.dumps(summary, ensure_ascii=False)[:-1] + ',"features":[' + ",".join(groups) + "]}"


CASES = web.AppKey("console_case_layer", CaseLayer)


# --- handlers -----------------------------------------------------------------------------------------------------
def page_choices(engine: Engine) -> dict[str, Any]:
    """The filter form's lists that may change without a grid import: departments and 事项大类."""
    with engine.connect() as conn:
        departments = conn.execute(select(Department.code, Department.name).order_by(Department.code)).all()
        majors = conn.execute(
            select(TaxonomyItem.major_code, TaxonomyItem.major_name)
            .where(TaxonomyItem.kind == "matter")
            .distinct()
            .order_by(TaxonomyItem.major_code)
        ).all()
    return {"departments": departments, "majors": majors}


@allow(*CENTRE)
async def map_page(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    base = await basemap(request)
    choices = await in_thread(page_choices, runtime.engine)
    return page(
        request,
        "map.html",
        {
            **choices,
            "states": OPEN_STATES,
            "regions": base.regions,
            "chosen": {k: request.query.get(k, "") for k in ("state", "code", "region", "department")},
        },
    )


async def cells_json(request: web.Request) -> web.Response:
    """Every logged-in role may read the grid: the minimap of a case page uses it, and it is the city's public
    base map, not case data."""
    base = await basemap(request)
    raw = request.query.get("near")
    if raw is None:
        return json_response({"type": "FeatureCollection", "features": base.cells})
    try:
        lon, lat = (float(v) for v in raw.split(","))
    except ValueError:
        return json_error(400, "near 应为“经度,纬度”，如 near=120.59,30.00")
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        return json_error(400, "near 的坐标超出经纬度范围")
    return json_response({"type": "FeatureCollection", "features": base.near(lon, lat)})


async def base_json(request: web.Request) -> web.Response:
    base = await basemap(request)
    return json_response({"type": "FeatureCollection", "features": base.borders})


@allow(*CENTRE, data="案件地图")
async def cases_json(request: web.Request) -> web.Response:
    who = actor(request)
    base = await basemap(request)
    try:
        where = parse_filter(request.query, {code for code, _, _ in base.regions})
        body = await in_thread(request.app[CASES].features, request.app[RUNTIME], who, where)
    except BadFilter as exc:
        return json_error(400, str(exc))
    # the features are JSON already (cached per case); json_response would decode nothing and encode it all again
    return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app[BASEMAP] = Once()
    app[CASES] = CaseLayer()
    app.router.add_get("/console/map", map_page)
    app.router.add_get("/console/map/cells.geojson", cells_json)
    app.router.add_get("/console/map/base.geojson", base_json)
    app.router.add_get("/console/map/cases.geojson", cases_json)
