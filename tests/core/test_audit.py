"""The audit trail is written in the change's own transaction: a change that fails leaves no event, an event that
cannot be written leaves no change, and no password or hash ever reaches it."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from core import audit, setup, users
from core.audit import SetupError
from core.cases import Actor
from core.models import AppUser, AuditEvent, Department


@pytest.fixture
def admin(engine) -> Actor:
    with Session(engine) as s:
        s.add(Department(code="HW", name="环卫处", kind="环卫"))
        s.commit()
    return Actor.of(users.add_user(engine, "boss", "admin", password="boss-pw-2026"))


def count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def test_a_change_and_its_event_are_committed_together(engine, admin):
    dept = setup.add_department(engine, admin, "sz", "市政处", "市政")
    assert dept.code == "SZ"
    with Session(engine) as s:
        [event] = s.exec(select(AuditEvent)).all()
        assert s.get(Department, "SZ").name == "市政处"
    assert (event.user_id, event.actor, event.role, event.action, event.target) == (
        admin.user_id, "boss", "admin", "department.add", "部门 SZ")  # fmt: skip
    assert event.data == {"before": None, "after": {"code": "SZ", "name": "市政处", "kind": "市政"}}


def test_a_change_that_fails_in_the_database_leaves_no_event(engine, admin):
    """The event is in the change's session: when the database refuses the change at commit, the event goes too."""
    with Session(engine) as s:
        s.add(Department(code="HW", name="又一个环卫处"))  # the primary key is taken
        audit.record(s, admin, "department.add", "部门 HW", None, {"code": "HW"})
        with pytest.raises(SetupError) as refused:
            audit.commit(s, "部门代码 HW 已存在")
    assert refused.value.status == 409 and count(engine) == 0
    with Session(engine) as s:
        assert s.get(Department, "HW").name == "环卫处"


def test_an_event_that_cannot_be_written_leaves_no_change(engine, admin, monkeypatch):
    monkeypatch.delitem(audit.ACTIONS, "department.add")  # record() now refuses this action
    with pytest.raises(ValueError, match="unknown audit action"):
        setup.add_department(engine, admin, "YL", "园林处")
    with Session(engine) as s:
        assert s.get(Department, "YL") is None
    assert count(engine) == 0


def test_an_error_after_recording_rolls_the_event_back(engine, admin):
    with pytest.raises(RuntimeError), Session(engine) as s:
        audit.record(s, admin, "department.rename", "部门 HW", {"name": "a"}, {"name": "b"})
        s.flush()
        raise RuntimeError("the change failed after its event was flushed")
    assert count(engine) == 0


def test_refused_changes_raise_before_anything_is_written(engine, admin):
    tomorrow = date.today() + timedelta(days=2)
    for change in (
        lambda: setup.add_department(engine, admin, "HW", "另一个"),
        lambda: setup.add_department(engine, admin, "NEW", "环卫处"),
        lambda: setup.rename_department(engine, admin, "NOPE", "新名"),
        lambda: setup.add_rule(engine, admin, "06010", "", "NOPE"),
        lambda: setup.delete_rule(engine, admin, 12345),
        lambda: setup.clear_day(engine, admin, tomorrow),
        lambda: users.create_user(engine, admin, "boss", "operator", department=None, scope=[], password="x" * 8),
        lambda: users.set_active(engine, admin, admin.user_id, False),
    ):
        with pytest.raises(SetupError):
            change()
    assert count(engine) == 0


def test_no_password_or_hash_reaches_the_trail(engine, admin):
    user = users.create_user(engine, admin, "op1", "operator", department=None, scope=[], password="op1-secret-pw")
    users.reset_password(engine, admin, user.id, "op1-other-pw")
    with Session(engine) as s:
        stored = json.dumps([e.data for e in s.exec(select(AuditEvent))], ensure_ascii=False)
        hashed = s.get(AppUser, user.id).password_hash
    assert "op1-secret-pw" not in stored and "op1-other-pw" not in stored and hashed not in stored
    assert "argon2" not in stored and count(engine) == 2
    with pytest.raises(ValueError, match="secrets"), Session(engine) as s:
        audit.record(s, admin, "user.update", "用户 op1", None, {"nested": {"password_hash": "x"}})


def test_unchanged_values_are_not_a_change(engine, admin):
    day = date.today() + timedelta(days=5)
    assert setup.set_day(engine, admin, day, False, "本地假日") is True
    assert setup.set_day(engine, admin, day, False, "本地假日") is False
    assert setup.rename_department(engine, admin, "HW", "环卫处") is False
    assert setup.calendar_days(engine) == {day: False} and count(engine) == 1
