"""Place text → point → cell on the real Hangzhou gazetteer; reverse geocoding; geopy fallbacks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import shapely
from geopy.location import Location
from shapely.geometry import shape
from sqlmodel import Session, select

from core.crs import distance_m
from core.datafile import DataError
from core.gazetteer import Gazetteer, import_places
from core.geocoder import GazetteerGeocoder, Located, NotLocated, PlaceLocator, fallback_geocoders
from core.grid import GridIndex, import_grid
from core.models import Place
from tests.conftest import shared_path

HZ = ("data", "hangzhou_xiacheng_gis")


def shops() -> list[dict]:
    return json.loads(shared_path(*HZ, "shops_doorplate_points.geojson").read_text())["features"]


@pytest.fixture
def hz_grid(engine):
    import_grid(engine, shared_path(*HZ, "wangge_grids.geojson"), district="330105", district_name="下城区")
    return engine


def locator(engine) -> PlaceLocator:
    return PlaceLocator(Gazetteer.load(engine), GridIndex.load(engine))


def test_every_door_plate_address_lands_on_its_shop(hz_grid):
    import_places(hz_grid, shared_path(*HZ, "shops_doorplate_points.geojson"))
    loc = locator(hz_grid)
    for f in shops():
        result = loc.locate(f["properties"]["商铺地址"])
        x, y = f["geometry"]["coordinates"]
        assert isinstance(result, Located), f["properties"]
        assert distance_m(result.lon, result.lat, x, y) < 100, (f["properties"], result)
        assert result.grid is not None and result.confidence > 0.8


def test_held_out_door_plates_are_interpolated_within_100_m(hz_grid, tmp_path):
    """Five-fold: each fifth of the shops is located from the other four fifths alone."""
    features = shops()
    near = total = 0
    for fold in range(5):
        train = [f for i, f in enumerate(features) if i % 5 != fold]
        path = tmp_path / "shops.geojson"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": train}, ensure_ascii=False))
        import_places(hz_grid, path)
        loc = locator(hz_grid)
        for f in features[fold::5]:
            result = loc.locate(f["properties"]["商铺地址"])
            x, y = f["geometry"]["coordinates"]
            total += 1
            near += isinstance(result, Located) and distance_m(result.lon, result.lat, x, y) <= 100
    assert total == len(features) == 164
    assert near / total >= 0.9, f"{near}/{total} within 100 m"


@pytest.mark.parametrize(
    "text", ["在百井坊巷3号附近", "百井方巷3号", "百井坊巷三号", "浙江省杭州市百井坊巷3号", "百井坊巷 3 号"]
)
def test_typos_fillers_and_prefixes_still_land(hz_grid, text):
    import_places(hz_grid, shared_path(*HZ, "shops_doorplate_points.geojson"))
    target = next(f for f in shops() if f["properties"]["商铺地址"] == "百井坊巷3号")
    result = locator(hz_grid).locate(text)
    assert isinstance(result, Located), result
    assert distance_m(result.lon, result.lat, *target["geometry"]["coordinates"]) < 30


def test_crossings_are_derived_from_road_lines(hz_grid):
    path = shared_path(*HZ, "roads_named_lines.geojson")
    result = import_places(hz_grid, path)
    assert result.crossings > 0
    lines = {}
    for f in json.loads(path.read_text())["features"]:
        lines.setdefault(f["properties"]["RNAME"], []).append(shape(f["geometry"]))
    meet = shapely.union_all(lines["文晖路"]).intersection(shapely.union_all(lines["绍兴路"]))
    for text in ("文晖路和绍兴路交叉口", "绍兴路与文晖路路口", "文晖路绍兴路口"):
        found = locator(hz_grid).locate(text)
        assert isinstance(found, Located) and found.method == "路口", (text, found)
        assert meet.distance(shapely.Point(found.lon, found.lat)) < 1e-6


def test_landmarks_with_relations_and_unknown_places(hz_grid):
    import_places(hz_grid, shared_path(*HZ, "poi_scenic.geojson"))
    loc = locator(hz_grid)
    found = loc.locate("艮山古樟对面")
    assert isinstance(found, Located) and found.matched == "艮山古樟" and "对面" in found.note
    assert found.confidence < loc.locate("艮山古樟").confidence
    missing = loc.locate("火星基地三号门")
    assert isinstance(missing, NotLocated) and "找不到" in missing.reason
    assert isinstance(loc.locate("   "), NotLocated)


def test_reverse_names_the_nearest_door_plate(hz_grid):
    import_places(hz_grid, shared_path(*HZ, "shops_doorplate_points.geojson"))
    target = next(f for f in shops() if f["properties"]["商铺地址"].startswith("屏风街"))
    x, y = target["geometry"]["coordinates"]
    result = locator(hz_grid).reverse(x + 0.00005, y)  # ~5 m east
    assert isinstance(result, Located)
    assert "屏风街" in result.matched and result.grid is not None
    assert isinstance(locator(hz_grid).reverse(121.5, 31.2), NotLocated)


def test_gazetteer_csv_with_synonym_kinds_imports(hz_grid):
    result = import_places(hz_grid, shared_path(*HZ, "gazetteer_flat.csv"))
    assert result.by_kind["兴趣点"] > 1000 and result.by_kind["门牌"] == 164 and result.by_kind["区域"] == 83
    found = locator(hz_grid).locate("屏风街10号")
    assert isinstance(found, Located) and found.method.startswith("门牌")


def test_bad_gazetteer_rows_are_refused_and_nothing_is_stored(hz_grid, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("kind,name,lon,lat\n兴趣点,好地方,120.1,30.2\n兴趣点,坏地方,东经120,30.2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"第 3 行 字段 lon"):
        import_places(hz_grid, path)
    path.write_text("kind,name,lon,lat\n宇宙,好地方,120.1,30.2\n", encoding="utf-8")
    with pytest.raises(DataError, match="未知地名类型"):
        import_places(hz_grid, path)
    with Session(hz_grid) as s:
        assert s.exec(select(Place)).all() == []


def test_reimporting_a_file_replaces_its_entries(hz_grid):
    path = shared_path(*HZ, "poi_scenic.geojson")
    import_places(hz_grid, path)
    import_places(hz_grid, path)
    with Session(hz_grid) as s:
        assert len(s.exec(select(Place).where(Place.source == path.name)).all()) == 62


class FakeNominatim(BaseHTTPRequestHandler):
    """Speaks the part of Nominatim's /search API that geopy uses."""

    def do_GET(self):
        body = json.dumps(
            [{"lat": "30.2741", "lon": "120.1551", "display_name": "西湖文化广场, 杭州市", "place_id": 1}]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def nominatim():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNominatim)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def test_geopy_face_and_fallback_to_nominatim(hz_grid, nominatim):
    import_places(hz_grid, shared_path(*HZ, "poi_scenic.geojson"))
    fallbacks = fallback_geocoders(
        "nominatim", user_agent="gridline-test", nominatim_domain=nominatim, baidu_api_key="", scheme="http"
    )
    geocoder = GazetteerGeocoder(locator(hz_grid), fallbacks)
    local = geocoder.geocode("艮山古樟")
    assert isinstance(local, Location) and local.raw["method"] == "兴趣点"
    remote = geocoder.locate("紫金港校区")
    assert isinstance(remote, Located) and remote.method == "外部:Nominatim"
    assert remote.lat == pytest.approx(30.2741) and remote.grid is not None
    back = geocoder.reverse("30.2741, 120.1551")
    assert back is None or isinstance(back, Location)


