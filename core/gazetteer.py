"""The gazetteer (CJ/T 215 / GB/T 30428.3 style): import place entries and hold them in memory for lookups.

Kinds are the standard's basic locations: 区域, 地片, 区片, 街巷, 门牌, 兴趣点, plus 路口, which is derived
from crossing 街巷 lines after every import. A 兴趣点 whose address is a door plate (百井坊巷3号) also
serves as that door plate, so a shop list is a door-plate list too.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import shapely
from shapely import STRtree
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.datafile import DataError, parse_float, read_csv, read_geojson
from core.db import session_scope
from core.grid import GridIndex
from core.models import GridCell, Place, Region
from nlp.places import normalise, split_door

KINDS = ("区域", "地片", "区片", "街巷", "门牌", "兴趣点", "路口")
IMPORT_KINDS = KINDS[:-1]
KIND_SYNONYMS = {
    "region": "区域",
    "街道": "区域",
    "社区": "区域",
    "zone": "地片",
    "block": "区片",
    "小区": "区片",
    "road": "街巷",
    "street": "街巷",
    "道路": "街巷",
    "door": "门牌",
    "门牌(商铺)": "门牌",
    "poi": "兴趣点",
    "标志物": "兴趣点",
    "河道": "兴趣点",
    "landmark": "兴趣点",
}
NAME_FIELDS = ("name", "名称", "商铺名称", "RNAME", "社区", "街道", "Street")
ADDRESS_FIELDS = ("address", "地址", "商铺地址")
CSV_ALIASES = {
    "lon": ("lon_wgs84", "经度", "longitude", "x"),
    "lat": ("lat_wgs84", "纬度", "latitude", "y"),
    "address": ("parent_or_address", "地址"),
    "name": ("名称",),
    "kind": ("类型", "种类"),
}
Progress = Callable[[int], None]


def canonical_kind(raw: str) -> str | None:
    raw = raw.strip()
    if raw in KINDS:
        return raw
    low = raw.lower()
    if low in KIND_SYNONYMS or raw in KIND_SYNONYMS:
        return KIND_SYNONYMS.get(low) or KIND_SYNONYMS[raw]
    head = re.split(r"[(（]", raw, maxsplit=1)[0].strip().lower()
    return KIND_SYNONYMS.get(head) or (head if head in KINDS else None)


def _kind_for_geometry(geom: BaseGeometry, name: str) -> str:
    if geom.geom_type in ("LineString", "MultiLineString"):
        return "街巷"
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return "区片"
    return "门牌" if split_door(name)[0] else "兴趣点"


def _aliases(raw: object) -> list[str]:
    if isinstance(raw, list):
        return [str(a).strip() for a in raw if str(a).strip()]
    if isinstance(raw, str):
        return [a.strip() for a in raw.split("|") if a.strip()]
    return []


def _entry(kind: str, name: str, address: str, geom: BaseGeometry, aliases: list[str], source: str) -> Place:
    road, number = split_door(address) if address else ("", "")
    if kind == "门牌" and not road:
        road, number = split_door(name)
    if kind == "街巷":
        road = normalise(name)
    point = (
        geom
        if geom.geom_type == "Point"
        else (geom.interpolate(0.5, normalized=True) if "LineString" in geom.geom_type else geom.representative_point())
    )
    return Place(
        kind=kind,
        name=name,
        address=address,
        road=road,
        number=number,
        lon=round(point.x, 7),
        lat=round(point.y, 7),
        aliases=aliases,
        source=source,
        geometry_wkt=None if geom.geom_type == "Point" else shapely.to_wkt(geom, rounding_precision=7, trim=True),
    )


@dataclass
class PlaceImport:
    entries: int = 0
    skipped_unnamed: list[str] = field(default_factory=list)
    crossings: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _read_geojson_entries(path: Path, kind: str | None, crs: str, result: PlaceImport) -> list[Place]:
    entries = []
    for feature in read_geojson(path, crs):
        props = feature.properties
        name = next((str(props[f]).strip() for f in NAME_FIELDS if str(props.get(f) or "").strip()), "")
        if not name:
            result.skipped_unnamed.append(feature.where)
            continue
        address = next((str(props[f]).strip() for f in ADDRESS_FIELDS if props.get(f)), "")
        entry_kind = kind
        if not entry_kind and props.get("kind"):
            entry_kind = canonical_kind(str(props["kind"]))
            if entry_kind is None:
                raise DataError(path, feature.where, f"未知地名类型 {props['kind']!r}，可选 {'、'.join(IMPORT_KINDS)}")
        entry_kind = entry_kind or _kind_for_geometry(feature.geometry, name)
        entries.append(_entry(entry_kind, name, address, feature.geometry, _aliases(props.get("aliases")), path.name))
    return entries


def _read_csv_entries(path: Path, kind: str | None, crs: str, result: PlaceImport) -> list[Place]:
    from core.crs import UnknownCRS, parse_crs, to_wgs84

    try:
        crs = parse_crs(crs)
    except UnknownCRS as exc:
        raise DataError(path, "--crs", str(exc)) from None
    entries = []
    for row in read_csv(path, ("name", "lon", "lat"), CSV_ALIASES):
        name = row.values["name"]
        if not name:
            result.skipped_unnamed.append(row.where())
            continue
        entry_kind = kind
        if not entry_kind:
            raw = row.values.get("kind", "")
            entry_kind = canonical_kind(raw) if raw else None
            if entry_kind is None:
                raise DataError(path, row.where("kind"), f"未知地名类型 {raw!r}，可选 {'、'.join(IMPORT_KINDS)}")
        lon, lat = parse_float(path, row, "lon"), parse_float(path, row, "lat")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise DataError(path, row.where("lon"), f"坐标 ({lon}, {lat}) 超出经纬度范围")
        lon, lat = to_wgs84(lon, lat, crs)
        address = row.values.get("address", "")
        if entry_kind == "区域" or (address and not split_door(address)[0] and entry_kind != "门牌"):
            address = address if split_door(address)[0] else ""
        entries.append(
            _entry(entry_kind, name, address, Point(lon, lat), _aliases(row.values.get("aliases", "")), path.name)
        )
    return entries


def _crossings(roads: Sequence[Place]) -> list[Place]:
    """One 路口 per point where two differently named 街巷 lines meet."""
    lines: dict[str, BaseGeometry] = {}
    grouped: dict[str, list[BaseGeometry]] = defaultdict(list)
    for road in roads:
        if road.geometry_wkt:
            grouped[road.road or road.name].append(shapely.from_wkt(road.geometry_wkt))
    for name, geoms in grouped.items():
        lines[name] = shapely.union_all(geoms)
    out = []
    for a, b in combinations(sorted(lines), 2):
        meet = lines[a].intersection(lines[b])
        if meet.is_empty:
            continue
        points = [g for g in getattr(meet, "geoms", [meet]) if g.geom_type == "Point"]
        if not points and isinstance(meet, LineString | MultiLineString):
            points = [meet.interpolate(0.5, normalized=True)]
        kept: list[Point] = []
        for p in points:
            if all(p.distance(k) > 5e-4 for k in kept):
                kept.append(p)
        for p in kept:
            out.append(
                Place(
                    kind="路口",
                    name=f"{a}与{b}交叉口",
                    road=a,
                    number="",
                    lon=round(p.x, 7),
                    lat=round(p.y, 7),
                    aliases=[f"{b}与{a}交叉口"],
                    address=b,
                    source="derived",
                )
            )
    return out


def import_places(
    engine: Engine, path: Path, *, kind: str | None = None, crs: str = "wgs84", progress: Progress | None = None
) -> PlaceImport:
    """Load a CSV or GeoJSON file of places, replacing what an earlier import of the same file name brought."""
    if kind is not None:
        canon = canonical_kind(kind)
        if canon is None or canon == "路口":
            raise DataError(path, "--kind", f"未知地名类型 {kind!r}，可选 {'、'.join(IMPORT_KINDS)}")
        kind = canon
    result = PlaceImport()
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        entries = _read_geojson_entries(path, kind, crs, result)
    elif suffix == ".csv":
        entries = _read_csv_entries(path, kind, crs, result)
    else:
        raise DataError(path, "", "不支持的文件类型，应为 .csv、.geojson 或 .json")
    grid = GridIndex.load(engine)
    grid.assign(entries)
    with session_scope(engine) as session:
        session.exec(delete(Place).where(Place.source.in_([path.name, "derived"])))
        session.add_all(entries)
        if progress:
            progress(len(entries))
        session.flush()
        roads = session.exec(select(Place).where(Place.kind == "街巷")).all()
        crossings = _crossings(roads)
        grid.assign(crossings)
        session.add_all(crossings)
    result.entries = len(entries)
    result.crossings = len(crossings)
    for entry in entries:
        result.by_kind[entry.kind] = result.by_kind.get(entry.kind, 0) + 1
    return result


@dataclass(frozen=True)
class Entry:
    """An immutable in-memory copy of a Place for lookups."""

    id: int
    kind: str
    name: str
    address: str
    road: str
    number: str
    lon: float
    lat: float
    geometry: BaseGeometry | None
    aliases: tuple[str, ...]


class Gazetteer:
    """All places in memory with the indexes the geocoder needs: names, door plates by road, crossings, and
    an STRtree of points for reverse lookups."""

    def __init__(self, places: Sequence[Place], regions: Sequence[Entry] = ()) -> None:
        self.entries = [
            Entry(
                p.id or 0,
                p.kind,
                p.name,
                p.address,
                p.road,
                p.number,
                p.lon,
                p.lat,
                shapely.from_wkt(p.geometry_wkt) if p.geometry_wkt else None,
                tuple(p.aliases),
            )
            for p in places
        ]
        self.entries += regions
        self.by_name: dict[str, list[Entry]] = defaultdict(list)
        self.doors: dict[str, list[Entry]] = defaultdict(list)
        self.roads: dict[str, list[Entry]] = defaultdict(list)
        self.crossings: dict[frozenset[str], list[Entry]] = defaultdict(list)
        for e in self.entries:
            if e.kind == "路口":
                self.crossings[frozenset((e.road, e.address))].append(e)
                continue
            for name in (e.name, *e.aliases):
                self.by_name[normalise(name)].append(e)
            if e.road and e.number:
                self.doors[e.road].append(e)
            if e.kind == "街巷":
                self.roads[e.road].append(e)
        self.road_names = sorted(set(self.doors) | set(self.roads))
        self.names = sorted(self.by_name, key=len, reverse=True)
        # door-plate names differ only in their numbers: fuzzy matching them would trade one number for another
        self.fuzzy_names = [n for n in self.names if any(e.kind != "门牌" for e in self.by_name[n])]
        self.point_entries = [e for e in self.entries if e.kind in ("门牌", "兴趣点")]
        self.point_tree = STRtree([Point(e.lon, e.lat) for e in self.point_entries]) if self.point_entries else None

    @classmethod
    def load(cls, engine: Engine) -> Gazetteer:
        """Places plus the 街道 and 社区 of the grid, each placed at the mean of its cells' centres."""
        with Session(engine) as session:
            places = session.exec(select(Place).order_by(Place.id)).all()
            regions = session.exec(select(Region).where(Region.level != "district")).all()
            cells = session.exec(
                select(GridCell.street_code, GridCell.community_code, GridCell.centroid_lon, GridCell.centroid_lat)
            ).all()
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for street, community, lon, lat in cells:
            for code in (street, community):
                sums[code][0] += lon
                sums[code][1] += lat
                sums[code][2] += 1
        region_entries = [
            Entry(
                0,
                "区域",
                r.name,
                "",
                "",
                "",
                sums[r.code][0] / sums[r.code][2],
                sums[r.code][1] / sums[r.code][2],
                None,
                (),
            )
            for r in regions
            if r.code in sums
        ]
        return cls(places, region_entries)

    def __len__(self) -> int:
        return len(self.entries)
