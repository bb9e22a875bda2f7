"""JSON answers and thread offloading shared by every HTTP handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import jinja2
from aiohttp import web

TEMPLATES = web.AppKey("gridline_admin_templates", jinja2.Environment)  # admin/templates: the front page, the console


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with Chinese left readable (no \\u escapes)."""
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Database and CPU work leaves the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)
