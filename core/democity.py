"""The demo city: a fictional but plausible district that ``gridline init --demo``, the tests and the benches load.

It is generated, not shipped, so that it stays small in the repository, is identical for a given seed
(byte-identical files: sorted keys, rounded coordinates, no timestamps, no hash-ordered iteration) and can be
varied with another seed. The output is written in the formats Gridline's importers read:

- ``grid.geojson``: 万米单元网格 with 15-digit codes (6 区划 + 3 街道 + 3 社区 + 3 顺序码, CJ/T 213 / GB/T 30428.1),
  顺序码 counted west→east, north→south inside each 社区;
- ``places.geojson``: the gazetteer (CJ/T 215 / GB/T 30428.3 kinds 地片, 区片, 街巷, 门牌, 兴趣点);
- ``departments.csv``: 专业部门 and 街道办事处 (``code,name,kind``);
- ``components.csv``: a 部件 census (``id,type_code,dept_code,lon,lat,state``) with 17-digit ids
  (6 区划 + 5 GB/T 47678.5 type code + 6 顺序码).

Everything is laid out in local metres (x east, y north from the south-west corner of ``BBOX``) and converted to
WGS-84 lon/lat only when written, with the ellipsoid's metres-per-degree at the district's latitude.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.ops import nearest_points, substring, unary_union
from shapely.strtree import STRtree

__all__ = [
    "BBOX",
    "COMPONENT_TYPES",
    "DEPARTMENTS",
    "DISTRICT_CODE",
    "DISTRICT_NAME",
    "HEIGHT_M",
    "M_PER_DEG_LAT",
    "M_PER_DEG_LON",
    "STREETS",
    "WIDTH_M",
    "DemoFiles",
    "generate",
]

DISTRICT_CODE = "339901"
"""Fictional 县级区划 code: 33 is Zhejiang, 99 is not a real 地级 code, so it can never clash with real data."""
DISTRICT_NAME = "青川区"
BBOX: tuple[float, float, float, float] = (120.5845, 29.9883, 120.6155, 30.0117)
"""(min_lon, min_lat, max_lon, max_lat), WGS-84, centred on 120.60 E 30.00 N: about 2.99 km × 2.59 km."""

_WGS84_A = 6378137.0
_WGS84_E2 = 6.69437999014e-3
_PHI = math.radians((BBOX[1] + BBOX[3]) / 2)
_W = 1.0 - _WGS84_E2 * math.sin(_PHI) ** 2
M_PER_DEG_LAT = _WGS84_A * (1.0 - _WGS84_E2) / _W**1.5 * math.pi / 180.0
M_PER_DEG_LON = _WGS84_A / math.sqrt(_W) * math.cos(_PHI) * math.pi / 180.0
WIDTH_M = (BBOX[2] - BBOX[0]) * M_PER_DEG_LON
HEIGHT_M = (BBOX[3] - BBOX[1]) * M_PER_DEG_LAT

STREETS: tuple[str, ...] = ("城关街道", "西城街道", "东湖街道", "临江街道", "北苑街道")
"""街道 in code order ("001".."005")."""

# 社区: (street index, name, (column band, row band)); bands count from the west and from the south and are
# bounded by the six main roads, so community and street boundaries follow roads. Community codes are given
# in this order within each street.
_COMMUNITIES: tuple[tuple[int, str, tuple[int, int]], ...] = (
    (0, "人民社区", (1, 2)),
    (0, "解放社区", (2, 2)),
    (0, "文化社区", (1, 1)),
    (0, "东门社区", (2, 1)),
    (1, "胜利社区", (0, 3)),
    (1, "青年社区", (0, 2)),
    (1, "新华社区", (0, 1)),
    (2, "翠苑社区", (3, 3)),
    (2, "和平社区", (3, 2)),
    (2, "东湖社区", (3, 1)),
    (3, "滨江社区", (0, 0)),
    (3, "阳光社区", (1, 0)),
    (3, "望江社区", (2, 0)),
    (3, "江东社区", (3, 0)),
    (4, "学府社区", (1, 3)),
    (4, "北苑社区", (2, 3)),
)

# Main roads lie on cell borders (they bound the communities); their nominal positions in metres.
_NS_MAIN = (("新华路", 900.0), ("解放路", 1550.0), ("和平路", 2150.0))
_EW_MAIN = (("建设路", 750.0), ("人民路", 1300.0), ("中山路", 1850.0))
_MAIN_HALF = 14.0

# Other roads, built in this order: (name, axis, nominal position m, start bound, end bound, half width m,
# bend amplitude m). EW roads run west→east, NS roads north→south; a bound of None means the district edge.
_OTHER_ROADS: tuple[tuple[str, str, float, str | None, str | None, float, float], ...] = (
    ("滨江路", "EW", 280.0, None, None, 12.0, 22.0),
    ("北环路", "EW", 2380.0, None, None, 12.0, 8.0),
    ("胜利路", "NS", 380.0, None, None, 10.0, 5.0),
    ("环城东路", "NS", 2660.0, None, None, 12.0, 10.0),
    ("柳营巷", "EW", 520.0, "新华路", "解放路", 5.0, 6.0),
    ("百花巷", "EW", 1040.0, "解放路", "和平路", 5.0, 7.0),
    ("青年路", "EW", 1590.0, "胜利路", "环城东路", 9.0, 4.0),
    ("学府街", "EW", 2120.0, "新华路", "和平路", 8.0, 3.0),
    ("文化路", "NS", 1235.0, "北环路", "滨江路", 9.0, 4.0),
    ("东门街", "NS", 1840.0, "中山路", "建设路", 7.0, 5.0),
    ("石板巷", "NS", 1700.0, "人民路", "百花巷", 4.5, 5.0),
)
_BUS_ROADS = ("新华路", "解放路", "和平路", "建设路", "人民路", "中山路", "滨江路", "北环路", "环城东路", "青年路")

# 地片: named areas as (name, x0, y0, x1, y1) in metres; 中心商圈 makes its cells area class A, 滨江工业园 class C.
_ZONES: tuple[tuple[str, float, float, float, float], ...] = (
    ("中心商圈", 1240.0, 1060.0, 1870.0, 1580.0),
    ("老街片区", 1570.0, 765.0, 2135.0, 1285.0),
    ("滨江工业园", 2.0, 2.0, WIDTH_M - 2.0, 262.0),
    ("学府片区", 915.0, 1865.0, 2135.0, 2365.0),
)

COMPONENT_TYPES: dict[str, tuple[str, str]] = {
    "01001": ("供水井盖", "供水"),
    "01002": ("污水井盖", "排水"),
    "01003": ("雨水井盖", "排水"),
    "01004": ("雨水箅子", "排水"),
    "01005": ("电力井盖", "电力"),
    "01007": ("通信井盖", "通信"),
    "01011": ("燃气井盖", "燃气"),
    "01013": ("消防设施", "市政"),
    "01027": ("通信交接箱", "通信"),
    "01037": ("路灯", "路灯"),
    "01040": ("报刊亭", "城管执法"),
    "01046": ("户外健身设施", "园林"),
    "01048": ("变压器（箱）", "电力"),
    "01049": ("燃气调压站（箱）", "燃气"),
    "01050": ("监控电子眼设施", "交警"),
    "01060": ("路灯配电箱", "路灯"),
    "02001": ("停车场", "交警"),
    "02004": ("公交站设施", "市政"),
    "02010": ("交通标志牌及标线", "交警"),
    "02012": ("路名牌", "市政"),
    "02014": ("交通信号灯", "交警"),
    "02017": ("交通护栏", "交警"),
    "03001": ("公共厕所", "环卫"),
    "03003": ("化粪池", "环卫"),
    "03004": ("垃圾间（楼）", "环卫"),
    "03005": ("垃圾箱", "环卫"),
    "03007": ("牌匾标识", "城管执法"),
    "03008": ("宣传栏", "街道"),
    "04002": ("行道树", "园林"),
    "04006": ("雕塑", "园林"),
    "04007": ("街头座椅", "园林"),
    "04013": ("绿地", "园林"),
    "05002": ("公房地下室", "住建"),
}
"""GB/T 47678.5-2026 部件 type code → (小类 name, kind of the owning department). Kind 街道 means the 街道办事处
of the street the component stands in."""

_COVERS = frozenset({"01001", "01002", "01003", "01004", "01005", "01007", "01011"})

DEPARTMENTS: tuple[tuple[str, str, str], ...] = (
    ("HW", f"{DISTRICT_NAME}环境卫生管理处", "环卫"),
    ("SZ", f"{DISTRICT_NAME}市政设施管理处", "市政"),
    ("YL", f"{DISTRICT_NAME}园林绿化管理处", "园林"),
    ("ZF", f"{DISTRICT_NAME}城市管理行政执法局", "城管执法"),
    ("JJ", f"{DISTRICT_NAME}交警大队", "交警"),
    ("GS", f"{DISTRICT_NAME}供水公司", "供水"),
    ("RQ", f"{DISTRICT_NAME}燃气公司", "燃气"),
    ("GD", f"{DISTRICT_NAME}供电公司", "电力"),
    ("TX", f"{DISTRICT_NAME}通信管理办", "通信"),
    ("PS", f"{DISTRICT_NAME}排水管理处", "排水"),
    ("LD", f"{DISTRICT_NAME}路灯管理所", "路灯"),
    ("ZJ", f"{DISTRICT_NAME}住房和城乡建设局", "住建"),
    *((f"JD{i + 1:02d}", f"{name}办事处", "街道") for i, name in enumerate(STREETS)),
)
"""(code, name, kind): the 专业部门, then one 街道办事处 per street (JD01 = street 001 …)."""


def _words(text: str) -> tuple[str, ...]:
    """Name lists as space-separated text: compact to read and edit."""
    return tuple(text.split())


_XQ_PREFIXES = _words(
    "金色 翠苑 锦绣 碧水 丽景 和谐 幸福 紫荆 桂花 香樟 梧桐 文苑 春江 "
    "明珠 新城 水岸 书香 华府 绿城 枫林 玉兰 银杏 望江 临江 青川 东湖 "
    "西溪 景福 长乐 安居 康乐 福田 龙泉 凤凰 金桥 宝华 世纪 海棠 星河 "
    "天和 嘉禾 翡翠 南湖 北苑 朝晖 紫金 丹桂 芙蓉 清泉 盛世 润和 怡景 "
    "御景 君悦 蓝湾 静安 恒新 新月 晨光 瑞丰 广厦 柳岸 荷塘 松鹤"
)
_XQ_SUFFIXES = ("小区", "小区", "小区", "花园", "家园", "新村", "苑", "公寓")
_SHOP_PREFIXES = _words(
    "华联 好邻居 老张 金桥 百姓 惠民 新星 永和 红星 利群 快客 全家福 东方 "
    "鸿运 佳美 顺发 天天 益丰 小王 阿香 德顺 福满 四季 如意 家家乐 兴隆 "
    "老李 春风 聚福 美好 万家 乐购 同仁 康宁 一品 江南"
)
_SHOP_KINDS = _words(
    "超市 便利店 面馆 大药房 五金店 理发店 水果店 烟酒店 包子铺 茶馆 书店 "
    "眼镜店 快餐店 烘焙坊 干洗店 粮油店 文具店 手机店 花店 饺子馆 小吃店 "
    "母婴店"
)
_COMPANIES = _words(
    "青川机械制造有限公司 华新纺织有限公司 江南食品厂 青川物流园 宏达建材有限公司 "
    "恒通电子科技有限公司 滨江污水处理厂 青川印刷厂 永固五金有限公司 "
    "青川区环卫停车场 明达汽车修理厂 江东仓储中心"
)
_OFFICE_NAMES = _words("青川国际大厦 时代广场 财富中心 青川商城 金融大厦 人民广场购物中心 青川大酒店 中心大厦")
_BANKS = _words(
    "中国工商银行青川支行 中国建设银行人民路支行 中国农业银行解放路支行 "
    "中国银行青川支行 青川农商银行营业部 邮政储蓄银行中山路支行"
)

# Special parcels: (target point in metres, name, kind, aliases). Each takes the free parcel nearest its target.
_LANDMARKS: tuple[tuple[tuple[float, float], str, str, tuple[str, ...]], ...] = (
    ((1400.0, 1170.0), f"{DISTRICT_NAME}人民政府", "gov", ("区政府",)),
    ((1700.0, 1460.0), f"{DISTRICT_NAME}第一人民医院", "hospital", ("市一医院", "区一医院", "一院")),
    ((1080.0, 1450.0), "人民公园", "park", ()),
    ((1400.0, 1450.0), "文化广场", "park", ()),
    ((2420.0, 1120.0), f"{DISTRICT_NAME}中医院", "hospital", ("区中医院", "中医院")),
    ((600.0, 2050.0), f"{DISTRICT_NAME}妇幼保健院", "hospital", ("妇幼保健院",)),
    ((1050.0, 2000.0), f"{DISTRICT_NAME}实验小学", "school", ("实验小学", "实小")),
    ((1800.0, 2250.0), f"{DISTRICT_NAME}第一中学", "school", ("一中",)),
    ((600.0, 1000.0), f"{DISTRICT_NAME}第二中学", "school", ("二中",)),
    ((1400.0, 2000.0), "学府街小学", "school", ()),
    ((2450.0, 1650.0), "东湖小学", "school", ()),
    ((1400.0, 420.0), "滨江小学", "school", ()),
    ((700.0, 420.0), "阳光幼儿园", "school", ()),
    ((2000.0, 2500.0), "北苑幼儿园", "school", ()),
    ((300.0, 130.0), "滨江公园", "park", ()),
    ((1960.0, 900.0), "百花园", "park", ()),
    ((2780.0, 2480.0), "北苑公园", "park", ()),
    ((1700.0, 1180.0), f"{DISTRICT_NAME}城市管理局", "gov", ("城管局",)),
    ((2900.0, 1350.0), "东湖体育馆", "park", ("体育馆",)),
)
_YANGGUANG_TARGET = (1100.0, 560.0)


@dataclass(frozen=True)
class DemoFiles:
    """Where :func:`generate` wrote the four files."""

    grid: Path
    places: Path
    departments: Path
    components: Path


# --------------------------------------------------------------------------------------------- geometry


def _lonlat(x: float, y: float) -> list[float]:
    """Metres from the SW corner → [lon, lat], rounded to 7 decimals (≈1 cm) so output bytes are stable."""
    lon = BBOX[0] + (BBOX[2] - BBOX[0]) * (x / WIDTH_M)
    lat = BBOX[1] + (BBOX[3] - BBOX[1]) * (y / HEIGHT_M)
    return [round(lon, 7), round(lat, 7)]


def _ring(coords: Iterable[tuple[float, float]]) -> list[list[float]]:
    return [_lonlat(x, y) for x, y in coords]


def _polygon_json(poly: Polygon) -> dict[str, Any]:
    poly = orient(poly, 1.0)
    return {"type": "Polygon", "coordinates": [_ring(poly.exterior.coords)]}


@dataclass
class _Road:
    """A 街巷 centre line in metres with its half width; ``at`` gives points beside it."""

    name: str
    pts: list[tuple[float, float]]
    half: float
    line: LineString = field(init=False)
    cum: list[float] = field(init=False)
    crossings: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.line = LineString(self.pts)
        self.cum = [0.0]
        for (x0, y0), (x1, y1) in itertools.pairwise(self.pts):
            self.cum.append(self.cum[-1] + math.hypot(x1 - x0, y1 - y0))

    @property
    def length(self) -> float:
        return self.cum[-1]

    def at(self, s: float, off: float = 0.0) -> tuple[float, float]:
        """The point ``s`` metres along the road, ``off`` metres to its left (negative: right)."""
        s = min(max(s, 0.0), self.length)
        i = 1
        while i < len(self.cum) - 1 and self.cum[i] < s:
            i += 1
        (x0, y0), (x1, y1) = self.pts[i - 1], self.pts[i]
        seg = self.cum[i] - self.cum[i - 1]
        if seg == 0.0:
            return (x0, y0)
        t = (s - self.cum[i - 1]) / seg
        tx, ty = (x1 - x0) / seg, (y1 - y0) / seg
        return (x0 + t * (x1 - x0) - ty * off, y0 + t * (y1 - y0) + tx * off)

    def clear(self, s: float, margin: float, roads: dict[str, _Road]) -> bool:
        """True when ``s`` is away from every crossing, so nothing is put in the middle of a junction."""
        return all(abs(s - c) >= roads[other].half + margin for c, other in self.crossings)


def _bands(breaks: Sequence[float], total: float, rng: random.Random) -> tuple[list[float], list[int]]:
    """Cell borders along one axis (~100 m apart, a little uneven) with a border exactly at every break."""
    edges = [0.0, *breaks, total]
    borders = [0.0]
    main_idx = []
    for lo, hi in itertools.pairwise(edges):
        n = max(1, round((hi - lo) / 100.0))
        weights = [rng.uniform(0.93, 1.07) for _ in range(n)]
        scale = (hi - lo) / sum(weights)
        acc = lo
        for w in weights[:-1]:
            acc += w * scale
            borders.append(acc)
        borders.append(hi)
        main_idx.append(len(borders) - 1)
    return borders, main_idx[:-1]


@dataclass
class _Cell:
    col: int
    row: int
    poly: Polygon
    community: int
    code: str = ""
    name: str = ""
    area_class: str = "B"


def _build_mesh(
    rng: random.Random,
) -> tuple[list[_Cell], dict[str, _Road]]:
    """The 万米单元网格 as a quad mesh with shared, jittered vertices (so cells tile without gaps or overlaps)
    and the six main roads along gently bowed mesh lines."""
    xs, main_cols = _bands([p for _, p in _NS_MAIN], WIDTH_M, rng)
    ys, main_rows = _bands([p for _, p in _EW_MAIN], HEIGHT_M, rng)
    ncols, nrows = len(xs) - 1, len(ys) - 1
    bow_c = {i: rng.uniform(-9.0, 9.0) for i in main_cols}
    bow_r = {j: rng.uniform(-9.0, 9.0) for j in main_rows}
    verts: dict[tuple[int, int], tuple[float, float]] = {}
    for j in range(nrows + 1):
        for i in range(ncols + 1):
            jx, jy = rng.uniform(-5.0, 5.0), rng.uniform(-5.0, 5.0)
            x, y = xs[i], ys[j]
            if i in bow_c:
                x += bow_c[i] * math.sin(math.pi * j / nrows)
            elif 0 < i < ncols:
                x += jx
            if j in bow_r:
                y += bow_r[j] * math.sin(math.pi * i / ncols)
            elif 0 < j < nrows:
                y += jy
            verts[i, j] = (x, y)

    def band(idx: int, mains: list[int]) -> int:
        return sum(1 for m in mains if idx >= m)

    block_to_comm = {blk: k for k, (_, _, blk) in enumerate(_COMMUNITIES)}
    cells = []
    for j in range(nrows):
        for i in range(ncols):
            quad = Polygon([verts[i, j], verts[i + 1, j], verts[i + 1, j + 1], verts[i, j + 1]])
            comm = block_to_comm[band(i, main_cols), band(j, main_rows)]
            cells.append(_Cell(i, j, quad, comm))

    roads: dict[str, _Road] = {}
    for (name, _), i in zip(_NS_MAIN, main_cols, strict=True):
        roads[name] = _Road(name, [verts[i, j] for j in range(nrows, -1, -1)], _MAIN_HALF)
    for (name, _), j in zip(_EW_MAIN, main_rows, strict=True):
        roads[name] = _Road(name, [verts[i, j] for i in range(ncols + 1)], _MAIN_HALF)

    # Codes: street "001".., community "001".. within the street; 顺序码 by rows north→south, in a row west→east.
    comm_codes: list[str] = []
    per_street: dict[int, int] = {}
    for street, _, _ in _COMMUNITIES:
        per_street[street] = per_street.get(street, 0) + 1
        comm_codes.append(f"{DISTRICT_CODE}{street + 1:03d}{per_street[street]:03d}")
    seq: dict[int, int] = {}
    for cell in sorted(cells, key=lambda c: (-c.row, c.col)):
        seq[cell.community] = seq.get(cell.community, 0) + 1
        street, comm_name, _ = _COMMUNITIES[cell.community]
        cell.code = f"{comm_codes[cell.community]}{seq[cell.community]:03d}"
        cell.name = f"{STREETS[street]}{comm_name}第{seq[cell.community]:03d}网格"
        centre = cell.poly.centroid
        for zone, x0, y0, x1, y1 in _ZONES:
            if x0 <= centre.x <= x1 and y0 <= centre.y <= y1:
                if zone == "中心商圈":
                    cell.area_class = "A"
                elif zone == "滨江工业园":
                    cell.area_class = "C"
        if cell.col in (0, ncols - 1) or cell.row == nrows - 1:
            cell.area_class = "C"
    return cells, roads


def _bent_line(axis: str, pos: float, amp: float) -> LineString:
    """A road across the whole district at nominal ``pos``, bowed by ``amp`` metres (one gentle arc)."""
    span = WIDTH_M if axis == "EW" else HEIGHT_M
    n = 20
    pts = []
    for k in range(n + 1):
        t = span * k / n
        d = pos + amp * math.sin(math.pi * k / n)
        pts.append((t, d) if axis == "EW" else (d, HEIGHT_M - t))
    return LineString(pts)


def _cut(full: LineString, start: _Road | None, end: _Road | None) -> list[tuple[float, float]]:
    """The part of ``full`` between its crossings with ``start`` and ``end`` (or the district edge)."""

    def where(road: _Road) -> float:
        hit = full.intersection(road.line)
        if hit.is_empty:
            hit = nearest_points(full, road.line)[0]
        return full.project(hit if hit.geom_type == "Point" else hit.centroid)

    s0 = where(start) if start else 0.0
    s1 = where(end) if end else full.length
    part = substring(full, min(s0, s1), max(s0, s1))
    return [(float(x), float(y)) for x, y in part.coords]


def _build_roads(rng: random.Random, roads: dict[str, _Road]) -> None:
    """The other streets (off the cell borders) and every road's crossings with the others."""
    for name, axis, pos, start, end, half, amp in _OTHER_ROADS:
        full = _bent_line(axis, pos + rng.uniform(-12.0, 12.0), rng.uniform(-amp, amp))
        pts = _cut(full, roads.get(start) if start else None, roads.get(end) if end else None)
        roads[name] = _Road(name, pts, half)
    names = list(roads)
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            ra, rb = roads[a], roads[b]
            if ra.line.distance(rb.line) > 0.5:
                continue
            hit = ra.line.intersection(rb.line)
            pts = [hit] if hit.geom_type == "Point" else list(getattr(hit, "geoms", []))
            if not pts:
                pts = [nearest_points(ra.line, rb.line)[0]]
            for p in pts:
                ra.crossings.append((ra.line.project(p), b))
                rb.crossings.append((rb.line.project(p), a))
    for road in roads.values():
        road.crossings.sort()


