"""The 受理 queue: every 待受理 report oldest first with the light of its 受理 limit, and beside it the selected one
as the 受理员 decides on it — the citizen's words, photos and recording, the classifier's top three, the place on a
minimap with its grid cell, and the open cases it may repeat. Confirming the suggestion is one key; every decision is
a POST to the generic action route, so the queue holds no rule of its own."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.console.casepage import case_view, local
from admin.console.session import actor, allow, page, refused
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from core.cases import Actor, CaseError
from core.duplicates import possible_duplicates
from core.models import CaseFile

SHOWN = 100  # rows on the page; the count says how many more wait
ARRIVED = (CaseFile.state == "待受理",)
OLDEST = (CaseFile.created_at, CaseFile.id)  # the one waiting longest is the one whose 受理 limit runs out first
CHANNEL_NAMES = {
    "wechat": "微信",
    "telegram": "Telegram",
    "webchat": "网页",
    "hotline": "12319 热线",
    "collector": "监督员上报",
    "open311": "Open311",
    "operator": "电话登记",
}
DECISIONS = {
    "auto": "置信度高，可直接受理",
    "review": "置信度不足，请核对事项",
    "out_of_scope": "疑似不属于城管事项",
}


def queue_rows(runtime: Runtime, selected: str) -> dict[str, Any]:
    """The rows of the queue with their lights; ``gone`` when the selected case left it meanwhile (another 受理员
    took it), so the page says so at the next poll (past the rows shown there is no telling, so then it is not said)."""
    total, cases = runtime.loop.worklist(*ARRIVED, order=OLDEST, limit=SHOWN)
    rows = []
    for case in cases:
        timer = runtime.loop.timer(case)
        rows.append(
            {
                "case": case,
                "light": timer.light if timer else "none",
                "deadline": local(timer.deadline) if timer else "",
                "received": local(case.created_at),
                "channel": CHANNEL_NAMES.get(case.source, case.source),
            }
        )
    numbers = {r["case"].number for r in rows}
    gone = bool(selected) and selected not in numbers and len(rows) == total
    return {"rows": rows, "total": total, "shown": SHOWN, "selected": selected, "gone": gone}


def queue_view(runtime: Runtime, number: str, who: Actor) -> dict[str, Any]:
    """The page: the rows, and the selected case (the asked one, else the oldest) with its duplicates."""
    context = queue_rows(runtime, number)
    first = context["rows"][0]["case"].number if context["rows"] else ""
    note = ""
    view = case_view(runtime, number, who) if number else None
    if view is not None and view["case"].state != "待受理":
        note = f"案卷 {number} 已不在待受理队列（当前状态：{view['case'].state}）"
        note += "，以下为队列中最早的一件" if first else ""
        view = None
    if view is None and first:
        view = case_view(runtime, first, who)
    context.update(selected=view["case"].number if view else "", gone=False, note=note, view=view)
    if view is not None:
        case: CaseFile = view["case"]
        cells = dict(zip(runtime.grid.codes, runtime.grid.hits, strict=True))
        decision = next((r["decision"] for r in view["reports"] if r["decision"]), None)
        context.update(
            view,
            cell=cells.get(case.grid_code or ""),
            decision=DECISIONS.get(decision or "", ""),
            scope_reason=next((r["scope_reason"] for r in view["reports"] if r["scope_reason"]), None),
            secondary=next((r["secondary"] for r in view["reports"] if r["secondary"]), None),
            codes=_choices(view["top"], case),
            duplicates=[
                {"case": other, "distance": distance, "received": local(other.created_at)}
                for other, distance in possible_duplicates(runtime.engine, case, runtime.loop.rules)
            ],
            can={a.name for a in view["actions"]},
            rules_note=_rules_note(runtime),
            channel=CHANNEL_NAMES.get(case.source, case.source),
        )
    return context


def _choices(top: list[dict[str, Any]], case: CaseFile) -> list[dict[str, Any]]:
    """The codes to choose from: the classifier's top three, and first the case's own code when it is not among
    them; the case's code is the one checked, so confirming the suggestion is one key."""
    choices = [{"code": t["code"], "name": t["name"], "p": t.get("p")} for t in top]
    if case.matter_code and case.matter_code not in {c["code"] for c in choices}:
        choices.insert(0, {"code": case.matter_code, "name": case.matter_name, "p": None})
    return [{**c, "checked": c["code"] == case.matter_code} for c in choices]


def _rules_note(runtime: Runtime) -> str:
    rules = runtime.loop.rules
    return f"{rules.duplicate_radius_m:g} 米内、{rules.duplicate_window_days:g} 天内同一大类的未办结案卷"


def _selected(request: web.Request) -> str:
    return request.query.get("case", "").strip()[:20]


@allow("operator", "shift_lead")
async def show(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        context = await in_thread(queue_view, runtime, _selected(request), actor(request))
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    return page(request, "queue.html", context)


@allow("operator", "shift_lead")
async def rows(request: web.Request) -> web.Response:
    """The rows alone, polled by the page every few seconds so that new reports appear without a reload."""
    context = await in_thread(queue_rows, request.app[RUNTIME], _selected(request))
    return page(request, "queue_rows.html", context)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/queue", show)
    app.router.add_get("/console/queue/rows", rows)
