"""电话登记: the 12319 seat. A caller's report typed by the 受理员 goes through the same intake as every channel
(channel hotline, idempotent on a key made when the form is shown, so a double submit files one report), with the
classifier's and the geocoder's view shown live while the seat types. A call the IVR handed over was filed by the
IVR already: the seat opens that case (``?case=``), hears the recording and accepts it with the 事项 and place it
settled with the caller, through the generic case action, so the call never becomes a second case."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import shapely
from aiohttp import web
from sqlmodel import Session, select

from admin.console.actions import BadForm, action_fields
from admin.console.casepage import case_view, local, reporter_tag
from admin.console.session import actor, allow, done, form, page, refused
from admin.responses import in_thread, json_error, json_response
from admin.runtime import RUNTIME, Runtime
from core.cases import Actor, CaseError, NotFound
from core.geocoder import Located
from core.intake import MAX_TEXT, BadReport, Incoming
from core.models import CaseFile, Report, TaxonomyItem
from nlp.classify import Classifier

SEAT = ("operator", "shift_lead")
SEAT_REF = "seat:"  # channel_ref of the reports the seat files; the IVR's are its call ids
KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
CALLER = re.compile(r"[0-9]{3,20}")
MAX_PLACE = 200
MAX_SUGGEST = 500  # a sentence or two is enough to suggest from, and keeps the URL under the 8 KB request line
RECENT = 20
DECISIONS = {"auto": "可直接受理", "review": "需受理员确认", "out_of_scope": "可能不属于城管事项"}


def classification_of(classifier: Classifier | None, text: str) -> dict[str, Any] | None:
    """What the intake will store for this text (``Intake._step_classify``'s shape), with the reason a text looks
    out of scope, so the seat can tell the caller at once or pick a 事项 by hand."""
    if classifier is None or not text:
        return None
    result = classifier.classify(text)
    return result.as_dict() | {"decision_label": DECISIONS[result.decision]}


def place_of(runtime: Runtime, place: str, text: str, point: dict[str, float]) -> dict[str, Any] | None:
    """Where the intake will put the report: a picked point first, else the address, else the words. Only the local
    gazetteer is asked: a keystroke must not become a request to an outside geocoder (the intake still tries its
    fallbacks when the report is saved)."""
    locator = runtime.geocoder.locator
    if point:
        found = locator.reverse(point["lon"], point["lat"])
        if isinstance(found, Located):
            return {**found.as_dict(), **point, "found": True}
        cell = locator.grid.cell_at(point["lon"], point["lat"])
        if cell is None:
            return {**point, "found": False, "reason": "该位置不在任何单元网格内，请重新选点"}
        return {**point, "found": True, "method": "坐标", "matched": "", "confidence": 1.0, "grid": cell.__dict__}
    if not (place or text):
        return None
    found = locator.locate(place or text)
    return {**found.as_dict(), "found": isinstance(found, Located)}


def point_of(fields: Any) -> dict[str, float]:
    """A picked point (both coordinates or neither), parsed as the case actions parse theirs."""
    point = action_fields({"lon": fields.get("lon", ""), "lat": fields.get("lat", "")})
    if len(point) == 1:
        raise BadForm("经度与纬度需同时提供")
    if point and not (-180 <= point["lon"] <= 180 and -90 <= point["lat"] <= 90):
        raise BadForm("坐标超出经纬度范围")
    return point


def suggestions(runtime: Runtime, text: str, place: str, point: dict[str, float]) -> dict[str, Any]:
    return {
        "classification": classification_of(runtime.intake.services.classifier, text),
        "place": place_of(runtime, place, text, point),
    }


def incoming_of(fields: dict[str, Any]) -> Incoming:
    """The seat's form as the intake takes a report; BadForm names the field a person typed wrong."""
    key = str(fields.get("key", ""))
    if not KEY.fullmatch(key):
        raise BadForm("表单已过期（缺少登记编号），请刷新页面后重新填写")
    caller = re.sub(r"[\s-]", "", str(fields.get("caller", "")))
    if caller and not CALLER.fullmatch(caller):
        raise BadForm("来电号码应为 3–20 位数字")
    text = str(fields.get("text", "")).strip()
    if not text:
        raise BadForm("请填写来电人反映的问题")
    if len(text) > MAX_TEXT:
        raise BadForm(f"反映内容最多 {MAX_TEXT} 字")
    address = str(fields.get("address", "")).strip()
    if len(address) > MAX_PLACE:
        raise BadForm(f"地点最多 {MAX_PLACE} 字")
    point = point_of(fields)
    return Incoming(
        channel="hotline",
        channel_ref=SEAT_REF + key,
        received_at=datetime.now(UTC),
        sender=caller,
        text=text,
        address=address,
        **point,
    )


def ivr_calls(runtime: Runtime, who: Actor) -> list[dict[str, Any]]:
    """The IVR's calls still waiting for 受理 (a hand-over or a caller who confirmed), newest first."""
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(CaseFile, Report)
            .join(Report, Report.case_id == CaseFile.id)
            .where(
                CaseFile.source == "hotline",
                CaseFile.state == "待受理",
                Report.channel == "hotline",
                Report.channel_ref.not_like(f"{SEAT_REF}%"),
            )
            .order_by(CaseFile.created_at.desc())
            .limit(RECENT)
        ).all()
    calls, seen = [], set()
    for case, report in rows:
        if case.number in seen or not who.sees(case):
            continue
        seen.add(case.number)
        timer = runtime.loop.timer(case)
        calls.append(
            {
                "number": case.number,
                "received": local(report.received_at),
                "caller": reporter_tag(report.channel, report.sender),
                "said": (report.text or report.transcript)[:80],
                "audio": any(m.get("kind") == "audio" for m in report.media),
                "matter": case.matter_name,
                "address": case.address,
                "light": timer.light if timer else "none",
            }
        )
    return calls


