"""城管通 in the browser, for a 监督员 on a phone: the 核实 and 核查 tasks in its grid scope nearest first, a task
with its report, photos and map answered with a photo and the phone's GPS position, and a new problem reported from
the street. Answers go through the generic case action route (``CaseLoop.act``), new problems through the intake;
each form carries an idempotency key made when it is opened, so a phone that sends again after the network came
back (tasks.js keeps what could not be sent) never does anything twice."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from admin.console.actions import BadForm
from admin.console.casepage import case_view, local
from admin.console.filing import LIMIT, clock
from admin.console.phone import KEY, MAX_SUGGEST, point_of, suggestions
from admin.console.session import actor, allow, done, files, form, page, refused
from admin.responses import in_thread, json_error, json_response
from admin.runtime import RUNTIME, Runtime
from core.attachments import AttachmentError
from core.cases import ACTIONS, Actor, CaseError
from core.crs import distance_m
from core.intake import MAX_TEXT, BadReport, Incoming
from core.models import CaseEvent, CaseFile, Report, TaxonomyItem

HERE = "/console/tasks"
NEW = HERE + "/new"
TASKS = (("待核实", "待核实（上报是否属实）"), ("待核查", "待核查（处置结果是否合格）"))
ANSWERS = ("verify", "check", "self_handle")  # what a collector does on a task; the loop says which apply now
MAX_PHOTOS = 4


def key() -> str:
    """A fresh idempotency key for a form being opened (tasks.js makes its own when it reuses a form)."""
    return secrets.token_urlsafe(18)


def far_text(metres: float | None) -> str:
    if metres is None:
        return ""
    return f"{metres:.0f} 米" if metres < 1000 else f"{metres / 1000:.1f} 公里"


def photos_of(runtime: Runtime, cases: list[CaseFile]) -> dict[int, dict[str, list[str]]]:
    """Each case's report photos (before) and the department's 处置完成 photos (after), in two queries."""
    ids = [c.id for c in cases]
    out: dict[int, dict[str, list[str]]] = {i: {"before": [], "after": []} for i in ids}
    if not ids:
        return out
    with Session(runtime.engine) as session:
        for case_id, media in session.exec(select(Report.case_id, Report.media).where(Report.case_id.in_(ids))):
            out[case_id]["before"] += [m["sha256"] for m in media if m.get("kind") == "photo"]
        completed = select(CaseEvent.case_id, CaseEvent.attachments).where(
            CaseEvent.case_id.in_(ids), CaseEvent.action == "complete"
        )
        for case_id, attachments in session.exec(completed.order_by(CaseEvent.seq)):
            out[case_id]["after"] = list(attachments)  # the latest 处置完成: what is to be checked now
    return out


def tasks_view(runtime: Runtime, who: Actor, here: dict[str, float]) -> dict[str, Any]:
    """The collector's tasks in its scope (``CaseLoop.query`` applies it), nearest first from ``here`` (the phone's
    position), else longest waiting first; a case without a point goes last."""
    groups = []
    for state, label in TASKS:
        total, cases = runtime.loop.query(who, state=state, limit=LIMIT)
        photos = photos_of(runtime, cases)
        rows = []
        for case in cases:
            metres = None
            if here and case.lon is not None and case.lat is not None:
                metres = distance_m(here["lon"], here["lat"], case.lon, case.lat)
            timer = runtime.loop.timer(case)
            rows.append({"case": case, "timer": timer, "clock": clock(timer), "metres": metres,
                         "far": far_text(metres), **photos[case.id]})  # fmt: skip
        if here:
            rows.sort(key=lambda r: (r["metres"] is None, r["metres"] or 0.0))
        else:
            rows.sort(key=lambda r: r["case"].stage_started_at)
        groups.append({"state": state, "label": label, "total": total, "rows": rows})
    return {"groups": groups, "limit": LIMIT, "here": here}


def positions_of(events: list[CaseEvent]) -> list[dict[str, Any]]:
    """The collectors' answers on this case with where the phone was (or that it had no position)."""
    out = []
    for e in events:
        if e.role != "collector":
            continue
        position = (e.data or {}).get("position")
        out.append({"action": ACTIONS[e.action].label if e.action in ACTIONS else e.action, "at": local(e.at),
                    "actor": e.actor, "position": position,
                    "far": far_text(position.get("distance_m")) if position else ""})  # fmt: skip
    return out


def task_view(runtime: Runtime, number: str, who: Actor) -> dict[str, Any]:
    """One task: the case as its page shows it (NotFound outside the collector's scope) and the answers due now."""
    view = case_view(runtime, number, who)
    _, events = runtime.loop.get(number, who)
    answers = [a for a in view["actions"] if a.name in ANSWERS]
    return {
        **view,
        "view": view,
        "answers": answers,
        "positions": positions_of(events),
        "key": key(),
        "radius": runtime.loop.rules.duplicate_radius_m,
    }


def matters(runtime: Runtime) -> list[dict[str, Any]]:
    """The 管理事项 of the code table, grouped by 大类, for the new-problem form's list."""
    with Session(runtime.engine) as session:
        items = session.exec(
            select(TaxonomyItem).where(TaxonomyItem.kind == "matter").order_by(TaxonomyItem.code)
        ).all()
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        group = groups.setdefault(item.major_code, {"name": item.major_name, "items": []})
        group["items"].append({"code": item.code, "name": item.name})
    return list(groups.values())


