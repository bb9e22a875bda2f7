"""Local stand-ins for the WeChat and Telegram HTTP APIs, each an aiohttp app in a thread of its own (wechatpy
calls it synchronously from worker threads, the CLI from the test's thread), recording what Gridline asked for."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web


def png(seed: int) -> bytes:
    """A real 1×1 PNG; ``seed`` makes each one different."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(bytes([0, seed % 256, (seed >> 8) % 256, 0]))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def amr(seconds: float = 1.0) -> bytes:
    """An AMR-NB file ffmpeg decodes: 12.2 kbit/s frames (header 0x3C) of silence-ish payload, 50 per second."""
    return b"#!AMR\n" + (b"\x3c" + bytes(31)) * int(50 * seconds)


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 in a background thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class FakeWeChat:
    """api.weixin.qq.com as far as Gridline uses it: token, media get/upload, custom and template messages, menu."""

    def __init__(self) -> None:
        self.media: dict[str, tuple[bytes, str]] = {}
        self.sent: list[dict[str, Any]] = []  # custom-service messages
        self.templates: list[dict[str, Any]] = []
        self.uploads: list[bytes] = []
        self.menus: list[dict[str, Any]] = []
        self.token_fetches = 0
        self.fail_sends = 0  # answer this many custom sends with a server error
        self.send_errcode = 0  # answer custom sends with this WeChat errcode (0: succeed)
        self.media_delay = 0.0
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_get("/cgi-bin/media/get", self.media_get)
        app.router.add_post("/cgi-bin/media/upload", self.media_upload)
        app.router.add_post("/cgi-bin/message/custom/send", self.custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self.template_send)
        app.router.add_post("/cgi-bin/menu/create", self.menu_create)
        self.app = app
        self._ids = itertools.count(1)

    def _authorised(self, request: web.Request) -> bool:
        return request.query.get("access_token", "").startswith("TOKEN-")

    async def token(self, request: web.Request) -> web.Response:
        if request.query.get("grant_type") != "client_credential" or not request.query.get("secret"):
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        self.token_fetches += 1
        return web.json_response({"access_token": f"TOKEN-{self.token_fetches}", "expires_in": 7200})

    async def media_get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        if self.media_delay:
            await asyncio.sleep(self.media_delay)
        item = self.media.get(request.query.get("media_id", ""))
        if item is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        data, content_type = item
        return web.Response(body=data, content_type=content_type)

    async def media_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.uploads.append(form["media"].file.read())
        return web.json_response({"type": "image", "media_id": f"up-{next(self._ids)}", "created_at": int(time.time())})

    async def custom_send(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        if self.fail_sends > 0:
            self.fail_sends -= 1
            return web.Response(status=502, text="bad gateway")
        if self.send_errcode:
            return web.json_response({"errcode": self.send_errcode, "errmsg": "response out of time limit"})
        self.sent.append(json.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def template_send(self, request: web.Request) -> web.Response:
        self.templates.append(json.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def menu_create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.menus.append(json.loads(await request.read()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def texts_to(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m["touser"] == openid and m["msgtype"] == "text"]


class FakeTelegram:
    """api.telegram.org for one bot token: getMe, sendMessage, sendPhoto, getFile + file download, setWebhook."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.files: dict[str, bytes] = {}
        self.sent: list[dict[str, Any]] = []
        self.webhooks: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []  # what getUpdates hands out (polling mode)
        self.fail_sends = 0
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post(f"/bot{token}/{{method}}", self.method)
        app.router.add_get(f"/file/bot{token}/{{path:.+}}", self.file)
        self.app = app

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        out: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                out[key] = value.file.read()
                continue
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out

    def _message(self, chat_id: Any, **extra: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(chat_id), "type": "private"},
            **extra,
        }

    async def method(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        params = await self._params(request)
        if name == "getMe":
            result: Any = {"id": 4242, "is_bot": True, "first_name": "Gridline", "username": "gridline_bot"}
        elif name in ("sendMessage", "sendPhoto"):
            if self.fail_sends > 0:
                self.fail_sends -= 1
                return web.json_response({"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502)
            self.sent.append({"method": name, **params})
            extra = {"text": params.get("text", "")} if name == "sendMessage" else {"photo": []}
            result = self._message(params["chat_id"], **extra)
        elif name == "getFile":
            file_id = params["file_id"]
            if file_id not in self.files:
                return web.json_response({"ok": False, "error_code": 400, "description": "file not found"}, status=400)
            result = {"file_id": file_id, "file_unique_id": file_id, "file_path": f"files/{file_id}"}
        elif name == "setWebhook":
            self.webhooks.append(params)
            result = True
        elif name == "getUpdates":
            offset = int(params.get("offset") or 0)
            result = [u for u in self.updates if u["update_id"] >= offset]
            if not result:
                await asyncio.sleep(0.1)  # a short "long poll"
        elif name in ("deleteWebhook", "sendChatAction"):
            result = True
        else:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.json_response({"ok": True, "result": result})

    async def file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].removeprefix("files/")
        if file_id not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[file_id])

    def texts_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if int(m["chat_id"]) == chat_id and m["method"] == "sendMessage"]