def seat(runtime: Runtime, who: Actor, number: str | None) -> dict[str, Any]:
    """Everything the page shows: the 事项 to choose from, the waiting IVR calls, the map's centre, and the handed
    over case when one is opened (NotFound when it is not a hotline case the viewer may see)."""
    with Session(runtime.engine) as session:
        matters = session.exec(
            select(TaxonomyItem).where(TaxonomyItem.kind == "matter").order_by(TaxonomyItem.code)
        ).all()
    grid = runtime.grid
    x0, y0, x1, y1 = shapely.total_bounds(grid.geometries) if len(grid) else (0.0, 0.0, 0.0, 0.0)
    out: dict[str, Any] = {
        "matters": matters,
        "calls": ivr_calls(runtime, who),
        "centre": (round((x0 + x1) / 2, 7), round((y0 + y1) / 2, 7)) if len(grid) else None,
        "handover": None,
    }
    if number:
        view = case_view(runtime, number, who)
        if view["case"].source != "hotline":
            raise NotFound(f"案卷 {number} 不是 12319 来电")
        hotline = [r for r in view["reports"] if r["channel"] == "hotline"]
        out["handover"] = {
            **view,
            "view": view,
            "said": next((r["text"] or r["transcript"] for r in hotline if r["text"] or r["transcript"]), ""),
            "accept": next((a for a in view["actions"] if a.name == "accept"), None),
            "others": [a for a in view["actions"] if a.name != "accept"],
        }
    return out


async def render(request: web.Request, number: str | None, values: dict[str, Any], error: str = "",
                 status: int = 200) -> web.Response:  # fmt: skip
    runtime = request.app[RUNTIME]
    try:
        context = await in_thread(seat, runtime, actor(request), number)
    except CaseError as exc:
        return refused(request, exc.status, exc.message)
    key = values.get("key") if KEY.fullmatch(str(values.get("key", ""))) else secrets.token_urlsafe(18)
    return page(request, "phone.html", {**context, "values": values, "key": key, "error": error}, status=status)


@allow(*SEAT)
async def show(request: web.Request) -> web.Response:
    number = request.query.get("case", "").strip()
    if len(number) > 20:
        return refused(request, 404, "案卷编号过长")
    return await render(request, number or None, {})


@allow(*SEAT)
async def suggest(request: web.Request) -> web.Response:
    """JSON for phone.js: ``{"classification": …, "place": …}`` for what the seat has typed so far."""
    q = request.query
    text, place = q.get("text", "").strip(), q.get("place", "").strip()
    if len(text) > MAX_SUGGEST or len(place) > MAX_PLACE:
        return json_error(400, f"文字最多 {MAX_SUGGEST} 字，地点最多 {MAX_PLACE} 字")
    try:
        point = point_of(q)
    except BadForm as exc:
        return json_error(400, str(exc))
    if not (text or place or point):
        return json_error(400, "请提供 text、place 或 lon/lat")
    return json_response(await in_thread(suggestions, request.app[RUNTIME], text, place, point))


@allow(*SEAT)
async def submit(request: web.Request) -> web.StreamResponse:
    """A bad field shows the form again with what was typed (the caller is still on the line); nothing is stored."""
    fields = form(request)
    try:
        incoming = incoming_of(fields)
    except BadForm as exc:
        return await render(request, None, fields, str(exc), 422)
    try:
        report, created = await in_thread(request.app[RUNTIME].intake.submit, incoming)
    except BadReport as exc:
        return await render(request, None, fields, str(exc), 422)
    if not report.case_number:
        done("/console/phone", f"已保存来电反映（第 {report.id} 号上报），立卷未完成，将自动重试")
    said = "已登记电话反映" if created else "这张表单已登记过，未重复登记"
    done(f"/console/cases/{report.case_number}", f"{said}：案卷 {report.case_number}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/phone", show)
    app.router.add_post("/console/phone", submit)
    app.router.add_get("/console/phone/suggest", suggest)