def test_unknown_fallback_names_are_refused():
    with pytest.raises(ValueError, match="未知的外部地理编码服务"):
        fallback_geocoders("google", user_agent="x", nominatim_domain="x", baidu_api_key="")
    with pytest.raises(ValueError, match="BAIDU_API_KEY"):
        fallback_geocoders("baidu", user_agent="x", nominatim_domain="x", baidu_api_key="")


def test_unsupported_file_type(hz_grid, tmp_path):
    path = tmp_path / "places.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match="不支持的文件类型"):
        import_places(hz_grid, Path(path))


def test_a_bare_road_known_only_by_its_door_plates(hz_grid):
    import_places(hz_grid, shared_path(*HZ, "shops_doorplate_points.geojson"))
    found = locator(hz_grid).locate("屏风街")
    assert isinstance(found, Located) and found.method == "街巷" and found.confidence < 0.5


def test_relation_after_a_door_plate_is_kept(hz_grid):
    import_places(hz_grid, shared_path(*HZ, "shops_doorplate_points.geojson"))
    plain, opposite = locator(hz_grid).locate("百井坊巷3号"), locator(hz_grid).locate("百井坊巷3号对面")
    assert isinstance(opposite, Located) and opposite.matched == plain.matched
    assert "对面" in opposite.note and opposite.confidence < plain.confidence
