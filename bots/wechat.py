"""The WeChat official account (公众号) channel, on wechatpy: URL verification, messages in plain and safe (AES)
mode, passive replies within WeChat's deadline, and the customer-service / template message APIs for anything later.

WeChat waits 5 s for an answer and then delivers the same message again (three tries in all), possibly to another
worker. So each message is claimed once by its MsgId (events: FromUserName + CreateTime) in ``channel_delivery``;
a repeat waits for the first one's answer and gives the same passive reply. When the answer is not ready within
``deadline`` (4 s), every delivery answers ``success`` and the answer goes out through the customer-service API from
the outbox instead. Signatures are compared in constant time (``hmac.compare_digest`` over wechatpy's own signer:
``wechatpy.utils.check_signature`` compares with ``!=``), and XML is checked by defusedxml before wechatpy parses it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from typing import Any

from aiohttp import web
from defusedxml import ElementTree as SafeET
from sqlalchemy.engine import Engine
from wechatpy import parse_message
from wechatpy.client import WeChatClient
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException, WeChatClientException
from wechatpy.replies import TextReply
from wechatpy.session import SessionStorage
from wechatpy.utils import WeChatSigner

from bots import storage
from bots.dialogue import HELP, Dialogue, Inbound, Outbound
from bots.notify import Undeliverable
from bots.privacy import mask
from core.config import Settings

log = logging.getLogger("gridline.bots")

MAX_BODY = 64 * 1024  # WeChat's own messages are a few hundred bytes
MEDIA_MAX = 10 * 1024 * 1024
SERVICE_WINDOW = timedelta(hours=48)  # customer-service messages are allowed this long after the user's last message
OUT_OF_WINDOW = {45015, 45047}  # "response out of time limit", "out of response count limit"
MENU_KEYS = {"REPORT": "上报", "MY_CASES": "我的反映", "HUMAN": "人工", "HELP": "帮助"}
MENU = {
    "button": [
        {"type": "click", "name": "我要反映", "key": "REPORT"},
        {"type": "click", "name": "办理进度", "key": "MY_CASES"},
        {
            "name": "服务",
            "sub_button": [
                {"type": "click", "name": "人工服务", "key": "HUMAN"},
                {"type": "click", "name": "使用说明", "key": "HELP"},
            ],
        },
    ]
}
UNSUPPORTED = {"video": "视频消息", "shortvideo": "小视频", "link": "链接", "miniprogrampage": "小程序卡片"}


class DatabaseSession(SessionStorage):
    """wechatpy's token cache in the ``channel_state`` table, so every worker shares one access token (WeChat
    limits how often it may be fetched, and each fetch invalidates the previous one after five minutes)."""

    MARGIN_S = 300

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str, default: Any = None) -> Any:
        value = storage.get_value(self.engine, f"wechat:{key}")
        return default if value is None else value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        ttl = max(60, int(ttl) - self.MARGIN_S) if ttl else None
        storage.set_value(self.engine, f"wechat:{key}", str(value), ttl)

    def delete(self, key: str) -> None:
        storage.delete_value(self.engine, f"wechat:{key}")


class Client(WeChatClient):
    """wechatpy's client against a configurable API host (the real one, or a local fake in tests)."""

    def __init__(self, appid: str, secret: str, api_base: str, engine: Engine) -> None:
        super().__init__(appid, secret, session=DatabaseSession(engine), timeout=10)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = f"{self.api_base}/cgi-bin/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=f"{self.api_base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def client_for(settings: Settings, engine: Engine) -> Client:
    if not (settings.wechat_appid and settings.wechat_secret):
        raise ValueError("需要设置 GRIDLINE_WECHAT_APPID 和 GRIDLINE_WECHAT_SECRET")
    return Client(settings.wechat_appid, settings.wechat_secret, settings.wechat_api_base, engine)


def set_menu(settings: Settings, engine: Engine) -> dict[str, Any]:
    """Install the account's menu (``gridline wechat menu``)."""
    client_for(settings, engine).menu.create(MENU)
    return MENU


class _Route:
    """Whether a message's answer goes back as the passive reply or, past the deadline, through the outbox: decided
    once, by whichever comes first, the answer or the deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._choice: str | None = None

    def choose(self, choice: str) -> str:
        with self._lock:
            self._choice = self._choice or choice
            return self._choice


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WeChat:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        dialogue: Dialogue,
        wake: Callable[[], None] = lambda: None,
        deadline: float = 4.0,
    ) -> None:
        self.settings = settings
        self.token = settings.wechat_token
        self.engine = engine
        self.dialogue = dialogue
        self.wake = wake
        self.deadline = deadline
        self.crypto = (
            WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
            if settings.wechat_aes_key
            else None
        )
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = client_for(self.settings, self.engine)
        return self._client

    # --- signatures -------------------------------------------------------------------------------------------
    def _signed(self, signature: str, *parts: str) -> bool:
        signer = WeChatSigner()
        signer.add_data(self.token, *parts)
        return hmac.compare_digest(signer.signature.encode(), signature.encode("utf-8", "replace"))

    # --- HTTP -------------------------------------------------------------------------------------------------
    async def verify_url(self, request: web.Request) -> web.Response:
        """GET /wechat: the server-address check of the account settings; echo ``echostr`` when signed by us."""
        q = request.query
        if not self._signed(q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", "")):
            return web.Response(status=403, text="invalid signature")
        return web.Response(text=q.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        """POST /wechat: one message or event; always answered (a passive reply or ``success``), never a 500."""
        started = time.monotonic()
        try:
            msg, plain_ok = await self._read(request)
        except _Refused as exc:
            return web.Response(status=exc.status, text=exc.reason)
        try:
            return await self._answer(msg, request.query, plain_ok, started)
        except Exception:  # storage down: WeChat must still get an answer, and the citizen a word
            log.exception("wechat message from %s not handled", mask(msg.source))
            return self._render([{"text": "系统繁忙，请稍后再发一次。"}], msg, request.query, plain_ok)

    async def _answer(self, msg: Any, q: Any, plain_ok: bool, started: float) -> web.Response:
        """One thread hop per message (claim, dialogue, outbox, finish): under a burst, every extra hop queued again
        for the executor's few threads, and the queueing, not the work, made the slow tail."""
        ref = self._ref(msg)
        remaining = max(0.2, self.deadline - (time.monotonic() - started))
        loop = asyncio.get_running_loop()
        route = _Route()
        job = asyncio.ensure_future(
            asyncio.to_thread(self._turn, msg, ref, route, lambda: loop.call_soon_threadsafe(self.wake))
        )
        try:
            state, answer = await asyncio.wait_for(asyncio.shield(job), timeout=remaining)
        except TimeoutError:
            if route.choose("late") == "late":
                return self._success()  # the answer follows by customer-service message
            state, answer = await job  # the passive reply was being written as the clock ran out
        if state == "busy":
            answer = await self._await_answer(ref, max(0.2, self.deadline - (time.monotonic() - started)))
            return self._success() if answer is None else self._render(answer, msg, q, plain_ok)
        if state == "failed":
            return self._render([{"text": "系统繁忙，请稍后再发一次。"}], msg, q, plain_ok)
        return self._render(answer or [], msg, q, plain_ok)

    def _turn(self, msg: Any, ref: str, route: _Route, wake: Callable[[], None]) -> tuple[str, list[dict] | None]:
        """Claim the message and answer it: ("done", passive reply) for this or an earlier delivery, ("busy", None)
        while another delivery is being answered, ("late", None) when the answer went to the outbox, ("failed",
        None) when storage failed (the claim is then released, so WeChat's retry is processed)."""
        try:
            state, answer = storage.claim(self.engine, "wechat", ref)
            if state != "new":
                return state, answer
        except Exception:
            log.exception("wechat message %s from %s not claimed", ref, mask(msg.source))
            return "failed", None
        try:
            inbound, direct = self._inbound(msg)
            replies = [r.as_dict() for r in (direct if direct is not None else self.dialogue.handle(inbound))]
        except Exception:
            log.exception("wechat message %s from %s failed", ref, mask(msg.source))
            with suppress(Exception):
                storage.release(self.engine, "wechat", ref)
            return "failed", None
        if route.choose("passive") == "late":  # no one awaits this any more: log, never raise
            try:
                storage.finish(self.engine, "wechat", ref, [])
                self._enqueue(msg.source, ref, replies)
                wake()
            except Exception:
                log.exception("late answer to wechat message %s from %s not queued", ref, mask(msg.source))
            return "late", None
        photos = [r for r in replies if r.get("photo")]  # photos cannot ride in a passive text reply
        passive = [r for r in replies if not r.get("photo")]
        if photos:
            self._enqueue(msg.source, f"{ref}:media", photos)
            wake()
        storage.finish(self.engine, "wechat", ref, passive)
        return "done", passive

    async def _read(self, request: web.Request) -> tuple[Any, bool]:
        if not self.token:
            raise _Refused(404, "wechat not configured")
        q = request.query
        if not self._signed(q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", "")):
            raise _Refused(403, "invalid signature")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _Refused(413, "message too large")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise _Refused(413, "message too large")
        encrypted = q.get("encrypt_type", "raw").lower() == "aes"
        try:
            xml = body.decode("utf-8")
            envelope = _safe_dict(xml)
            if encrypted:
                if self.crypto is None:
                    raise _Refused(400, "safe mode not configured")
                encrypt = envelope.get("Encrypt", "")
                if not self._signed(q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), encrypt):
                    raise _Refused(403, "invalid signature")
                xml = self.crypto.decrypt_message(
                    {"Encrypt": encrypt}, q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")
                )
                xml = xml.decode("utf-8") if isinstance(xml, bytes) else xml
                _safe_dict(xml)
            msg = parse_message(xml)
        except _Refused:
            raise
        except (InvalidSignatureException, InvalidAppIdException):
            raise _Refused(403, "invalid signature or appid") from None
        except Exception:  # malformed XML, bad base64 or padding, missing fields: the sender's fault
            raise _Refused(400, "malformed message") from None
        if not getattr(msg, "source", None):
            raise _Refused(400, "malformed message")
        return msg, not encrypted

    @staticmethod
    def _ref(msg: Any) -> str:
        if getattr(msg, "id", 0):
            return f"msg:{msg.id}"
        return f"ev:{msg.source}:{msg.time}:{getattr(msg, 'event', msg.type)}"[:160]

    async def _await_answer(self, ref: str, timeout: float) -> list[dict] | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            answer = await asyncio.to_thread(storage.answer_of, self.engine, "wechat", ref)
            if answer is not None:
                return answer
            await asyncio.sleep(0.05)
        return None

    def _enqueue(self, user: str, ref: str, replies: list[dict]) -> None:
        storage.enqueue(
            self.engine,
            [{"dedup_key": f"reply:wechat:{ref}", "channel": "wechat", "recipient": user, "kind": "reply",
              "payload": {"replies": replies}}],
        )  # fmt: skip

    def _success(self) -> web.Response:
        return web.Response(text="success")

    def _render(self, replies: list[dict], msg: Any, q: Any, plain: bool) -> web.Response:
        texts = [r["text"] for r in replies if r.get("text")]
        if not texts:
            return self._success()
        content = "\n\n".join(texts)
        if any(r.get("ask_location") for r in replies):
            content += "\n（点输入框旁的“+”，选“位置”即可发送位置）"
        xml = TextReply(source=msg.target, target=msg.source, content=content).render()
        if not plain and self.crypto is not None:
            xml = self.crypto.encrypt_message(xml, q.get("nonce", ""), str(int(time.time())))
        return web.Response(text=xml, content_type="application/xml")

    # --- WeChat messages → the dialogue ----------------------------------------------------------------------
    def _inbound(self, msg: Any) -> tuple[Inbound | None, list[Outbound] | None]:
        """An Inbound for the dialogue, or a direct answer for events that need no conversation."""
        user, ref = msg.source, self._ref(msg)
        kind = msg.type
        if kind == "text":
            return Inbound("wechat", user, ref, text=msg.content or ""), None
        if kind in ("image", "voice"):
            what = "照片" if kind == "image" else "语音"
            if kind == "voice" and (msg.recognition or "").strip():
                return Inbound("wechat", user, ref, recognition=msg.recognition), None
            try:
                data = self._download(msg.media_id)
            except WeChatClientException as exc:
                if exc.errcode is None:
                    raise  # the API could not be reached: fail the turn, WeChat's retry gets another chance
                return Inbound("wechat", user, ref, problem=f"没能取到这条{what}，请重新发送。"), None
            if data is None:
                return Inbound("wechat", user, ref, too_large=what), None
            if kind == "image":
                return Inbound("wechat", user, ref, photo=data), None
            return Inbound("wechat", user, ref, audio=data, audio_type="audio/amr"), None
        if kind == "location":
            lat, lon = float(msg.location_x), float(msg.location_y)
            return Inbound("wechat", user, ref, lon=lon, lat=lat, crs="gcj02", label=msg.label or ""), None
        if kind == "event":
            return self._event(msg, user, ref)
        return Inbound("wechat", user, ref, unsupported=UNSUPPORTED.get(kind, "这种消息")), None

    def _event(self, msg: Any, user: str, ref: str) -> tuple[Inbound | None, list[Outbound] | None]:
        event = (msg.event or "").lower()
        if event in ("subscribe", "subscribe_scan"):
            return None, [Outbound("感谢关注！\n" + HELP)]
        if event == "click" and msg.key in MENU_KEYS:
            return Inbound("wechat", user, ref, text=MENU_KEYS[msg.key]), None
        if event == "location":
            lon, lat = float(msg.longitude or 0), float(msg.latitude or 0)
            return Inbound("wechat", user, ref, lon=lon, lat=lat, crs="gcj02", hint=True), None
        return None, []

    def _download(self, media_id: str) -> bytes | None:
        """Fetch a temporary media file through the media API (never the message's PicUrl: no fetching of URLs
        that arrive in messages)."""
        if not media_id or len(media_id) > 128:
            return None
        res = self.client.media.download(media_id)
        if isinstance(res, dict):
            raise WeChatClientException(res.get("errcode") or -1, res.get("errmsg"))
        size = int(res.headers.get("Content-Length") or 0)
        if size > MEDIA_MAX or len(res.content) > MEDIA_MAX:
            return None
        return res.content

    # --- the outbox's sender ----------------------------------------------------------------------------------
    def send(self, recipient: str, replies: list[dict], kind: str) -> None:
        """Customer-service messages within 48 hours of the citizen's last message; after that, case news goes
        as a template message (when one is configured). Raises Undeliverable when neither can work."""
        conv = storage.find_conversation(self.engine, "wechat", recipient)
        recent = conv is not None and conv.last_seen_at >= storage.now_utc() - SERVICE_WINDOW
        if not recent:
            return self._template(recipient, replies, kind)
        try:
            for reply in replies:
                if reply.get("photo"):
                    self._send_photo(recipient, reply["photo"])
                elif reply.get("text"):
                    self.client.message.send_text(recipient, reply["text"])
        except WeChatClientException as exc:
            if exc.errcode in OUT_OF_WINDOW:
                return self._template(recipient, replies, kind)
            if exc.errcode is None and exc.response is not None:  # an HTTP failure, not a WeChat error code
                raise ConnectionError(f"微信接口 HTTP {exc.response.status_code}") from None
            raise

    def _template(self, recipient: str, replies: list[dict], kind: str) -> None:
        template = self.settings.wechat_template_id
        if kind != "notify" or not template:
            raise Undeliverable("超出 48 小时客服消息窗口，且没有可用的模板消息")
        text = "\n".join(r["text"] for r in replies if r.get("text") and not r.get("photo"))
        data = {"first": {"value": "您反映的问题有新进展"}, "keyword1": {"value": text[:200]}}
        self.client.message.send_template(recipient, template, data)

    def _send_photo(self, recipient: str, sha256: str) -> None:
        store = self.dialogue.deps.attachments
        data, media_type = store.open(sha256), store.info(sha256).media_type
        ext = media_type.split("/")[-1]
        uploaded = self.client.media.upload("image", (f"photo.{ext}", data, media_type))
        self.client.message.send_image(recipient, uploaded["media_id"])


def _safe_dict(xml: str) -> dict[str, str]:
    """The top-level fields of a WeChat XML document, parsed with DTDs and entities refused (defusedxml)."""
    root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    if root.tag != "xml":
        raise ValueError("not a WeChat message")
    return {child.tag: (child.text or "") for child in root}
