"""Case actions from console forms: one POST route for every action of ``core.cases``, so a page never holds a rule
of its own. The form's fields become the action's fields; the form's ``version`` makes it a compare-and-set, so a
second person acting on a case that changed meanwhile is told so and nothing happens."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from admin.console.session import actor, done, files, form, refused, safe_next
from admin.responses import in_thread
from admin.runtime import RUNTIME
from core.attachments import AttachmentError
from core.cases import ACTIONS, CaseError

TEXT_FIELDS = (
    *("note", "reason", "matter_code", "target", "department", "address", "confirmed", "passed", "level", "key"),
)
NUMBER_FIELDS = {
    "hours": "延期时长（工作时）",
    "lon": "经度",
    "lat": "纬度",
    "gps_lon": "GPS 经度",
    "gps_lat": "GPS 纬度",
    "gps_accuracy": "GPS 精度",
}
MAX_TEXT = 1000


class BadForm(ValueError):
    """A field a person typed wrong; the message names it."""


def action_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as ``CaseLoop.act`` takes them; empty ones are left out so that "required" means filled."""
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = str(fields.get(name, "")).strip()
        if len(value) > MAX_TEXT:
            raise BadForm(f"{name} 最多 {MAX_TEXT} 字")
        if value:
            out[name] = value
    for name, label in NUMBER_FIELDS.items():
        raw = str(fields.get(name, "")).strip()
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise BadForm(f"{label}应为数字，得到“{raw[:20]}”") from None
        if not math.isfinite(number):
            raise BadForm(f"{label}应为数字")
        out[name] = number
    if "level" in out and not out["level"].isdigit():
        raise BadForm("立案条件等级应为数字")
    return out


def version_of(fields: dict[str, Any]) -> int:
    raw = str(fields.get("version", ""))
    if not raw.isdigit() or len(raw) > 9:
        raise BadForm("表单缺少案卷版本号，请刷新页面后重试")
    return int(raw)


async def act(request: web.Request) -> web.StreamResponse:
    number, name = request.match_info["number"], request.match_info["action"]
    action = ACTIONS.get(name)
    if action is None or len(number) > 20:
        return refused(request, 404, f"没有这个操作: {name[:30]}")
    runtime = request.app[RUNTIME]
    fields = form(request)
    try:
        payload, version = action_fields(fields), version_of(fields)
    except BadForm as exc:
        return refused(request, 422, str(exc))
    try:
        payload["attachments"] = [
            (await in_thread(runtime.attachments.put, data, media_type)).sha256
            for data, media_type in files(request, "photo")
        ]
        await in_thread(runtime.loop.act, number, name, actor(request), payload, version)
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    except AttachmentError as exc:
        return refused(request, 400, str(exc))
    done(safe_next(str(fields.get("next", "")), f"/console/cases/{number}"), f"已{action.label}：{number}")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/console/cases/{number}/do/{action}", act)
