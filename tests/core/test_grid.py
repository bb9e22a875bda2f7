"""Grid import and point → cell, on the real Hangzhou 下城区 grid and on small files made here."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import shapely
from pyproj import Geod
from shapely.geometry import box, mapping, shape
from sqlmodel import Session, select

from core.datafile import DataError
from core.grid import GridIndex, import_grid, reading_order, standard_code
from core.models import GridCell, Region
from tests.conftest import shared_path

HZ = ("data", "hangzhou_xiacheng_gis")
POINT_FILES = (
    "shops_doorplate_points.geojson",
    "poi_food.geojson",
    "poi_scenic.geojson",
    "poi_accommodation.geojson",
    "public_facilities.geojson",
)


def write_collection(path: Path, features: list[dict], **extra) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", **extra, "features": features}, ensure_ascii=False))
    return path


def cell_feature(geom, **props) -> dict:
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


@pytest.fixture
def hangzhou(engine):
    path = shared_path(*HZ, "wangge_grids.geojson")
    result = import_grid(engine, path, district="330105", district_name="下城区")
    return path, result


def raw_cells(path: Path) -> dict[str, shapely.Geometry]:
    """The file's cells computed independently: union of every polygon with the same 网格编号."""
    parts = defaultdict(list)
    for f in json.loads(path.read_text())["features"]:
        parts[f["properties"]["网格编号"]].append(shapely.make_valid(shape(f["geometry"])))
    return {code: shapely.union_all(geoms) for code, geoms in parts.items()}


def test_hangzhou_grid_imports_all_features_merged_per_cell(engine, hangzhou):
    path, result = hangzhou
    expected = raw_cells(path)
    assert result.features == 332
    assert result.cells == len(expected)
    assert result.merged == 332 - len(expected)
    with Session(engine) as s:
        cells = s.exec(select(GridCell)).all()
        regions = {r.code: r for r in s.exec(select(Region)).all()}
    assert {c.local_code for c in cells} == set(expected)
    for c in cells:
        assert len(c.code) == 15 and c.code.startswith("330105"), c.code
        street, community = regions[c.street_code], regions[c.community_code]
        assert c.local_code.startswith(street.local_code + "-")
        assert c.local_code.startswith(community.local_code + "-")
        assert street.name.endswith("街道") and community.parent_code == street.code
        true_area = abs(Geod(ellps="WGS84").geometry_area_perimeter(expected[c.local_code])[0])
        assert c.area_m2 == pytest.approx(true_area, rel=0.01)
    assert sum(r.level == "street" for r in regions.values()) == 8


def test_every_hangzhou_point_lands_in_the_cell_whose_polygon_contains_it(engine, hangzhou):
    path, _ = hangzhou
    cells = raw_cells(path)
    index = GridIndex.load(engine)
    with Session(engine) as s:
        local_of = {c.code: c.local_code for c in s.exec(select(GridCell)).all()}
    checked = outside = 0
    for name in POINT_FILES:
        for f in json.loads(shared_path(*HZ, name).read_text())["features"]:
            point = shape(f["geometry"])
            containing = {code for code, geom in cells.items() if geom.covers(point)}
            hit = index.cell_at(point.x, point.y)
            if not containing:
                assert hit is None, (name, f["properties"])
                outside += 1
            else:
                assert hit is not None and local_of[hit.code] in containing, (name, f["properties"])
            checked += 1
    assert checked > 1900 and outside < checked


def test_bulk_lookup_agrees_with_single_lookups(engine, hangzhou):
    import numpy as np

    index = GridIndex.load(engine)
    rng = np.random.default_rng(7)
    lons, lats = rng.uniform(120.14, 120.21, 2000), rng.uniform(30.25, 30.35, 2000)
    assert index.cells_at(lons, lats) == [index.cell_at(x, y) for x, y in zip(lons, lats, strict=True)]


def test_standard_codes_follow_north_to_south_west_to_east(engine, tmp_path):
    # one community of 2 rows × 3 columns, listed in shuffled order with local codes
    cells = {
        (r, c): box(120 + c * 0.001, 30 - r * 0.001, 120.001 + c * 0.001, 30.001 - r * 0.001)
        for r in range(2)
        for c in range(3)
    }
    shuffled = [(1, 2), (0, 0), (1, 0), (0, 2), (0, 1), (1, 1)]
    features = [
        cell_feature(cells[rc], 网格编号=f"AA-1-{i}", 所属组织=f"甲街道乙社区第{i}网格")
        for i, rc in enumerate(shuffled)
    ]
    path = write_collection(tmp_path / "g.geojson", features)
    import_grid(engine, path, district="339901")
    with Session(engine) as s:
        by_local = {c.local_code: c.code for c in s.exec(select(GridCell)).all()}
    order = [by_local[f"AA-1-{shuffled.index(rc)}"] for rc in sorted(cells)]
    assert order == [f"339901001001{n:03d}" for n in range(1, 7)]


