"""Back to the citizen: when a case that came from a chat is filed, dispatched, closed (or refused), its reporters
hear about it on their channel.

The case loop commits its events (``case_event``) and knows nothing of chats, so the notifier polls committed events
of cases linked to chat reports from a stored time cursor (re-reading two minutes back each time, so an event
committed late is not skipped), and writes one outbox row per event and reporter under a unique key: that makes
the announcement exactly-once however many workers poll. Rows are then claimed and sent; a failed send is retried with
a growing backoff. Web-chat rows are not pushed: the page fetches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bots import storage
from bots.privacy import mask
from core.models import CaseEvent, CaseFile, Department, Report

log = logging.getLogger("gridline.bots")

CHAT_CHANNELS = ("wechat", "telegram", "webchat")
CURSOR_KEY = "notify:cursor"
OVERLAP = timedelta(minutes=2)  # far more than an action's time between its clock reading and its commit
FIRST_LOOK_BACK = timedelta(hours=1)
ANNOUNCED = ("report", "accept", "file", "dispatch", "redispatch", "close", "reject", "void", "merge")

MAX_ATTEMPTS = 8


class Undeliverable(Exception):
    """A message no retry can deliver as things stand (e.g. outside WeChat's 48-hour window, no template)."""


#: channel → a coroutine that sends one row's replies (raises on failure; ``Undeliverable`` ends the retries).
Sender = Callable[[str, list[dict[str, Any]], str], Awaitable[None]]


def announcement(session: Session, case: CaseFile, event: CaseEvent) -> list[dict[str, Any]]:
    """The words (and after-photo) for one case event, as outbound replies."""
    n, matter = case.number, case.matter_name or "您反映的问题"
    action = event.action
    if action == "report":
        return [{"text": f"您反映的问题已登记，编号 {n}。发送“查询 {n}”可随时查看进度。"}]
    if action == "accept":
        return [{"text": f"编号 {n}（{matter}）已受理，正在安排核实立案。"}]
    if action == "file":
        return [{"text": f"编号 {n}（{matter}）已立案，将派给责任部门处置。"}]
    if action in ("dispatch", "redispatch"):
        dept = session.get(Department, event.department_code) if event.department_code else None
        name = dept.name if dept else "责任部门"
        return [{"text": f"编号 {n}（{matter}）已派给{name}处置，处理完毕后会通知您。"}]
    if action == "close":
        replies: list[dict[str, Any]] = [{"text": f"编号 {n}（{matter}）已处理完毕并结案。感谢您的反映！"}]
        shots = session.exec(
            select(CaseEvent.attachments)
            .where(CaseEvent.case_id == case.id, CaseEvent.action.in_(("complete", "self_handle", "check")))
            .order_by(CaseEvent.seq.desc())
        ).all()
        photo = next((a[0] for a in shots if a), None)
        if photo:
            replies.append({"text": "处置后的现场照片", "photo": photo})
        return replies
    reason = (event.data or {}).get("reason") or event.note
    if action == "reject":
        return [{"text": f"编号 {n} 不予受理{f'：{reason}' if reason else ''}。如有疑问请拨打 12345。"}]
    if action == "void":
        return [{"text": f"编号 {n} 经核实已作废{f'：{reason}' if reason else ''}。"}]
    if action == "merge":
        target = (event.data or {}).get("target") or case.duplicate_of
        return [{"text": f"编号 {n} 与同一问题（编号 {target}）合并处理，可发送“查询 {target}”查看进度。"}]
    return []


class Notifier:
    def __init__(
        self, engine: Engine, senders: dict[str, Sender], interval: float = 2.0, clock=storage.now_utc
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.interval = interval
        self.clock = clock
        self._wake = asyncio.Event()
        self._last_prune = 0.0
        # one pass at a time in this process: a pass asked for while another runs waits for it, so when it returns
        # every row that was due has been tried (another process's rows are kept apart by ``storage.take``)
        self._passing = asyncio.Lock()

    def wake(self) -> None:
        """Deliver now rather than at the next tick (a late WeChat answer is waiting)."""
        self._wake.set()

    # --- events → outbox --------------------------------------------------------------------------------------
    def collect(self) -> int:
        """Outbox rows for the case events since the cursor; returns how many were new."""
        started = self.clock()
        raw = storage.get_value(self.engine, CURSOR_KEY)
        since = datetime.fromisoformat(raw) - OVERLAP if raw else started - FIRST_LOOK_BACK
        rows: list[dict[str, Any]] = []
        with Session(self.engine, expire_on_commit=False) as session:
            found = session.exec(
                select(CaseEvent, Report.channel, Report.sender)
                .join(Report, Report.case_id == CaseEvent.case_id)
                .where(
                    CaseEvent.at >= since,
                    CaseEvent.action.in_(ANNOUNCED),
                    Report.channel.in_(CHAT_CHANNELS),
                    Report.sender != "",
                )
                .order_by(CaseEvent.at, CaseEvent.seq)
            ).all()
        keyed = [(storage.event_key(e.case_id, e.seq, ch, sender), e, ch, sender) for e, ch, sender in found]
        # after the session: the bots' own transactions must never wait inside another one (SQLite has one writer)
        seen = storage.existing_keys(self.engine, [k for k, *_ in keyed])  # announced (or receipted) already
        fresh = [k for k in keyed if k[0] not in seen]
        if fresh:
            with Session(self.engine) as session:
                cases: dict[int, CaseFile] = {}
                for key, event, channel, sender in fresh:
                    if key in seen:
                        continue
                    seen.add(key)
                    case = cases.get(event.case_id) or session.get(CaseFile, event.case_id)
                    cases[event.case_id] = case
                    replies = announcement(session, case, event)
                    if replies:
                        rows.append(
                            {"dedup_key": key, "channel": channel, "recipient": sender, "kind": "notify",
                             "case_id": event.case_id, "payload": {"replies": replies, "action": event.action}}
                        )  # fmt: skip
        new = storage.enqueue(self.engine, rows)
        storage.set_value(self.engine, CURSOR_KEY, started.isoformat())
        return new

    # --- outbox → channels ------------------------------------------------------------------------------------
    async def deliver(self) -> int:
        """Send what is due on the channels that have a sender; returns how many were sent."""
        async with self._passing:
            return await self._deliver()

    async def _deliver(self) -> int:
        channels = tuple(self.senders)
        if not channels:
            return 0
        rows = await asyncio.to_thread(storage.due, self.engine, channels)
        sent = 0
        for row in rows:
            if not await asyncio.to_thread(storage.take, self.engine, row):
                continue
            error: str | None = None
            tries = MAX_ATTEMPTS
            try:
                await self.senders[row.channel](row.recipient, row.payload.get("replies", []), row.kind)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                tries = 1 if isinstance(exc, Undeliverable) else MAX_ATTEMPTS
                log.info("outbox %s to %s on %s failed: %s", row.id, mask(row.recipient), row.channel, error[:200])
            await asyncio.to_thread(storage.settle, self.engine, row, error, tries)
            sent += error is None
        return sent

    async def tick(self) -> None:
        async with self._passing:
            await asyncio.to_thread(self.collect)
            await self._deliver()
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_prune > 3600:
            self._last_prune = loop_time
            await asyncio.to_thread(storage.prune_deliveries, self.engine)

    async def run(self) -> None:
        """Until cancelled: collect and deliver every ``interval`` seconds, or at once when woken."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down or not migrated yet: try again next tick
                log.warning("notifier tick failed: %s: %s", type(exc).__name__, str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