# --------------------------------------------------------------------------------------------- gazetteer


@dataclass
class _Plate:
    road: str
    label: str
    s: float
    side: int
    off: float
    x: float
    y: float

    @property
    def name(self) -> str:
        return f"{self.road}{self.label}号"


def _door_plates(rng: random.Random, roads: dict[str, _Road]) -> list[_Plate]:
    """门牌 along every road: odd numbers on the left (north of EW roads, east of NS roads), even on the right,
    increasing along the road, 15–40 m apart, now and then a sub-number (88-1号) for a subdivided plot."""
    plates = []
    for road in roads.values():
        lo, hi = max(10.0, road.half + 0.5), min(15.0, max(11.0, road.half + 2.5))
        for side in (1, -1):
            s = rng.uniform(10.0, 25.0)
            main = 0
            last_main = 0
            sub = 0
            while s < road.length - 10.0:
                if road.clear(s, 5.0, roads):
                    if last_main and sub < 2 and rng.random() < 0.06:
                        sub += 1
                        label = f"{last_main}-{sub}"
                    else:
                        main += 1
                        last_main = 2 * main - 1 if side == 1 else 2 * main
                        sub = 0
                        label = str(last_main)
                    off = rng.uniform(lo, hi) * side
                    x, y = road.at(s, off)
                    plates.append(_Plate(road.name, label, s, side, off, x, y))
                s += rng.uniform(15.0, 40.0)
    return plates


