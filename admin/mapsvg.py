"""The city as a picture: 万米单元网格 coloured by 街道, 社区 borders, roads and their names, as one SVG.

Drawn on the server from the database so it works offline (no tile server is reachable from a centre's
intranet either); used for the console's map page and for the picture of the demo city in the docs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import GridCell, Place, Region

PALETTE = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69", "#fccde5", "#ffffb3", "#bc80bd", "#ccebc5")
AREA_CLASS_STROKE = {"A": "#b2182b", "B": "#ffffff", "C": "#4d4d4d"}
LABEL_PX = 13  # a Chinese character is about as wide as the font is high
LABEL_SPOTS = (0.3, 0.55, 0.15, 0.75, 0.4, 0.9)  # along the road: not the middle first, where main roads cross


class Projection:
    """Equirectangular around the grid's centre: within a district the distortion is far below a pixel."""

    def __init__(self, bounds: tuple[float, float, float, float], width: int) -> None:
        minx, miny, maxx, maxy = bounds
        self.kx = math.cos(math.radians((miny + maxy) / 2))
        self.minx, self.maxy = minx, maxy
        self.scale = width / max((maxx - minx) * self.kx, 1e-9)
        self.width, self.height = width, int((maxy - miny) * self.scale) + 1

    def path(self, geom: BaseGeometry) -> str:
        parts = []
        for poly in getattr(geom, "geoms", [geom]):
            rings = [poly.exterior, *poly.interiors] if poly.geom_type == "Polygon" else [poly]
            for ring in rings:
                pts = [self.xy(x, y) for x, y in ring.coords]
                parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + ("Z" if ring.is_ring else ""))
        return "".join(parts)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.minx) * self.kx * self.scale, (self.maxy - lat) * self.scale


def _label_spot(
    line: BaseGeometry, proj: Projection, chars: int, taken: list[tuple[float, float, float, float]]
) -> tuple[float, float]:
    """The first spot along the road whose label box overlaps no label placed before (roads that start at the
    same crossing would otherwise print their names on top of each other); the first spot when all collide."""
    spots = [proj.xy(p.x, p.y) for p in (line.interpolate(f, normalized=True) for f in LABEL_SPOTS)]
    for x, y in spots:
        box = (x, y - 4 - LABEL_PX, x + chars * LABEL_PX, y - 4)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            taken.append(box)
            return x, y
    return spots[0]


def render(engine: Engine, width: int = 1000) -> str:
    """SVG of the grid, or a short message in SVG when there is no grid yet."""
    with Session(engine) as session:
        cells = session.exec(select(GridCell).order_by(GridCell.code)).all()
        regions = {r.code: r.name for r in session.exec(select(Region)).all()}
        roads = session.exec(select(Place).where(Place.kind == "街巷")).all()
    if not cells:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="60"><text x="10" y="35" '
            'font-size="16">尚未导入单元网格</text></svg>'
        )
    geoms = [shapely.from_wkt(c.geometry_wkt) for c in cells]
    proj = Projection(tuple(shapely.total_bounds(geoms)), width)
    streets = sorted({c.street_code for c in cells})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(streets)}
    legend_h = 24 * len(streets) + 16
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {proj.width} {proj.height + legend_h}" '
        f'width="{proj.width}" height="{proj.height + legend_h}" font-family="WenQuanYi Micro Hei, sans-serif">',
        '<rect width="100%" height="100%" fill="#f7f7f7"/>',
        '<g stroke-width="0.6">',
    ]
    for cell, geom in zip(cells, geoms, strict=True):
        title = escape(
            f"{cell.code} {regions.get(cell.street_code, '')}{regions.get(cell.community_code, '')}"
            f"{cell.name}（{cell.area_class} 类）"
        )
        out.append(
            f'<path d="{proj.path(geom)}" fill="{colour[cell.street_code]}" '
            f'stroke="{AREA_CLASS_STROKE.get(cell.area_class, "#fff")}"><title>{title}</title></path>'
        )
    out.append("</g>")
    communities: dict[str, list[BaseGeometry]] = defaultdict(list)
    for cell, geom in zip(cells, geoms, strict=True):
        communities[cell.community_code].append(geom)
    out.append('<g fill="none" stroke="#222" stroke-width="1.4" stroke-dasharray="6 3">')
    out += [f'<path d="{proj.path(shapely.union_all(g).boundary)}"/>' for g in communities.values()]
    out.append('</g><g fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" opacity="0.9">')
    labels: list[str] = []
    taken: list[tuple[float, float, float, float]] = []
    for road in roads:
        if road.geometry_wkt:
            line = shapely.from_wkt(road.geometry_wkt)
            out.append(f'<path d="{proj.path(line)}"/>')
            x, y = _label_spot(line, proj, len(road.name), taken)
            labels.append(
                f'<text x="{x:.0f}" y="{y - 4:.0f}" font-size="{LABEL_PX}" fill="#111" stroke="#fff" '
                f'stroke-width="3" paint-order="stroke">{escape(road.name)}</text>'
            )
    out.append("</g>")
    out += labels
    y = proj.height + 8
    for street in streets:
        out.append(
            f'<rect x="10" y="{y}" width="16" height="16" fill="{colour[street]}"/>'
            f'<text x="32" y="{y + 13}" font-size="14">{escape(regions.get(street, street))} {street}</text>'
        )
        y += 24
    out.append(
        f'<text x="{proj.width - 10}" y="{proj.height + 24}" font-size="13" text-anchor="end">'
        f"{len(cells)} 个单元网格 · 红边 A 类区域 · 灰边 C 类区域 · 虚线为社区界 · 白线为道路</text></svg>"
    )
    return "\n".join(out)
