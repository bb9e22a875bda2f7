"""Place text or coordinates → point → grid cell, through the local gazetteer first and geopy's geocoders after.

``GazetteerGeocoder`` is a geopy ``Geocoder`` so that the rest of the world's geocoders (Nominatim, BaiduV3 …)
can stand behind it as fallbacks with one interface. Matching order, most precise first: 门牌 (exact, then
interpolated between neighbouring numbers of the same parity), 路口, 兴趣点/区片/地片 (with 东门/对面 …),
街巷 alone, 区域. Names are matched exactly, then by the longest known name inside the text, then fuzzily
(rapidfuzz), so typos and partial names still land.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import shapely
import shapely.ops
from geopy.geocoders.base import Geocoder
from geopy.location import Location
from rapidfuzz import fuzz, process
from shapely.geometry import Point

from core.crs import distance_m, to_wgs84
from core.gazetteer import Entry, Gazetteer
from core.grid import CellHit, GridIndex
from nlp.places import PlacePhrase, normalise, parse, strip_fillers

ROAD_SCORE_CUTOFF = 75.0
NAME_SCORE_CUTOFF = 72.0
REVERSE_RADIUS_M = 300.0
PART_SIDES = {"东": (1, 0), "西": (-1, 0), "南": (0, -1), "北": (0, 1)}
RELATION_FACTOR = {"对面": 0.85, "斜对面": 0.8, "附近": 0.85, "周边": 0.8, "周围": 0.8}
KIND_PREFERENCE = ("兴趣点", "门牌", "区片", "地片", "街巷", "区域", "路口")
DIRECTIONS = ("东", "东北", "北", "西北", "西", "西南", "南", "东南")


@dataclass(frozen=True)
class Located:
    """Where a description points: WGS-84 point, grid cell, the matched entry and how sure we are."""

    query: str
    lon: float
    lat: float
    method: str
    matched: str
    confidence: float
    note: str = ""
    grid: CellHit | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = asdict(self.grid) if self.grid else None
        out["lon"], out["lat"] = round(self.lon, 7), round(self.lat, 7)
        out["confidence"] = round(self.confidence, 3)
        return out


@dataclass(frozen=True)
class NotLocated:
    """Nothing matched. A point that was given (coordinates outside every cell) is kept, in WGS-84, so the user sees
    where it fell."""

    query: str
    reason: str
    lon: float | None = None
    lat: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"query": self.query, "found": False, "reason": self.reason}
        if self.lon is not None and self.lat is not None:
            out["lon"], out["lat"] = round(self.lon, 7), round(self.lat, 7)
        return out


def _number_key(number: str) -> tuple[int, int]:
    main, _, sub = number.partition("-")
    return int(main), int(sub or 0)


class PlaceLocator:
    """The matching itself, over one gazetteer and grid."""

    def __init__(self, gazetteer: Gazetteer, grid: GridIndex) -> None:
        self.gazetteer = gazetteer
        self.grid = grid

    # --- names -----------------------------------------------------------------------------------------------
    def resolve_road(self, candidate: str) -> tuple[str, float] | None:
        """The best known road for a road-like fragment (see road_candidates)."""
        found = self.road_candidates(candidate)
        return found[0] if found else None

    def road_candidates(self, candidate: str) -> list[tuple[str, float]]:
        """Known roads a road-like fragment may mean, best first: exact, a known road ending the fragment (the
        fragment may carry 省/市/区 before it), else fuzzy matches of its tail. A one-character slip in a
        three-character name scores 67, so same-length names with the same suffix count from 60."""
        roads = self.gazetteer.road_names
        if not roads or not candidate:
            return []
        if candidate in self.gazetteer.doors or candidate in self.gazetteer.roads:
            return [(candidate, 100.0)]
        suffixes = [r for r in roads if candidate.endswith(r)]
        if suffixes:
            return [(max(suffixes, key=len), 100.0)]
        scores: dict[str, float] = {}
        for size in {len(candidate), *(len(r) for r in roads)}:
            tail = candidate[-size:]
            for road, score, _ in process.extract(tail, roads, scorer=fuzz.ratio, score_cutoff=60, limit=5):
                same_shape = len(road) == len(tail) and road[-1] == tail[-1]
                if score >= ROAD_SCORE_CUTOFF or same_shape:
                    scores[road] = max(scores.get(road, 0.0), score)
        return sorted(scores.items(), key=lambda kv: -kv[1])

    def resolve_name(self, fragment: str) -> tuple[list[Entry], float] | None:
        """Entries named by a fragment: exact, the longest known name inside it, or the best fuzzy name."""
        by_name = self.gazetteer.by_name
        if fragment in by_name:
            return by_name[fragment], 100.0
        for name in self.gazetteer.names:
            if len(name) >= 2 and name in fragment:
                return by_name[name], 95.0 if len(name) >= len(fragment) - 2 else 90.0
        hit = process.extractOne(
            fragment, self.gazetteer.fuzzy_names, scorer=fuzz.WRatio, score_cutoff=NAME_SCORE_CUTOFF
        )
        if hit:
            return by_name[hit[0]], float(hit[1])
        return None

    # --- strategies ------------------------------------------------------------------------------------------
    def _door(self, phrase: PlacePhrase) -> Located | None:
        candidates = self.road_candidates(phrase.road)
        if not candidates:
            return None
        want = _number_key(phrase.number)
        doors_of = self.gazetteer.doors
        name, score = next(
            ((r, s) for r, s in candidates if any(_number_key(d.number) == want for d in doors_of.get(r, []))),
            candidates[0],
        )
        if len(candidates) > 1 and candidates[1][1] == score:
            score *= 0.8  # two roads fit the slip equally well
        doors = doors_of.get(name, [])
        label = f"{name}{phrase.number}号"
        exact = sorted((d for d in doors if _number_key(d.number) == want), key=lambda d: d.kind != "门牌")
        if exact:
            d = exact[0]
            return self._hit(phrase, d.lon, d.lat, "门牌", d.address or d.name, 0.97 * score / 100, "")
        if want[1]:
            base = [d for d in doors if _number_key(d.number) == (want[0], 0)]
            if base:
                d = base[0]
                return self._hit(
                    phrase, d.lon, d.lat, "门牌", d.address or d.name, 0.9 * score / 100, f"按主门牌 {d.number} 号定位"
                )
        plates = [d for d in doors if d.kind == "门牌"] or doors  # a shop inside a block is no door position
        same_side = [d for d in plates if _number_key(d.number)[0] % 2 == want[0] % 2] or plates
        if same_side:
            return self._interpolate(phrase, label, same_side, want, score)
        lines = self.gazetteer.roads.get(name, [])
        if lines:
            line = lines[0]
            return self._hit(
                phrase, line.lon, line.lat, "街巷", name, 0.4 * score / 100, f"地名库中无 {name} 的门牌，定位到道路中点"
            )
        return None

    def _interpolate(
        self, phrase: PlacePhrase, label: str, doors: Sequence[Entry], want: tuple[int, int], score: float
    ) -> Located:
        ordered = sorted(doors, key=lambda d: _number_key(d.number))
        below = [d for d in ordered if _number_key(d.number) < want]
        above = [d for d in ordered if _number_key(d.number) > want]
        if below and above:
            lo, hi = below[-1], above[0]
            n_lo, n_hi = _number_key(lo.number)[0], _number_key(hi.number)[0]
            t = 0.5 if n_hi == n_lo else (want[0] - n_lo) / (n_hi - n_lo)
            lon, lat = lo.lon + t * (hi.lon - lo.lon), lo.lat + t * (hi.lat - lo.lat)
            gap = distance_m(lo.lon, lo.lat, hi.lon, hi.lat)
            conf = (0.85 if gap < 150 else 0.7) * score / 100
            return self._hit(phrase, lon, lat, "门牌插值", label, conf, f"按 {lo.number} 号与 {hi.number} 号插值")
        near = below[-1] if below else above[0]
        return self._hit(
            phrase,
            near.lon,
            near.lat,
            "门牌推算",
            label,
            0.6 * score / 100,
            f"门牌超出已知范围，取最近的 {near.number} 号",
        )

    def _crossing(self, phrase: PlacePhrase) -> Located | None:
        a, b = self.resolve_road(phrase.road), self.resolve_road(phrase.cross_road)
        if a is None or b is None:
            return None
        score = min(a[1], b[1])
        points = self.gazetteer.crossings.get(frozenset((a[0], b[0])), [])
        if points:
            p = points[0]
            return self._hit(phrase, p.lon, p.lat, "路口", p.name, 0.93 * score / 100, "")
        line_a = [e.geometry for e in self.gazetteer.roads.get(a[0], []) if e.geometry is not None]
        line_b = [e.geometry for e in self.gazetteer.roads.get(b[0], []) if e.geometry is not None]
        if not line_a or not line_b:
            return None
        pa, pb = shapely.ops.nearest_points(shapely.union_all(line_a), shapely.union_all(line_b))
        gap = distance_m(pa.x, pa.y, pb.x, pb.y)
        if gap > 300:
            return None
        return self._hit(
            phrase,
            (pa.x + pb.x) / 2,
            (pa.y + pb.y) / 2,
            "路口",
            f"{a[0]}与{b[0]}交叉口",
            0.7 * score / 100,
            f"两路不相交，取最近处（相距约 {gap:.0f} 米）",
        )

    def _landmark(self, phrase: PlacePhrase) -> Located | None:
        fragment = phrase.landmark
        whole = strip_fillers(phrase.text)
        if phrase.part and f"{fragment}{phrase.part}" in self.gazetteer.by_name:
            fragment = f"{fragment}{phrase.part}"
            part = ""
        else:
            part = phrase.part
        found = self.resolve_name(fragment) or self.resolve_name(whole)
        if found is None:
            return None
        entries, score = found
        entry = min(entries, key=lambda e: KIND_PREFERENCE.index(e.kind))
        lon, lat, note = entry.lon, entry.lat, ""
        conf = 0.9 * score / 100
        if entry.kind == "区域":
            conf = 0.3 * score / 100
            note = "仅识别到街道或社区，定位到其中心"
        elif entry.kind == "街巷":
            conf = 0.4 * score / 100
            note = "仅识别到道路，定位到道路中点"
        if part and part[0] in PART_SIDES and part.endswith("门"):
            lon, lat, side_note = self._side_of(entry, part)
            note, conf = side_note, conf * 0.9
        elif part:
            note = f"{entry.name}{part}"
        if phrase.relation:
            conf *= RELATION_FACTOR.get(phrase.relation, 0.9)
            note = (note + "；" if note else "") + f"位于{entry.name}{phrase.relation}"
        matched = entry.name if entry.kind != "门牌" else entry.address or entry.name
        return self._hit(phrase, lon, lat, entry.kind, matched, conf, note)

    def _side_of(self, entry: Entry, part: str) -> tuple[float, float, str]:
        """Where the named gate most likely is: on the polygon's edge on that side, else the entry itself."""
        polygon = entry.geometry
        if polygon is None:
            area = [e for e in self.gazetteer.by_name.get(normalise(entry.name), []) if e.kind in ("区片", "地片")]
            polygon = area[0].geometry if area else None
        if polygon is None or polygon.geom_type not in ("Polygon", "MultiPolygon"):
            return entry.lon, entry.lat, f"地名库中无{entry.name}{part}，定位到{entry.name}"
        dx, dy = PART_SIDES[part[0]]
        c = polygon.representative_point()
        minx, miny, maxx, maxy = polygon.bounds
        far = Point(c.x + dx * (maxx - minx + 1e-4), c.y + dy * (maxy - miny + 1e-4))
        ray = shapely.LineString([c, far])
        edge = polygon.boundary.intersection(ray)
        if edge.is_empty:
            return c.x, c.y, f"按{entry.name}范围推算{part}"
        p = edge if edge.geom_type == "Point" else shapely.ops.nearest_points(far, edge)[1]
        return p.x, p.y, f"按{entry.name}范围推算{part}"

    def _road(self, phrase: PlacePhrase) -> Located | None:
        road = self.resolve_road(phrase.road)
        if road is None:
            return None
        lines = self.gazetteer.roads.get(road[0]) or sorted(
            self.gazetteer.doors.get(road[0], []), key=lambda d: _number_key(d.number)
        )
        mid = lines[len(lines) // 2]
        return self._hit(phrase, mid.lon, mid.lat, "街巷", road[0], 0.4 * road[1] / 100, "仅识别到道路，定位到道路中点")

    def _hit(
        self, phrase: PlacePhrase, lon: float, lat: float, method: str, matched: str, conf: float, note: str
    ) -> Located:
        return Located(
            phrase.text,
            lon,
            lat,
            method,
            matched,
            max(0.0, min(1.0, conf)),
            note,
            self.grid.cell_at(lon, lat) if len(self.grid) else None,
        )

    # --- public ----------------------------------------------------------------------------------------------
    def locate(self, text: str) -> Located | NotLocated:
        if not text or not text.strip():
            return NotLocated(text, "地点描述为空")
        phrase = parse(text)
        strategies = {
            "door": (self._door, self._landmark, self._road),
            "crossing": (self._crossing, self._landmark),
            "road": (self._road, self._landmark),
            "landmark": (self._landmark,),
            "none": (),
        }[phrase.kind]
        for strategy in strategies:
            hit = strategy(phrase)
            if hit is not None and phrase.kind == "door" and phrase.relation and hit.method.startswith("门牌"):
                note = "；".join(n for n in (hit.note, f"位于{hit.matched}{phrase.relation}") if n)
                return replace(hit, note=note, confidence=hit.confidence * RELATION_FACTOR.get(phrase.relation, 0.9))
            if hit is not None:
                return hit
        return NotLocated(text, f"地名库中找不到“{normalise(text)}”，请补充道路门牌、路口或附近的标志性建筑")

    def reverse(self, lon: float, lat: float) -> Located | NotLocated:
        """Nearest door plate or landmark, as "<address>，<direction>约 N 米"."""
        query = f"{lon:.6f},{lat:.6f}"
        cell = self.grid.cell_at(lon, lat) if len(self.grid) else None
        tree = self.gazetteer.point_tree
        if tree is not None:
            idx = tree.nearest(Point(lon, lat))
            entry = self.gazetteer.point_entries[int(idx)]
            dist = distance_m(lon, lat, entry.lon, entry.lat)
            if dist <= REVERSE_RADIUS_M:
                label = entry.address if entry.address and entry.kind == "门牌" else entry.name
                if entry.kind == "兴趣点" and entry.address:
                    label = f"{entry.address}（{entry.name}）"
                where = "" if dist < 5 else f"{_direction(entry.lon, entry.lat, lon, lat)}约 {dist:.0f} 米"
                return Located(
                    query,
                    lon,
                    lat,
                    "逆地理编码",
                    label,
                    max(0.2, 1 - dist / REVERSE_RADIUS_M),
                    f"{label}{'，' + where if where else ''}",
                    cell,
                )
        if cell is not None:
            return Located(
                query,
                lon,
                lat,
                "逆地理编码",
                cell.name or cell.code,
                0.2,
                f"{cell.street}{cell.community}{cell.name}",
                cell,
            )
        return NotLocated(query, "该坐标附近没有已知地名，且不在任何单元网格内", lon, lat)


def _direction(from_lon: float, from_lat: float, to_lon: float, to_lat: float) -> str:
    """Compass word for the bearing from the entry to the point (东, 东北 …)."""
    dx = (to_lon - from_lon) * math.cos(math.radians(from_lat))
    dy = to_lat - from_lat
    angle = math.degrees(math.atan2(dy, dx)) % 360
    return DIRECTIONS[int((angle + 22.5) // 45) % 8]


class GazetteerGeocoder(Geocoder):
    """geopy face of the local gazetteer, with other geopy geocoders tried in order when it finds nothing."""

    def __init__(self, locator: PlaceLocator, fallbacks: Sequence[tuple[Geocoder, str]] = ()) -> None:
        super().__init__()
        self.locator = locator
        self.fallbacks = list(fallbacks)

    def locate_point(self, lon: float, lat: float, crs: str = "wgs84") -> Located | NotLocated:
        """Coordinates from a map in any supported CRS, described by the gazetteer; the answer's point is WGS-84,
        found or not."""
        wlon, wlat = to_wgs84(lon, lat, crs)
        return self.locator.reverse(wlon, wlat)

    def locate(self, text: str) -> Located | NotLocated:
        """Like geocode, but keeping Gridline's detail (method, cell, confidence) and trying fallbacks."""
        result = self.locator.locate(text)
        if isinstance(result, Located):
            return result
        for geocoder, crs in self.fallbacks:
            try:
                found = geocoder.geocode(text, exactly_one=True)
            except Exception as exc:  # a fallback service down must not break intake; say why
                result = NotLocated(text, f"{result.reason}；外部地理编码失败: {type(exc).__name__}")
                continue
            if found is not None:
                lon, lat = to_wgs84(found.longitude, found.latitude, crs)
                grid = self.locator.grid
                cell = grid.cell_at(lon, lat) if len(grid) else None
                name = type(geocoder).__name__
                return Located(text, lon, lat, f"外部:{name}", found.address, 0.5, "", cell)
        return result

    def geocode(self, query: str, *, exactly_one: bool = True, timeout: float | None = None) -> Any:
        result = self.locate(query)
        if isinstance(result, NotLocated):
            return None
        location = Location(result.matched, (result.lat, result.lon), result.as_dict())
        return location if exactly_one else [location]

    def reverse(self, query: Any, *, exactly_one: bool = True, timeout: float | None = None) -> Any:
        point = self._coerce_point_to_string(query, "%(lat)s,%(lon)s")
        lat, lon = (float(v) for v in point.split(","))
        result = self.locator.reverse(lon, lat)
        if isinstance(result, NotLocated):
            return None
        location = Location(result.note or result.matched, (result.lat, result.lon), result.as_dict())
        return location if exactly_one else [location]


def fallback_geocoders(
    names: str, *, user_agent: str, nominatim_domain: str, baidu_api_key: str, scheme: str = "https"
) -> list[tuple[Geocoder, str]]:
    """geopy geocoders named in the setting (``nominatim,baidu``), each with the CRS its answers use."""
    from geopy.geocoders import BaiduV3, Nominatim

    out: list[tuple[Geocoder, str]] = []
    if "://" in nominatim_domain:  # a self-hosted server given as a URL, e.g. http://10.1.2.3:8088
        scheme, nominatim_domain = nominatim_domain.split("://", 1)
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        if name == "nominatim":
            out.append((Nominatim(user_agent=user_agent, domain=nominatim_domain, scheme=scheme), "wgs84"))
        elif name == "baidu":
            if not baidu_api_key:
                raise ValueError("geocoder_fallbacks 含 baidu，但未设置 GRIDLINE_BAIDU_API_KEY")
            out.append((BaiduV3(api_key=baidu_api_key, scheme=scheme), "bd09"))
        else:
            raise ValueError(f"未知的外部地理编码服务 {name!r}，可选 nominatim、baidu")
    return out
