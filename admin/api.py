"""REST API under /api/v1: reports, cases and their actions, attachments, evaluation, the 受理员's hand-over queue.
Described by the OpenAPI document of ``admin.openapi``, whose schemas also validate every request body, so the two
cannot drift apart.

Every route needs ``Authorization: Bearer <token>`` (``gridline token create USER``) except the document itself.
Personal data (a reporter's phone number, OpenID, chat id) is never part of an answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
from aiohttp import web
from sqlalchemy.engine import Engine

from admin.openapi import MAX_OFFSET, SCHEMAS, document
from admin.responses import in_thread, json_error, json_response
from admin.runtime import RUNTIME
from bots.dialogue import operator_reply, waiting_handoffs
from core.attachments import AttachmentError
from core.cases import ACTING_ROLES, ACTIONS, OVERSEERS, Actor, CaseError, CaseLoop
from core.db import UNSTORABLE, storable
from core.intake import BadReport, Incoming
from core.models import CaseEvent, CaseFile
from core.users import actor_for_password, actor_for_token, create_token

ACTOR = web.RequestKey("actor", Actor)
REPORT_ROLES = frozenset({"operator", "collector", "shift_lead", "admin"})
HANDOFF_ROLES = frozenset({"operator", "shift_lead", "admin"})
MAX_BODY = 64 * 1024


SESSION_COOKIE = "gridline_session"
# the place lookup is public: the grid and the gazetteer hold no personal data, and citizens' front doors need it
OPEN_PATHS = frozenset({"/api/v1/openapi.json", "/api/v1/session", "/api/v1/locate"})


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    """A bearer token, or the session cookie of a console login (SameSite=Strict, so no cross-site requests)."""
    if not request.path.startswith("/api/v1/") or request.path in OPEN_PATHS:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return json_error(401, "需要 Authorization: Bearer <token> 或先登录")
    actor = await in_thread(actor_for_token, request.app[RUNTIME].loop.engine, token.strip())
    if actor is None:
        return json_error(401, "令牌无效或已吊销")
    request[ACTOR] = actor
    return await handler(request)


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


@web.middleware
async def storable_text(request: web.Request, handler) -> web.StreamResponse:
    """Text no database can keep (``core.db.storable``) in a path or query parameter is refused at the door, the
    same on both databases, rather than failing in the driver as a 500."""
    if request.path.startswith("/api/v1/") and not (
        _storable(dict(request.match_info)) and _storable(list(request.query.values()))
    ):
        return json_error(400, f"路径或查询参数中{UNSTORABLE}")
    return await handler(request)


async def _body(request: web.Request, schema: str) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError:
        raise _Bad("请求体不是合法的 JSON") from None
    if not _storable(body):
        raise _Bad(f"请求体中{UNSTORABLE}")
    try:
        jsonschema.validate(body, SCHEMAS[schema])
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "请求体"
        raise _Bad(f"{where}: {exc.message}") from None
    return body


class _Bad(Exception):
    pass


def case_json(case: CaseFile, loop: CaseLoop) -> dict[str, Any]:
    timer = loop.timer(case)
    return {
        "number": case.number,
        "state": case.state,
        "version": case.version,
        "matter_code": case.matter_code,
        "matter_name": case.matter_name,
        "severity": case.severity,
        "condition_level": case.condition_level,
        "description": case.description,
        "address": case.address,
        "lon": case.lon,
        "lat": case.lat,
        "grid_code": case.grid_code,
        "area_class": case.area_class,
        "source": case.source,
        "department": case.department_code,
        "suggested_department": case.suggested_department,
        "duplicate_of": case.duplicate_of,
        "signed": case.signed,
        "rework_count": case.rework_count,
        "dispatch_count": case.dispatch_count,
        "extension_count": case.extension_count,
        "pending": case.pending,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "timer": timer.as_dict() if timer else None,
    }


def event_json(event: CaseEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "role": event.role,
        "action": event.action,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "department": event.department_code,
        "on_time": event.on_time,
        "note": event.note,
        "data": event.data,
        "attachments": event.attachments,
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


async def login(request: web.Request) -> web.Response:
    body = await _body(request, "LoginIn")
    engine = request.app[RUNTIME].loop.engine
    actor = await in_thread(actor_for_password, engine, body["name"], body["password"])
    if actor is None:
        return json_error(401, "用户名或密码不正确")
    token = await in_thread(create_token, engine, actor.name)
    resp = json_response({"name": actor.name, "role": actor.role})
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", max_age=12 * 3600, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    actor: Actor = request[ACTOR]
    return json_response(
        {"name": actor.name, "role": actor.role, "department": actor.department_code, "scope": list(actor.grid_scope)}
    )


async def create_report(request: web.Request) -> web.Response:
    actor: Actor = request[ACTOR]
    if actor.role not in REPORT_ROLES:
        return json_error(403, "该角色不能登记上报")
    body = await _body(request, "ReportIn")
    store = request.app[RUNTIME].attachments
    media = []
    for sha in body.get("media", []):
        stored = await in_thread(store.info, sha)
        media.append({"sha256": stored.sha256, "media_type": stored.media_type, "kind": stored.kind})
    incoming = Incoming(
        channel=body["channel"],
        channel_ref=body["channel_ref"],
        received_at=datetime.now(UTC),
        sender=actor.name,
        text=body.get("text", ""),
        media=tuple(media),
        lon=body.get("lon"),
        lat=body.get("lat"),
        crs=body.get("crs", "wgs84"),
        address=body.get("address", ""),
    )
    report, created = await in_thread(request.app[RUNTIME].intake.submit, incoming)
    return json_response(
        {
            "report_id": report.id,
            "case": report.case_number,
            "created": created,
            "steps": report.steps,
            "classification": report.classification,
        },
        201 if created else 200,
    )


async def list_cases(request: web.Request) -> web.Response:
    loop = request.app[RUNTIME].loop
    q = request.query
    try:
        limit, offset = int(q.get("limit", 50)), int(q.get("offset", 0))
    except ValueError:
        return json_error(400, "limit 与 offset 应为整数")
    if not (1 <= limit <= 500) or not (0 <= offset <= MAX_OFFSET):
        return json_error(400, f"limit 应在 1–500 之间，offset 应在 0–{MAX_OFFSET} 之间")
    if q.get("light") not in (None, "green", "yellow", "red"):
        return json_error(400, "light 应为 green、yellow 或 red")

    def run() -> dict[str, Any]:
        total, cases = loop.query(
            request[ACTOR],
            state=q.get("state"),
            code=q.get("code"),
            grid=q.get("grid"),
            department=q.get("department"),
            text=q.get("q"),
            light=q.get("light"),
            limit=limit,
            offset=offset,
        )
        return {"total": total, "cases": [case_json(c, loop) for c in cases]}

    return json_response(await in_thread(run))


async def get_case(request: web.Request) -> web.Response:
    loop = request.app[RUNTIME].loop

    def run() -> dict[str, Any]:
        case, events = loop.get(request.match_info["number"], request[ACTOR])
        return {**case_json(case, loop), "events": [event_json(e) for e in events]}

    return json_response(await in_thread(run))


async def act(request: web.Request) -> web.Response:
    loop = request.app[RUNTIME].loop
    action = request.match_info["action"]
    if action not in ACTIONS:
        return json_error(404, f"没有这个操作: {action}")
    body = await _body(request, "ActionIn")
    store = request.app[RUNTIME].attachments
    for sha in body.get("attachments", []):
        await in_thread(store.info, sha)
    version = body.pop("version", None)
    case = await in_thread(loop.act, request.match_info["number"], action, request[ACTOR], body, version)
    return json_response(await in_thread(case_json, case, loop))


async def upload(request: web.Request) -> web.Response:
    actor: Actor = request[ACTOR]
    if actor.role not in ACTING_ROLES | REPORT_ROLES:
        return json_error(403, "该角色不能上传附件")
    store = request.app[RUNTIME].attachments
    if request.content_length is not None and request.content_length > store.max_bytes:
        return json_error(413, f"文件过大，上限 {store.max_bytes // (1024 * 1024)} MB")
    data = await request.content.read(store.max_bytes + 1)
    declared = request.headers.get("Content-Type") or None
    stored = await in_thread(store.put, data, declared)
    return json_response(
        {
            "sha256": stored.sha256,
            "media_type": stored.media_type,
            "kind": stored.kind,
            "size": stored.size,
            "uploaded_by": actor.name,
        },
        201,
    )


async def download(request: web.Request) -> web.Response:
    store = request.app[RUNTIME].attachments
    sha = request.match_info["sha256"]
    stored = await in_thread(store.info, sha)
    if not await in_thread(request.app[RUNTIME].loop.may_see_attachment, stored.sha256, request[ACTOR]):
        return json_error(404, "附件不存在")  # the same answer as for a missing file
    return web.FileResponse(
        stored.path, headers={"Content-Type": stored.media_type, "Cache-Control": "private, max-age=86400"}
    )


async def evaluation(request: web.Request) -> web.Response:
    from core import evaluation as ev

    actor: Actor = request[ACTOR]
    if actor.role not in OVERSEERS:
        return json_error(403, "该角色不能查看综合评价")
    q = request.query
    kind, level = q.get("object", "dept"), q.get("level", "street")
    if kind not in ("dept", "region", "post") or level not in ("grid", "community", "street"):
        return json_error(400, "object 应为 dept、region 或 post；level 应为 grid、community 或 street")
    try:
        rows = await in_thread(ev.evaluate, request.app[RUNTIME].loop.engine, q.get("period", ""), kind, level)
    except ValueError as exc:
        return json_error(400, str(exc))
    return json_response(
        {
            "period": q.get("period"),
            "object": kind,
            "rows": [r.as_dict() for r in rows],
        }
    )


def handoff_json(waiting: dict[str, Any]) -> dict[str, Any]:
    """Field by field, so nothing the dialogue may keep later (a raw OpenID, a phone number) leaks into the answer."""
    return {
        "conversation": waiting["conversation"],
        "channel": waiting["channel"],
        "user": waiting["user"],
        "since": waiting["since"],
        "messages": [{k: m[k] for k in ("at", "text", "photo", "location") if k in m} for m in waiting["messages"]],
    }


def reply_if_waiting(engine: Engine, conversation: int, text: str, operator: str) -> bool:
    """``operator_reply`` answers any conversation; only one still waiting for a 受理员 is answered (the API and the
    console both come here), so a citizen who ended the hand-over (“取消”) is not written to out of the blue."""
    # checked in Python, not by the database: an id past BIGINT is then a 404 and not an error of the driver
    if not any(q["conversation"] == conversation for q in waiting_handoffs(engine)):
        return False
    return operator_reply(engine, conversation, text, operator=operator)


async def list_handoffs(request: web.Request) -> web.Response:
    """The conversations waiting for a 受理员, oldest first; a citizen appears only as a masked tag."""
    actor: Actor = request[ACTOR]
    if actor.role not in HANDOFF_ROLES:
        return json_error(403, "只有受理员、值班长和管理员能处理人工会话")
    queue = await in_thread(waiting_handoffs, request.app[RUNTIME].loop.engine)
    return json_response({"handoffs": [handoff_json(q) for q in queue]})


async def reply_handoff(request: web.Request) -> web.Response:
    """A 受理员's answer to a conversation still waiting for one (``reply_if_waiting``)."""
    actor: Actor = request[ACTOR]
    if actor.role not in HANDOFF_ROLES:
        return json_error(403, "只有受理员、值班长和管理员能处理人工会话")
    raw = request.match_info["conversation"]
    if not (raw.isascii() and raw.isdigit()):
        return json_error(400, "会话编号应为正整数")
    conversation = int(raw)
    body = await _body(request, "HandoffReplyIn")
    engine = request.app[RUNTIME].loop.engine
    if not await in_thread(reply_if_waiting, engine, conversation, body["text"].strip(), actor.name):
        return json_error(404, f"没有等待人工服务的会话 {conversation}（不存在或已结束人工服务）")
    return json_response({"conversation": conversation, "queued": True})


