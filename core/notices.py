"""The departments' notices: what a case event or a 处置 limit turning yellow or red tells the department (and the
值班长), as rows of the outbox that ``bots.deptnotify`` delivers.

Event notices are written by a ``CaseLoop.on_event`` hook in the action's own transaction: there is no notice
without its event and no event without its notice. Limit alerts are written by ``sweep_alerts``, meant to run
periodically beside the delivery worker, once per threshold per stage: the dedup key holds the stage's start, so
a restart sends nothing twice and a new stage (re-dispatch, 返工) gets alerts of its own. A row carries only the
case's public facts and the channel; the address or secret it goes to is read from the department (or the
settings) when it is sent.

No citizen data goes out: not the reporter, not the case's description (the citizen's own words, which can hold a
phone number or a name that no pattern catches); a staff note (督办意见, 核查意见) is sent with phone and ID
numbers masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.audit import SetupError, record
from core.cases import LIGHTS, Actor, CaseLoop, Timer
from core.config import Settings
from core.models import CaseEvent, CaseFile, Department, Outbox

OUTBOX = Outbox.__table__
CHANNELS: dict[str, tuple[str, ...]] = {  # channel → the department columns it needs (a 钉钉 secret is optional)
    "dept_webhook": ("webhook_url", "webhook_secret"),
    "dept_email": ("email",),
    "dept_wecom": ("wecom_url",),
    "dept_dingtalk": ("dingtalk_url",),
    "dept_telegram": ("telegram_chat_id",),
}
EVENTS = {"dispatch": "case.dispatched", "redispatch": "case.redispatched", "urge": "case.urged"}
EVENT_NAMES = {  # a notice's title, in every channel and on the admin pages
    "case.dispatched": "派遣通知",
    "case.redispatched": "改派通知",
    "case.urged": "督办通知",
    "case.rework": "返工通知",
    "case.limit_yellow": "时限预警（黄灯）",
    "case.limit_red": "时限超期（红灯）",
}
CHANNEL_NAMES = {
    "dept_webhook": "Webhook",
    "dept_email": "电子邮件",
    "dept_wecom": "企业微信",
    "dept_dingtalk": "钉钉",
    "dept_telegram": "Telegram",
}
ALERTS = {"yellow": "case.limit_yellow", "red": "case.limit_red"}
ALERT_COLOURS = {kind: colour for colour, kind in ALERTS.items()}
SHIFT_LEAD = "shift_lead"
CONSOLE = "console"  # the 值班长's copy on the console's 立案与审批 page: written as sent, no worker takes it
PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")


def now_utc() -> datetime:
    return datetime.now(UTC)


def mask_numbers(text: str) -> str:
    """Mobile and 身份证 numbers in a staff note, masked (138****5678), in case a note quotes the citizen."""
    return ID_NUMBER.sub(r"\1********\2", PHONE.sub(r"\1****\2", text))


def event_type(event: CaseEvent) -> str | None:
    """The notice an event gives the department, if any: 派遣, 重新派遣, 督办, and 核查不通过 (返工)."""
    if event.action == "check":
        return "case.rework" if (event.data or {}).get("rework") else None
    return EVENTS.get(event.action)


def channels_of(dept: Department) -> list[str]:
    """The channels this department has configured completely."""
    return [channel for channel, needs in CHANNELS.items() if all(getattr(dept, column) for column in needs)]


def notice_body(
    case: CaseFile, kind: str, timer: Timer | None, public_url: str, at: datetime, note: str = ""
) -> dict[str, Any]:
    """The JSON a department receives (the webhook's body; the other channels' text is made from it)."""
    body: dict[str, Any] = {
        "event": kind,
        "case": case.number,
        "matter_code": case.matter_code,
        "matter_name": case.matter_name,
        "address": case.address,
        "grid_code": case.grid_code,
        "department": case.department_code,
        "limit": timer.limit if timer else case.stage_limit + case.stage_extra_hours,
        "unit": timer.unit if timer else case.stage_unit,
        "deadline": timer.deadline.isoformat() if timer and timer.deadline else None,
        "light": timer.light if timer else None,
        "url": f"{public_url.rstrip('/')}/console/cases/{case.number}",
        "at": at.isoformat(),
    }
    if note:
        body["note"] = mask_numbers(note)
    return body


def _row(key: str, channel: str, recipient: str, case: CaseFile, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "channel": channel,
        "recipient": recipient,
        "kind": "notice",
        "case_id": case.id,
        "payload": {"event": kind, "notice": body},
    }


def notice_rows(
    session: Session, case: CaseFile, event: CaseEvent, public_url: str, timer: Timer | None = None
) -> list[dict[str, Any]]:
    """The outbox rows of one case event: one per channel the case's department configured; none for events the
    departments are not told of, or a department without channels. ``timer`` is the case's clock after the event
    (for the deadline and light)."""
    kind = event_type(event)
    dept = session.get(Department, case.department_code) if kind and case.department_code else None
    if dept is None:
        return []
    body = notice_body(case, kind, timer, public_url, event.at, event.note)
    return [
        _row(f"notice:{case.id}:{event.seq}:{channel}:{dept.code}", channel, dept.code, case, kind, body)
        for channel in channels_of(dept)
    ]


def insert_rows(conn: Connection, rows: list[dict[str, Any]], at: datetime | None = None) -> int:
    """Insert outbox rows; one whose dedup key is there already is skipped (how alerts stay once). Returns how many
    were new. Runs on the caller's connection, so it commits (or not) with the caller's transaction."""
    if not rows:
        return 0
    at = at or now_utc()
    defaults = {"status": "pending", "attempts": 0, "next_at": at, "created_at": at, "sent_at": None, "error": ""}
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(OUTBOX).values([{**defaults, **r} for r in rows])
    stmt = stmt.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(OUTBOX.c.id)
    return len(conn.execute(stmt).all())


def add_notices(
    session: Session, case: CaseFile, event: CaseEvent, public_url: str, timer: Timer | None = None
) -> int:
    """Write the event's notices into the action's transaction (a ``CaseLoop.on_event`` hook)."""
    return insert_rows(session.connection(), notice_rows(session, case, event, public_url, timer))


def hook(loop: CaseLoop, public_url: str) -> Callable[[Session, CaseFile, CaseEvent], None]:
    """The hook to append to ``loop.on_event``: the notices with the case's clock at the event."""

    def notify(session: Session, case: CaseFile, event: CaseEvent) -> None:
        add_notices(session, case, event, public_url, loop.timer(case, event.at))

    return notify


