"""The bots' tables as small operations: conversation turns as compare-and-set, delivery claims for dedup, the
outbox, and shared channel values. Every function is one short transaction, so none is held across a turn (the
intake needs the database in between).

These run several times for every chat message, so they use SQLAlchemy Core on the tables (the ORM session costs
more than the statements here), and on SQLite they queue on one lock per engine: every transaction there takes the
write lock, and a connection that finds it taken sleeps in SQLite's busy handler for milliseconds at a time, which
under load shows as reply spikes. A Python lock hands over at once.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, Row

from core.models import ChannelDelivery, ChannelState, Conversation, Outbox

CLAIM_LEASE = timedelta(seconds=60)  # a claim older than this, never finished, was lost with its worker
CONVERSATION = Conversation.__table__
DELIVERY = ChannelDelivery.__table__
OUTBOX = Outbox.__table__
STATE = ChannelState.__table__

_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def now_utc() -> datetime:
    return datetime.now(UTC)


def _insert(engine: Engine):
    return pg_insert if engine.dialect.name == "postgresql" else sqlite_insert


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; on SQLite queued behind the others of this process (see the module docstring)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _locks_guard:
        lock = _locks.setdefault(engine, threading.Lock())
    with lock, engine.begin() as conn:
        yield conn


# --- conversations ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationRow:
    id: int
    version: int
    state: dict[str, Any]
    last_seen_at: datetime


_CONV_COLUMNS = (CONVERSATION.c.id, CONVERSATION.c.version, CONVERSATION.c.state, CONVERSATION.c.last_seen_at)


def _conversation(row: Any) -> ConversationRow:
    return ConversationRow(row.id, row.version, row.state or {}, row.last_seen_at)


def load_conversation(engine: Engine, channel: str, user: str, at: datetime) -> ConversationRow:
    """The user's conversation, created empty on first contact (two first messages at once: one insert wins)."""
    where = (CONVERSATION.c.channel == channel) & (CONVERSATION.c.user_ref == user)
    with transaction(engine) as conn:
        row = conn.execute(select(*_CONV_COLUMNS).where(where)).first()
        if row is None:
            conn.execute(
                _insert(engine)(CONVERSATION)
                .values(channel=channel, user_ref=user, mode="idle", state={}, version=1, last_seen_at=at,
                        updated_at=at)
                .on_conflict_do_nothing(index_elements=["channel", "user_ref"])
            )  # fmt: skip
            row = conn.execute(select(*_CONV_COLUMNS).where(where)).one()
        return _conversation(row)


def save_conversation(engine: Engine, conv: ConversationRow, state: dict[str, Any], mode: str, at: datetime) -> bool:
    """Compare-and-set on the version read; False means another worker moved the conversation on first."""
    with transaction(engine) as conn:
        result = conn.execute(
            update(CONVERSATION)
            .where(CONVERSATION.c.id == conv.id, CONVERSATION.c.version == conv.version)
            .values(state=state, mode=mode, version=conv.version + 1, last_seen_at=at, updated_at=at)
        )
        return result.rowcount == 1


def find_conversation(engine: Engine, channel: str, user: str) -> ConversationRow | None:
    with transaction(engine) as conn:
        row = conn.execute(
            select(*_CONV_COLUMNS).where(CONVERSATION.c.channel == channel, CONVERSATION.c.user_ref == user)
        ).first()
        return _conversation(row) if row else None


def conversation_by_id(engine: Engine, conversation_id: int) -> tuple[str, str] | None:
    """(channel, user) of a conversation."""
    with transaction(engine) as conn:
        row = conn.execute(
            select(CONVERSATION.c.channel, CONVERSATION.c.user_ref).where(CONVERSATION.c.id == conversation_id)
        ).first()
        return (row.channel, row.user_ref) if row else None


def handoffs(engine: Engine) -> list[Row]:
    with transaction(engine) as conn:
        return list(
            conn.execute(
                select(CONVERSATION.c.id, CONVERSATION.c.channel, CONVERSATION.c.user_ref, CONVERSATION.c.state).where(
                    CONVERSATION.c.mode == "handoff"
                )
            ).all()
        )


# --- delivery claims --------------------------------------------------------------------------------------------


def claim(engine: Engine, channel: str, ref: str) -> tuple[str, list[dict] | None]:
    """("new", None) for the first delivery of a channel message, ("done", reply) when it was answered already,
    ("busy", None) while another worker handles it. A claim abandoned past its lease is taken over."""
    at = now_utc()
    where = (DELIVERY.c.channel == channel) & (DELIVERY.c.ref == ref)
    with transaction(engine) as conn:
        inserted = conn.execute(
            _insert(engine)(DELIVERY)
            .values(channel=channel, ref=ref, claimed_at=at, done=False)
            .on_conflict_do_nothing(index_elements=["channel", "ref"])
            .returning(DELIVERY.c.id)
        ).first()
        if inserted is not None:
            return "new", None
        row = conn.execute(
            select(DELIVERY.c.id, DELIVERY.c.done, DELIVERY.c.reply, DELIVERY.c.claimed_at).where(where)
        ).one()
        if row.done:
            return "done", row.reply or []
        if row.claimed_at < at - CLAIM_LEASE:
            taken = conn.execute(
                update(DELIVERY)
                .where(DELIVERY.c.id == row.id, DELIVERY.c.claimed_at == row.claimed_at)
                .values(claimed_at=at)
            )
            if taken.rowcount == 1:
                return "new", None
        return "busy", None


