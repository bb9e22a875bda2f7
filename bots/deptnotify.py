"""Department notices out of the outbox: a case dispatched, re-dispatched, urged, sent back for 返工, or its 处置
limit turning yellow or red reaches the department (and the 值班长's copy of an alert) on each channel it set up —
a signed webhook (Standard Webhooks), e-mail, a 企业微信 or 钉钉 group robot, a Telegram chat.

The rows are written by the case loop in the event's own transaction (``core.notices``); here they are claimed in
batches (``storage.claim_batch``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers share the
table; a lease in ``next_at``, so a worker killed mid-send loses nothing), sent concurrently with a bounded number
in flight, and settled together: sent, or retried after 1 min, 5 min, 30 min, 2 h, 6 h, then a dead letter the
admin can resend. A case's notices on one channel to one recipient go out in order. Where to send is read from the
department row (or the settings, for the 值班长) when the row is sent, so a corrected address takes effect on the
next retry. Notices carry no citizen's data, so log lines need no masking; URLs are never logged (robot URLs and
the Telegram API path carry their tokens).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.engine import Engine, Row
from standardwebhooks import Webhook

from bots import storage
from bots.notify import Undeliverable
from core import notices
from core.models import Department
from core.worktime import COLOUR_NAMES

log = logging.getLogger("gridline.notices")

CHANNELS = tuple(notices.CHANNELS)
BACKOFF = (60.0, 300.0, 1800.0, 7200.0, 21600.0)  # seconds before the 2nd … 6th try; a 6th failure is dead
SWEEP_EVERY = 60.0  # seconds between looks for 处置 limits turned yellow or red
LEASE = timedelta(seconds=60)  # a claimed row not settled by then was lost with its worker and is taken again
TIMEOUT = aiohttp.ClientTimeout(total=10)
DEPARTMENT = Department.__table__
TARGET_COLUMNS = (*dict.fromkeys(c for columns in notices.CHANNELS.values() for c in columns), "dingtalk_secret")



def webhook_id(dedup_key: str) -> str:
    """The ``webhook-id`` of a notice: the same on every retry, so the receiver can drop a repeat."""
    return "msg_" + hashlib.sha256(dedup_key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Target:
    """Where one outbox row goes: the department's (or 值班长's) addresses as they are now, and the row's key."""

    recipient: str
    dedup_key: str
    name: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    email: str = ""
    wecom_url: str = ""
    dingtalk_url: str = ""
    dingtalk_secret: str = ""
    telegram_chat_id: str = ""


#: a channel's sender: raises on failure (``Undeliverable``: no retry can help, the row is dead at once).
Sender = Callable[[Target, dict[str, Any]], Awaitable[None]]


# --- the words ------------------------------------------------------------------------------------------------


def title(payload: dict[str, Any]) -> str:
    """``【派遣通知】案卷 2026… 路灯异常``: the subject line of every channel."""
    n = payload.get("notice") or {}
    kind = notices.EVENT_NAMES.get(payload.get("event", ""), "案卷通知")
    return f"【{kind}】案卷 {n.get('case', '')} {n.get('matter_name', '')}".strip()


def facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The notice as (label, value) lines, in the order a department reads them."""
    n = payload.get("notice") or {}
    matter = " ".join(str(x) for x in (n.get("matter_code"), n.get("matter_name")) if x)
    limit = f"{n['limit']:g} {n.get('unit', '')}".strip() if isinstance(n.get("limit"), int | float) else ""
    lines = [
        ("案卷编号", str(n.get("case", ""))),
        ("管理事项", matter),
        ("地址", str(n.get("address", ""))),
        ("单元网格", str(n.get("grid_code") or "")),
        ("责任部门", str(n.get("department") or "")),
        ("处置时限", limit),
        ("截止时间", _local(n.get("deadline"))),
        ("时限状态", COLOUR_NAMES.get(str(n.get("light", "")), str(n.get("light") or ""))),
    ]
    return [(k, v) for k, v in lines if v]


def _local(iso: Any) -> str:
    """An ISO time as Beijing time for people (the JSON keeps the ISO form)."""
    if not iso:
        return ""
    try:
        at = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if at.tzinfo is None:
        return at.strftime("%Y-%m-%d %H:%M")
    return (at.astimezone(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")


def plain_text(payload: dict[str, Any]) -> str:
    url = (payload.get("notice") or {}).get("url", "")
    lines = [title(payload), "", *(f"{k}：{v}" for k, v in facts(payload))]
    if url:
        lines += ["", f"查看案卷：{url}"]
    return "\n".join(lines) + "\n"


def markdown(payload: dict[str, Any]) -> str:
    url = (payload.get("notice") or {}).get("url", "")
    lines = [f"### {title(payload)}", *(f"> **{k}**：{v}" for k, v in facts(payload))]
    if url:
        lines.append(f"[查看案卷]({url})")
    return "\n\n".join(lines)


def webhook_body(payload: dict[str, Any]) -> str:
    return json.dumps({"type": payload.get("event", ""), **(payload.get("notice") or {})}, ensure_ascii=False,
                      separators=(",", ":"))  # fmt: skip


def dingtalk_url(url: str, secret: str, at_ms: int | None = None) -> str:
    """A DingTalk robot URL with its ``timestamp`` and ``sign`` (HMAC-SHA256 of "timestamp\\nsecret", base64, URL
    encoded) appended; unsigned when the robot has no secret."""
    if not secret:
        return url
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    digest = hmac.new(secret.encode(), f"{at_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={at_ms}&sign={sign}"


# --- the senders ----------------------------------------------------------------------------------------------


class Senders:
    """One sender per channel over one HTTP session (made in the running loop, closed by ``close``)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None

    def __getitem__(self, channel: str) -> Sender:
        return {
            "dept_webhook": self.webhook,
            "dept_email": self.email,
            "dept_wecom": self.wecom,
            "dept_dingtalk": self.dingtalk,
            "dept_telegram": self.telegram,
        }[channel]

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=64))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _setting(self, name: str, default: Any = "") -> Any:
        return getattr(self.settings, name, default)

    async def _post(self, url: str, *, data: str, headers: dict[str, str]) -> tuple[int, str]:
        async with self.http.post(url, data=data.encode(), headers=headers) as resp:
            return resp.status, await resp.text()

    async def _robot(self, what: str, url: str, body: dict[str, Any]) -> None:
        """POST to a WeCom/DingTalk robot: HTTP 200 and ``errcode`` 0, else the robot's complaint is raised."""
        status, text = await self._post(url, data=json.dumps(body, ensure_ascii=False),
                                        headers={"Content-Type": "application/json"})  # fmt: skip
        if status != 200:
            raise RuntimeError(f"{what} 回应 HTTP {status}")
        try:
            answer = json.loads(text)
        except ValueError:
            raise RuntimeError(f"{what} 回应不是 JSON") from None
        if answer.get("errcode") != 0:
            raise RuntimeError(f"{what} errcode {answer.get('errcode')}: {str(answer.get('errmsg', ''))[:200]}")

    async def webhook(self, target: Target, payload: dict[str, Any]) -> None:
        if not target.webhook_url:
            raise Undeliverable(f"{target.recipient} 未配置 webhook")
        if not target.webhook_secret:
            raise Undeliverable(f"{target.recipient} 的 webhook 未配置密钥")
        body, msg_id, at = webhook_body(payload), webhook_id(target.dedup_key), datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(target.webhook_secret).sign(msg_id, at, body),
        }
        status, _ = await self._post(target.webhook_url, data=body, headers=headers)
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook 回应 HTTP {status}")

    async def email(self, target: Target, payload: dict[str, Any]) -> None:
        import aiosmtplib

        host = self._setting("smtp_host")
        if not host:
            raise Undeliverable("未配置 smtp_host：邮件通知关闭")
        if not target.email:
            raise Undeliverable(f"{target.recipient} 未配置邮箱")
        port = int(self._setting("smtp_port", 25) or 25)
        message = EmailMessage()
        message["From"] = self._setting("smtp_from") or "gridline@localhost"
        message["To"] = target.email
        message["Subject"] = title(payload)
        message["Message-ID"] = f"<{webhook_id(target.dedup_key)}@gridline>"  # a retry is the same message
        message.set_content(plain_text(payload))
        # auto: upgrade when the server offers STARTTLS; port 465 speaks TLS from the start
        starttls = {"true": True, "false": False}.get(str(self._setting("smtp_starttls", "auto")).lower())
        await aiosmtplib.send(
            message,
            hostname=host,
            port=port,
            username=self._setting("smtp_user") or None,
            password=self._setting("smtp_password") or None,
            use_tls=port == 465,
            start_tls=False if port == 465 else starttls,
            timeout=10,
        )

    async def wecom(self, target: Target, payload: dict[str, Any]) -> None:
        if not target.wecom_url:
            raise Undeliverable(f"{target.recipient} 未配置企业微信机器人")
        body = {"msgtype": "markdown", "markdown": {"content": markdown(payload)}}
        await self._robot("企业微信", target.wecom_url, body)

    async def dingtalk(self, target: Target, payload: dict[str, Any]) -> None:
        if not target.dingtalk_url:
            raise Undeliverable(f"{target.recipient} 未配置钉钉机器人")
        body = {"msgtype": "markdown", "markdown": {"title": title(payload), "text": markdown(payload)}}
        await self._robot("钉钉", dingtalk_url(target.dingtalk_url, target.dingtalk_secret), body)

    async def telegram(self, target: Target, payload: dict[str, Any]) -> None:
        token = self._setting("telegram_token")
        if not token:
            raise Undeliverable("未配置 telegram_token")
        if not target.telegram_chat_id:
            raise Undeliverable(f"{target.recipient} 未配置 Telegram 会话")
        base = str(self._setting("telegram_api_base", "https://api.telegram.org")).rstrip("/")
        body = {"chat_id": target.telegram_chat_id, "text": plain_text(payload), "disable_web_page_preview": True}
        status, text = await self._post(f"{base}/bot{token}/sendMessage", data=json.dumps(body, ensure_ascii=False),
                                        headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {}
        if status != 200 or not answer.get("ok"):
            error = f"Telegram HTTP {status}: {str(answer.get('description', ''))[:200]}"
            # 400/403 (chat not found, bot removed from the group) will not mend by itself
            raise (Undeliverable if status in (400, 403) else RuntimeError)(error)


# --- targets --------------------------------------------------------------------------------------------------


def targets(engine: Engine, settings: Any, rows: list[Row]) -> dict[int, Target | None]:
    """Each row's target as configured now (None: the department is gone)."""
    codes = sorted({r.recipient for r in rows if r.recipient != notices.SHIFT_LEAD})
    departments: dict[str, dict[str, Any]] = {}
    if codes:
        with storage.transaction(engine) as conn:
            for d in conn.execute(select(DEPARTMENT).where(DEPARTMENT.c.code.in_(codes))):
                departments[d.code] = dict(d._mapping)
    out: dict[int, Target | None] = {}
    for r in rows:
        if r.recipient == notices.SHIFT_LEAD:
            out[r.id] = Target(
                notices.SHIFT_LEAD, r.dedup_key, "值班长",
                telegram_chat_id=str(getattr(settings, "shift_lead_telegram", "") or ""),
                wecom_url=str(getattr(settings, "shift_lead_wecom", "") or ""),
            )  # fmt: skip
            continue
        d = departments.get(r.recipient)
        if d is None:
            out[r.id] = None
            continue
        found = {c: str(d.get(c) or "") for c in TARGET_COLUMNS}  # columns of migration 0005
        out[r.id] = Target(r.recipient, r.dedup_key, d.get("name", ""), **found)
    return out


# --- the worker -----------------------------------------------------------------------------------------------


class DeptNotifier:
    """Claims due notices in batches and sends them; ``run`` in the server and in ``gridline notify run``."""

    def __init__(
        self,
        engine: Engine,
        settings: Any,
        *,
        senders: dict[str, Sender] | Senders | None = None,
        batch: int = 100,
        in_flight: int = 32,
        interval: float = 0.25,
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = storage.now_utc,
        sweep: Callable[[], int] | None = None,
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        self.engine = engine
        self.sweep = sweep  # writes the yellow/red limit alerts (``core.notices.sweep_alerts``) that this worker sends
        self.sweep_every = sweep_every
        self._swept = -sweep_every
        self.settings = settings
        self._own = senders is None
        self.senders = Senders(settings) if senders is None else senders
        self.batch = batch
        self.in_flight = asyncio.Semaphore(in_flight)
        self.interval = interval
        self.lease = lease
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _send(self, row: Row, target: Target | None) -> tuple[Row, str | None, bool]:
        if target is None:
            return row, f"部门 {row.recipient} 不存在", True
        async with self.in_flight:
            try:
                await self.senders[row.channel](target, row.payload or {})
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                final = isinstance(exc, Undeliverable)
                log.info("notice %s (%s to %s) failed%s: %s", row.id, row.channel, row.recipient,
                         " for good" if final else "", error[:200])  # fmt: skip
                return row, error, final
        return row, None, False

    async def tick(self) -> int:
        """One batch: claim, send, settle. Returns how many rows were claimed (0: nothing was due)."""
        rows = await asyncio.to_thread(storage.claim_batch, self.engine, CHANNELS, self.batch, self.lease,
                                       self.clock())  # fmt: skip
        if not rows:
            return 0
        where = await asyncio.to_thread(targets, self.engine, self.settings, rows)
        outcomes = await asyncio.gather(*(self._send(r, where[r.id]) for r in rows))
        await asyncio.to_thread(storage.settle_batch, self.engine, list(outcomes), BACKOFF, self.clock())
        sent = sum(1 for _, error, _ in outcomes if error is None)
        log.debug("notices: %d claimed, %d sent", len(rows), sent)
        return len(rows)

    async def _sweep(self) -> None:
        """At most every ``sweep_every`` seconds: alerts are due by the clock, not by an event, so they are looked
        for; whichever worker looks first writes them, the dedup key keeps the others from writing them again."""
        now = asyncio.get_running_loop().time()
        if self.sweep is None or now - self._swept < self.sweep_every:
            return
        self._swept = now
        if await asyncio.to_thread(self.sweep):
            self._wake.set()

    async def drain(self) -> int:
        """Tick until nothing is due (``gridline notify run --once``, which sweeps for alerts first); returns how many
        rows were tried."""
        await self._sweep()
        total = 0
        while n := await self.tick():
            total += n
        return total

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Until cancelled or ``stop`` is set: after a batch the next claim follows at once; when nothing was due,
        wait ``interval`` (or a ``wake``)."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                claimed = 0
                try:
                    await self._sweep()
                    claimed = await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database may be down or not migrated yet: try again next tick
                    log.warning("notice tick failed: %s: %s", type(exc).__name__, str(exc)[:200])
                if claimed:  # more may have come due meanwhile: look again at once, pause only when idle
                    continue
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(waiters, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                self._wake.clear()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._own and isinstance(self.senders, Senders):
            await self.senders.close()
