"""Staff accounts, roles and API tokens. Tokens are random and kept only as SHA-256; passwords (for the console's
sessions) as argon2 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.cases import ROLES, Actor
from core.models import ApiToken, AppUser, Department

STAFF_ROLES = tuple(r for r in ROLES if r != "system")
NAME = re.compile(r"^[\w\u4e00-\u9fa5.-]{1,60}$")
SCOPE = re.compile(r"^[0-9A-Z]{6,15}$")
HASHER = PasswordHasher()


class UserError(ValueError):
    """A refused account change; the message names the field."""


def add_user(
    engine: Engine,
    name: str,
    role: str,
    *,
    department: str | None = None,
    scope: list[str] | None = None,
    password: str | None = None,
) -> AppUser:
    if not NAME.match(name):
        raise UserError(f"用户名 {name!r} 应为 1–60 个字母、数字、汉字或 . - _")
    if role not in STAFF_ROLES:
        raise UserError(f"角色 {role!r} 应为 {'、'.join(f'{r}({ROLES[r]})' for r in STAFF_ROLES)} 之一")
    if (role == "department") != bool(department):
        raise UserError("专业部门用户必须指定 --department，其他角色不能指定")
    scope = scope or []
    bad = [s for s in scope if not SCOPE.match(s)]
    if bad:
        raise UserError(f"范围 {bad[0]!r} 应为 6–15 位区划/街道/社区/网格代码")
    with Session(engine) as session:
        if department and session.get(Department, department) is None:
            raise UserError(f"专业部门 {department} 不存在")
        user = AppUser(
            name=name,
            role=role,
            department_code=department,
            grid_scope=scope,
            password_hash=HASHER.hash(password) if password else None,
        )
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            raise UserError(f"用户名 {name} 已存在") from None
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