def finish(engine: Engine, channel: str, ref: str, reply: list[dict]) -> None:
    with transaction(engine) as conn:
        conn.execute(
            update(DELIVERY).where(DELIVERY.c.channel == channel, DELIVERY.c.ref == ref).values(done=True, reply=reply)
        )


def release(engine: Engine, channel: str, ref: str) -> None:
    """Forget a claim whose processing failed, so the channel's next retry is processed."""
    with transaction(engine) as conn:
        conn.execute(
            delete(DELIVERY).where(DELIVERY.c.channel == channel, DELIVERY.c.ref == ref, DELIVERY.c.done.is_(False))
        )


def answer_of(engine: Engine, channel: str, ref: str) -> list[dict] | None:
    with transaction(engine) as conn:
        row = conn.execute(
            select(DELIVERY.c.done, DELIVERY.c.reply).where(DELIVERY.c.channel == channel, DELIVERY.c.ref == ref)
        ).first()
        return (row.reply or []) if row and row.done else None


def prune_deliveries(engine: Engine, older_than: timedelta = timedelta(days=7)) -> int:
    with transaction(engine) as conn:
        return conn.execute(delete(DELIVERY).where(DELIVERY.c.claimed_at < now_utc() - older_than)).rowcount


# --- outbox -----------------------------------------------------------------------------------------------------


def recipient_key(channel: str, user: str) -> str:
    """A short stable stand-in for a recipient inside dedup keys (keys are logged; user ids must not be)."""
    return hashlib.sha256(f"{channel}:{user}".encode()).hexdigest()[:16]


def event_key(case_id: int, seq: int, channel: str, user: str) -> str:
    return f"case:{case_id}:{seq}:{channel}:{recipient_key(channel, user)}"