# --- limit alerts ---------------------------------------------------------------------------------------------


def shift_lead_channels(settings: Settings) -> list[str]:
    """Where the 值班长's copy of an alert goes besides the console."""
    targets = (("dept_telegram", settings.shift_lead_telegram), ("dept_wecom", settings.shift_lead_wecom))
    return [channel for channel, target in targets if target]


def alert_rows(
    case: CaseFile, dept: Department | None, colour: str, timer: Timer | None, settings: Settings, at: datetime
) -> list[dict[str, Any]]:
    """A yellow or red alert of a case's current stage: to the department's channels, the 值班长's channels and
    the console. The key names the stage by its start, so each threshold of each stage is alerted once."""
    kind = ALERTS[colour]
    body = notice_body(case, kind, timer, settings.public_url, at)
    stage = case.stage_started_at.isoformat()
    targets = [(channel, dept.code) for channel in channels_of(dept)] if dept else []
    targets += [(channel, SHIFT_LEAD) for channel in [*shift_lead_channels(settings), CONSOLE]]
    rows = [
        _row(f"alert:{case.id}:{stage}:{colour}:{channel}:{recipient}", channel, recipient, case, kind, body)
        for channel, recipient in targets
    ]
    for row in rows:
        if row["channel"] == CONSOLE:
            row |= {"status": "sent", "sent_at": at}
    return rows


def sweep_alerts(loop: CaseLoop, settings: Settings, now: datetime | None = None) -> int:
    """Alert every 处置中 case whose 处置 limit is yellow or red now (and was not alerted for that colour in this
    stage yet). Returns how many rows were new. The lights come from ``CaseLoop.lights`` for all cases at once;
    only the alerted ones get a full timer (for their deadline)."""
    now = now or loop.clock()
    with Session(loop.engine) as session:
        cases = list(
            session.scalars(select(CaseFile).where(CaseFile.state == "处置中", CaseFile.department_code.is_not(None)))
        )
        if not cases:
            return 0
        lights = loop.lights_of(cases, now)
        alerted = [(c, LIGHTS[i]) for c, i in zip(cases, lights, strict=True) if LIGHTS[i] in ALERTS]
        depts = {d.code: d for d in session.scalars(select(Department))}
    rows = [
        row
        for case, colour in alerted
        for row in alert_rows(case, depts.get(case.department_code or ""), colour, loop.timer(case, now), settings, now)
    ]
    new = 0
    with loop.engine.begin() as conn:
        for i in range(0, len(rows), 500):
            new += insert_rows(conn, rows[i : i + 500], now_utc())
    return new


