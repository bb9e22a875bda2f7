"""Real data: locate the 164 door-plate addresses of Hangzhou 下城区 shops, five-fold — each fifth from a
gazetteer built of the other four fifths only (so every answer is an interpolation), beside the plain fuzzy
name lookup on the same folds. Needs ../shared/data (not shipped); says so when it is absent."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from rapidfuzz import fuzz, process

from core import db
from core.crs import distance_m
from core.gazetteer import Gazetteer, import_places
from core.geocoder import Located, PlaceLocator
from core.grid import GridIndex, import_grid

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hangzhou_xiacheng_gis"


def run(machine: str) -> str:
    if not DATA.exists():
        return f"### Hangzhou door plates\n\nSkipped: {DATA} is absent.\n"
    shops = json.loads((DATA / "shops_doorplate_points.geojson").read_text())["features"]
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{tmp}/hz.db")
        db.upgrade(engine)
        import_grid(engine, DATA / "wangge_grids.geojson", district="330105", district_name="下城区")
        grid = GridIndex.load(engine)
        for fold in range(5):
            train = [f for i, f in enumerate(shops) if i % 5 != fold]
            path = Path(tmp) / "shops.geojson"
            path.write_text(json.dumps({"type": "FeatureCollection", "features": train}, ensure_ascii=False))
            import_places(engine, path)
            locator = PlaceLocator(Gazetteer.load(engine), grid)
            names = {f["properties"]["商铺地址"]: f["geometry"]["coordinates"] for f in train}
            for f in shops[fold::5]:
                x, y = f["geometry"]["coordinates"]
                r = locator.locate(f["properties"]["商铺地址"])
                ours.append(distance_m(r.lon, r.lat, x, y) if isinstance(r, Located) else float("inf"))
                hit = process.extractOne(f["properties"]["商铺地址"], list(names), scorer=fuzz.WRatio)
                plain.append(distance_m(*names[hit[0]], x, y))
        engine.dispose()

    def row(label: str, errors: list[float]) -> str:
        within = sum(e <= 100 for e in errors) / len(errors)
        return f"| {label} | {within:.1%} | {statistics.median(errors):.1f} | {max(errors):.0f} |"

    return f"""### Real addresses: Hangzhou 下城区 door plates, five-fold held out

{machine}. `python -m bench hangzhou` — the 164 shop addresses of `shared/data/hangzhou_xiacheng_gis` on 百井坊巷,
屏风街 and 狮虎桥路; each is located from the other folds' shops only.

| method | within 100 m | median error m | worst m |
|---|---:|---:|---:|
{row("Gridline `PlaceLocator.locate` (same-parity interpolation)", ours)}
{row("plain rapidfuzz: the nearest-spelled known address", plain)}

Acceptance: ≥ 90 % within 100 m.
"""
