"""万米单元网格: import a city's grid, derive standard codes, and find the cell of a point.

Standard codes (CJ/T 213 / GB/T 30428.1, 15 characters) are 6 区划 + 3 街道 + 3 社区 + 3 顺序码; 14-digit
legacy codes (2-digit 顺序码) are widened to 15. Where a city's file carries only local codes such as
``SQ-3-2`` (街道 SQ, 社区 3, 网格 2), the standard codes are derived from the hierarchy by one documented
rule, applied at every level: number the units from north to south in rows, and west to east within a row
(DB11 5.4 / CJ/T 349 5.7 "从左到右、从上到下"). A row is a band as tall as the median unit.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Geod
from shapely import STRtree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from core.datafile import DataError, Feature, read_geojson
from core.db import session_scope
from core.models import GridCell, Region

GEOD = Geod(ellps="WGS84")
STANDARD_CODE = re.compile(r"^[0-9A-Z]{15}$")
LEGACY_CODE = re.compile(r"^\d{14}$")
DISTRICT_CODE = re.compile(r"^\d{6}$")
CODE_FIELDS = ("code", "grid_code", "单元网格标识码", "网格代码")
LOCAL_CODE_FIELDS = ("local_code", "网格编号")
NAME_FIELDS = ("name", "网格名称", "所属组织")
AREA_CLASSES = ("A", "B", "C")
ORG_NAME = re.compile(r"^(?P<street>.+?(?:街道|镇|乡))(?P<community>.+?社区|.+?村)(?P<rest>.*)$")

Progress = Callable[[int], None]


def standard_code(raw: str) -> str | None:
    """The 15-character form of a standard or legacy code, or None when it is neither."""
    raw = raw.strip().upper()
    if STANDARD_CODE.match(raw):
        return raw
    if LEGACY_CODE.match(raw):
        return raw[:12] + "0" + raw[12:]
    return None


def area_m2(geom: BaseGeometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def reading_order(shapes: Sequence[BaseGeometry]) -> list[int]:
    """Indices of ``shapes`` north→south by rows, west→east within a row (the numbering rule above)."""
    if not shapes:
        return []
    heights = [s.bounds[3] - s.bounds[1] for s in shapes]
    band = statistics.median(heights) or 1e-9
    points = [s.representative_point() if s.geom_type != "Point" else s for s in shapes]
    centroids = [s.centroid for s in shapes]
    top = max(p.y for p in centroids)
    keys = [(int((top - c.y) / band + 0.5), c.x, p.y) for c, p in zip(centroids, points, strict=True)]
    return sorted(range(len(shapes)), key=lambda i: keys[i])


@dataclass
class _Cell:
    local: str
    geometry: BaseGeometry
    name: str = ""
    street_local: str = ""
    community_local: str = ""
    street_name: str = ""
    community_name: str = ""
    area_class: str = ""
    parts: int = 1
    code: str = ""


@dataclass
class GridImport:
    """What an import did, for the CLI to report."""

    features: int = 0
    cells: int = 0
    streets: int = 0
    communities: int = 0
    repaired: list[int] = field(default_factory=list)
    merged: int = 0
    derived_codes: bool = False


def _first(props: dict, names: Sequence[str]) -> str:
    for name in names:
        value = props.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def _polygonal(path: Path, feature: Feature, result: GridImport) -> BaseGeometry:
    geom = feature.geometry
    if geom.is_valid:
        return geom
    repaired = shapely.make_valid(geom)
    polys = [g for g in getattr(repaired, "geoms", [repaired]) if isinstance(g, Polygon | MultiPolygon)]
    if not polys or shapely.union_all(polys).area == 0:
        reason = shapely.is_valid_reason(geom)
        raise DataError(path, feature.where, f"几何无效且无法修复: {reason}")
    result.repaired.append(feature.index)
    return shapely.union_all(polys)


def _read_cells(
    path: Path, features: list[Feature], result: GridImport, area_class: str, local_field: str | None
) -> tuple[dict[str, _Cell], bool]:
    """Group the features into cells by code; returns (cells, codes_are_standard)."""
    cells: dict[str, _Cell] = {}
    standard = local_field is None and all(_first(f.properties, CODE_FIELDS) for f in features)
    for feature in features:
        props = feature.properties
        if standard:
            raw = _first(props, CODE_FIELDS)
            key = standard_code(raw)
            if key is None:
                raise DataError(path, feature.where, f"网格代码 {raw!r} 不是 15 位标准码（或 14 位旧码）")
        else:
            fields = (local_field,) if local_field else LOCAL_CODE_FIELDS
            key = _first(props, fields)
            if not key:
                raise DataError(path, feature.where, f"缺少网格代码字段 ({'/'.join(CODE_FIELDS + fields)})")
        cls = (_first(props, ("area_class", "区域类别")) or area_class).upper()
        if cls not in AREA_CLASSES:
            raise DataError(path, feature.where, f"区域类别 {cls!r} 应为 A、B 或 C")
        geom = _polygonal(path, feature, result)
        if key in cells:
            cell = cells[key]
            cell.geometry = shapely.union_all([cell.geometry, geom])
            cell.parts += 1
            result.merged += 1
            continue
        cell = _Cell(local=key, geometry=geom, area_class=cls)
        name = _first(props, NAME_FIELDS)
        cell.street_name = _first(props, ("street_name", "街道"))
        cell.community_name = _first(props, ("community_name", "社区"))
        org = ORG_NAME.match(name)
        if org:
            cell.street_name = cell.street_name or org["street"]
            cell.community_name = cell.community_name or org["community"]
            if org["rest"]:  # the cell's own name, without the 街道 and 社区 it repeats
                name = org["rest"]
                if name.startswith(org["community"]):
                    name = name[len(org["community"]) :]
        cell.name = name
        if not standard:
            parts = key.split("-")
            if len(parts) != 3 or not all(parts):
                raise DataError(path, feature.where, f"本地网格编号 {key!r} 应为 街道-社区-网格 三段（如 SQ-3-2）")
            cell.street_local, cell.community_local = parts[0], f"{parts[0]}-{parts[1]}"
        cells[key] = cell
    return cells, standard


def _derive_codes(cells: dict[str, _Cell], district: str) -> None:
    """Number 街道, then 社区 in each 街道, then cells in each 社区, by the reading order rule."""
    by_street: dict[str, list[_Cell]] = defaultdict(list)
    for cell in cells.values():
        by_street[cell.street_local].append(cell)
    streets = list(by_street)
    street_shapes = [shapely.union_all([c.geometry for c in by_street[s]]) for s in streets]
    for s_no, s_idx in enumerate(reading_order(street_shapes), start=1):
        by_community: dict[str, list[_Cell]] = defaultdict(list)
        for cell in by_street[streets[s_idx]]:
            by_community[cell.community_local].append(cell)
        communities = list(by_community)
        shapes = [shapely.union_all([c.geometry for c in by_community[k]]) for k in communities]
        for c_no, c_idx in enumerate(reading_order(shapes), start=1):
            members = by_community[communities[c_idx]]
            for g_no, g_idx in enumerate(reading_order([c.geometry for c in members]), start=1):
                members[g_idx].code = f"{district}{s_no:03d}{c_no:03d}{g_no:03d}"


def _regions(cells: dict[str, _Cell], district: str, district_name: str) -> list[Region]:
    regions: dict[str, Region] = {district: Region(code=district, level="district", name=district_name)}
    for cell in cells.values():
        street, community = cell.code[:9], cell.code[:12]
        regions.setdefault(
            street,
            Region(
                code=street,
                level="street",
                parent_code=district,
                name=cell.street_name or f"街道{street[6:]}",
                local_code=cell.street_local or None,
            ),
        )
        regions.setdefault(
            community,
            Region(
                code=community,
                level="community",
                parent_code=street,
                name=cell.community_name or f"社区{community[9:]}",
                local_code=cell.community_local or None,
            ),
        )
    return list(regions.values())


def import_grid(
    engine: Engine,
    path: Path,
    *,
    district: str,
    district_given: bool = False,
    district_name: str = "",
    crs: str = "wgs84",
    area_class: str = "B",
    local_field: str | None = None,
    progress: Progress | None = None,
) -> GridImport:
    """Replace the city's grid with the cells of a GeoJSON file, all or nothing. ``district`` derives standard
    codes from local ones; with ``district_given`` it must also match the district of standard codes."""
    if not DISTRICT_CODE.match(district):
        raise DataError(path, "--district", f"区划代码 {district!r} 应为 6 位数字 (GB/T 2260)")
    features = read_geojson(path, crs, allowed=("Polygon", "MultiPolygon"))
    result = GridImport(features=len(features))
    cells, standard = _read_cells(path, features, result, area_class, local_field)
    if standard:
        for cell in cells.values():
            cell.code = cell.local
            cell.local = ""
        districts = {c.code[:6] for c in cells.values()}
        if len(districts) > 1:
            raise DataError(path, "code", f"网格代码属于多个区划: {', '.join(sorted(districts))}")
        found = districts.pop()
        if district_given and found != district:
            raise DataError(path, "--district", f"文件中的网格代码属于区划 {found}，与 --district {district} 不符")
        district = found
    else:
        _derive_codes(cells, district)
        result.derived_codes = True
    rows = []
    for cell in cells.values():
        centroid = cell.geometry.representative_point()
        rows.append(
            GridCell(
                code=cell.code,
                local_code=cell.local or None,
                name=cell.name,
                street_code=cell.code[:9],
                community_code=cell.code[:12],
                area_m2=round(area_m2(cell.geometry), 1),
                area_class=cell.area_class,
                centroid_lon=centroid.x,
                centroid_lat=centroid.y,
                geometry_wkt=shapely.to_wkt(cell.geometry, rounding_precision=7, trim=True),
            )
        )
        if progress:
            progress(1)
    regions = _regions(cells, district, district_name)
    with session_scope(engine) as session:
        session.exec(delete(GridCell))
        session.exec(delete(Region))
        session.add_all(regions)
        session.add_all(rows)
    result.cells = len(rows)
    result.streets = sum(r.level == "street" for r in regions)
    result.communities = sum(r.level == "community" for r in regions)
    return result


@dataclass(frozen=True)
class CellHit:
    code: str
    name: str
    area_class: str
    street: str
    community: str


class GridIndex:
    """Point → cell in memory. An STRtree over the cell polygons answers bulk queries; for single points a
    bucket table (a regular lattice of cell-sized buckets, each listing the cells the tree finds under it)
    skips the per-call cost of a tree query, which dominates at tens of microseconds."""

    def __init__(self, cells: Sequence[GridCell], region_names: dict[str, str]) -> None:
        self.codes = [c.code for c in cells]
        self.hits = [
            CellHit(
                c.code,
                c.name,
                c.area_class,
                region_names.get(c.street_code, ""),
                region_names.get(c.community_code, ""),
            )
            for c in cells
        ]
        self.geometries = np.array([shapely.from_wkt(c.geometry_wkt) for c in cells], dtype=object)
        shapely.prepare(self.geometries)
        self.tree = STRtree(self.geometries)
        self._build_buckets()

    def _build_buckets(self) -> None:
        self.buckets: dict[int, int | tuple[int, ...]] = {}
        self.lattice = (0.0, 0.0, 1.0, 1.0, 0, 0)
        if not len(self.geometries):
            return
        bounds = shapely.bounds(self.geometries)
        x0, y0 = bounds[:, 0].min(), bounds[:, 1].min()
        w = float(np.median(bounds[:, 2] - bounds[:, 0])) / 2 or 1e-6
        h = float(np.median(bounds[:, 3] - bounds[:, 1])) / 2 or 1e-6
        while True:
            nx = int((bounds[:, 2].max() - x0) / w) + 1
            ny = int((bounds[:, 3].max() - y0) / h) + 1
            if nx * ny <= 8 * len(self.geometries) + 1024:
                break
            w, h = w * 2, h * 2
        ix, iy = np.meshgrid(np.arange(nx), np.arange(ny))
        ix, iy = ix.ravel(), iy.ravel()
        boxes = shapely.box(x0 + ix * w, y0 + iy * h, x0 + (ix + 1) * w, y0 + (iy + 1) * h)
        bucket_idx, cell_idx = self.tree.query(boxes, predicate="intersects")
        cells, buckets = self.geometries[cell_idx], boxes[bucket_idx]
        inside = shapely.covers(cells, buckets)
        share = shapely.area(shapely.intersection(cells, buckets))
        keys = iy[bucket_idx] * nx + ix[bucket_idx]
        order = np.lexsort((cell_idx, -share, keys))  # per bucket: the cell covering most of it first
        keys, cell_idx, inside = keys[order], cell_idx[order], inside[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(keys)], strict=True):
            # a bucket wholly inside one cell needs no geometry test at lookup time
            whole = stop - start == 1 and bool(inside[start])
            self.buckets[int(keys[start])] = (
                int(cell_idx[start]) if whole else tuple(int(c) for c in cell_idx[start:stop])
            )
        self.lattice = (float(x0), float(y0), w, h, nx, ny)

    @classmethod
    def load(cls, engine: Engine) -> GridIndex:
        with Session(engine) as session:
            cells = session.exec(select(GridCell).order_by(GridCell.code)).all()
            names = {r.code: r.name for r in session.exec(select(Region)).all()}
        return cls(cells, names)

    def __len__(self) -> int:
        return len(self.codes)

    def cell_at(self, lon: float, lat: float) -> CellHit | None:
        """The cell containing the point (on a shared border, one of the cells sharing it), or None outside."""
        x0, y0, w, h, nx, ny = self.lattice
        ix, iy = int((lon - x0) // w), int((lat - y0) // h)
        if not (0 <= ix < nx and 0 <= iy < ny):
            return None
        found = self.buckets.get(iy * nx + ix, ())
        if isinstance(found, int):
            return self.hits[found]
        geometries = self.geometries
        for c in found:
            if shapely.intersects_xy(geometries[c], lon, lat):
                return self.hits[c]
        return None

    def assign(self, rows: Sequence[Any]) -> int:
        """Set ``grid_code`` on rows that have ``lon``/``lat`` (places, components); returns how many are outside."""
        if not rows:
            return 0
        hits = self.cells_at(np.array([r.lon for r in rows]), np.array([r.lat for r in rows]))
        for row, hit in zip(rows, hits, strict=True):
            row.grid_code = hit.code if hit else None
        return sum(h is None for h in hits)

    def cells_at(self, lons: np.ndarray, lats: np.ndarray) -> list[CellHit | None]:
        """Bulk form of cell_at (one tree query for all points; on a shared border, the lowest code)."""
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        point_idx, cell_idx = self.tree.query(points, predicate="intersects")
        best = np.full(len(points), len(self.hits))
        np.minimum.at(best, point_idx, cell_idx)
        return [self.hits[b] if b < len(self.hits) else None for b in best]


def relocate(engine: Engine, *models: type[SQLModel]) -> None:
    """Recompute the grid cell of every row of these tables, after the grid changed."""
    grid = GridIndex.load(engine)
    with session_scope(engine) as session:
        for model in models:
            rows = session.exec(select(model)).all()
            grid.assign(rows)
            session.add_all(rows)
