"""The HTTP application: health, the locate API, and a real server started the way `make run` starts it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from admin.app import build_app
from admin.runtime import Runtime
from bench.harness import free_port
from core import db
from core.config import load_settings
from core.crs import distance_m, from_wgs84, to_wgs84


async def test_healthz_reports_version_and_database(aiohttp_client, demo_db_url):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_db_url}))
    client = await aiohttp_client(build_app(runtime))
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok"
    assert (
        body["database"] == db.database_kind(demo_db_url) and body["version"] and body["schema"] == db.head_revision()
    )


async def test_healthz_on_an_empty_database_is_503(aiohttp_client, tmp_path):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}))
    resp = await (await aiohttp_client(build_app(runtime))).get("/healthz")
    assert resp.status == 503 and (await resp.json())["status"] == "uninitialised"


async def test_locate_api(aiohttp_client, demo_db_url):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_db_url}))
    client = await aiohttp_client(build_app(runtime))
    resp = await client.get("/api/v1/locate", params={"q": "人民路和解放路交叉口"})
    body = await resp.json()
    assert resp.status == 200 and body["method"] == "路口" and body["grid"]["code"].startswith("339901")
    for params in ({}, {"q": "x" * 201}):
        resp = await client.get("/api/v1/locate", params=params)
        assert resp.status == 400 and "error" in await resp.json()
    resp = await client.get("/api/v1/locate", params={"q": "火星基地"})
    assert resp.status == 404 and (await resp.json())["found"] is False


async def test_locate_api_takes_a_point_in_any_crs_and_answers_it_in_wgs84(aiohttp_client, demo_db_url):
    client = await aiohttp_client(build_app(Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_db_url}))))
    door = (await (await client.get("/api/v1/locate", params={"q": "人民路88号"})).json())
    gcj = from_wgs84(door["lon"], door["lat"], "gcj02")
    resp = await client.get("/api/v1/locate", params={"lon": gcj[0], "lat": gcj[1], "crs": "gcj02"})
    near = await resp.json()
    assert resp.status == 200 and near["grid"]["code"] == door["grid"]["code"]
    assert distance_m(near["lon"], near["lat"], door["lon"], door["lat"]) < 0.5
    resp = await client.get("/api/v1/locate", params={"lon": 116.4, "lat": 39.9, "crs": "gcj02"})
    outside = await resp.json()
    lon, lat = to_wgs84(116.4, 39.9, "gcj02")
    assert resp.status == 404 and outside["found"] is False
    assert (outside["lon"], outside["lat"]) == (round(lon, 7), round(lat, 7))
    for params in ({"lon": 116.4}, {"lon": "x", "lat": 1}, {"lon": 200, "lat": 1}, {"lon": 1, "lat": 1, "crs": "utm"}):
        resp = await client.get("/api/v1/locate", params=params)
        assert resp.status == 400 and "error" in await resp.json(), params
    resp = await client.get("/no/such/page")
    assert resp.status == 404 and "error" in await resp.json()


def test_serve_answers_healthz_within_60_seconds(tmp_path):
    """`make run` is `gridline init --demo` then `gridline serve`: do exactly that on a fresh SQLite file."""
    gridline = Path(sys.executable).with_name("gridline")
    port = free_port()
    env = {
        **os.environ,
        "GRIDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "GRIDLINE_DATA_DIR": str(tmp_path / "var"),
        "GRIDLINE_HTTP_PORT": str(port),
    }
    start = time.monotonic()
    subprocess.run([gridline, "init", "--demo"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([gridline, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        while time.monotonic() - start < 60 and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.2)
        assert body is not None and body["status"] == "ok" and body["database"] == "sqlite"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_the_front_page_leads_to_every_face_and_names_only_connected_channels(aiohttp_client, demo_db_url):
    plain = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_db_url}))
    client = await aiohttp_client(build_app(plain))
    resp = await client.get("/")
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "网页反映" in page and "12319" in page and "微信公众号" not in page and "Telegram" not in page
    links = re.findall(r'(?:href|src)="(/[^"]*)"', page)
    assert {"/chat", "/map.svg", "/healthz", "/api/v1/openapi.json"} <= set(links)
    for link in links:
        assert (await client.get(link)).status == 200, link
    env = {"GRIDLINE_DATABASE_URL": demo_db_url, "GRIDLINE_WECHAT_TOKEN": "t", "GRIDLINE_TELEGRAM_TOKEN": "1:x"}
    connected = await aiohttp_client(build_app(Runtime(load_settings(environ=env))))
    page = await (await connected.get("/")).text()
    assert "微信公众号" in page and "Telegram 机器人" in page


async def test_map_page_draws_every_cell(aiohttp_client, demo_db_url):
    from defusedxml import ElementTree

    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_db_url}))
    resp = await (await aiohttp_client(build_app(runtime))).get("/map.svg")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    svg = ElementTree.fromstring(await resp.text())
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) == len(runtime.grid) and all(t.startswith("339901") for t in titles)
    size = 13  # road names: one character about as wide as the font size
    boxes = [
        (float(t.get("x")), float(t.get("y")) - size, float(t.get("x")) + size * len(t.text), float(t.get("y")))
        for t in svg.iter("{http://www.w3.org/2000/svg}text")
        if t.get("font-size") == str(size) and t.get("stroke")
    ]
    assert len(boxes) > 10
    overlapping = [
        (a, b)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    assert overlapping == []  # two road names printed over each other are unreadable
