"""派遣 for the 派遣员 (and the 值班长 who oversees it): the filed cases waiting for a department, each with the
department the loop suggests and why (a routing rule or the owner of the nearest component), and the 处置时限 it
will get; and the cases in 处置 whose light is red or yellow, to 督办 or 重新派遣. The forms post to the generic case
action, so 派遣 is the loop's own rule."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import Session

from admin.console.filing import LIMIT, section, views
from admin.console.session import actor, allow, page
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from core.cases import Actor
from core.models import CaseFile

HERE = "/console/dispatch"
LATE = (("red", "红灯（已超时）"), ("yellow", "黄灯（即将超时）"))


def dispatch_view(runtime: Runtime, who: Actor) -> dict[str, Any]:
    """The waiting cases with the suggestion recorded at 立案 (what the form preselects and auto-dispatch uses) and
    the reason the rules give now, which the page flags when the rules have changed since; the late cases, most
    overdue first."""
    loop = runtime.loop
    waiting = section(
        runtime, who, frozenset({"dispatch"}), CaseFile.state == "待派遣", order=CaseFile.stage_started_at
    )
    with Session(runtime.engine) as session:
        for view in waiting["cases"]:
            case = view["case"]
            names = {d.code: d.name for d in view["departments"]}
            code, reason = loop.explain_department(session, case)
            condition = next((c for c in view["conditions"] if c.level == case.condition_level), None)
            view["suggested"] = names.get(case.suggested_department or "", case.suggested_department)
            view["why"] = {"code": code, "name": names.get(code or "", code), "reason": reason}
            view["limit"] = (view["area_limit"][condition.level], condition.unit) if condition else None
    late = []
    for light, label in LATE:
        total, cases = loop.query(who, state="处置中", light=light, limit=LIMIT)
        cases.sort(key=lambda c: loop.timer(c).remaining_hours)
        found = views(runtime, [c.number for c in cases], who, frozenset({"urge", "redispatch"}))
        late.append({"light": light, "label": label, "total": total, "cases": found})
    return {"waiting": waiting, "late": late, "limit": LIMIT}


@allow("dispatcher", "shift_lead")
async def dispatch(request: web.Request) -> web.Response:
    view = await in_thread(dispatch_view, request.app[RUNTIME], actor(request))
    return page(request, "dispatch.html", {**view, "next": HERE})


def add_routes(app: web.Application) -> None:
    app.router.add_get(HERE, dispatch)
