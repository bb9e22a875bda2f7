"""Local stand-ins for where department notices go: a Standard Webhooks receiver that verifies every signature, a
企业微信 and a 钉钉 group robot (the 钉钉 one checks timestamp + sign), and an SMTP server (aiosmtpd). Each records
what arrived; run the HTTP ones with ``tests.bots.fakes.serve``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"gridline-department-webhook-key!").decode()
DINGTALK_SECRET = "SEC0123456789abcdef-gridline"


class Receiver:
    """A department's webhook endpoint: ``POST /hook`` verified with ``standardwebhooks`` (a bad signature is
    answered 401 and counted in ``rejected``); ``down`` answers 503 (``refuse`` as well, by dropping the
    connection); every accepted delivery is kept with its arrival time (``time.time()``)."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.webhook = Webhook(secret)
        self.received: list[dict[str, Any]] = []  # {"id", "body", "at"}
        self.rejected = 0
        self.refused = 0
        self.down = False
        self.delay = 0.0  # seconds before answering (a slow receiver)
        self._lock = threading.Lock()
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.app = app

    async def hook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.down:
            with self._lock:
                self.refused += 1
            return web.Response(status=503, text="down")
        try:
            body = self.webhook.verify(raw, dict(request.headers))
        except Exception:
            with self._lock:
                self.rejected += 1
            return web.Response(status=401, text="bad signature")
        at = time.time()
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        with self._lock:
            self.received.append({"id": request.headers["webhook-id"], "body": body, "at": at})
        return web.Response(status=204)

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(r["id"] for r in self.received)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.received]


class FakeWeCom:
    """企业微信群机器人: ``POST /cgi-bin/webhook/send?key=…`` with a markdown message; ``errcode`` 0."""

    def __init__(self, key: str = "wecom-robot-key") -> None:
        self.key = key
        self.sent: list[dict[str, Any]] = []
        self.errcode = 0  # answer with this errcode (0: accept)
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self.send)
        self.app = app

    async def send(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.key:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        body = await request.json()
        ok = body.get("msgtype") == "markdown" and isinstance(body.get("markdown", {}).get("content"), str)
        if not ok:
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        if self.errcode:
            return web.json_response({"errcode": self.errcode, "errmsg": "busy"})
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


class FakeDingTalk:
    """钉钉自定义机器人: ``POST /robot/send?access_token=…&timestamp=…&sign=…``; the sign is checked as DingTalk
    does (HMAC-SHA256 of "timestamp\\nsecret", base64) and the timestamp must be within an hour."""

    def __init__(self, token: str = "dingtalk-robot-token", secret: str = DINGTALK_SECRET) -> None:
        self.token = token
        self.secret = secret
        self.sent: list[dict[str, Any]] = []
        self.bad_signs = 0
        app = web.Application()
        app.router.add_post("/robot/send", self.send)
        self.app = app

    async def send(self, request: web.Request) -> web.Response:
        q = request.query  # aiohttp has URL-decoded the sign already
        if q.get("access_token") != self.token:
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
        timestamp, sign = q.get("timestamp", ""), q.get("sign", "")
        digest = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        fresh = timestamp.isdigit() and abs(int(timestamp) - time.time() * 1000) < 3_600_000
        if not fresh or not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            self.bad_signs += 1
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        body = await request.json()
        md = body.get("markdown", {})
        if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 markdown"})
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


class Mailbox:
    """An aiosmtpd handler keeping every message, parsed (headers decoded)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from, "message": message})
        return "250 OK"