def test_reading_order_is_rows_then_columns():
    shapes = [box(2, 0, 3, 1), box(0, 1, 1, 2), box(1, 1, 2, 2), box(0, 0, 1, 1)]
    assert reading_order(shapes) == [1, 2, 3, 0]


def test_legacy_14_digit_codes_are_widened():
    assert standard_code("22020600100109") == "220206001001009"
    assert standard_code("220206001001009") == "220206001001009"
    assert standard_code("SQ-3-2") is None


def test_standard_code_file_keeps_codes_and_area_classes(engine, tmp_path):
    features = [
        cell_feature(box(120, 30, 120.001, 30.001), code="339901001001001", area_class="A", name="一号网格"),
        cell_feature(box(120.001, 30, 120.002, 30.001), code="33990100100100", name="二号网格"),  # legacy 14
    ]
    import_grid(engine, write_collection(tmp_path / "s.geojson", features), district="339901")
    with Session(engine) as s:
        cells = {c.code: c for c in s.exec(select(GridCell)).all()}
    assert set(cells) == {"339901001001001", "339901001001000"}
    assert cells["339901001001001"].area_class == "A"
    assert cells["339901001001000"].area_class == "B"
    assert 9_000 < cells["339901001001001"].area_m2 < 12_000  # 0.001° × 0.001° at 30°N


def test_repairable_geometry_is_repaired_and_reported(engine, tmp_path):
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[120, 30], [120.001, 30.001], [120.001, 30], [120, 30.001], [120, 30]]],
    }
    features = [{"type": "Feature", "geometry": bowtie, "properties": {"code": "339901001001001"}}]
    result = import_grid(engine, write_collection(tmp_path / "b.geojson", features), district="339901")
    assert result.repaired == [0] and result.cells == 1


def _cells(engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(GridCell)).all())


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"type": "FeatureCollection", "features": [\n  {"type": "Feature",, }]}', "第 2 行"),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        cell_feature(box(120, 30, 120.001, 30.001), code="339901001001001"),
                        {
                            "type": "Feature",
                            "geometry": {"type": "LineString", "coordinates": [[120, 30], [121, 31]]},
                            "properties": {"code": "339901001001002"},
                        },
                    ],
                }
            ),
            "features[1]",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
                    "features": [cell_feature(box(120, 30, 120.001, 30.001), code="339901001001001")],
                }
            ),
            "crs",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        cell_feature(box(13_358_000, 3_503_000, 13_358_100, 3_503_100), code="339901001001001")
                    ],
                }
            ),
            "features[0]",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [cell_feature(box(120, 30, 120.001, 30.001), code="33990100100X")],
                }
            ),
            "features[0]",
        ),
    ],
    ids=["broken-json", "wrong-geometry-type", "unknown-crs", "projected-coordinates", "bad-code"],
)
def test_bad_files_are_refused_with_their_place_and_change_nothing(engine, hangzhou, tmp_path, content, where):
    before = _cells(engine)
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        import_grid(engine, path, district="339901")
    assert where in str(err.value) and str(path) in str(err.value)
    assert _cells(engine) == before


def test_unknown_crs_option_is_refused(engine, tmp_path):
    path = write_collection(
        tmp_path / "g.geojson", [cell_feature(box(120, 30, 120.001, 30.001), code="339901001001001")]
    )
    with pytest.raises(DataError, match="未知坐标系"):
        import_grid(engine, path, district="339901", crs="utm50")


def test_points_outside_every_cell_say_so(engine, hangzhou):
    index = GridIndex.load(engine)
    assert index.cell_at(121.5, 31.2) is None  # Shanghai


def test_community_names_with_village_words_are_kept_whole(engine, hangzhou):
    with Session(engine) as s:
        names = {r.name for r in s.exec(select(Region).where(Region.level == "community")).all()}
    assert "延安新村社区" in names and "延安新村" not in names


def test_district_option_must_match_standard_codes(engine, tmp_path):
    path = write_collection(
        tmp_path / "s.geojson", [cell_feature(box(120, 30, 120.001, 30.001), code="339901001001001")]
    )
    with pytest.raises(DataError, match="与 --district 330105 不符"):
        import_grid(engine, path, district="330105", district_given=True)
