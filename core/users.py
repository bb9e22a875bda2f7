"""Staff accounts, roles and API tokens. Tokens are random and kept only as SHA-256; passwords (for the console's
sessions) as argon2 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.audit import SetupError, commit, record
from core.cases import ROLES, Actor
from core.models import ApiToken, AppUser, ConsoleSession, Department

STAFF_ROLES = tuple(r for r in ROLES if r != "system")
NAME = re.compile(r"^[\w\u4e00-\u9fa5.-]{1,60}$")
SCOPE = re.compile(r"^[0-9A-Z]{6,15}$")
HASHER = PasswordHasher()


class UserError(SetupError):
    """A refused account change; the message names the field (status 422, 409 for a name taken, 404)."""


def _assignment(session: Session, role: str, department: str | None, scope: list[str], department_field: str) -> None:
    """The checks of a role with its department and scope, shared by the command line and the console."""
    if role not in STAFF_ROLES:
        raise UserError(f"角色 {role!r} 应为 {'、'.join(f'{r}({ROLES[r]})' for r in STAFF_ROLES)} 之一")
    if (role == "department") != bool(department):
        raise UserError(f"专业部门用户必须指定{department_field}，其他角色不能指定")
    bad = [s for s in scope if not SCOPE.match(s)]
    if bad:
        raise UserError(f"范围 {bad[0]!r} 应为 6–15 位区划/街道/社区/网格代码")
    if department and session.get(Department, department) is None:
        raise UserError(f"专业部门 {department} 不存在")


def _new_user(
    session: Session,
    name: str,
    role: str,
    department: str | None,
    scope: list[str],
    password_hash: str | None,
    department_field: str,
) -> AppUser:
    if not NAME.match(name):
        raise UserError(f"用户名 {name!r} 应为 1–60 个字母、数字、汉字或 . - _")
    _assignment(session, role, department, scope, department_field)
    user = AppUser(name=name, role=role, department_code=department, grid_scope=scope, password_hash=password_hash)
    session.add(user)
    return user


def add_user(
    engine: Engine,
    name: str,
    role: str,
    *,
    department: str | None = None,
    scope: list[str] | None = None,
    password: str | None = None,
) -> AppUser:
    with Session(engine) as session:
        user = _new_user(
            session, name, role, department, scope or [], HASHER.hash(password) if password else None, " --department"
        )
        try:
            session.commit()
        except IntegrityError:
            raise UserError(f"用户名 {name} 已存在", 409) from None
        session.refresh(user)
        return user


def create_token(engine: Engine, name: str) -> str:
    """A new token for the user; the only time the token itself is seen."""
    token = "gl_" + secrets.token_urlsafe(32)
    with Session(engine) as session:
        user = session.exec(select(AppUser).where(AppUser.name == name)).first()
        if user is None:
            raise UserError(f"用户 {name} 不存在")
        session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), created_at=datetime.now(UTC)))
        session.commit()
    return token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor_for_token(engine: Engine, token: str) -> Actor | None:
    if not token or len(token) > 200:
        return None
    with Session(engine) as session:
        row = session.exec(
            select(AppUser)
            .join(ApiToken, ApiToken.user_id == AppUser.id)
            .where(ApiToken.token_sha256 == _digest(token), ApiToken.revoked.is_(False), AppUser.active)
        ).first()
        return Actor.of(row) if row else None


def actor_for_password(engine: Engine, name: str, password: str) -> Actor | None:
    with Session(engine) as session:
        user = session.exec(select(AppUser).where(AppUser.name == name, AppUser.active)).first()
    if user is None or not user.password_hash:
        HASHER.hash("timing")  # answer as slowly as for a real account
        return None
    try:
        HASHER.verify(user.password_hash, password)
    except VerificationError:
        return None
    return Actor.of(user)


# --- account changes from the console: each with its audit event, in the change's transaction ---------------------

PASSWORD_LENGTH = (8, 200)  # the login form takes up to 200 characters


def staff(engine: Engine) -> list[AppUser]:
    with Session(engine) as session:
        return list(session.exec(select(AppUser).order_by(AppUser.role, AppUser.name)).all())


def _values(user: AppUser) -> dict[str, object]:
    """What the audit trail shows of an account: never its password hash."""
    return {
        "name": user.name,
        "role": user.role,
        "department": user.department_code,
        "scope": list(user.grid_scope),
        "active": user.active,
    }


def _new_hash(password: str) -> str:
    low, high = PASSWORD_LENGTH
    if not low <= len(password) <= high:
        raise UserError(f"密码应为 {low}–{high} 个字符")
    return HASHER.hash(password)


def _locked(session: Session, user_id: int) -> AppUser:
    user = session.exec(select(AppUser).where(AppUser.id == user_id).with_for_update()).first()
    if user is None:
        raise UserError("该用户不存在", 404)
    return user


def _end_sessions(session: Session, user_id: int) -> int:
    """End the account's open console sessions (its next request goes to the login page)."""
    ended = session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended.is_(False))
        .values(ended=True)
    )
    return ended.rowcount or 0


