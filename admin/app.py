"""The aiohttp application. Database work runs in the default thread pool, never on the event loop."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin.api import add_routes
from admin.console import setup as setup_console
from admin.open311 import mount as mount_open311
from admin.responses import TEMPLATES, in_thread, json_error, json_response
from admin.runtime import RUNTIME, Runtime
from bots.privacy import AccessLogger
from bots.routes import mount as mount_bots
from core import db
from core.crs import parse_crs
from core.geocoder import Located

VERSION = "0.1.0"
log = logging.getLogger("gridline")


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    """Every failure leaves as JSON: 4xx as it was raised, anything else as a logged 500 without a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "服务器内部错误")


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    revision = await in_thread(db.current_revision, runtime.engine)
    return json_response(
        {
            "status": "ok" if revision else "uninitialised",
            "version": VERSION,
            "database": runtime.engine.dialect.name,
            "schema": revision,
        },
        status=200 if revision else 503,
    )


def _coordinates(query: Mapping[str, str]) -> tuple[float, float, str]:
    try:
        lon, lat = float(query["lon"]), float(query["lat"])
    except (KeyError, ValueError):
        raise ValueError("lon 与 lat 应同时给出，且为数字") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):  # also refuses nan
        raise ValueError("lon 应在 -180–180、lat 应在 -90–90 之间")
    return lon, lat, parse_crs(query.get("crs", "wgs84"))


async def locate(request: web.Request) -> web.Response:
    """A place description (``q``) or a point (``lon``, ``lat`` and ``crs``) → point and grid cell."""
    geocoder = request.app[RUNTIME].geocoder
    query = request.query
    if "lon" in query or "lat" in query:
        try:
            lon, lat, crs = _coordinates(query)
        except ValueError as exc:  # UnknownCRS is one
            return json_error(400, str(exc))
        result = await in_thread(geocoder.locate_point, lon, lat, crs)
    else:
        text = query.get("q", "").strip()
        if not text:
            return json_error(400, "缺少参数 q（地点描述），或 lon 与 lat（坐标）")
        if len(text) > 200:
            return json_error(400, "地点描述过长（最多 200 字）")
        result = await in_thread(geocoder.locate, text)
    return json_response(result.as_dict(), status=200 if isinstance(result, Located) else 404)


async def grid_map(request: web.Request) -> web.Response:
    from admin.mapsvg import render

    svg = await in_thread(render, request.app[RUNTIME].engine)
    return web.Response(text=svg, content_type="image/svg+xml")


async def index(request: web.Request) -> web.Response:
    """The front page of `make run`'s address: where citizens report and where staff and the map are, rather than a
    bare 404. It names only the chat channels this centre has connected."""
    s = request.app[RUNTIME].settings
    channels = [name for name, on in (("微信公众号", s.wechat_token), ("Telegram 机器人", s.telegram_token)) if on]
    return aiohttp_jinja2.render_template("index.html", request, {"channels": channels}, app_key=TEMPLATES)


def build_app(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=10 * 1024 * 1024)
    app[RUNTIME] = runtime
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("admin", "templates"), app_key=TEMPLATES, autoescape=True)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/locate", locate)
    app.router.add_get("/map.svg", grid_map)
    add_routes(app)
    setup_console(app)
    mount_open311(app)
    mount_bots(app, runtime, dialogue=runtime.dialogue)
    return app


def run(runtime: Runtime) -> None:
    logging.basicConfig(level=runtime.settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    s = runtime.settings
    web.run_app(
        build_app(runtime),
        host=s.http_host,
        port=s.http_port,
        print=lambda msg: log.info("%s", msg),
        access_log_class=AccessLogger,  # no OpenIDs from WeChat's query strings in the log
    )