def _parcels(roads: dict[str, _Road]) -> list[Polygon]:
    """Land between the roads, split into plots of at most ~420 m a side (the size of a real 小区)."""
    carriage = unary_union([r.line.buffer(r.half, cap_style="flat", join_style="mitre") for r in roads.values()])
    blocks = box(0.0, 0.0, WIDTH_M, HEIGHT_M).difference(carriage)
    out: list[Polygon] = []

    def split(poly: Polygon) -> None:
        minx, miny, maxx, maxy = poly.bounds
        w, h = maxx - minx, maxy - miny
        if max(w, h) <= 420.0:
            if poly.area >= 4000.0:
                out.append(poly)
            return
        if w >= h:
            mid = (minx + maxx) / 2
            halves = (box(minx - 1, miny - 1, mid - 5, maxy + 1), box(mid + 5, miny - 1, maxx + 1, maxy + 1))
        else:
            mid = (miny + maxy) / 2
            halves = (box(minx - 1, miny - 1, maxx + 1, mid - 5), box(minx - 1, mid + 5, maxx + 1, maxy + 1))
        for half in halves:
            for part in _polygons(poly.intersection(half)):
                split(part)

    for block in _polygons(blocks):
        for part in _polygons(block.buffer(-3.0, join_style="mitre")):
            split(part)
    return sorted(out, key=lambda p: (-round(p.centroid.y, 3), round(p.centroid.x, 3)))


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]  # type: ignore[list-item]
    return [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]