def create_user(
    engine: Engine, actor: Actor, name: str, role: str, *, department: str | None, scope: list[str], password: str
) -> AppUser:
    """``add_user``'s checks, with a password the person logs in with and the audit event."""
    password_hash = _new_hash(password)  # hashed before the transaction: it takes a while
    with Session(engine, expire_on_commit=False) as session:
        if session.exec(select(AppUser.id).where(AppUser.name == name)).first() is not None:
            raise UserError(f"用户名 {name} 已存在", 409)
        user = _new_user(session, name, role, department, scope, password_hash, "所属部门")
        record(session, actor, "user.add", f"用户 {name}", None, _values(user))
        commit(session, f"用户名 {name} 已存在")
        return user


def update_user(
    engine: Engine, actor: Actor, user_id: int, *, role: str, department: str | None, scope: list[str]
) -> bool:
    """A new role, department or scope; False when nothing differs. Nobody changes their own role, so the
    centre cannot lose its last 管理员 by a slip."""
    with Session(engine) as session:
        user = _locked(session, user_id)
        _assignment(session, role, department, scope, "所属部门")
        if user.id == actor.user_id and role != user.role:
            raise UserError("不能修改自己的角色，请由另一位管理员修改")
        if (user.role, user.department_code, list(user.grid_scope)) == (role, department, scope):
            return False
        before = _values(user)
        user.role, user.department_code, user.grid_scope = role, department, scope
        record(session, actor, "user.update", f"用户 {user.name}", before, _values(user))
        commit(session, "用户已变化，请刷新后重试")
        return True


def reset_password(engine: Engine, actor: Actor, user_id: int, password: str) -> str:
    """A new password; the account's open console sessions end, since whoever knew the old one may hold one.
    Returns the account's name."""
    password_hash = _new_hash(password)
    with Session(engine) as session:
        user = _locked(session, user_id)
        user.password_hash = password_hash
        ended = _end_sessions(session, user_id)
        record(session, actor, "user.reset_password", f"用户 {user.name}", None, {"ended_sessions": ended})
        commit(session, "用户已变化，请刷新后重试")
        return user.name


def set_active(engine: Engine, actor: Actor, user_id: int, active: bool) -> bool:
    """Disable or enable an account; False when it already was. A disabled account's sessions end and its API
    tokens are refused (``actor_for_token`` and ``session_login`` read only active accounts) until enabled."""
    with Session(engine) as session:
        user = _locked(session, user_id)
        if user.id == actor.user_id and not active:
            raise UserError("不能停用自己的账号")
        if user.active == active:
            return False
        before = _values(user)
        user.active = active
        after = {**_values(user), "ended_sessions": 0 if active else _end_sessions(session, user_id)}
        record(session, actor, "user.enable" if active else "user.disable", f"用户 {user.name}", before, after)
        commit(session, "用户已变化，请刷新后重试")
        return True


# --- console sessions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleLogin:
    """A live console session: who, and the CSRF token every form of that session must carry."""

    actor: Actor
    csrf_token: str


def open_session(engine: Engine, actor: Actor) -> tuple[str, str]:
    """A new session for a user who just gave their password: (cookie key, CSRF token). Only the key's hash is
    stored, so a copy of the table opens no session."""
    key, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(
            ConsoleSession(
                key_sha256=_digest(key), user_id=actor.user_id, csrf_token=csrf, created_at=now, last_seen_at=now
            )
        )
        session.commit()
    return key, csrf


def session_login(engine: Engine, key: str, idle: timedelta, touch: bool = True) -> ConsoleLogin | None:
    """The session's user while it is open, active and used within ``idle``. A person's use moves the idle clock on
    (at most once a minute); a page polling by itself (``touch=False``) does not, or an open tab would never idle."""
    if not key or len(key) > 200:
        return None
    now = datetime.now(UTC)
    with Session(engine) as session:
        row = session.exec(
            select(ConsoleSession, AppUser)
            .join(AppUser, AppUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.key_sha256 == _digest(key), ConsoleSession.ended.is_(False), AppUser.active)
        ).first()
        if row is None:
            return None
        login, user = row
        if now - login.last_seen_at > idle:
            login.ended = True
            session.commit()
            return None
        if touch and now - login.last_seen_at > timedelta(minutes=1):
            login.last_seen_at = now
            session.commit()
        return ConsoleLogin(Actor.of(user), login.csrf_token)


def end_session(engine: Engine, key: str) -> None:
    with Session(engine) as session:
        session.execute(update(ConsoleSession).where(ConsoleSession.key_sha256 == _digest(key)).values(ended=True))
        session.commit()