@web.middleware
async def domain_errors(request: web.Request, handler) -> web.StreamResponse:
    """Refusals of the domain become 4xx JSON answers."""
    try:
        return await handler(request)
    except CaseError as exc:
        return json_error(exc.status, exc.message)
    except (BadReport, AttachmentError) as exc:
        status = 413 if "过大" in str(exc) else 404 if "不存在" in str(exc) else 400
        return json_error(status, str(exc))
    except _Bad as exc:
        return json_error(400, str(exc))


def add_routes(app: web.Application) -> None:
    """Mount the API on an app that carries a Runtime under RUNTIME; services are built on first use."""
    app.middlewares.extend([storable_text, authenticate, domain_errors])
    r = app.router
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_post("/api/v1/session", login)
    r.add_get("/api/v1/me", me)
    r.add_post("/api/v1/reports", create_report)
    r.add_get("/api/v1/cases", list_cases)
    r.add_get("/api/v1/cases/{number}", get_case)
    r.add_post("/api/v1/cases/{number}/actions/{action}", act)
    r.add_get("/api/v1/evaluation", evaluation)
    r.add_get("/api/v1/handoffs", list_handoffs)
    r.add_post("/api/v1/handoffs/{conversation}/reply", reply_handoff)
    r.add_post("/api/v1/attachments", upload)
    r.add_get("/api/v1/attachments/{sha256}", download)