def _edge_point(poly: Polygon, side: str) -> tuple[float, float]:
    """Where a ray from the centroid towards ``side`` (东南西北) leaves the polygon: the gate on that side."""
    c = poly.centroid
    dx, dy = {"东": (1, 0), "西": (-1, 0), "南": (0, -1), "北": (0, 1)}[side]
    ray = LineString([(c.x, c.y), (c.x + dx * 5000, c.y + dy * 5000)])
    hit = ray.intersection(poly.exterior)
    pts = [hit] if hit.geom_type == "Point" else list(getattr(hit, "geoms", []))
    best = max(pts, key=lambda p: p.x * dx + p.y * dy)
    return (best.x, best.y)


def _random_inside(rng: random.Random, poly: Polygon, margin: float = 5.0) -> tuple[float, float]:
    inner = poly.buffer(-margin)
    target = inner if not inner.is_empty else poly
    minx, miny, maxx, maxy = target.bounds
    for _ in range(200):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if target.contains(Point(x, y)):
            return (x, y)
    c = target.representative_point()
    return (c.x, c.y)


class _Gazetteer:
    """Collects places and answers "the nearest door plate of the nearest road" for POI addresses."""

    def __init__(self, roads: dict[str, _Road], plates: list[_Plate]) -> None:
        self.roads = roads
        self.plates = plates
        self.by_road: dict[str, list[_Plate]] = {}
        for p in plates:
            self.by_road.setdefault(p.road, []).append(p)
        self.features: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self.used_plates: set[int] = set()

    def address(self, x: float, y: float) -> str:
        pt = Point(x, y)
        road = min(self.roads.values(), key=lambda r: (r.line.distance(pt), r.name))
        plate = min(self.by_road[road.name], key=lambda p: (p.x - x) ** 2 + (p.y - y) ** 2)
        return plate.name

    def unique(self, name: str) -> str:
        """Places with the same name would make address lookup ambiguous; suffix a repeated name."""
        if name not in self.names:
            return name
        for k in ("二", "三", "四", "五", "六", "七", "八", "九"):
            candidate = f"{name}({k})"
            if candidate not in self.names:
                return candidate
        raise ValueError(name)

    def add(
        self,
        kind: str,
        name: str,
        geometry: dict[str, Any],
        address: str | None = None,
        aliases: Sequence[str] = (),
    ) -> None:
        props: dict[str, Any] = {"kind": kind, "name": name}
        if address:
            props["address"] = address
        if aliases:
            props["aliases"] = list(aliases)
        if kind != "门牌":
            self.names.add(name)
        self.features.append({"type": "Feature", "geometry": geometry, "properties": props})

    def poi(self, name: str, x: float, y: float, aliases: Sequence[str] = ()) -> tuple[float, float]:
        self.add("兴趣点", name, {"type": "Point", "coordinates": _lonlat(x, y)}, self.address(x, y), aliases)
        return (x, y)


