"""API keys of the Open311 client applications (``gridline open311 key add NAME``) and their rate limit.

A key is 32 random bytes shown once and kept only as its SHA-256: random keys need no slow hash, and a lookup by
hash answers a wrong key and a revoked one alike. The limit is a token bucket per key in this process's memory
(``RateLimiter``): ``rate_per_minute`` requests may come at once, and the bucket fills again at that rate. A
restart forgets the buckets (every key starts full), and each process keeps its own, so a deployment that ran
several ``gridline serve`` processes behind one address would allow that many times the rate.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.audit import SetupError, commit, record
from core.cases import Actor
from core.models import ApiKey, Report
from core.users import NAME

PREFIX = "o311_"  # recognisable in a leaked log or file
MAX_RATE = 10_000
DEFAULT_RATE = 60


class ApiKeyError(SetupError):
    """A refused key change; the message names the field (422, 409 for a name taken, 404 for no such key)."""


@dataclass(frozen=True)
class Client:
    """The client application a valid key belongs to."""

    id: int
    name: str
    rate_per_minute: int
    key_sha256: str


@dataclass(frozen=True)
class KeyInfo:
    name: str
    rate_per_minute: int
    created_at: datetime
    revoked_at: datetime | None
    reports: int


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_key(engine: Engine, actor: Actor, name: str, rate_per_minute: int = DEFAULT_RATE) -> str:
    """A new key for a client application; returns the secret, which is not kept and cannot be shown again."""
    if not NAME.match(name):
        raise ApiKeyError(f"名称 {name!r} 应为 1–60 个字母、数字、汉字或 . - _")
    if not 1 <= rate_per_minute <= MAX_RATE:
        raise ApiKeyError(f"限流应为每分钟 1–{MAX_RATE} 次")
    secret = PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as session:
        if session.exec(select(ApiKey.id).where(ApiKey.name == name)).first() is not None:
            raise ApiKeyError(f"名称 {name} 已被使用（吊销的密钥也保留名称）", 409)
        session.add(
            ApiKey(name=name, key_sha256=digest(secret), rate_per_minute=rate_per_minute, created_at=datetime.now(UTC))
        )
        record(session, actor, "apikey.add", f"接口密钥 {name}", None, {"rate_per_minute": rate_per_minute})
        commit(session, f"名称 {name} 已被使用")
    return secret


def revoke_key(engine: Engine, actor: Actor, name: str) -> bool:
    """Revoke the key of ``name`` from now on; False if it was revoked already."""
    with Session(engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.name == name)).first()
        if key is None:
            raise ApiKeyError(f"没有名为 {name} 的密钥", 404)
        if key.revoked_at is not None:
            return False
        key.revoked_at = datetime.now(UTC)
        session.add(key)
        record(session, actor, "apikey.revoke", f"接口密钥 {name}", {"revoked": False}, {"revoked": True})
        session.commit()
    return True


def list_keys(engine: Engine) -> list[KeyInfo]:
    """Every key, oldest first, with how many reports it has sent (channel ``open311``, sender = the key's name)."""
    with Session(engine) as session:
        counts = dict(
            session.exec(
                select(Report.sender, func.count()).where(Report.channel == "open311").group_by(Report.sender)
            ).all()
        )
        keys = session.exec(select(ApiKey).order_by(ApiKey.id)).all()
        return [KeyInfo(k.name, k.rate_per_minute, k.created_at, k.revoked_at, counts.get(k.name, 0)) for k in keys]


def client_for(engine: Engine, secret: str) -> Client | None:
    """The client of a valid, unrevoked key; None for any other string."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    with Session(engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.key_sha256 == digest(secret))).first()
    if key is None or key.revoked_at is not None or key.id is None:
        return None
    return Client(key.id, key.name, key.rate_per_minute, key.key_sha256)


class RateLimiter:
    """A token bucket per key: full at ``rate_per_minute``, refilled at that rate; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id → (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, client: Client) -> float:
        """Take one request from the client's bucket: 0.0 if allowed, else the seconds until one is allowed."""
        rate = client.rate_per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(client.id, (float(client.rate_per_minute), now))
            tokens = min(float(client.rate_per_minute), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[client.id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client.id] = (tokens, now)
            return (1.0 - tokens) / rate