def enqueue(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Insert outbox rows (dicts with dedup_key, channel, recipient, kind, payload, optional case_id and status);
    a key already there is skipped. Returns how many were new."""
    if not rows:
        return 0
    at = now_utc()
    values = [
        {
            "case_id": None,
            "status": "pending",
            "attempts": 0,
            "next_at": at,
            "created_at": at,
            "sent_at": at if r.get("status") == "sent" else None,
            "error": "",
            **r,
        }
        for r in rows
    ]
    with transaction(engine) as conn:
        stmt = (
            _insert(engine)(OUTBOX)
            .values(values)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(OUTBOX.c.id)
        )
        return len(conn.execute(stmt).all())


def existing_keys(engine: Engine, keys: list[str]) -> set[str]:
    """Which of these outbox keys are there already (in chunks: IN lists stay short)."""
    found: set[str] = set()
    with transaction(engine) as conn:
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            found.update(conn.execute(select(OUTBOX.c.dedup_key).where(OUTBOX.c.dedup_key.in_(chunk))).scalars())
    return found


def due(engine: Engine, channels: tuple[str, ...], limit: int = 50) -> list[Row]:
    with transaction(engine) as conn:
        return list(
            conn.execute(
                select(OUTBOX)
                .where(
                    OUTBOX.c.channel.in_(channels),
                    OUTBOX.c.status.in_(("pending", "sending")),
                    OUTBOX.c.next_at <= now_utc(),
                )
                .order_by(OUTBOX.c.id)
                .limit(limit)
            ).all()
        )


def take(engine: Engine, row: Row, lease: timedelta = timedelta(seconds=60)) -> bool:
    """Claim a due row for sending (another worker may hold it: then False)."""
    at = now_utc()
    with transaction(engine) as conn:
        result = conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row.id, OUTBOX.c.status.in_(("pending", "sending")), OUTBOX.c.next_at <= at)
            .values(status="sending", next_at=at + lease)
        )
        return result.rowcount == 1


def settle(engine: Engine, row: Row, error: str | None, max_attempts: int = 8) -> None:
    """Sent, or back to pending after a backoff of 5 s, 10 s, 20 s … (at most an hour); dead after max_attempts."""
    at = now_utc()
    if error is None:
        values: dict[str, Any] = {"status": "sent", "sent_at": at, "error": ""}
    else:
        attempts = row.attempts + 1
        backoff = timedelta(seconds=min(3600, 5 * 2 ** (attempts - 1)))
        values = {
            "status": "dead" if attempts >= max_attempts else "pending",
            "attempts": attempts,
            "next_at": at + backoff,
            "error": error[:500],
        }
    with transaction(engine) as conn:
        conn.execute(update(OUTBOX).where(OUTBOX.c.id == row.id).values(**values))


def claim_batch(
    engine: Engine, channels: tuple[str, ...], limit: int, lease: timedelta, at: datetime | None = None
) -> list[Row]:
    """Take up to ``limit`` due rows of these channels for sending, oldest first, in one statement: their status
    becomes ``sending`` and their ``next_at`` the end of a lease (a worker that dies holding them loses them when
    it passes, and another takes them). A row waits while an earlier row of its (case, channel, recipient) is
    neither sent nor dead, so one case's notices arrive in order. On PostgreSQL rows another worker is taking
    are skipped (``FOR UPDATE SKIP LOCKED``); SQLite has one writer, so a claim there sees only settled rows.
    The rows come back with ``next_at`` = the lease, the token ``settle_batch`` checks."""
    at = at or now_utc()
    earlier = OUTBOX.alias("earlier")
    blocked = exists().where(
        earlier.c.case_id == OUTBOX.c.case_id,
        earlier.c.channel == OUTBOX.c.channel,
        earlier.c.recipient == OUTBOX.c.recipient,
        earlier.c.id < OUTBOX.c.id,
        earlier.c.status.notin_(("sent", "dead")),
    )
    due_ids = (
        select(OUTBOX.c.id)
        .where(
            OUTBOX.c.channel.in_(channels),
            OUTBOX.c.status.in_(("pending", "sending")),
            OUTBOX.c.next_at <= at,
            ~blocked,
        )
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    with transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            ids: Any = due_ids.with_for_update(skip_locked=True).scalar_subquery()
        else:  # look first: a claim that finds nothing should not take SQLite's write lock
            ids = list(conn.execute(due_ids).scalars())
            if not ids:
                return []
        rows = conn.execute(
            update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(status="sending", next_at=at + lease).returning(*OUTBOX.c)
        ).all()
    return sorted(rows, key=lambda r: r.id)


def settle_batch(
    engine: Engine,
    outcomes: list[tuple[Row, str | None, bool]],
    schedule: tuple[float, ...],
    at: datetime | None = None,
) -> int:
    """Settle claimed rows in one transaction. Each outcome is (row as claimed, error or None, final): sent;
    or back to pending after ``schedule[attempts - 1]`` seconds; dead once the schedule is used up or the error
    is final. A row whose lease was taken over meanwhile (its ``next_at`` is no longer the one claimed) is left
    to the worker that holds it now. Returns how many rows were settled."""
    at = at or now_utc()
    done = 0
    sent: dict[datetime, list[int]] = {}  # one batch's rows share their lease: one statement for all sent ones
    for row, error, _final in outcomes:
        if error is None:
            sent.setdefault(row.next_at, []).append(row.id)
    with transaction(engine) as conn:
        for lease, ids in sent.items():
            done += conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == "sending", OUTBOX.c.next_at == lease)
                .values(status="sent", sent_at=at, error="")
            ).rowcount
        for row, error, final in outcomes:
            if error is not None:
                attempts = row.attempts + 1
                dead = final or attempts > len(schedule)
                wait = timedelta(seconds=0 if dead else schedule[attempts - 1])
                values = {"status": "dead" if dead else "pending", "attempts": attempts, "next_at": at + wait,
                          "error": error[:500]}  # fmt: skip
                done += conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == row.id, OUTBOX.c.status == "sending", OUTBOX.c.next_at == row.next_at)
                    .values(**values)
                ).rowcount
    return done


def webchat_updates(engine: Engine, user: str, after: int, limit: int = 20) -> list[Row]:
    """What the web chat page has not shown yet; markers of things it was already told are left out."""
    with transaction(engine) as conn:
        rows = list(
            conn.execute(
                select(OUTBOX.c.id, OUTBOX.c.payload, OUTBOX.c.status)
                .where(
                    OUTBOX.c.channel == "webchat",
                    OUTBOX.c.recipient == user,
                    OUTBOX.c.id > after,
                    OUTBOX.c.kind != "receipt",
                )
                .order_by(OUTBOX.c.id)
                .limit(limit)
            ).all()
        )
        fresh = [r.id for r in rows if r.status != "sent"]
        if fresh:
            conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(fresh)).values(status="sent", sent_at=now_utc()))
        return rows


# --- shared values ----------------------------------------------------------------------------------------------


def get_value(engine: Engine, key: str) -> str | None:
    with transaction(engine) as conn:
        row = conn.execute(select(STATE.c.value, STATE.c.expires_at).where(STATE.c.key == key)).first()
        if row is None or (row.expires_at is not None and row.expires_at <= now_utc()):
            return None
        return row.value


def set_value(engine: Engine, key: str, value: str, ttl: float | None = None) -> None:
    expires = now_utc() + timedelta(seconds=ttl) if ttl else None
    with transaction(engine) as conn:
        stmt = _insert(engine)(STATE).values(key=key, value=value, expires_at=expires)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "expires_at": expires}))


def delete_value(engine: Engine, key: str) -> None:
    with transaction(engine) as conn:
        conn.execute(delete(STATE).where(STATE.c.key == key))


def wait_for(check: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """Poll ``check`` until it returns something other than None, or the timeout passes (then None)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None or time.monotonic() >= end:
            return value
        time.sleep(min(step, max(0.0, end - time.monotonic())))