# --------------------------------------------------------------------------------------------- components


class _Census:
    """Collects 部件 points; ids are numbered per type in the order the points were laid out."""

    def __init__(self, rng: random.Random, cells: list[_Cell]) -> None:
        self.rng = rng
        self.rows: list[tuple[str, float, float, str, str]] = []
        self.cells = cells
        self.tree = STRtree([c.poly for c in cells])
        self.dept_by_kind = {kind: code for code, _, kind in DEPARTMENTS if kind != "街道"}

    def cell_at(self, x: float, y: float) -> _Cell | None:
        pt = Point(x, y)
        for idx in self.tree.query(pt):
            if self.cells[int(idx)].poly.covers(pt):
                return self.cells[int(idx)]
        return None

    def add(self, type_code: str, x: float, y: float) -> None:
        if not (1.0 <= x <= WIDTH_M - 1.0 and 1.0 <= y <= HEIGHT_M - 1.0):
            return
        kind = COMPONENT_TYPES[type_code][1]
        if kind == "街道":
            cell = self.cell_at(x, y)
            street = _COMMUNITIES[cell.community][0] if cell else 0
            dept = f"JD{street + 1:02d}"
        else:
            dept = self.dept_by_kind[kind]
        r = self.rng.random()
        state = "丢失" if r < 0.006 and type_code in _COVERS else "破损" if r < 0.035 else "完好"
        self.rows.append((type_code, x, y, state, dept))

    def along(
        self,
        road: _Road,
        roads: dict[str, _Road],
        type_code: str,
        step: tuple[float, float],
        offset: Callable[[int], float],
        start: float | None = None,
    ) -> None:
        """One component every ``step`` metres along ``road``, skipping junctions; ``offset(k)`` is the k-th
        item's distance left of the centre line (so items can alternate sides)."""
        s = start if start is not None else self.rng.uniform(8.0, step[1])
        k = 0
        while s < road.length - 8.0:
            if road.clear(s, 3.0, roads):
                self.add(type_code, *road.at(s, offset(k)))
                k += 1
            s += self.rng.uniform(*step)


