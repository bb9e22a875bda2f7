"""我的案卷 for a 专业部门 and 我的任务 for a 监督员: their own cases as ``CaseLoop.query`` scopes them for the actor,
with lights and links to the case page, where the forms the loop allows them appear. Plain lists on purpose: the
phone-first field pages come later."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func
from sqlmodel import Session, select

from admin.console.casepage import local
from admin.console.filing import LIMIT, clock
from admin.console.session import actor, allow, page
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from core.cases import Actor
from core.models import CaseEvent, CaseFile

OPEN = ("处置中", "挂账")  # the states in which a department has work to do
RECENT = 30  # cases already passed on, shown below the open ones
TASKS = (("待核实", "待核实（上报是否属实）"), ("待核查", "待核查（处置结果是否合格）"))


def rows(runtime: Runtime, cases: list[CaseFile], clocked: bool = True) -> list[dict[str, Any]]:
    """Each case with its stage's light, unless it runs on someone else's clock (``clocked=False``)."""
    out = []
    for case in cases:
        timer = runtime.loop.timer(case) if clocked else None
        out.append({"case": case, "timer": timer, "clock": clock(timer)})
    return out


def last_dispatch(runtime: Runtime, dept: str | None, cases: list[CaseFile]) -> dict[int, datetime]:
    """When each case was last dispatched to this department (a case may have been redispatched to it)."""
    with Session(runtime.engine) as session:
        found = session.exec(
            select(CaseEvent.case_id, func.max(CaseEvent.at))
            .where(
                CaseEvent.case_id.in_([c.id for c in cases]),
                CaseEvent.action.in_(["dispatch", "redispatch"]),
                CaseEvent.department_code == dept,
            )
            .group_by(CaseEvent.case_id)
        ).all()
    return dict(found)


def inbox_view(runtime: Runtime, who: Actor) -> dict[str, Any]:
    """The department's open cases and the most recent ones it has passed on, newest dispatch first."""
    loop = runtime.loop
    open_cases = [c for state in OPEN for c in loop.query(who, state=state, limit=LIMIT)[1]]
    _, recent = loop.query(who, limit=RECENT + len(open_cases))
    done = [c for c in recent if c.state not in OPEN][:RECENT]
    when = last_dispatch(runtime, who.department_code, open_cases + done)

    def newest_first(cases: list[CaseFile], clocked: bool) -> list[dict[str, Any]]:
        cases = sorted(cases, key=lambda c: when.get(c.id, c.created_at), reverse=True)
        return [{**row, "dispatched": local(when.get(row["case"].id))} for row in rows(runtime, cases, clocked)]

    # a case passed on runs on the 监督员's or the 值班长's clock, not the department's: no light for it here
    return {"open": newest_first(open_cases, True), "done": newest_first(done, False), "recent": RECENT}


def tasks_view(runtime: Runtime, who: Actor) -> dict[str, Any]:
    """The collector's 核实 and 核查 tasks in its grid scope, longest waiting first."""
    groups = []
    for state, label in TASKS:
        total, cases = runtime.loop.query(who, state=state, limit=LIMIT)
        cases.sort(key=lambda c: c.stage_started_at)
        groups.append({"state": state, "label": label, "total": total, "rows": rows(runtime, cases)})
    return {"groups": groups, "limit": LIMIT}


@allow("department")
async def inbox(request: web.Request) -> web.Response:
    view = await in_thread(inbox_view, request.app[RUNTIME], actor(request))
    return page(request, "work.html", {**view, "kind": "inbox"})


@allow("collector")
async def tasks(request: web.Request) -> web.Response:
    view = await in_thread(tasks_view, request.app[RUNTIME], actor(request))
    return page(request, "work.html", {**view, "kind": "tasks"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/inbox", inbox)
    app.router.add_get("/console/tasks", tasks)
