"""我的案卷, the 专业部门's inbox, made for a phone at the place of the problem: its own cases only (as
``CaseLoop.query`` and ``CaseLoop.get`` scope them for the actor), new dispatches first, and a case view with the
facts, the map, the photos, the forms the loop allows now (签收, 处置完成 with an after-photo from the phone's camera,
申请回退 / 延期 / 挂账), the month's 延期 quota, the history and what the citizen is told. Every form posts to the one
generic case action route, so no rule lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func
from sqlmodel import Session, select

from admin.console.casepage import case_view, local
from admin.console.filing import LIMIT, clock
from admin.console.session import actor, allow, page, refused
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from bots.citizen import my_case
from bots.notify import announcement
from core.cases import Actor, CaseError
from core.models import CaseEvent, CaseFile, Report

HERE = "/console/inbox"
OPEN = ("处置中", "挂账")  # the states in which a department has work to do
RECENT = 30  # cases already passed on, shown below the open ones


def inbox_dispatched(runtime: Runtime, dept: str | None, cases: list[CaseFile]) -> dict[int, datetime]:
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
    """The department's cases in the order it works them: unsigned new dispatches (and 返工) newest first, then
    the signed ones and the 挂账 ones most urgent first, then the ones it has passed on."""
    loop = runtime.loop
    open_cases = [c for state in OPEN for c in loop.query(who, state=state, limit=LIMIT)[1]]
    _, recent = loop.query(who, limit=RECENT + len(open_cases))
    done = [c for c in recent if c.state not in OPEN][:RECENT]
    when = inbox_dispatched(runtime, who.department_code, open_cases + done)

    def row(case: CaseFile) -> dict[str, Any]:
        # only 处置中 runs on the department's clock: a 挂账 one is paused, one passed on is the 监督员's or 值班长's
        timer = loop.timer(case) if case.state == "处置中" else None
        return {"case": case, "timer": timer, "clock": clock(timer), "dispatched": local(when.get(case.id))}

    new = [row(c) for c in open_cases if c.state == "处置中" and not c.signed]
    # the stage restarts on every dispatch, redispatch and 返工: the newest arrival is the newest start
    new.sort(key=lambda r: r["case"].stage_started_at, reverse=True)
    working = [row(c) for c in open_cases if c.state == "挂账" or c.signed]
    working.sort(key=lambda r: (r["timer"] is None, r["timer"].remaining_hours if r["timer"] else 0))
    done_rows = [row(c) for c in sorted(done, key=lambda c: when.get(c.id, c.created_at), reverse=True)]
    return {"new": new, "working": working, "done": done_rows, "recent": RECENT}


def inbox_citizen(runtime: Runtime, case: CaseFile) -> dict[str, str]:
    """What the citizen is told, in the citizen's own words: the progress in the answer to “查询 编号” (asked as
    the first reporter would ask it, so it is exactly their view) and the last notice sent to them. The reporter's
    identity is used for the lookup only and never leaves this function."""
    with Session(runtime.engine) as session:
        first = session.exec(select(Report).where(Report.case_id == case.id).order_by(Report.id)).first()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq.desc()))
        notice = next((r["text"] for e in events for r in announcement(session, case, e)[:1]), "")
    # after the session: on SQLite every transaction takes the write lock, and my_case opens its own
    view = my_case(runtime.engine, first.channel, first.sender, case.number) if first else None
    return {"status": view.words if view else "", "notice": notice}


def inbox_case_view(runtime: Runtime, number: str, who: Actor) -> dict[str, Any]:
    """``case_view`` (NotFound for another department's case) with the month's 延期 quota and the citizen's view."""
    view = case_view(runtime, number, who)
    loop = runtime.loop
    with Session(runtime.engine) as session:
        extended, dispatched, over = loop.quota_use(session, who.department_code, loop.clock())
    quota = {
        "extended": extended,
        "dispatched": dispatched,
        "over": over,
        "allowed": int(loop.rules.extension_quota * max(dispatched, 1)),
        "percent": f"{loop.rules.extension_quota * 100:g}",
    }
    citizen = inbox_citizen(runtime, view["case"])
    return {**view, "view": view, "clock": clock(view["timer"]), "quota": quota, "citizen": citizen}


@allow("department")
async def inbox(request: web.Request) -> web.Response:
    view = await in_thread(inbox_view, request.app[RUNTIME], actor(request))
    return page(request, "inbox.html", view)


@allow("department")
async def inbox_case(request: web.Request) -> web.Response:
    try:
        view = await in_thread(inbox_case_view, request.app[RUNTIME], request.match_info["number"], actor(request))
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    return page(request, "inbox_case.html", {**view, "next": request.path})


def add_routes(app: web.Application) -> None:
    app.router.add_get(HERE, inbox)
    app.router.add_get(HERE + "/{number}", inbox_case)
