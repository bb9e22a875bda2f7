"""立案与审批 for the 值班长: the cases waiting to be filed with their 立案条件 and the 处置时限 each would give, and
the department requests (回退、延期、挂账), suspended cases and cases to close that wait for a decision; above them
the 超时预警, the 处置 limits that turned yellow or red. Every form
posts to the generic case action (``admin.console.actions``), so the page holds no rule of its own."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement
from sqlmodel import Session

from admin.console.casepage import case_view, local
from admin.console.session import actor, allow, page
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from core import notices
from core.cases import Actor, Timer
from core.models import CaseFile
from core.worktime import COLOUR_NAMES

LIMIT = 50  # cases per section; the page says how many more there are
HERE = "/console/filing"


def clock(timer: Timer | None) -> str:
    """The stage's clock in words beside the coloured light, which alone does not reach everyone."""
    if timer is None:
        return ""
    hours = "小时" if timer.unit == "自然时" else "工作时"
    left = timer.remaining_hours
    left_text = f"剩余 {left:.1f} {hours}" if left >= 0 else f"超时 {-left:.1f} {hours}"
    limit = f"{timer.stage}时限 {timer.limit:g} {timer.unit}"
    return f"{COLOUR_NAMES[timer.light]} · {limit} · {left_text} · 截止 {local(timer.deadline)}"


def listed(runtime: Runtime, *where: ColumnElement[bool], order: Any) -> tuple[int, list[str]]:
    """(how many cases match, the numbers of the first ``LIMIT`` in order). Only for the centre's roles, who see
    every case; ``case_view`` checks visibility again for each one."""
    total, cases = runtime.loop.worklist(*where, order=(order,), limit=LIMIT)
    return total, [c.number for c in cases]


def views(runtime: Runtime, numbers: list[str], who: Actor, offered: frozenset[str]) -> list[dict[str, Any]]:
    """Each case as the case page sees it, with only the actions this section offers (of those the loop allows)."""
    out = []
    for number in numbers:
        view = case_view(runtime, number, who)
        view["offered"] = [a for a in view["actions"] if a.name in offered]
        view["clock"] = clock(view["timer"])
        out.append(view)
    return out


def section(runtime: Runtime, who: Actor, offered: frozenset[str], *where: ColumnElement[bool], order: Any) -> dict:
    total, numbers = listed(runtime, *where, order=order)
    return {"total": total, "cases": views(runtime, numbers, who, offered)}


def filing_view(runtime: Runtime, who: Actor) -> dict[str, Any]:
    """The 值班长's four queues, longest waiting first; a 延期 request carries its department's quota use."""
    loop = runtime.loop
    waiting = section(
        runtime, who, frozenset({"file", "void"}), CaseFile.state == "待立案", order=CaseFile.stage_started_at
    )
    pending = section(
        runtime,
        who,
        frozenset({"approve", "deny"}),
        CaseFile.state == "处置中",
        CaseFile.pending["type"].as_string().is_not(None),
        order=CaseFile.updated_at,
    )
    now = loop.clock()
    with Session(runtime.engine) as session:
        for view in pending["cases"]:
            if view["case"].pending["type"] == "延期":
                extended, dispatched, over = loop.quota_use(session, view["case"].department_code, now)
                view["quota"] = {"extended": extended, "dispatched": dispatched, "over": over}
    return {
        "waiting": waiting,
        "pending": pending,
        "suspended": section(runtime, who, frozenset({"resume"}), CaseFile.state == "挂账", order=CaseFile.updated_at),
        "closing": section(runtime, who, frozenset({"close"}), CaseFile.state == "待结案", order=CaseFile.updated_at),
        "alerts": notices.console_alerts(runtime.engine),  # 处置 limits gone yellow or red (core.notices)
        "quota_percent": loop.rules.extension_quota * 100,
        "limit": LIMIT,
    }


@allow("shift_lead")
async def filing(request: web.Request) -> web.Response:
    view = await in_thread(filing_view, request.app[RUNTIME], actor(request))
    return page(request, "filing.html", {**view, "next": HERE})


def add_routes(app: web.Application) -> None:
    app.router.add_get(HERE, filing)
