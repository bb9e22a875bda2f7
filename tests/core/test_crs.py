"""Coordinate conversions, checked against real AMap data, published pairs and their own inverses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.crs import (
    CRS_NAMES,
    UnknownCRS,
    distance_m,
    from_wgs84,
    from_wgs84_array,
    parse_crs,
    to_wgs84,
    to_wgs84_array,
)
from tests.conftest import shared_path

OFFSET_CRS = ("gcj02", "bd09")
# Upper bound on the metres in a degree of arc on WGS-84, for error bounds on whole arrays at once.
M_PER_DEG = 112_000.0


def _china_points(n: int = 400, seed: int = 20240601) -> list[tuple[float, float]]:
    """A jittered grid over mainland China, plus the meridian 105°E where the offset has a sqrt cusp."""
    rng = np.random.default_rng(seed)
    side = math.isqrt(n)
    lon = np.linspace(74.0, 134.0, side)[:, None] + rng.uniform(-1.0, 1.0, (side, side))
    lat = np.linspace(19.0, 53.0, side)[None, :] + rng.uniform(-1.0, 1.0, (side, side))
    points = list(zip(lon.ravel().tolist(), lat.ravel().tolist(), strict=True))
    points += [(105.0, 35.0), (105.0, 30.0), (105.0 + 1e-9, 30.0), (105.0 - 1e-7, 40.0)]
    return points


CHINA = _china_points()

OUTSIDE = [
    (139.6917, 35.6895),  # Tokyo
    (-0.1276, 51.5072),  # London
    (151.2093, -33.8688),  # Sydney
    (-74.0060, 40.7128),  # New York
    (37.6173, 55.7558),  # Moscow
    (106.8456, -6.2088),  # Jakarta: south of the box although on China's meridians
    (71.9, 39.5),  # just west of the box
]


# --- real data: AMap's GCJ-02 next to WGS-84 for the same POIs ---------------------------------------------


@pytest.fixture(scope="module")
def scenic_pois() -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """(name, WGS-84 geometry, AMap GCJ-02 location) for the 62 sights of former 下城区."""
    path = shared_path("data", "hangzhou_xiacheng_gis", "poi_scenic.geojson")
    doc = json.loads(path.read_text(encoding="utf-8"))
    pois = []
    for feature in doc["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        glon, glat = (float(v) for v in feature["properties"]["location"].split(","))
        pois.append((feature["properties"]["name"], (lon, lat), (glon, glat)))
    assert len(pois) == 62
    return pois


def test_amap_gcj02_to_wgs84_matches_geometry(scenic_pois):
    errors = [(distance_m(*to_wgs84(*gcj, "gcj02"), *wgs), name) for name, wgs, gcj in scenic_pois]
    worst, name = max(errors)
    assert worst < 5.0, f"max error {worst:.3f} m at {name} over {len(errors)} POIs"


def test_wgs84_to_gcj02_matches_amap_location(scenic_pois):
    errors = [(distance_m(*from_wgs84(*wgs, "gcj02"), *gcj), name) for name, wgs, gcj in scenic_pois]
    worst, name = max(errors)
    assert worst < 5.0, f"max error {worst:.3f} m at {name} over {len(errors)} POIs"


def test_forward_formula_reproduces_the_files_conversion(scenic_pois):
    # The two tests above agree only to ≈ 1.7 m, every POI alike. That is the file, not us: its WGS-84 geometry is
    # the crude one-step inverse g - (gcj02(g) - g) of AMap's location. Rebuilding that from our forward
    # transform matches to well under a millimetre, which checks our forward formula against the independent
    # implementation that produced the file, and shows the 1.7 m is the one-step method's own error.
    errors = []
    for name, wgs, gcj in scenic_pois:
        flon, flat = from_wgs84(*gcj, "gcj02")
        one_step = (2 * gcj[0] - flon, 2 * gcj[1] - flat)
        errors.append((distance_m(*one_step, *wgs), name))
    worst, name = max(errors)
    assert worst < 0.001, f"max error {worst:.6f} m at {name}"


def test_amap_locations_are_exactly_inverted(scenic_pois):
    for name, _, gcj in scenic_pois:
        back = from_wgs84(*to_wgs84(*gcj, "gcj02"), "gcj02")
        assert distance_m(*back, *gcj) < 0.001, name


# --- independently published pairs -------------------------------------------------------------------------

# Alibaba Cloud 地址标准化 API, TransferCoord, documented response example (a point in 余杭区, Hangzhou):
# https://help.aliyun.com/zh/address-purification/addrpapi/developer-reference/coordinate-system-conversion
ALIYUN = {"gcj02": (120.026268, 30.279164), "bd09": (120.032768, 30.285238), "wgs84": (120.021519, 30.281543)}
# Beijing railway station, from the examples of the R package geoChina (caijun/geoChina, conv() / bd2wgs()),
# "verified by google earth"; 5 decimals, so ±1 m of rounding:
# https://rdocumentation.org/packages/geoChina/versions/1.3.0/topics/conv
BEIJING_STATION = {"wgs84": (116.42079, 39.90105), "gcj02": (116.42703, 39.90245), "bd09": (116.43351, 39.90851)}


def test_aliyun_gcj02_bd09_pair():
    # Their GCJ-02 and BD-09 are given to 6 decimals (≈ 0.1 m); both describe the same WGS-84 point.
    from_gcj = to_wgs84(*ALIYUN["gcj02"], "gcj02")
    from_bd = to_wgs84(*ALIYUN["bd09"], "bd09")
    assert distance_m(*from_gcj, *from_bd) < 0.2
    assert distance_m(*from_wgs84(*from_gcj, "bd09"), *ALIYUN["bd09"]) < 0.2


def test_aliyun_wgs84_within_a_few_metres():
    # Their WGS-84 is the one-step approximate inverse (like the POI file), so it is ≈ 1.7 m from the exact one.
    for crs in OFFSET_CRS:
        assert distance_m(*to_wgs84(*ALIYUN[crs], crs), *ALIYUN["wgs84"]) < 3.0
        assert distance_m(*from_wgs84(*ALIYUN["wgs84"], crs), *ALIYUN[crs]) < 3.0


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_beijing_railway_station(crs):
    wgs = BEIJING_STATION["wgs84"]
    assert distance_m(*from_wgs84(*wgs, crs), *BEIJING_STATION[crs]) < 3.0
    assert distance_m(*to_wgs84(*BEIJING_STATION[crs], crs), *wgs) < 3.0


# Test vectors of eviltransform (googollee/eviltransform, python/test.py), computed with the same public GCJ-02
# formula, so they must agree to the last digit rather than to metres. (Its BD-09 vectors are not used: they
# are 10–40 m from the public BD-09 formula, even with that library's own one-step inverse.)
EVILTRANSFORM_GCJ = [
    # (wgs lon, wgs lat), (gcj lon, gcj lat)
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM_GCJ)
def test_eviltransform_vectors(wgs, gcj):
    assert from_wgs84(*wgs, "gcj02") == pytest.approx(gcj, abs=1e-9)
    assert to_wgs84(*gcj, "gcj02") == pytest.approx(wgs, abs=1e-9)


# --- round trips and the China box -------------------------------------------------------------------------


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_round_trip_across_china(crs):
    worst_wgs = max(distance_m(*to_wgs84(*from_wgs84(lon, lat, crs), crs), lon, lat) for lon, lat in CHINA)
    worst_ext = max(distance_m(*from_wgs84(*to_wgs84(lon, lat, crs), crs), lon, lat) for lon, lat in CHINA)
    assert worst_wgs < 0.01, f"wgs84→{crs}→wgs84: max {worst_wgs:.2e} m over {len(CHINA)} points"
    assert worst_ext < 0.01, f"{crs}→wgs84→{crs}: max {worst_ext:.2e} m over {len(CHINA)} points"


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_offsets_inside_china_are_hundreds_of_metres(crs):
    # Guards against a transform that "round-trips" by doing nothing.
    for lon, lat in CHINA:
        shift = distance_m(*from_wgs84(lon, lat, crs), lon, lat)
        assert 10.0 < shift < 2000.0, (lon, lat, shift)


@pytest.mark.parametrize("crs", OFFSET_CRS)
@pytest.mark.parametrize("point", OUTSIDE)
def test_identity_outside_china(crs, point):
    assert from_wgs84(*point, crs) == point
    assert to_wgs84(*point, crs) == point


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_edge_of_the_box_terminates_with_finite_values(crs):
    # Just inside the west edge a GCJ-02 point has no WGS-84 preimage (the shift jumps there); it is kept as is.
    for point in [(72.0045, 40.0), (72.01, 40.0), (137.83, 40.0), (100.0, 55.827), (100.0, 0.83)]:
        lon, lat = to_wgs84(*point, crs)
        assert math.isfinite(lon) and math.isfinite(lat)
        assert distance_m(lon, lat, *point) < 2000.0


def test_wgs84_is_identity_and_returns_floats():
    for crs in ("wgs84", "EPSG:4326"):
        assert to_wgs84(120, 30, crs) == (120.0, 30.0)
        assert from_wgs84(120, 30, crs) == (120.0, 30.0)
    for crs in CRS_NAMES:
        result = to_wgs84(120.2, 30.3, crs)
        assert all(type(v) is float for v in result)


def test_nan_comes_back_as_nan():
    for crs in OFFSET_CRS:
        assert all(math.isnan(v) for v in to_wgs84(math.nan, 30.0, crs))


# --- arrays ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_arrays_agree_with_scalars(crs):
    lon = np.array([p[0] for p in CHINA[:50]] + [p[0] for p in OUTSIDE])
    lat = np.array([p[1] for p in CHINA[:50]] + [p[1] for p in OUTSIDE])
    fx, fy = from_wgs84_array(lon, lat, crs)
    tx, ty = to_wgs84_array(fx, fy, crs)
    for i in range(len(lon)):
        assert (fx[i], fy[i]) == pytest.approx(from_wgs84(lon[i], lat[i], crs), abs=1e-12)
        assert (tx[i], ty[i]) == pytest.approx(to_wgs84(fx[i], fy[i], crs), abs=1e-9)


@pytest.mark.parametrize("crs", OFFSET_CRS)
def test_array_round_trip_many_points(crs):
    rng = np.random.default_rng(7)
    lon = rng.uniform(73.5, 134.5, (100, 100))
    lat = rng.uniform(18.0, 53.5, (100, 100))
    gx, gy = from_wgs84_array(lon, lat, crs)
    wx, wy = to_wgs84_array(gx, gy, crs)
    assert wx.shape == lon.shape
    worst = float(np.max(np.hypot(wx - lon, wy - lat))) * M_PER_DEG
    assert worst < 0.01, f"max {worst:.2e} m over {lon.size} points"


def test_array_broadcasts_a_scalar_latitude():
    lon = np.array([110.0, 120.0, 130.0])
    x, y = from_wgs84_array(lon, 30.0, "gcj02")
    assert x.shape == y.shape == (3,)
    assert (float(x[1]), float(y[1])) == from_wgs84(120.0, 30.0, "gcj02")


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wgs84", "wgs84"),
        ("WGS-84", "wgs84"),
        ("epsg:4326", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("gcj02", "gcj02"),
        ("GCJ-02", "gcj02"),
        ("bd09", "bd09"),
        ("BD-09", "bd09"),
        ("bd09ll", "bd09"),
        (" BD09LL ", "bd09"),
    ],
)
def test_parse_crs_aliases(name, expected):
    assert parse_crs(name) == expected


def test_crs_names():
    assert CRS_NAMES == ("wgs84", "gcj02", "bd09")


@pytest.mark.parametrize("bad", ["xyz", "", "bd09mc", "gcj"])
def test_unknown_crs(bad):
    with pytest.raises(UnknownCRS) as info:
        parse_crs(bad)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"未知坐标系 {bad!r}，可选 wgs84、gcj02、bd09"


def test_unknown_crs_message_example():
    with pytest.raises(UnknownCRS, match=r"^未知坐标系 'xyz'，可选 wgs84、gcj02、bd09$"):
        to_wgs84(120.0, 30.0, "xyz")


def test_unknown_crs_rejects_non_strings():
    with pytest.raises(UnknownCRS):
        parse_crs(None)  # type: ignore[arg-type]
    with pytest.raises(UnknownCRS):
        from_wgs84(120.0, 30.0, 4326)  # type: ignore[arg-type]


# --- distance ----------------------------------------------------------------------------------------------


def test_distance_m():
    # One degree of latitude from the equator on WGS-84 is 110 574.389 m (geodesic).
    assert distance_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(110_574.389, abs=0.01)
    assert distance_m(120.2, 30.3, 120.2, 30.3) == 0.0
    a = distance_m(120.17, 30.28, 120.18, 30.27)
    assert a == pytest.approx(distance_m(120.18, 30.27, 120.17, 30.28))
    assert type(a) is float
