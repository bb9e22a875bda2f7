"""The audit trail of the centre's set-up (accounts in ``core.users``; departments, routing rules and calendar days in
``core.setup``).

Every change writes its ``AuditEvent`` with ``record`` in the change's own transaction: the two are committed
together or not at all, so there is no change without its event and no event of a change that did not happen. A
refused change raises ``SetupError`` before anything is written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.cases import Actor
from core.models import AuditEvent

ACTIONS = {
    "user.add": "新增用户",
    "user.update": "修改用户",
    "user.reset_password": "重置密码",
    "user.disable": "停用用户",
    "user.enable": "启用用户",
    "department.add": "新增部门",
    "department.rename": "部门更名",
    "department.notices": "部门通知设置",
    "notice.resend": "重发通知",
    "routing.add": "新增派遣规则",
    "routing.delete": "删除派遣规则",
    "calendar.set": "设置日历",
    "calendar.delete": "取消日历设置",
    "apikey.add": "新增接口密钥",
    "apikey.revoke": "吊销接口密钥",
}
SECRET = re.compile(r"password|hash|token|secret|csrf", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SetupError(ValueError):
    """A refused set-up change; nothing was changed. The message names the field; ``status`` is the answer's
    HTTP status: 422 a bad field, 409 a clash with what exists, 404 nothing there to change."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def record(
    session: Session,
    actor: Actor,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add the event to the change's session (not committed here: it commits, or rolls back, with the change).
    Data under a key that names a password, hash or token is refused, so a careless caller cannot leak one."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    data = {"before": before, "after": after}
    _no_secrets(data)
    event = AuditEvent(
        at=datetime.now(UTC),
        user_id=actor.user_id,
        actor=actor.name,
        role=actor.role,
        action=action,
        target=target[:120],
        data=data,
    )
    session.add(event)
    return event


def _no_secrets(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if SECRET.search(str(key)):
                raise ValueError(f"audit data must not hold secrets: {key!r}")
            _no_secrets(item)
    elif isinstance(value, list):
        for item in value:
            _no_secrets(item)


def commit(session: Session, clash: str) -> None:
    """Commit the change with its event; a unique key another request took meanwhile is a 409, and neither the
    change nor its event is kept."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise SetupError(clash, 409) from None


def events(engine: Engine, page: int, per_page: int = 50) -> tuple[list[AuditEvent], int]:
    """One page of the trail, newest first, and how many events there are."""
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(AuditEvent)).one()
        rows = session.exec(
            select(AuditEvent)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .offset(max(page - 1, 0) * per_page)
            .limit(per_page)
        ).all()
    return list(rows), total


def one_line(value: str, label: str, longest: int, *, required: bool = True) -> str:
    """A one-line text field, trimmed: refused when empty (if required), too long or holding control characters."""
    value = value.strip()
    if required and not value:
        raise SetupError(f"请填写{label}")
    if len(value) > longest or CONTROL.search(value):
        raise SetupError(f"{label}最多 {longest} 个字符，且不能含控制字符")
    return value


# --- departments ------------------------------------------------------------------------------------------------
