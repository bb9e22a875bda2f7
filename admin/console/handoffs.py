"""人工会话: the chat conversations a citizen handed to a person (“人工”), with what they wrote since, and a reply that
goes out through the outbox on the citizen's own channel. The same functions as the REST API (``waiting_handoffs``,
``handoff_json``, ``reply_if_waiting``), so the console neither shows a raw user id nor writes to a citizen who has
ended the hand-over. The page polls itself (htmx) and swaps in only the message lists and the status line, so a
reply being typed is never touched."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from admin.api import handoff_json, reply_if_waiting
from admin.console.casepage import local
from admin.console.session import actor, allow, done, form, page, refused
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from bots.dialogue import waiting_handoffs
from core.attachments import AttachmentError
from core.cases import LOCAL
from core.db import UNSTORABLE, storable
from core.geocoder import Located

ROLES = ("operator", "shift_lead", "admin")
MAX_REPLY = 500
CHANNELS = {"wechat": "微信", "telegram": "Telegram", "webchat": "网页聊天"}
POLL_SECONDS = 5


def when(iso: str | None) -> str:
    return local(datetime.fromisoformat(iso)) if iso else ""


def where(runtime: Runtime, location: list[Any]) -> str:
    """A shared location as staff read it: the nearest known place and its grid cell, else the coordinates."""
    lon, lat, crs = [*location, "wgs84"][:3]
    try:
        found = runtime.geocoder.locate_point(float(lon), float(lat), str(crs))
    except (TypeError, ValueError):  # an unknown CRS is a ValueError too
        found = None
    if isinstance(found, Located):
        cell = f"（{found.grid.name} {found.grid.code}）" if found.grid else ""
        return f"{found.matched}{cell}"
    return f"{lon}, {lat}（{crs}）"


def conversations(runtime: Runtime) -> list[dict[str, Any]]:
    """The waiting conversations, oldest first, as the API shows them, with local times and places read out."""
    out = []
    for waiting in waiting_handoffs(runtime.engine):
        shown = handoff_json(waiting)
        shown["channel_name"] = CHANNELS.get(shown["channel"], shown["channel"])
        shown["since_local"] = when(shown["since"])
        shown["messages"] = [
            {**m, "at": when(m.get("at")), "where": where(runtime, m["location"]) if m.get("location") else ""}
            for m in shown["messages"]
        ]
        out.append(shown)
    return out


def conversation_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else None


def photo_of(runtime: Runtime, conversation: int, sha256: str) -> tuple[str, str] | None:
    """A photo a citizen sent in a conversation still waiting for a person: (path, type); None for anything else."""
    waiting = next((w for w in waiting_handoffs(runtime.engine) if w["conversation"] == conversation), None)
    if waiting is None or sha256 not in {m.get("photo") for m in waiting["messages"]}:
        return None
    try:
        stored = runtime.attachments.info(sha256)
    except AttachmentError:
        return None
    return str(stored.path), stored.media_type


@allow(*ROLES)
async def show(request: web.Request) -> web.Response:
    """The list; with ``shown`` (the ids already on the page, from the poll) it also says which of them ended."""
    runtime = request.app[RUNTIME]
    items = await in_thread(conversations, runtime)
    waiting = {c["conversation"] for c in items}
    shown = {n for raw in request.query.get("shown", "").split(",")[:200] if (n := conversation_id(raw)) is not None}
    return page(
        request,
        "handoffs.html",
        {
            "conversations": items,
            "ended": sorted(shown - waiting),
            "new": len(waiting - shown) if "shown" in request.query else 0,
            "poll_seconds": POLL_SECONDS,
            "checked": runtime.loop.clock().astimezone(LOCAL).strftime("%H:%M:%S"),
            "max_reply": MAX_REPLY,
        },
    )


@allow(*ROLES)
async def reply(request: web.Request) -> web.StreamResponse:
    conversation = conversation_id(request.match_info["conversation"])
    text = str(form(request).get("text", "")).strip()
    if not text:
        return refused(request, 422, "回复内容不能为空")
    if len(text) > MAX_REPLY:
        return refused(request, 422, f"回复最多 {MAX_REPLY} 字（当前 {len(text)} 字）")
    if not storable(text):
        return refused(request, 422, f"回复{UNSTORABLE}")
    runtime = request.app[RUNTIME]
    if conversation is None or not await in_thread(
        reply_if_waiting, runtime.engine, conversation, text, actor(request).name
    ):
        return refused(request, 404, "没有等待人工服务的这个会话（不存在，或市民已结束人工服务），回复未发送")
    done("/console/handoffs", f"已回复会话 {conversation}，消息已排入发送队列")


@allow(*ROLES)
async def photo(request: web.Request) -> web.StreamResponse:
    conversation = conversation_id(request.match_info["conversation"])
    found = None
    if conversation is not None:
        found = await in_thread(photo_of, request.app[RUNTIME], conversation, request.match_info["sha256"])
    if found is None:
        return refused(request, 404, "照片不存在，或会话已结束人工服务")
    path, media_type = found
    return web.FileResponse(path, headers={"Content-Type": media_type, "Cache-Control": "private, max-age=3600"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/handoffs", show)
    app.router.add_post("/console/handoffs/{conversation}/reply", reply)
    app.router.add_get("/console/handoffs/{conversation}/files/{sha256}", photo)
