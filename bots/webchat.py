"""The web chat: ``GET /chat`` is a small mobile page speaking the same dialogue over JSON, with photo upload and the
browser's geolocation. It needs no WeChat or Telegram account, so it is the front door of a fresh machine.

A visitor is known by a random key in an HttpOnly cookie; only its hash is stored (as the report's sender). Every POST
must carry the ``X-Gridline-Chat`` header, which a cross-site form cannot send, and a client message id, so a resent
message is answered from ``channel_delivery`` instead of being processed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bots import citizen, storage
from bots.dialogue import PHOTO_MAX_BYTES, Dialogue, Inbound
from core.attachments import AttachmentError

COOKIE = "gridline_chat"
HEADER = "X-Gridline-Chat"
TEMPLATES = web.AppKey("gridline_chat_templates", jinja2.Environment)
_KEY = re.compile(r"[A-Za-z0-9_-]{32,64}")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_JSON = 16 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


class WebChat:
    def __init__(self, dialogue: Dialogue) -> None:
        self.dialogue = dialogue
        self.engine = dialogue.engine

    def setup(self, app: web.Application) -> None:
        aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("bots", "templates"), app_key=TEMPLATES, autoescape=True)
        app.router.add_get("/chat", self.page)
        app.router.add_post("/chat/api/messages", self.message)
        app.router.add_get("/chat/api/updates", self.updates)
        app.router.add_get("/chat/photos/{sha256}", self.photo)

    @staticmethod
    def _user(request: web.Request) -> str | None:
        key = request.cookies.get(COOKIE, "")
        if not _KEY.fullmatch(key):
            return None
        return "w" + hashlib.sha256(key.encode()).hexdigest()[:40]

    async def page(self, request: web.Request) -> web.Response:
        response = aiohttp_jinja2.render_template("chat.html", request, {}, app_key=TEMPLATES)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; connect-src 'self'"
        )
        if self._user(request) is None:
            response.set_cookie(
                COOKIE, secrets.token_urlsafe(32), httponly=True, samesite="Lax", max_age=180 * 86400, path="/"
            )
        return response

    async def message(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is None:
            return _error(401, "请先打开 /chat 页面")
        if request.headers.get(HEADER) != "1":
            return _error(403, f"缺少 {HEADER} 请求头")
        try:
            fields, photo = await self._read(request)
        except _Bad as exc:
            return _error(exc.status, exc.message)
        msg_id = str(fields.get("id") or "")
        if not _ID.fullmatch(msg_id):
            return _error(400, "缺少消息编号 id（1–64 个字母、数字、_ 或 -）")
        try:
            lon = float(fields["lon"]) if fields.get("lon") not in (None, "") else None
            lat = float(fields["lat"]) if fields.get("lat") not in (None, "") else None
        except (TypeError, ValueError):
            return _error(400, "lon、lat 应为数值")
        if (lon is None) != (lat is None) or (lon is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90)):
            return _error(400, "位置需同时给出合法的经度 lon 与纬度 lat")
        text = fields.get("text") or ""
        if not isinstance(text, str):
            return _error(400, "text 应为字符串")
        ref = f"{user[:25]}:{msg_id}"
        state, answer = await asyncio.to_thread(storage.claim, self.engine, "webchat", ref)
        if state == "done":
            return web.json_response({"replies": self._public(answer or []), "repeated": True}, dumps=_dumps)
        if state == "busy":
            answer = await asyncio.to_thread(
                storage.wait_for, lambda: storage.answer_of(self.engine, "webchat", ref), 5.0
            )
            if answer is None:
                return _error(409, "这条消息正在处理，请稍候")
            return web.json_response({"replies": self._public(answer), "repeated": True}, dumps=_dumps)
        inbound = Inbound("webchat", user, ref, text=text, photo=photo, lon=lon, lat=lat, crs="wgs84")
        try:
            replies = [r.as_dict() for r in await asyncio.to_thread(self.dialogue.handle, inbound)]
        except Exception:
            await asyncio.to_thread(storage.release, self.engine, "webchat", ref)
            raise
        await asyncio.to_thread(storage.finish, self.engine, "webchat", ref, replies)
        return web.json_response({"replies": self._public(replies)}, dumps=_dumps)

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], bytes | None]:
        if request.content_type == "multipart/form-data":
            if request.content_length is not None and request.content_length > PHOTO_MAX_BYTES + MAX_JSON:
                raise _Bad(413, "照片太大了（上限 10 MB）")
            fields: dict[str, Any] = {}
            photo = None
            reader = await request.multipart()
            async for part in reader:
                if part.name == "photo":
                    data = await part.read()
                    if len(data) > PHOTO_MAX_BYTES:
                        raise _Bad(413, "照片太大了（上限 10 MB）")
                    photo = bytes(data) if data else None
                elif part.name in ("id", "text", "lon", "lat"):
                    fields[part.name] = (await part.text())[:2000]
            return fields, photo
        if request.content_length is not None and request.content_length > MAX_JSON:
            raise _Bad(413, "消息太长了")
        body = await request.content.read(MAX_JSON + 1)
        if len(body) > MAX_JSON:
            raise _Bad(413, "消息太长了")
        try:
            data = json.loads(body)
        except ValueError:
            raise _Bad(400, "请求体不是合法的 JSON") from None
        if not isinstance(data, dict):
            raise _Bad(400, "请求体应为 JSON 对象")
        return data, None

    @staticmethod
    def _public(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in replies:
            item = {"text": r.get("text", ""), "options": r.get("options", []), "ask_location": r.get("ask_location")}
            if r.get("photo"):
                item["photo_url"] = f"/chat/photos/{r['photo']}"
            out.append(item)
        return out

    async def updates(self, request: web.Request) -> web.Response:
        """Case news and 受理员 answers not shown yet (the page asks every few seconds)."""
        user = self._user(request)
        if user is None:
            return _error(401, "请先打开 /chat 页面")
        try:
            after = max(0, int(request.query.get("after", "0")))
        except ValueError:
            return _error(400, "after 应为整数")
        rows = await asyncio.to_thread(storage.webchat_updates, self.engine, user, after)
        items = [{"id": r.id, "replies": self._public(r.payload.get("replies", []))} for r in rows]
        return web.json_response({"updates": items, "last": rows[-1].id if rows else after}, dumps=_dumps)

    async def photo(self, request: web.Request) -> web.StreamResponse:
        """A photo this visitor sent, or the after-photo of one of their cases; nothing else."""
        user = self._user(request)
        sha = request.match_info["sha256"]
        if user is None or not re.fullmatch(r"[0-9a-f]{64}", sha):
            return _error(404, "照片不存在")
        if not await asyncio.to_thread(citizen.may_see_photo, self.engine, "webchat", user, sha):
            return _error(404, "照片不存在")
        store = self.dialogue.deps.attachments
        try:
            info = await asyncio.to_thread(store.info, sha)
        except AttachmentError:
            return _error(404, "照片不存在")
        return web.FileResponse(info.path, headers={"Content-Type": info.media_type, "Cache-Control": "private"})


class _Bad(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
