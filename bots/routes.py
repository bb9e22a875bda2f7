"""Mounting the chat channels on an aiohttp app: ``/wechat``, ``/telegram/webhook``, ``/chat``, the notifier
task that tells citizens about their cases, and the one that delivers department notices (``bots.deptnotify``).
A channel without settings answers 404 and sends nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from bots.deptnotify import DeptNotifier
from bots.dialogue import Deps, Dialogue
from bots.notify import Notifier, Sender
from bots.telegram_bot import TelegramBot
from bots.webchat import WebChat
from bots.wechat import WeChat
from core.notices import sweep_alerts


class Bots:
    """The channels of one app, sharing one dialogue and one notifier."""

    def __init__(self, deps: Deps, dialogue: Dialogue | None = None, notify_interval: float = 2.0) -> None:
        s = deps.settings
        self.deps = deps
        self.dialogue = dialogue or Dialogue(deps)
        self.wechat = WeChat(s, deps.engine, self.dialogue, wake=self._wake) if s.wechat_token else None
        self.telegram = TelegramBot(s, self.dialogue) if s.telegram_token else None
        self.webchat = WebChat(self.dialogue)
        senders: dict[str, Sender] = {}
        if self.wechat is not None and s.wechat_appid and s.wechat_secret:
            wechat = self.wechat

            async def send_wechat(recipient: str, replies: list[dict], kind: str) -> None:
                await asyncio.to_thread(wechat.send, recipient, replies, kind)

            senders["wechat"] = send_wechat
        if self.telegram is not None:
            senders["telegram"] = self.telegram.send
        self.notifier = Notifier(deps.engine, senders, interval=notify_interval)
        self.notices = DeptNotifier(deps.engine, s, sweep=lambda: sweep_alerts(deps.intake.loop, s))

    def _wake(self) -> None:
        self.notifier.wake()

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: start the Telegram application and the notifier, stop them on shutdown. With a
        chat channel configured, the classifier and the indexes are loaded before the first message arrives (else
        the first citizens would wait seconds, past WeChat's deadline); `gridline serve` has also frozen the heap
        (``Runtime.warm``)."""
        if self.wechat is not None or self.telegram is not None:
            await asyncio.to_thread(self.dialogue.warm)
        if self.telegram is not None:
            await self.telegram.start()
        task = asyncio.create_task(self.notifier.run(), name="gridline-notifier")
        notices = asyncio.create_task(self.notices.run(), name="gridline-notices")
        yield
        for t in (task, notices):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.telegram is not None:
            await self.telegram.stop()


BOTS = web.AppKey("bots", Bots)


async def _not_configured(request: web.Request) -> web.Response:
    return web.json_response({"error": "该渠道未配置"}, status=404)


def mount(app: web.Application, deps: Deps, *, notifier: bool = True, dialogue: Dialogue | None = None) -> Bots:
    """Add the chat routes (and, unless ``notifier`` is False, the notifier task) to ``app``."""
    bots = Bots(deps, dialogue)
    app[BOTS] = bots
    r = app.router
    if bots.wechat is not None:
        r.add_get("/wechat", bots.wechat.verify_url)
        r.add_post("/wechat", bots.wechat.receive)
    else:
        r.add_route("*", "/wechat", _not_configured)
    if bots.telegram is not None:
        r.add_post("/telegram/webhook", bots.telegram.webhook)
    else:
        r.add_route("*", "/telegram/webhook", _not_configured)
    bots.webchat.setup(app)
    if notifier:
        app.cleanup_ctx.append(bots.lifecycle)
    elif bots.telegram is not None:
        telegram = bots.telegram

        async def telegram_only(_app: web.Application) -> AsyncIterator[None]:
            await telegram.start()
            yield
            await telegram.stop()

        app.cleanup_ctx.append(telegram_only)
    return bots
