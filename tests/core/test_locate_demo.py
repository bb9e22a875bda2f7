"""The place descriptions a citizen writes, on the demo city: each lands on the entry it names."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import shape

from core import db, democity
from core.crs import distance_m
from core.gazetteer import Gazetteer
from core.geocoder import Located, NotLocated, PlaceLocator
from core.grid import GridIndex


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return democity.generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def locator(demo_db_url) -> PlaceLocator:
    engine = db.make_engine(demo_db_url)
    yield PlaceLocator(Gazetteer.load(engine), GridIndex.load(engine))
    engine.dispose()


def truth(demo, name: str):
    for f in json.loads(demo.places.read_text())["features"]:
        if f["properties"]["name"] == name or name in f["properties"].get("aliases", []):
            return shape(f["geometry"])
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("text", "entry", "within_m"),
    [
        ("人民路88号", "人民路88号", 1),
        ("在人民路88号门口", "人民路88号", 1),
        ("阳光小区东门", "阳光小区东门", 1),
        ("市一医院对面", "市一医院", 1),
        ("老街片区", "老街片区", 200),
    ],
)
def test_descriptions_land_on_the_named_place(locator, demo, text, entry, within_m):
    found = locator.locate(text)
    assert isinstance(found, Located), found
    target = truth(demo, entry)
    point = target if target.geom_type == "Point" else target.representative_point()
    assert distance_m(found.lon, found.lat, point.x, point.y) <= within_m, found
    assert found.grid is not None and found.grid.code.startswith(democity.DISTRICT_CODE)


def test_crossing_of_two_demo_roads(locator, demo):
    a, b = truth(demo, "人民路"), truth(demo, "解放路")
    found = locator.locate("人民路和解放路交叉口")
    assert isinstance(found, Located) and found.method == "路口"
    meet = a.intersection(b)
    assert distance_m(found.lon, found.lat, meet.centroid.x, meet.centroid.y) < 5


def test_a_gate_missing_from_the_gazetteer_is_put_on_that_side(locator, demo):
    estate = truth(demo, "阳光小区")
    found = locator.locate("阳光小区北门")
    assert isinstance(found, Located) and "北门" in found.note
    assert found.lat > estate.centroid.y and found.confidence < 0.9


def test_unknown_and_empty_descriptions_say_so(locator):
    for text in ("月球背面", "", "！！！"):
        assert isinstance(locator.locate(text), NotLocated)