def _road_components(census: _Census, roads: dict[str, _Road]) -> None:
    """Covers, lamps, trees, bins and hydrants along the roads, at the offsets they have in a street section:
    drain covers in the carriageway, gullies at the kerb, utility covers, lamps, trees and bins on the pavement."""
    for road in roads.values():
        c = road.half * 0.65  # half the carriageway
        lane = road.half <= 5.0
        big = road.half >= 12.0
        census.along(road, roads, "01002", (40.0, 55.0), lambda k, c=c: c * 0.4)
        census.along(road, roads, "01003", (40.0, 55.0), lambda k, c=c: -c * 0.4)
        census.along(road, roads, "01004", (30.0, 45.0), lambda k, c=c: (c - 0.4) * (1 if k % 2 else -1))
        census.along(road, roads, "01001", (70.0, 110.0), lambda k, c=c: c + 1.5)
        census.along(road, roads, "01011", (110.0, 160.0), lambda k, c=c: -(c + 1.5))
        census.along(road, roads, "01013", (100.0, 140.0), lambda k, c=c: (c + 2.6) * (1 if k % 2 else -1))
        census.along(road, roads, "01037", (32.0, 42.0), lambda k, c=c: (c + 0.8) * (1 if k % 2 else -1))
        census.along(road, roads, "03005", (60.0, 90.0), lambda k, c=c: (c + 2.4) * (-1 if k % 2 else 1))
        if not lane:
            census.along(road, roads, "01005", (100.0, 140.0), lambda k, c=c: c + 2.0)
            census.along(road, roads, "01007", (100.0, 140.0), lambda k, c=c: -(c + 2.0))
            census.along(road, roads, "01027", (220.0, 320.0), lambda k, r=road: r.half - 0.6)
            census.along(road, roads, "01060", (400.0, 600.0), lambda k, r=road: -(r.half - 0.6))
            for side in (1, -1):
                census.along(road, roads, "04002", (24.0, 34.0), lambda k, c=c, side=side: (c + 1.8) * side)
        if big:
            census.along(road, roads, "02017", (90.0, 130.0), lambda k: 0.0)
            census.along(road, roads, "01048", (280.0, 380.0), lambda k, r=road: r.half - 0.4)
            census.along(road, roads, "01040", (500.0, 800.0), lambda k, r=road: -(r.half - 1.0))


def _junction_components(census: _Census, roads: dict[str, _Road]) -> None:
    """Signals, cameras, signs and street-name plates at the corners of each junction."""
    seen: set[tuple[str, str]] = set()
    for road in roads.values():
        for s, other_name in road.crossings:
            pair = (min(road.name, other_name), max(road.name, other_name))
            if pair in seen:
                continue
            seen.add(pair)
            other = roads[other_name]
            both_big = road.half >= 9.0 and other.half >= 9.0
            corners = [road.at(s + a * (other.half + 1.0), b * (road.half - 1.0)) for a in (-1, 1) for b in (-1, 1)]
            corners = [(x, y) for x, y in corners if 1.0 < x < WIDTH_M - 1.0 and 1.0 < y < HEIGHT_M - 1.0]
            for x, y in corners[:2]:
                census.add("02012", x, y)
            if both_big:
                for x, y in corners:
                    census.add("02014", x, y)
                for a in (-1, 1):
                    census.add("02010", *road.at(s + a * (other.half + 25.0), -a * (road.half - 1.5)))
                census.add("01050", *road.at(s + other.half + 4.0, road.half - 1.0))


# --------------------------------------------------------------------------------------------- generate


