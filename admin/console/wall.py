"""监督指挥: the centre's wall, for a 1920×1080 screen read from a few metres. The live counts, the city's grid
coloured by its open cases with the cases as markers by light and the 监督员's last positions (the case map's base
map and grid, from its GeoJSON routes), and the charts of the last 30 days (ECharts, served from node_modules like
Leaflet). The page draws itself from ``/console/wall.json``, which it asks again every ``POLL_SECONDS``.

值班长, 领导 and 管理员 may see it. A 领导 looks and never acts: the role is in no action of ``core.cases`` and in
no page's ``@allow`` that changes anything, so every POST answers a 领导 with a 403."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.console.queue import CHANNEL_NAMES
from admin.console.session import allow, page
from admin.responses import in_thread, json_response
from admin.runtime import RUNTIME, Runtime
from core import wall
from core.cases import OVERSEERS, STAGE
from core.worktime import COLOUR_NAMES

POLL_SECONDS = 30
ECHARTS = "/console/static/node_modules/echarts/dist/echarts.min.js"


def wall_data(runtime: Runtime) -> dict[str, Any]:
    """The figures with the names the page shows for their codes."""
    figures = wall.figures(runtime.loop)
    stage_names = {s: "挂账" if s == "挂账" else STAGE[s] for s in wall.OPEN_STATES}
    return {
        **figures,
        "names": {"channels": CHANNEL_NAMES, "stages": stage_names, "lights": COLOUR_NAMES},
        "poll_seconds": POLL_SECONDS,
        "max_markers": wall.MAX_MARKERS,
    }


@allow(*OVERSEERS)
async def show(request: web.Request) -> web.Response:
    return page(
        request,
        "wall.html",
        {
            "groups": wall.GROUPS,
            "echarts": ECHARTS,
            "poll_seconds": POLL_SECONDS,
            "days": wall.DAYS,
            "stage_days": wall.STAGE_DAYS,
        },
    )


@allow(*OVERSEERS, data="监督指挥")
async def data(request: web.Request) -> web.Response:
    return json_response(await in_thread(wall_data, request.app[RUNTIME]))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/wall", show)
    app.router.add_get("/console/wall.json", data)
