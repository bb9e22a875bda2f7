"""The Open311 clients' API keys: shown once and kept only as SHA-256, revocable, names never reused; and the token
bucket that limits each key."""

from __future__ import annotations

import hashlib

import pytest
from sqlmodel import Session, select

from core import apikeys
from core.cases import Actor
from core.models import ApiKey, AuditEvent

ADMIN = Actor(None, "测试管理员", "admin")


def test_a_key_works_until_it_is_revoked_and_only_its_hash_is_kept(engine):
    secret = apikeys.add_key(engine, ADMIN, "fixmystreet", rate_per_minute=30)
    assert secret.startswith(apikeys.PREFIX) and len(secret) > 40
    client = apikeys.client_for(engine, secret)
    assert client is not None and client.name == "fixmystreet" and client.rate_per_minute == 30
    with Session(engine) as session:
        row = session.exec(select(ApiKey)).one()
    assert row.key_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row.model_dump())
    for wrong in ("", secret[:-1], secret + "x", "o311_" + "A" * 43, secret.removeprefix(apikeys.PREFIX)):
        assert apikeys.client_for(engine, wrong) is None
    assert apikeys.revoke_key(engine, ADMIN, "fixmystreet") is True
    assert apikeys.client_for(engine, secret) is None
    assert apikeys.revoke_key(engine, ADMIN, "fixmystreet") is False  # already revoked: nothing changes
    [info] = apikeys.list_keys(engine)
    assert info.name == "fixmystreet" and info.revoked_at is not None and info.reports == 0
    with Session(engine) as session:  # the audit trail names who added and revoked it, and never the secret
        events = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.action, e.actor) for e in events] == [("apikey.add", "测试管理员"), ("apikey.revoke", "测试管理员")]
    assert secret not in str([e.model_dump() for e in events])


def test_two_keys_are_different_and_a_name_is_never_given_twice(engine):
    first, second = apikeys.add_key(engine, ADMIN, "app-1"), apikeys.add_key(engine, ADMIN, "应用二")
    assert first != second
    assert apikeys.client_for(engine, first).name == "app-1" and apikeys.client_for(engine, second).name == "应用二"
    apikeys.revoke_key(engine, ADMIN, "app-1")
    with pytest.raises(apikeys.ApiKeyError) as taken:
        apikeys.add_key(engine, ADMIN, "app-1")
    assert taken.value.status == 409
    assert [k.name for k in apikeys.list_keys(engine)] == ["app-1", "应用二"]


@pytest.mark.parametrize(
    ("name", "rate", "status"),
    [("", 60, 422), ("with space", 60, 422), ("x" * 61, 60, 422), ("ok", 0, 422), ("ok", 10_001, 422)],
)
def test_bad_names_and_rates_are_refused(engine, name, rate, status):
    with pytest.raises(apikeys.ApiKeyError) as refused:
        apikeys.add_key(engine, ADMIN, name, rate)
    assert refused.value.status == status
    assert apikeys.list_keys(engine) == []


def test_revoking_an_unknown_key_is_a_404(engine):
    with pytest.raises(apikeys.ApiKeyError) as refused:
        apikeys.revoke_key(engine, ADMIN, "nobody")
    assert refused.value.status == 404


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(key_id: int, rate: int) -> apikeys.Client:
    return apikeys.Client(key_id, f"c{key_id}", rate, "0" * 64)


def test_the_bucket_allows_a_burst_of_the_rate_then_refills_at_the_rate():
    clock = Clock()
    limiter = apikeys.RateLimiter(clock)
    app = client(1, 60)
    assert [limiter.take(app) for _ in range(60)] == [0.0] * 60
    assert limiter.take(app) == pytest.approx(1.0)  # one a second comes back
    clock.now += 0.5
    assert limiter.take(app) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take(app) == 0.0
    assert limiter.take(app) > 0
    clock.now += 3600  # a long pause fills the bucket, but no further than the rate
    assert sum(limiter.take(app) == 0.0 for _ in range(100)) == 60


def test_each_key_has_a_bucket_of_its_own():
    limiter = apikeys.RateLimiter(Clock())
    slow, fast = client(1, 2), client(2, 600)
    assert [limiter.take(slow) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.take(slow) == pytest.approx(30.0, rel=0.01)  # 2 a minute: one every 30 s
    assert all(limiter.take(fast) == 0.0 for _ in range(600))