def generate(out_dir: Path, seed: int = 2026) -> DemoFiles:
    """Write the demo district's grid, gazetteer, departments and component census into ``out_dir``.

    The same seed gives byte-identical files; only ``random.Random(seed)`` is used, never the global state.
    """
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    cells, roads = _build_mesh(rng)
    _build_roads(rng, roads)
    plates = _door_plates(rng, roads)
    parcels = _parcels(roads)
    gaz = _Gazetteer(roads, plates)
    census = _Census(rng, cells)

    _road_components(census, roads)
    _junction_components(census, roads)
    _lay_out_places(rng, gaz, census, cells, roads, plates, parcels)

    files = DemoFiles(
        grid=out_dir / "grid.geojson",
        places=out_dir / "places.geojson",
        departments=out_dir / "departments.csv",
        components=out_dir / "components.csv",
    )
    _write_geojson(files.grid, [_cell_feature(c) for c in sorted(cells, key=lambda c: c.code)])
    _write_geojson(files.places, gaz.features)
    _write_csv(files.departments, ("code", "name", "kind"), DEPARTMENTS)
    _write_csv(files.components, ("id", "type_code", "dept_code", "lon", "lat", "state"), _component_rows(census))
    return files


def _lay_out_places(
    rng: random.Random,
    gaz: _Gazetteer,
    census: _Census,
    cells: list[_Cell],
    roads: dict[str, _Road],
    plates: list[_Plate],
    parcels: list[Polygon],
) -> None:
    """地片, 区片 (小区), 街巷, 门牌 and 兴趣点, with the components that belong to the POIs."""
    for name, x0, y0, x1, y1 in _ZONES:
        ring = [(x0, y0), (x1, y0 + 6.0), (x1, y1), ((x0 + x1) / 2, y1 - 8.0), (x0, y1)]
        gaz.add("地片", name, _polygon_json(Polygon(ring)))

    # Land use: landmarks take the parcel nearest their target; the south strip is industry, the centre offices.
    free = list(range(len(parcels)))
    use: dict[int, tuple[str, str, tuple[str, ...]]] = {}

    def take(target: tuple[float, float]) -> int:
        idx = min(free, key=lambda i: (parcels[i].centroid.distance(Point(target)), i))
        free.remove(idx)
        return idx

    for target, name, kind, aliases in _LANDMARKS:
        use[take(target)] = (name, kind, aliases)
    _, zx0, zy0, zx1, zy1 = _ZONES[0]
    industry = iter(rng.sample(_COMPANIES, len(_COMPANIES)))
    offices = iter(_OFFICE_NAMES)
    for idx in list(free):
        c = parcels[idx].centroid
        if c.y < _ZONES[2][4]:
            name = next(industry, None)
            if name:
                use[idx] = (name, "industry", ())
                free.remove(idx)
        elif zx0 <= c.x <= zx1 and zy0 <= c.y <= zy1:
            name = next(offices, None)
            if name:
                use[idx] = (name, "office", ())
                free.remove(idx)
    xq_names = [p + rng.choice(_XQ_SUFFIXES) for p in rng.sample(_XQ_PREFIXES, len(_XQ_PREFIXES))]
    xq_names = ["阳光小区", *[n for n in xq_names if not n.startswith("阳光")]]
    first = take(_YANGGUANG_TARGET)
    use[first] = (xq_names[0], "xiaoqu", ())
    for idx, name in zip(sorted(free), xq_names[1:], strict=False):
        use[idx] = (name, "xiaoqu", ())

    # 区片 first (polygons), then the 街巷 and 门牌, then the points of interest.
    xiaoqu = [(idx, u[0]) for idx, u in sorted(use.items()) if u[1] == "xiaoqu"]
    for idx, name in xiaoqu:
        c = parcels[idx].centroid
        gaz.add("区片", name, _polygon_json(parcels[idx]), gaz.address(c.x, c.y))
    for road in roads.values():
        gaz.add("街巷", road.name, {"type": "LineString", "coordinates": _ring(road.pts)})
    for plate in plates:
        gaz.add("门牌", plate.name, {"type": "Point", "coordinates": _lonlat(plate.x, plate.y)})

    parks = []
    for idx, (name, kind, aliases) in sorted(use.items()):
        poly = parcels[idx]
        c = poly.centroid
        if kind == "xiaoqu":
            gaz.poi(name, c.x, c.y)
            sides = ["东", "南", "西", "北"]
            if name == "阳光小区":
                gates = ["东", *rng.sample(["南", "西", "北"], 2)]
            else:
                gates = rng.sample(sides, rng.choice((1, 2, 2, 3)))
            for side in sorted(gates, key=sides.index):
                gaz.poi(f"{name}{side}门", *_edge_point(poly, side))
            census.add("03004", *_random_inside(rng, poly, 15.0))
            census.add("01049", *_random_inside(rng, poly, 15.0))
            census.add("01048", *_random_inside(rng, poly, 15.0))
            census.add("03008", *_edge_point(poly, gates[0]))
            if rng.random() < 0.3:
                census.add("01046", *_random_inside(rng, poly, 15.0))
            if rng.random() < 0.25:
                census.add("05002", *_random_inside(rng, poly, 15.0))
            continue
        gaz.poi(name, c.x, c.y, aliases)
        if kind == "park":
            parks.append((name, poly))
            census.add("04013", c.x, c.y)
            for _ in range(rng.randint(4, 8)):
                census.add("04007", *_random_inside(rng, poly, 8.0))
            for _ in range(rng.randint(2, 4)):
                census.add("03005", *_random_inside(rng, poly, 8.0))
            census.add("01046", *_random_inside(rng, poly, 10.0))
            if rng.random() < 0.6:
                census.add("04006", *_random_inside(rng, poly, 10.0))
        elif kind in ("hospital", "school", "office", "gov"):
            census.add("02001", *_random_inside(rng, poly, 10.0))
        elif kind == "industry":
            census.add("01048", *_random_inside(rng, poly, 10.0))

    def beside(plate: _Plate, extra: float = 6.0) -> tuple[float, float]:
        """A point just behind a door plate, away from the road (a shop front, an office door)."""
        return roads[plate.road].at(plate.s, plate.off + math.copysign(extra, plate.off))

    def free_plate(pred: Callable[[_Plate], bool]) -> _Plate:
        choices = [i for i, p in enumerate(plates) if i not in gaz.used_plates and pred(p)]
        i = rng.choice(choices)
        gaz.used_plates.add(i)
        return plates[i]

    comm_polys = [unary_union([c.poly for c in cells if c.community == k]) for k in range(len(_COMMUNITIES))]

    # Which community each plate stands in (-1: on a boundary road), computed once, vectorised.
    plate_comm = [-1] * len(plates)
    xs, ys = [p.x for p in plates], [p.y for p in plates]
    for k, poly in enumerate(comm_polys):
        for i, hit in enumerate(shapely.contains_xy(poly.buffer(-3.0), xs, ys)):
            if hit:
                plate_comm[i] = k
    plate_index = {id(p): i for i, p in enumerate(plates)}

    def in_street(s: int) -> Callable[[_Plate], bool]:
        return lambda p: plate_comm[plate_index[id(p)]] >= 0 and _COMMUNITIES[plate_comm[plate_index[id(p)]]][0] == s

    def in_community(k: int) -> Callable[[_Plate], bool]:
        return lambda p: plate_comm[plate_index[id(p)]] == k

    # Offices of the 街道 and 社区, police stations, clinics.
    for s, street in enumerate(STREETS):
        gaz.poi(f"{street}办事处", *beside(free_plate(in_street(s))), aliases=(f"{street}办",))
        gaz.poi(f"{street}社区卫生服务中心", *beside(free_plate(in_street(s))))
        if s < 3:
            gaz.poi(f"{street.removesuffix('街道')}派出所", *beside(free_plate(in_street(s))))
    for k, (_, comm, _) in enumerate(_COMMUNITIES):
        plate = free_plate(in_community(k))
        gaz.poi(f"{comm}居民委员会", *beside(plate), aliases=(f"{comm}居委会",))
        census.add("03008", *beside(plate, 2.0))

    # Markets with a public toilet next to them; toilets by the parks and at some junctions.
    toilets: list[tuple[str, tuple[float, float]]] = []
    markets = (
        ("东门农贸市场", "东门街"),
        ("新华农贸市场", "新华路"),
        ("北苑农贸市场", "北环路"),
        ("滨江农贸市场", "滨江路"),
    )
    for market, road in markets:
        plate = free_plate(lambda p, road=road: p.road == road)
        x, y = gaz.poi(market, *beside(plate, 12.0), aliases=(market.replace("农贸", "菜"),))
        toilets.append((f"{market}公厕", (x + 8.0, y + 6.0)))
    for name, poly in parks:
        toilets.append((f"{name}公厕", _random_inside(rng, poly, 12.0)))
    junctions = [(r.name, s, o) for r in roads.values() for s, o in r.crossings if r.half >= 9.0]
    for rname, s, other in rng.sample(junctions, min(8, len(junctions))):
        road = roads[rname]
        for d in (40.0, -40.0, 70.0, -70.0):
            if 10.0 < s + d < road.length - 10.0 and road.clear(s + d, 6.0, roads):
                toilets.append((f"{rname}{other}口公厕", road.at(s + d, road.half + 8.0)))
                break
    for name, (x, y) in toilets:
        name = gaz.unique(name)
        gaz.poi(name, x, y, aliases=(name.replace("公厕", "公共厕所"),))
        census.add("03001", x, y)
        census.add("03003", x + 3.0, y - 3.0)

    # Bus stops a little past each junction on the bus routes.
    for rname in _BUS_ROADS:
        road = roads[rname]
        for k, (s, other) in enumerate(road.crossings):
            side = 1 if k % 2 else -1
            for d in (35.0, -35.0, 55.0, -55.0):
                if 10.0 < s + d < road.length - 10.0 and road.clear(s + d, 8.0, roads):
                    x, y = road.at(s + d, side * (road.half - 1.0))
                    name = gaz.unique(f"{rname}{other}口公交站")
                    gaz.poi(name, x, y, aliases=(name.removesuffix("公交站") + "站",))
                    census.add("02004", x, y)
                    break

    # Shops, banks and hotels along the busy streets, with their shop signs.
    busy = {"人民路", "解放路", "中山路", "东门街", "百花巷", "石板巷", "新华路", "和平路", "建设路", "学府街"}
    shop_names = [p + k for p in _SHOP_PREFIXES for k in _SHOP_KINDS]
    rng.shuffle(shop_names)
    n_shops = 70
    for bank in _BANKS:
        plate = free_plate(lambda p: p.road in busy)
        gaz.poi(bank, *beside(plate))
        census.add("03007", *beside(plate, 1.0))
    for name in shop_names[:n_shops]:
        plate = free_plate(lambda p: p.road in busy)
        gaz.poi(gaz.unique(name), *beside(plate))
        census.add("03007", *beside(plate, 1.0))


def _cell_feature(cell: _Cell) -> dict[str, Any]:
    street, community, _ = _COMMUNITIES[cell.community]
    return {
        "type": "Feature",
        "geometry": _polygon_json(cell.poly),
        "properties": {
            "code": cell.code,
            "name": cell.name,
            "street_name": STREETS[street],
            "community_name": community,
            "area_class": cell.area_class,
        },
    }


def _component_rows(census: _Census) -> list[tuple[str, ...]]:
    seq: dict[str, int] = {}
    rows = []
    for type_code, x, y, state, dept in census.rows:
        seq[type_code] = seq.get(type_code, 0) + 1
        lon, lat = _lonlat(x, y)
        ident = f"{DISTRICT_CODE}{type_code}{seq[type_code]:06d}"
        rows.append((ident, type_code, dept, f"{lon:.7f}", f"{lat:.7f}", state))
    return sorted(rows)


def _write_geojson(path: Path, features: list[dict[str, Any]]) -> None:
    """One feature per line: stable bytes, readable diffs."""
    lines = [json.dumps(f, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for f in features]
    path.write_text('{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n", encoding="utf-8")


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