def matter_name(runtime: Runtime, code: str) -> str | None:
    with Session(runtime.engine) as session:
        return session.exec(
            select(TaxonomyItem.name).where(TaxonomyItem.kind == "matter", TaxonomyItem.code == code)
        ).first()


def report_of(runtime: Runtime, who: Actor, fields: dict[str, Any], media: tuple[dict[str, Any], ...]) -> Incoming:
    """The form as the intake takes a report (channel ``collector``, keyed by the form's key for this collector).
    The 事项 the collector chose on the spot is the case's code (``Incoming.chosen_code``); the classifier's view of
    their words is kept beside it for the 受理员."""
    form_key = str(fields.get("key", ""))
    if not KEY.fullmatch(form_key):
        raise BadForm("表单已过期（缺少提交编号），请刷新页面后重新填写")
    text = str(fields.get("text", "")).strip()
    code = str(fields.get("matter_code", "")).strip()
    if code and matter_name(runtime, code[:8]) is None:
        raise BadForm(f"事项代码 {code[:8]} 不在分类代码表中")
    if len(text) > MAX_TEXT:
        raise BadForm(f"问题描述最多 {MAX_TEXT} 字")
    address = str(fields.get("address", "")).strip()
    if len(address) > 200:
        raise BadForm("地点最多 200 字")
    point = point_of(fields)
    if not point and not address:
        raise BadForm("未取得 GPS 位置：请开启定位，或填写地点")
    if not media:
        raise BadForm("请拍摄现场照片")
    if not (text or code):
        raise BadForm("请选择事项或描述问题")
    return Incoming(
        channel="collector",
        channel_ref=f"{who.user_id}:{form_key}",  # one collector's key never meets another's
        received_at=datetime.now(UTC),
        sender=who.name,
        text=text,
        media=media,
        address=address,
        chosen_code=code[:8] or None,
        **point,
    )


@allow("collector")
async def tasks(request: web.Request) -> web.Response:
    try:
        here = point_of(request.query)
    except BadForm as exc:
        return refused(request, 400, str(exc))
    view = await in_thread(tasks_view, request.app[RUNTIME], actor(request), here)
    return page(request, "tasks.html", view)


@allow("collector")
async def task(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if len(number) > 20:
        return refused(request, 404, "案卷编号过长")
    try:
        view = await in_thread(task_view, request.app[RUNTIME], number, actor(request))
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    return page(request, "tasks_task.html", {**view, "next": HERE})


async def new_form(request: web.Request, values: dict[str, Any], error: str = "", status: int = 200) -> web.Response:
    groups = await in_thread(matters, request.app[RUNTIME])
    form_key = values.get("key") if KEY.fullmatch(str(values.get("key", ""))) else key()
    return page(request, "tasks_new.html", {"matters": groups, "values": values, "key": form_key, "error": error},
                status=status)  # fmt: skip


@allow("collector")
async def new(request: web.Request) -> web.Response:
    return await new_form(request, {})


@allow("collector")
async def submit(request: web.Request) -> web.StreamResponse:
    """A bad field shows the form again with what was entered; nothing is stored. A resent form (same key) finds
    the report it filed the first time."""
    runtime, fields, who = request.app[RUNTIME], form(request), actor(request)
    photos = files(request, "photo")
    if len(photos) > MAX_PHOTOS:
        return await new_form(request, fields, f"最多 {MAX_PHOTOS} 张照片", 422)
    try:
        media = []
        for data, media_type in photos:
            stored = await in_thread(runtime.attachments.put, data, media_type)
            if stored.kind != "photo":
                raise AttachmentError("请上传照片")
            media.append({"sha256": stored.sha256, "media_type": stored.media_type, "kind": stored.kind})
        incoming = await in_thread(report_of, runtime, who, fields, tuple(media))
        report, created = await in_thread(runtime.intake.submit, incoming)
    except (BadForm, BadReport, AttachmentError) as exc:
        return await new_form(request, fields, str(exc), 422)
    if not report.case_number:
        done(HERE, f"已保存上报（第 {report.id} 号），立卷未完成，将自动重试")
    said = "已上报" if created else "这次上报已收到过，未重复登记"
    done(HERE, f"{said}：案卷 {report.case_number}，待受理员受理")


@allow("collector")
async def suggest(request: web.Request) -> web.Response:
    """JSON for tasks.js: the classifier's view of the words and the place the GPS point falls in, as the seat's
    suggestions are made (``phone.suggestions``)."""
    text = request.query.get("text", "").strip()
    if len(text) > MAX_SUGGEST:
        return json_error(400, f"文字最多 {MAX_SUGGEST} 字")
    try:
        point = point_of(request.query)
    except BadForm as exc:
        return json_error(400, str(exc))
    if not (text or point):
        return json_error(400, "请提供 text 或 lon/lat")
    return json_response(await in_thread(suggestions, request.app[RUNTIME], text, "", point))


def add_routes(app: web.Application) -> None:
    app.router.add_get(HERE, tasks)
    app.router.add_get(NEW, new)
    app.router.add_post(NEW, submit)
    app.router.add_get(HERE + "/suggest", suggest)
    app.router.add_get(HERE + "/{number}", task)
