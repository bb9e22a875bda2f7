"""The 监督中心 console: server-rendered pages for the centre's staff, on the same ``core`` functions as the API."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from admin.console import (
    actions,
    casemap,
    casepage,
    dispatch,
    evaluation,
    filing,
    handoffs,
    inbox,
    phone,
    queue,
    session,
    setup_pages,
    wall,
    work,
)
from admin.responses import TEMPLATES

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGES = (
    session,
    actions,
    casepage,
    queue,
    phone,
    handoffs,
    filing,
    dispatch,
    work,
    inbox,
    casemap,
    setup_pages,
    wall,
    evaluation,
)


def setup(app: web.Application) -> None:
    app[TEMPLATES].filters["local"] = casepage.local
    app.middlewares.append(session.console_session)
    app.router.add_static("/console/static/", STATIC, follow_symlinks=False, append_version=False)
    for module in PAGES:
        module.add_routes(app)
