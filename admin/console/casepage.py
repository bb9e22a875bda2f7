"""One case, everything about it: the citizen's words, photos and recordings, the classifier's view, the place on a
map, the limits and lights, the events as a timeline, and the forms of the actions the viewer may take now (from
``CaseLoop.available``, so the page offers exactly what the loop would accept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from admin.console.session import actor, page, refused
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from bots.privacy import mask
from core.attachments import AttachmentError
from core.cases import ACTIONS, LOCAL, ROLES, Actor, CaseError, NotFound
from core.models import Department, FilingCondition, Report, TaxonomyItem
from ivr.server import mask_number

ACTION_LABELS = {"report": "上报", **{name: a.label for name, a in ACTIONS.items()}}
AFTER = frozenset({"complete", "check", "self_handle"})  # actions whose photos show the place after 处置


def reporter_tag(channel: str, sender: str) -> str:
    """Who reported, as staff may see it: a caller's number with its middle hidden, any other id as a stable tag."""
    if channel in ("hotline", "operator") and sender.isdigit():
        return mask_number(sender)
    return sender if channel == "collector" else mask(sender)


def local(value: datetime | None) -> str:
    return value.astimezone(LOCAL).strftime("%m-%d %H:%M") if value else ""


def case_view(runtime: Runtime, number: str, who: Actor) -> dict[str, Any]:
    """What a page needs to show one case and its action forms; NotFound for a case the viewer may not see."""
    loop = runtime.loop
    case, events = loop.get(number, who)
    with Session(runtime.engine) as session:
        reports = session.exec(select(Report).where(Report.case_id == case.id).order_by(Report.id)).all()
        departments = session.exec(select(Department).order_by(Department.code)).all()
        conditions = session.exec(
            select(FilingCondition)
            .where(FilingCondition.matter_code == (case.matter_code or ""))
            .order_by(FilingCondition.level)
        ).all()
        top = [t for r in reports for t in ((r.classification or {}).get("top") or [])][:3]
        names = dict(
            session.exec(
                select(TaxonomyItem.code, TaxonomyItem.name).where(
                    TaxonomyItem.kind == "matter", TaxonomyItem.code.in_([t["code"] for t in top])
                )
            ).all()
        )
    timer = loop.timer(case)
    shown_events = [
        {
            "seq": e.seq,
            "at": local(e.at),
            "actor": e.actor,
            "role": ROLES.get(e.role, e.role),
            "action": ACTION_LABELS.get(e.action, e.action),
            "to_state": e.to_state,
            "on_time": e.on_time,
            "note": e.note,
            "department": e.department_code,
            "attachments": e.attachments,
            "after": e.action in AFTER,
        }
        for e in events
    ]
    return {
        "case": case,
        "timer": timer,
        "deadline": local(timer.deadline) if timer else "",
        "reports": [
            {
                "channel": r.channel,
                "reporter": reporter_tag(r.channel, r.sender),
                "received": local(r.received_at),
                "text": r.text,
                "transcript": r.transcript,
                "media": r.media,
                "decision": (r.classification or {}).get("decision"),
                "scope_reason": (r.classification or {}).get("scope_reason"),
                "secondary": (r.classification or {}).get("secondary"),
            }
            for r in reports
        ],
        "top": [{**t, "name": names.get(t["code"], "")} for t in top],
        "events": shown_events,
        "before": [m["sha256"] for r in reports for m in r.media if m.get("kind") == "photo"]
        + [a for e in shown_events if not e["after"] for a in e["attachments"] if e["action"] != "上报"],
        "after": [a for e in shown_events if e["after"] for a in e["attachments"]],
        "audio": [m["sha256"] for r in reports for m in r.media if m.get("kind") == "audio"],
        "actions": loop.available(case, who),
        "departments": departments,
        "conditions": conditions,
        "area_limit": {c.level: {"A": c.limit_a, "B": c.limit_b, "C": c.limit_c}[case.area_class] for c in conditions},
    }


def attachment_of(runtime: Runtime, number: str, sha256: str, who: Actor) -> str:
    """The file of an attachment that belongs to a case the viewer may see; NotFound otherwise, so another
    department's photo is a 404 and not a 403 that would confirm it exists."""
    case, events = runtime.loop.get(number, who)
    with Session(runtime.engine) as session:
        media = [m for r in session.exec(select(Report).where(Report.case_id == case.id)) for m in r.media]
    owned = {m.get("sha256") for m in media} | {a for e in events for a in e.attachments}
    if sha256 not in owned:
        raise NotFound(f"案卷 {number} 没有这个附件")
    return str(runtime.attachments.path(sha256))


async def show(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        view = await in_thread(case_view, runtime, request.match_info["number"], actor(request))
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    return page(request, "case.html", {**view, "view": view, "next": request.path})


async def attachment(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    number, sha = request.match_info["number"], request.match_info["sha256"]
    try:
        path = await in_thread(attachment_of, runtime, number, sha, actor(request))
        stored = await in_thread(runtime.attachments.info, sha)
    except (CaseError, AttachmentError):
        return refused(request, 404, "附件不存在")
    return web.FileResponse(path, headers={"Content-Type": stored.media_type, "Cache-Control": "private, max-age=3600"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/cases/{number}", show)
    app.router.add_get("/console/cases/{number}/files/{sha256}", attachment)
