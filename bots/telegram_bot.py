"""The Telegram bot channel, on python-telegram-bot: an ``Application`` without an updater whose updates arrive at
``POST /telegram/webhook`` inside Gridline's own aiohttp app, checked by the secret-token header and claimed once per
``update_id`` (Telegram delivers an update again until it gets a 2xx). ``gridline telegram poll`` runs the same
handlers with long polling for development, and ``gridline telegram set-webhook URL`` registers the webhook.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import Bot, KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bots import storage
from bots.dialogue import AUDIO_MAX_BYTES, PHOTO_MAX_BYTES, Dialogue, Inbound, Outbound
from bots.privacy import mask
from core.config import Settings

log = logging.getLogger("gridline.bots")
# httpx logs every request URL at INFO, and a Bot API URL carries the bot token: keep those lines out of the log
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_BODY = 1024 * 1024
COMMANDS = {"start": "帮助", "help": "帮助", "report": "上报", "status": "查询", "cancel": "取消", "mine": "我的反映"}
SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def build_application(settings: Settings, polling: bool = False) -> Application:
    """An Application against the configured Bot API host; without an updater unless polling."""
    if not settings.telegram_token:
        raise ValueError("需要设置 GRIDLINE_TELEGRAM_TOKEN")
    base = settings.telegram_api_base.rstrip("/")
    builder = Application.builder().token(settings.telegram_token)
    builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    if not polling:
        builder = builder.updater(None)
    return builder.build()


def _keyboard(reply: Outbound) -> ReplyKeyboardMarkup | ReplyKeyboardRemove:
    rows: list[list[KeyboardButton]] = []
    if reply.options:
        rows.append([KeyboardButton(o) for o in reply.options])
    if reply.ask_location:
        rows.append([KeyboardButton("发送我的位置", request_location=True)])
    if not rows:
        return ReplyKeyboardRemove()
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


class TelegramBot:
    def __init__(self, settings: Settings, dialogue: Dialogue, polling: bool = False) -> None:
        self.settings = settings
        self.secret = settings.telegram_secret
        self.dialogue = dialogue
        self.engine = dialogue.engine
        self.app = build_application(settings, polling)
        self.polling = polling
        self._initialized = False
        self._errors: dict[int, BaseException] = {}
        self._init_lock = asyncio.Lock()
        for name in COMMANDS:
            self.app.add_handler(CommandHandler(name, self._on_command))
        self.app.add_handler(MessageHandler(filters.ALL, self._on_message))
        self.app.add_error_handler(self._on_error)

    async def start(self) -> None:
        """Initialise (one getMe call); a Bot API that cannot be reached now is tried again on the first update."""
        try:
            await self._ready()
        except TelegramError as exc:
            log.warning("telegram not reachable at start: %s", exc)

    async def _ready(self) -> None:
        async with self._init_lock:
            if not self._initialized:
                await self.app.initialize()
                self._initialized = True

    async def stop(self) -> None:
        if self._initialized:
            self._initialized = False
            await self.app.shutdown()

    # --- the webhook ------------------------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        if not self.secret:
            return web.json_response({"error": "telegram webhook not configured"}, status=404)
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret.encode()):
            return web.json_response({"error": "forbidden"}, status=403)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "update too large"}, status=413)
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.json_response({"error": "update too large"}, status=413)
        try:
            await self._ready()
            update = Update.de_json(json.loads(body), self.app.bot)
        except TelegramError:
            return web.json_response({"error": "bot api unreachable"}, status=503)
        except Exception:
            return web.json_response({"error": "malformed update"}, status=400)
        if update is None or not isinstance(update.update_id, int):
            return web.json_response({"error": "malformed update"}, status=400)
        ref = str(update.update_id)
        state, _ = await asyncio.to_thread(storage.claim, self.engine, "telegram", ref)
        if state != "new":
            return web.json_response({"ok": True, "duplicate": True})
        await self.app.process_update(update)
        error = self._errors.pop(update.update_id, None)
        if error is not None:  # storage failed: let Telegram deliver the update again
            await asyncio.to_thread(storage.release, self.engine, "telegram", ref)
            return web.json_response({"error": "try again"}, status=503)
        await asyncio.to_thread(storage.finish, self.engine, "telegram", ref, [])
        return web.json_response({"ok": True})

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            if not self.polling:  # the webhook reads it back to have Telegram deliver the update again
                self._errors[update.update_id] = context.error or RuntimeError("handler failed")
            log.error("telegram update %s failed: %r", update.update_id, context.error)

    # --- updates → the dialogue -------------------------------------------------------------------------------
    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        name = message.text.split()[0].lstrip("/").split("@")[0].lower()
        text = " ".join([COMMANDS.get(name, name), *(context.args or [])])
        await self._answer(update, context, text=text)

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, context)

    async def _answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str | None = None) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or chat.type != "private":
            return  # edits, channel posts and group chats are not reports
        inbound = await self._inbound(update, context, str(chat.id), text)
        replies = await asyncio.to_thread(self.dialogue.handle, inbound)
        try:
            await self._send(chat.id, [r.as_dict() for r in replies])
        except TelegramError as exc:  # the state moved on: the answer must still arrive, so through the outbox
            log.info("telegram reply to %s failed (%s), queued", mask(str(chat.id)), exc)
            await asyncio.to_thread(
                storage.enqueue,
                self.engine,
                [{"dedup_key": f"reply:telegram:{update.update_id}", "channel": "telegram",
                  "recipient": str(chat.id), "kind": "reply", "payload": {"replies": [r.as_dict() for r in replies]}}],
            )  # fmt: skip

    async def _inbound(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, user: str, text: str | None
    ) -> Inbound:
        m = update.effective_message
        ref = str(update.update_id)
        if text is not None:
            return Inbound("telegram", user, ref, text=text)
        if m.text:
            return Inbound("telegram", user, ref, text=m.text)
        if m.photo:
            best = max(m.photo, key=lambda p: p.width * p.height)
            if (best.file_size or 0) > PHOTO_MAX_BYTES:
                return Inbound("telegram", user, ref, too_large="照片")
            data = await self._download(context, best.file_id)
            return Inbound("telegram", user, ref, text=m.caption or "", photo=data)
        if m.document and (m.document.mime_type or "").startswith("image/"):
            if (m.document.file_size or 0) > PHOTO_MAX_BYTES:
                return Inbound("telegram", user, ref, too_large="照片")
            data = await self._download(context, m.document.file_id)
            return Inbound("telegram", user, ref, text=m.caption or "", photo=data, photo_type=m.document.mime_type)
        voice = m.voice or m.audio
        if voice is not None:
            if (voice.file_size or 0) > AUDIO_MAX_BYTES:  # ffmpeg also stops after 120 s
                return Inbound("telegram", user, ref, too_large="语音")
            data = await self._download(context, voice.file_id)
            return Inbound("telegram", user, ref, audio=data, audio_type=voice.mime_type or "audio/ogg")
        location = m.location or (m.venue.location if m.venue else None)
        if location is not None:
            label = m.venue.address if m.venue else ""
            return Inbound("telegram", user, ref, lon=location.longitude, lat=location.latitude, label=label)
        if m.contact is not None:
            own = m.contact.user_id is not None and m.from_user is not None and m.contact.user_id == m.from_user.id
            return Inbound("telegram", user, ref, contact=m.contact.phone_number if own else "")
        return Inbound("telegram", user, ref, unsupported="这种消息")

    async def _download(self, context: ContextTypes.DEFAULT_TYPE, file_id: str) -> bytes:
        file = await context.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    # --- sending ----------------------------------------------------------------------------------------------
    async def _send(self, chat_id: int | str, replies: list[dict[str, Any]]) -> None:
        store = self.dialogue.deps.attachments
        for data in replies:
            reply = Outbound.of(data)
            if reply.photo:
                photo = await asyncio.to_thread(store.open, reply.photo)
                await self.app.bot.send_photo(chat_id=chat_id, photo=photo, caption=reply.text or None)
            elif reply.text:
                await self.app.bot.send_message(chat_id=chat_id, text=reply.text, reply_markup=_keyboard(reply))

    async def send(self, recipient: str, replies: list[dict[str, Any]], kind: str) -> None:
        """The outbox's sender for this channel."""
        await self._ready()
        await self._send(int(recipient), replies)

    def poll(self) -> None:
        """Long polling until interrupted (development without a public URL)."""
        self.app.run_polling(allowed_updates=["message"])


async def set_webhook(settings: Settings, url: str) -> bool:
    """Register ``url`` with the Bot API, with the secret token Telegram must send back in every call."""
    secret = settings.telegram_secret
    if not secret or len(secret) > 256 or not set(secret) <= SECRET_CHARS:
        raise ValueError("GRIDLINE_TELEGRAM_SECRET 需为 1–256 个字母、数字、_ 或 -")
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise ValueError("Webhook 地址需为 https:// 开头")
    base = settings.telegram_api_base.rstrip("/")
    bot = Bot(settings.telegram_token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
    async with bot:
        return await bot.set_webhook(url=url, secret_token=secret, allowed_updates=["message"])
