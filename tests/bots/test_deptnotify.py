"""Delivery of department notices (bots.deptnotify) against local fakes of every channel: signatures checked by the
receivers themselves, retries with the notice backoff, order per case, and — with real worker processes — no row
delivered twice by two workers on PostgreSQL and none lost when a worker is killed mid-delivery.

Rows are written straight into the outbox as ``core.notices`` writes them (the contract's keys and payload)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update
from sqlmodel import Session

from bots import storage
from bots.deptnotify import BACKOFF, CHANNELS, DeptNotifier, dingtalk_url, webhook_id
from core.config import Settings
from core.models import CaseFile, Department, Outbox
from tests.bots.dept_fakes import (
    DINGTALK_SECRET,
    WEBHOOK_SECRET,
    FakeDingTalk,
    FakeWeCom,
    Mailbox,
    Receiver,
)
from tests.bots.fakes import FakeTelegram, serve

REPO = Path(__file__).resolve().parents[2]
TOKEN = "654321:dept-notices_token"
OUTBOX = Outbox.__table__


def notice(case_id: int, seq: int, event: str = "case.dispatched", dept: str = "SZ") -> dict[str, Any]:
    at = datetime(2026, 12, 9, 2, 0, tzinfo=UTC) + timedelta(minutes=seq)
    return {
        "event": event,
        "notice": {
            "event": event, "case": f"2026120900{case_id:04d}", "matter_code": "01070", "matter_name": "路灯异常",
            "address": "人民路88号", "grid_code": "339901001003004", "department": dept, "limit": 2.0,
            "unit": "工作时", "deadline": (at + timedelta(hours=2)).isoformat(), "light": "green",
            "url": f"http://127.0.0.1:8080/console/cases/2026120900{case_id:04d}", "at": at.isoformat(),
        },
    }  # fmt: skip


def row(case_id: int, seq: int, channel: str = "dept_webhook", recipient: str = "SZ", **kw: Any) -> dict[str, Any]:
    return {
        "dedup_key": f"notice:{case_id}:{seq}:{channel}:{recipient}",
        "channel": channel,
        "recipient": recipient,
        "kind": "notice",
        "case_id": case_id,
        "payload": notice(case_id, seq, **kw),
    }


def add_department(engine, code: str = "SZ", **targets: str) -> None:
    with Session(engine) as session:
        session.add(Department(code=code, name="市政公用", kind="市政", **targets))
        session.commit()


def set_department(engine, code: str, **targets: str) -> None:
    with Session(engine) as session:
        dept = session.get(Department, code)
        for key, value in targets.items():
            setattr(dept, key, value)
        session.commit()


def outbox(engine) -> list[Any]:
    with storage.transaction(engine) as conn:
        return list(conn.execute(select(OUTBOX).order_by(OUTBOX.c.id)).all())


class Clock:
    def __init__(self) -> None:
        self.at = storage.now_utc()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"


@pytest.fixture
def receiver():
    r = Receiver()
    with serve(r.app) as url:
        r.url = f"{url}/hook"
        yield r


# --- every channel --------------------------------------------------------------------------------------------


async def test_every_channel_reaches_its_fake(engine, receiver):
    wecom, ding, telegram, mailbox = FakeWeCom(), FakeDingTalk(), FakeTelegram(TOKEN), Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with serve(wecom.app) as wecom_base, serve(ding.app) as ding_base, serve(telegram.app) as tg_base:
            wecom_url = f"{wecom_base}/cgi-bin/webhook/send?key={wecom.key}"
            add_department(
                engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, email="szgy@example.cn",
                wecom_url=wecom_url, dingtalk_url=f"{ding_base}/robot/send?access_token={ding.token}",
                dingtalk_secret=DINGTALK_SECRET, telegram_chat_id="-1001234567",
            )  # fmt: skip
            settings = Settings(
                telegram_token=TOKEN, telegram_api_base=tg_base, smtp_host="127.0.0.1", smtp_port=smtp.port,
                smtp_starttls="false", smtp_from="gridline@city.example", shift_lead_telegram="777",
                shift_lead_wecom=wecom_url,
            )  # fmt: skip
            rows = [row(1, 3, ch) for ch in CHANNELS]
            rows += [row(1, 4, ch, "shift_lead", event="case.limit_red") for ch in ("dept_telegram", "dept_wecom")]
            assert storage.enqueue(engine, rows) == 7
            worker = DeptNotifier(engine, settings)
            assert await worker.drain() == 7
            await worker.close()
    finally:
        smtp.stop()

    assert [r.status for r in outbox(engine)] == ["sent"] * 7, [r.error for r in outbox(engine)]
    # webhook: verified by the receiver with standardwebhooks; the id is the contract's
    assert receiver.rejected == 0 and len(receiver.received) == 1
    got = receiver.received[0]
    assert got["id"] == "msg_" + hashlib.sha256(b"notice:1:3:dept_webhook:SZ").hexdigest()[:24]
    assert got["body"]["type"] == "case.dispatched" and got["body"]["case"] == "20261209000001"
    assert got["body"]["matter_name"] == "路灯异常" and got["body"]["url"].endswith("/console/cases/20261209000001")
    # e-mail: a Chinese subject and a plain-text body with the facts and the link
    (mail,) = mailbox.messages
    assert mail["to"] == ["szgy@example.cn"] and mail["from"] == "gridline@city.example"
    assert mail["message"]["Subject"] == "【派遣通知】案卷 20261209000001 路灯异常"
    text = mail["message"].get_content()
    assert "管理事项：01070 路灯异常" in text and "地址：人民路88号" in text and "截止时间：2026-12-09 12:03" in text
    assert "http://127.0.0.1:8080/console/cases/20261209000001" in text
    # 企业微信: markdown, the department's and the 值班长's copy
    assert len(wecom.sent) == 2
    assert all(m["msgtype"] == "markdown" for m in wecom.sent)
    assert "### 【派遣通知】案卷 20261209000001 路灯异常" in wecom.sent[0]["markdown"]["content"]
    assert "【时限超期（红灯）】" in wecom.sent[1]["markdown"]["content"]
    # 钉钉: signed (the fake checks timestamp + sign), markdown with a title
    assert ding.bad_signs == 0 and len(ding.sent) == 1
    assert ding.sent[0]["markdown"]["title"] == "【派遣通知】案卷 20261209000001 路灯异常"
    # Telegram: the department's chat and the 值班长's
    assert sorted(str(m["chat_id"]) for m in telegram.sent) == ["-1001234567", "777"]
    assert all("案卷编号：20261209000001" in m["text"] for m in telegram.sent)


def test_dingtalk_sign_is_dingtalks():
    # the worked form of DingTalk's documentation: base64(HMAC-SHA256(secret, "ts\nsecret")), URL-encoded
    url = dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SECx", 1700000000000)
    import base64
    import hmac
    import urllib.parse

    digest = hmac.new(b"SECx", b"1700000000000\nSECx", hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    assert url == f"https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1700000000000&sign={sign}"
    assert dingtalk_url("https://x/robot/send?access_token=T", "") == "https://x/robot/send?access_token=T"


async def test_a_wrong_signature_is_not_delivered(engine, receiver):
    add_department(engine, webhook_url=receiver.url, webhook_secret="whsec_" + "QUJD" * 8)  # not the receiver's
    storage.enqueue(engine, [row(5, 1)])
    worker = DeptNotifier(engine, Settings())
    await worker.drain()
    await worker.close()
    (r,) = outbox(engine)
    assert receiver.rejected == 1 and receiver.received == []
    assert r.status == "pending" and r.attempts == 1 and "401" in r.error


async def test_no_smtp_host_or_no_address_is_a_dead_letter_at_once(engine):
    add_department(engine, email="szgy@example.cn")
    add_department(engine, "YL")  # no channel configured (any more)
    storage.enqueue(engine, [row(1, 1, "dept_email"), row(2, 1, "dept_webhook", "YL"), row(3, 1, recipient="GONE")])
    worker = DeptNotifier(engine, Settings())
    assert await worker.drain() == 3
    await worker.close()
    email, webhook, gone = outbox(engine)
    assert email.status == "dead" and "smtp_host" in email.error
    assert webhook.status == "dead" and "YL 未配置 webhook" in webhook.error
    assert gone.status == "dead" and "GONE" in gone.error


# --- retries, order, leases -----------------------------------------------------------------------------------


async def test_a_receiver_down_for_a_while_gets_everything_in_order_per_case(engine, receiver):
    add_department(engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    events = ("case.dispatched", "case.urged", "case.rework", "case.limit_yellow")
    rows = [row(case, seq, event=ev) for seq, ev in enumerate(events, 1) for case in (11, 12, 13)]
    storage.enqueue(engine, rows)  # interleaved: case 11 seq 1, case 12 seq 1, … case 13 seq 4
    clock = Clock()
    worker = DeptNotifier(engine, Settings(), clock=clock)

    receiver.down = True  # 503
    assert await worker.drain() == 3  # only the first notice of each case is tried: the later ones wait behind it
    first = [r for r in outbox(engine) if r.attempts]
    assert len(first) == 3 and all(r.status == "pending" and "503" in r.error for r in first)
    assert {r.next_at - clock.at for r in first} == {timedelta(seconds=BACKOFF[0])}
    clock.advance(BACKOFF[0] - 1)
    assert await worker.drain() == 0  # not due yet

    set_department(engine, "SZ", webhook_url=closed_port_url())  # now the connection is refused
    clock.advance(1)
    assert await worker.drain() == 3
    tried = [r for r in outbox(engine) if r.attempts]
    assert all(r.attempts == 2 and r.status == "pending" for r in tried)
    assert {r.next_at - clock.at for r in tried} == {timedelta(seconds=BACKOFF[1])}

    set_department(engine, "SZ", webhook_url=receiver.url)
    receiver.down = False
    clock.advance(BACKOFF[1])
    assert await worker.drain() == 12
    await worker.close()

    assert all(r.status == "sent" for r in outbox(engine))
    assert receiver.refused == 3 and receiver.rejected == 0
    ids = receiver.ids()
    assert len(ids) == 12 and set(ids.values()) == {1}  # every notice, once
    assert set(ids) == {webhook_id(r["dedup_key"]) for r in rows}  # the same id as on the failed tries
    for case in (11, 12, 13):
        got = [b["type"] for b in receiver.bodies() if b["case"] == f"2026120900{case:04d}"]
        assert got == list(events)


async def test_the_backoff_ends_in_a_dead_letter(engine):
    add_department(engine, webhook_url=closed_port_url(), webhook_secret=WEBHOOK_SECRET)
    storage.enqueue(engine, [row(21, 1), row(21, 2)])
    clock = Clock()
    worker = DeptNotifier(engine, Settings(), clock=clock)
    waits = []
    for _ in BACKOFF:
        assert await worker.drain() == 1  # 21:2 waits behind 21:1
        first = outbox(engine)[0]
        waits.append((first.next_at - clock.at).total_seconds())
        clock.advance(waits[-1])
    assert waits == list(BACKOFF)  # 1 min, 5 min, 30 min, 2 h, 6 h
    assert await worker.drain() == 2  # the 6th failure is the last: 21:1 is dead, and 21:2 goes next
    await worker.close()
    first, second = outbox(engine)
    assert first.status == "dead" and first.attempts == len(BACKOFF) + 1 and "ClientConnectorError" in first.error
    assert second.status == "pending" and second.attempts == 1  # a dead letter no longer holds the case back
    clock.advance(BACKOFF[0])
    assert len(storage.claim_batch(engine, CHANNELS, 10, timedelta(seconds=60), clock())) == 1


def test_a_lease_keeps_others_off_until_it_passes(engine):
    storage.enqueue(engine, [row(31, 1), row(32, 1), row(31, 2)])
    at = storage.now_utc()
    lease = timedelta(seconds=60)
    taken = storage.claim_batch(engine, CHANNELS, 10, lease, at)
    assert [r.dedup_key for r in taken] == ["notice:31:1:dept_webhook:SZ", "notice:32:1:dept_webhook:SZ"]
    assert all(r.status == "sending" and r.next_at == at + lease for r in taken)
    assert storage.claim_batch(engine, CHANNELS, 10, lease, at + timedelta(seconds=59)) == []  # held; 31:2 waits
    # the worker died: after the lease another takes the rows again (31:2 still waits behind 31:1)
    again = storage.claim_batch(engine, CHANNELS, 10, lease, at + timedelta(seconds=61))
    assert [r.id for r in again] == [r.id for r in taken]
    # the first worker's late answer is ignored: the rows are the second's now
    assert storage.settle_batch(engine, [(r, "timeout", False) for r in taken], BACKOFF) == 0
    assert storage.settle_batch(engine, [(r, None, False) for r in again], BACKOFF) == 2
    (last,) = storage.claim_batch(engine, CHANNELS, 10, lease, at + timedelta(seconds=62))
    assert last.dedup_key == "notice:31:2:dept_webhook:SZ"


def test_the_citizen_notifier_channels_are_left_alone(engine):
    storage.enqueue(engine, [{"dedup_key": "case:1:1:telegram:x", "channel": "telegram", "recipient": "42",
                              "kind": "notify", "payload": {"replies": []}}, row(41, 1)])  # fmt: skip
    taken = storage.claim_batch(engine, CHANNELS, 10, timedelta(seconds=60))
    assert [r.channel for r in taken] == ["dept_webhook"]
    assert [r.channel for r in storage.due(engine, ("telegram",))] == ["telegram"]


# --- worker processes -----------------------------------------------------------------------------------------


def worker_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "GRIDLINE_DATABASE_URL": db_url, "GRIDLINE_DATA_DIR": str(tmp_path / "var"),
            "GRIDLINE_LOG_LEVEL": "WARNING"}  # fmt: skip


def start_worker(env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "notify", "run", "--interval", "0.05", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_until(check, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def many_rows(count: int, cases: int) -> list[dict[str, Any]]:
    # several notices per case, so ordering per case is exercised too
    return [row(i % cases + 1, i // cases + 1) for i in range(count)]


@pytest.mark.slow
def test_two_workers_on_postgresql_never_deliver_a_row_twice(engine, db_url, tmp_path, receiver):
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED between worker processes: PostgreSQL only (SQLite has one writer)")
    add_department(engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    rows = many_rows(1000, 250)
    env = worker_env(db_url, tmp_path)
    workers = [start_worker(env, "--batch", "20") for _ in range(2)]
    try:
        time.sleep(0.5)  # both running (and polling) before the rows arrive
        for i in range(0, len(rows), 100):
            storage.enqueue(engine, rows[i : i + 100])
        assert wait_until(lambda: len(receiver.received) >= 1000, 90), len(receiver.received)
        time.sleep(0.5)  # anything sent twice would arrive by now
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(30) for w in workers]
    errors = [w.stderr.read().decode() for w in workers]
    assert codes == [0, 0], errors
    ids = receiver.ids()
    assert len(ids) == 1000 and max(ids.values()) == 1, ids.most_common(3)
    assert receiver.rejected == 0
    assert all(r.status == "sent" for r in outbox(engine))
    for case in (1, 77, 250):  # in order per case
        got = [b["at"] for b in receiver.bodies() if b["case"] == f"2026120900{case:04d}"]
        assert got == sorted(got) and len(got) == 4


@pytest.mark.slow
def test_kill_9_mid_delivery_loses_nothing(engine, db_url, tmp_path, receiver):
    add_department(engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    rows = many_rows(300, 300)
    storage.enqueue(engine, rows)
    receiver.delay = 0.2  # slow answers: the worker is always mid-delivery
    env = worker_env(db_url, tmp_path)
    first = start_worker(env, "--batch", "50", "--lease", "2")
    try:
        assert wait_until(lambda: len(receiver.received) >= 40, 60), first.stderr.read1().decode()
        receiver.delay = 5.0  # its sends from now on hang: it is sure to die holding a claimed batch
        assert wait_until(lambda: any(r.status == "sending" for r in outbox(engine)), 10)
        time.sleep(0.3)
    finally:
        first.kill()  # SIGKILL: no settle, no goodbye
        first.wait(10)
    at_kill = len(receiver.received)
    held = [r for r in outbox(engine) if r.status == "sending"]
    assert held and at_kill < 300  # it died holding claimed rows
    receiver.delay = 0.0
    second = start_worker(env, "--lease", "2")
    try:
        assert wait_until(lambda: len(receiver.ids()) == 300 and all(
            r.status == "sent" for r in outbox(engine)), 60), len(receiver.ids())  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr.read().decode()
    ids = receiver.ids()
    duplicates = sum(n - 1 for n in ids.values())
    assert set(ids) == {webhook_id(r["dedup_key"]) for r in rows}  # none lost
    # a duplicate is only a notice the dead worker had sent but not yet settled (the receiver drops it by id)
    assert duplicates <= len(held), (duplicates, len(held))
    print(f"kill -9: {at_kill} delivered before, {len(held)} rows held, {duplicates} delivered twice")


def test_notify_run_once_drains_and_exits(engine, db_url, tmp_path, receiver, monkeypatch):
    from admin.cli import main

    add_department(engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    storage.enqueue(engine, many_rows(30, 10))
    for key, value in worker_env(db_url, tmp_path).items():
        if key.startswith("GRIDLINE_"):
            monkeypatch.setenv(key, value)
    assert main(["notify", "run", "--once", "--batch", "7"]) == 0
    assert len(receiver.ids()) == 30
    assert main(["notify", "run", "--once", "--batch", "0"]) == 2
    with storage.transaction(engine) as conn:  # nothing due: --once exits at once
        conn.execute(update(OUTBOX).values(status="sent"))
    assert main(["notify", "run", "--once"]) == 0


async def test_the_server_delivers_notices(db_url, engine, receiver, tmp_path, aiohttp_client):
    # the delivery loop runs inside the server, beside the citizen notifier
    from aiohttp import web

    from admin.runtime import Runtime
    from bots.routes import mount
    from core.config import load_settings

    add_department(engine, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
    runtime = Runtime(load_settings(environ=worker_env(db_url, tmp_path)))
    try:
        app = web.Application()
        mount(app, runtime)
        await aiohttp_client(app)
        storage.enqueue(engine, [row(51, 1)])
        for _ in range(100):
            if receiver.received:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.received) == 1
    finally:
        runtime.close()


def test_notify_run_looks_for_limit_alerts_itself_and_sends_them(demo_url, tmp_path, receiver, monkeypatch):
    """A 处置 limit turns red by the clock, not by an event: the worker sweeps for it and delivers the alert, beside
    the dispatch notice written with the event."""
    from admin.cli import main
    from admin.runtime import Runtime
    from core.cases import Actor
    from core.config import load_settings
    from core.intake import Incoming

    env = worker_env(demo_url, tmp_path)
    runtime = Runtime(load_settings(environ=env))
    try:
        set_department(runtime.engine, "HW", webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET)
        report, _ = runtime.intake.submit(
            Incoming("webchat", "late-1", datetime.now(UTC), sender="w", text="人民路88号门口一大堆垃圾没人清")
        )
        number, loop = report.case_number, runtime.loop
        loop.act(number, "accept", Actor(None, "op", "operator"))
        loop.act(number, "file", Actor(None, "lead", "shift_lead"), {"level": 1})
        loop.act(number, "dispatch", Actor(None, "disp", "dispatcher"), {"department": "HW"})
        with Session(runtime.engine) as session:  # dispatched a month ago: long past its limit
            session.execute(update(CaseFile).values(stage_started_at=datetime.now(UTC) - timedelta(days=30)))
            session.commit()
    finally:
        runtime.close()
    for key, value in env.items():
        if key.startswith("GRIDLINE_"):
            monkeypatch.setenv(key, value)
    assert main(["notify", "run", "--once"]) == 0
    assert sorted(b["type"] for b in receiver.bodies()) == ["case.dispatched", "case.limit_red"]
    assert main(["notify", "run", "--once"]) == 0 and len(receiver.received) == 2  # once per threshold and stage