def console_alerts(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The 值班长's current alerts for the console: the newest of each 处置中 case whose stage it was raised in."""
    with Session(engine) as session:
        rows = session.execute(
            select(OUTBOX.c.dedup_key, OUTBOX.c.payload, OUTBOX.c.created_at, CaseFile)
            .join(CaseFile, CaseFile.id == OUTBOX.c.case_id)
            .where(OUTBOX.c.channel == CONSOLE, OUTBOX.c.recipient == SHIFT_LEAD, CaseFile.state == "处置中")
            .order_by(OUTBOX.c.id.desc())
            .limit(limit * 4)
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for key, payload, created_at, case in rows:
        if case.number in out or not key.startswith(f"alert:{case.id}:{case.stage_started_at.isoformat()}:"):
            continue
        body = payload["notice"]
        deadline = datetime.fromisoformat(body["deadline"]) if body.get("deadline") else None
        out[case.number] = {**body, "colour": ALERT_COLOURS[payload["event"]], "deadline_at": deadline,
                            "raised_at": created_at}  # fmt: skip
    return list(out.values())[:limit]


# --- dead letters ---------------------------------------------------------------------------------------------


def dead_letters(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Department notices given up after their retries, newest first, for the admin page."""
    with Session(engine) as session:
        rows = session.execute(
            select(OUTBOX, CaseFile.number)
            .outerjoin(CaseFile, CaseFile.id == OUTBOX.c.case_id)
            .where(OUTBOX.c.channel.in_(list(CHANNELS)), OUTBOX.c.status == "dead")
            .order_by(OUTBOX.c.id.desc())
            .limit(limit)
        ).all()
    return [{**row._asdict(), "event": row.payload.get("event", "")} for row in rows]


def resend(engine: Engine, actor: Actor, outbox_id: int) -> dict[str, Any]:
    """A dead letter back to pending with its attempts at 0 (the admin fixed the address, or the receiver is up
    again), with an audit event in the same transaction. Its dedup key, and so its webhook-id, stay."""
    with Session(engine) as session:
        row = session.execute(
            select(OUTBOX.c.id, OUTBOX.c.channel, OUTBOX.c.recipient, OUTBOX.c.case_id, OUTBOX.c.payload)
            .where(OUTBOX.c.id == outbox_id, OUTBOX.c.channel.in_(list(CHANNELS)), OUTBOX.c.status == "dead")
            .with_for_update()
        ).first()
        if row is None:
            raise SetupError("这条通知不存在或已不是死信（可能已重发）", 404)
        session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == outbox_id, OUTBOX.c.status == "dead")
            .values(status="pending", attempts=0, next_at=now_utc(), error="")
        )
        case = session.get(CaseFile, row.case_id) if row.case_id else None
        values = {
            "channel": row.channel,
            "recipient": row.recipient,
            "case": case.number if case else None,
            "event": row.payload.get("event", ""),
        }
        record(session, actor, "notice.resend", f"通知 {outbox_id}", {**values, "status": "dead"},
               {**values, "status": "pending"})  # fmt: skip
        session.commit()
        return values


def deliveries(engine: Engine, department: str, limit: int = 10) -> list[dict[str, Any]]:
    """A department's latest notices with how their delivery went (``gridline department show``)."""
    with Session(engine) as session:
        rows = session.execute(
            select(OUTBOX.c.id, OUTBOX.c.channel, OUTBOX.c.payload, OUTBOX.c.status, OUTBOX.c.attempts,
                   OUTBOX.c.created_at, OUTBOX.c.sent_at, OUTBOX.c.error, CaseFile.number)
            .outerjoin(CaseFile, CaseFile.id == OUTBOX.c.case_id)
            .where(OUTBOX.c.channel.in_(list(CHANNELS)), OUTBOX.c.recipient == department)
            .order_by(OUTBOX.c.id.desc())
            .limit(limit)
        ).all()  # fmt: skip
    return [{**row._asdict(), "event": (row.payload or {}).get("event", "")} for row in rows]
