"""Department notices delivered to a local webhook receiver on PostgreSQL: by 1 and by 2 `gridline notify run`
processes (batch claims with FOR UPDATE SKIP LOCKED, sends in flight together, one settle per batch) beside a naive
loop in its own process (select one due row, send it, mark it sent; again), in the same run, on the same database,
receiver and rows.

Two measures per variant: a backlog (every row due at once: notices per second until the last one arrives) and a
steady stream (rows written at a fixed rate, as case events make them: p50/p99 from a row's ``created_at`` to its
arrival at the receiver, which verifies every signature with ``standardwebhooks``)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select, text, update
from sqlmodel import Session
from standardwebhooks import Webhook

from bench.harness import free_port, scratch_postgres
from bots import storage
from bots.deptnotify import CHANNELS, Senders, targets, webhook_id
from core import db
from core.models import Department, Outbox

SECRET = "whsec_" + base64.b64encode(b"gridline-bench-notices-secret-32").decode()
BACKLOG = 3000  # rows, two per case
HISTORY = 20_000  # notices sent before, as a running centre's table holds them (and its statistics know)
HISTORY_CASE = 10**6  # case ids of the history start here
RATE = 250  # rows per second offered in the steady stream
STEADY_S = 8.0
TICK_S = 0.02  # the producer writes RATE * TICK_S rows every TICK_S
IDLE_S = 0.25  # every loop's pause when nothing is due (the worker's default interval)
OUTBOX = Outbox.__table__


class Receiver:
    """The department's endpoint in a thread: verifies, and keeps the first arrival time of each webhook-id."""

    def __init__(self) -> None:
        self.webhook = Webhook(SECRET)
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.bad = 0
        self.lock = threading.Lock()
        self.port = free_port()
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        at = time.time()
        try:
            self.webhook.verify(raw, dict(request.headers))
        except Exception:
            self.bad += 1
            return web.Response(status=401)
        with self.lock:
            self.count += 1
            self.arrived.setdefault(request.headers["webhook-id"], at)
        return web.Response(status=204)

    def reset(self) -> None:
        with self.lock:
            self.arrived.clear()
            self.count = 0

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + count):
        case, seq = i // 2 + 1, i % 2 + 1
        event = ("case.dispatched", "case.urged")[seq - 1]
        notice = {"event": event, "case": f"2026120900{case:05d}", "matter_code": "01070", "matter_name": "路灯异常",
                  "address": "人民路88号", "grid_code": "339901001003004", "department": "SZ", "limit": 2.0,
                  "unit": "工作时", "deadline": "2026-12-09T12:00:00+00:00", "light": "green",
                  "url": f"http://127.0.0.1:8080/console/cases/2026120900{case:05d}",
                  "at": "2026-12-09T10:00:00+00:00"}  # fmt: skip
        key = f"notice:{case}:{seq}:dept_webhook:SZ"
        out.append({"dedup_key": key, "channel": "dept_webhook", "recipient": "SZ", "kind": "notice",
                    "case_id": case, "payload": {"event": event, "notice": notice}})  # fmt: skip
    return out


# --- the naive loop (its own process) ---------------------------------------------------------------------------


def naive_main() -> None:
    """One row per poll: the oldest due row, sent, marked sent; a pause when none is due. Runs until killed."""
    from core.config import load_settings

    settings = load_settings()
    engine = db.make_engine(settings.database_url)

    async def loop() -> None:
        senders = Senders(settings)
        while True:
            with storage.transaction(engine) as conn:
                row = conn.execute(
                    select(OUTBOX).where(OUTBOX.c.channel.in_(CHANNELS), OUTBOX.c.status == "pending")
                    .order_by(OUTBOX.c.id).limit(1)
                ).first()  # fmt: skip
            if row is None:
                await asyncio.sleep(IDLE_S)
                continue
            target = targets(engine, settings, [row])[row.id]
            try:
                await senders[row.channel](target, row.payload)
                values = {"status": "sent", "sent_at": storage.now_utc()}
            except Exception as exc:
                values = {"attempts": row.attempts + 1, "error": str(exc)[:200],
                          "next_at": storage.now_utc() + timedelta(seconds=60)}  # fmt: skip
            with storage.transaction(engine) as conn:
                conn.execute(update(OUTBOX).where(OUTBOX.c.id == row.id).values(**values))

    asyncio.run(loop())


# --- measuring ------------------------------------------------------------------------------------------------


def _start(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    if kind == "naive":
        command = [sys.executable, "-c", "from bench.notices import naive_main; naive_main()"]
    else:
        command = [str(Path(sys.executable).with_name("gridline")), "notify", "run", "--interval", str(IDLE_S)]
    with log.open("a") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parent.parent)  # fmt: skip


def _wait(receiver: Receiver, count: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(receiver.arrived) >= count:
            return True
        time.sleep(0.01)
    return False


def _measure(engine, receiver: Receiver, env: dict[str, str], kind: str, processes: int, log: Path) -> dict:
    with storage.transaction(engine) as conn:  # the history stays
        conn.execute(delete(OUTBOX).where(OUTBOX.c.dedup_key.notlike("old:%")))
    receiver.reset()
    procs = [_start(kind, env, log) for _ in range(processes)]
    try:
        # warm-up: each process has imported, connected and delivered before the clock starts
        storage.enqueue(engine, [{**r, "dedup_key": "warm:" + r["dedup_key"], "case_id": 10**7 + i}
                                 for i, r in enumerate(_rows(0, 20))])  # fmt: skip
        assert _wait(receiver, 20, 120), log.read_text()[-2000:]
        time.sleep(1.0)
        # the backlog: all due at once
        receiver.reset()
        rows = _rows(0, BACKLOG)
        start = time.time()
        storage.enqueue(engine, rows)
        done = _wait(receiver, BACKLOG, 600)
        took = max(receiver.arrived.values()) - start
        backlog_rate = (len(receiver.arrived) / took) if done else float("nan")
        # the steady stream
        receiver.reset()
        per_tick = int(RATE * TICK_S)
        created: dict[str, float] = {}
        first = BACKLOG
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < STEADY_S:
            batch = _rows(first + n, per_tick)
            at = time.time()
            storage.enqueue(engine, batch)
            for r in batch:
                created[webhook_id(r["dedup_key"])] = at
            n += per_tick
            time.sleep(max(0.0, t0 + (n / RATE) - time.monotonic()))
        finished = _wait(receiver, n, 120)
        with storage.transaction(engine) as conn:  # created_at as stored (the case event's time) for every row
            stored = {webhook_id(k): c.timestamp() for k, c in conn.execute(
                select(OUTBOX.c.dedup_key, OUTBOX.c.created_at).where(OUTBOX.c.case_id < HISTORY_CASE))}  # fmt: skip
        lat = sorted((receiver.arrived[i] - stored[i]) * 1000 for i in created if i in receiver.arrived)
        span = max(receiver.arrived.values()) - min(stored[i] for i in created)
        twice = receiver.count - len(receiver.arrived)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    return {
        "backlog_rate": backlog_rate,
        "steady_rate": len(lat) / span,
        "p50": lat[len(lat) // 2],
        "p99": lat[int(len(lat) * 0.99)],
        "max": lat[-1],
        "lost": 0 if finished else n - len(lat),
        "twice": twice,
        "offered": n,
    }


def run(machine: str) -> str:
    url = scratch_postgres("gridline_bench_notices")
    if url is None:
        return "### Department notices\n\nNo PostgreSQL server reachable (GRIDLINE_BENCH_PG): not measured.\n"
    engine = db.make_engine(url)
    db.upgrade(engine)
    receiver = Receiver()
    with Session(engine) as session:
        session.add(Department(code="SZ", name="市政公用", webhook_url=f"http://127.0.0.1:{receiver.port}/hook",
                               webhook_secret=SECRET))  # fmt: skip
        session.commit()
    old = [{**r, "dedup_key": "old:" + r["dedup_key"], "case_id": r["case_id"] + HISTORY_CASE, "status": "sent"}
           for r in _rows(0, HISTORY)]  # fmt: skip
    for i in range(0, HISTORY, 2000):
        storage.enqueue(engine, old[i : i + 2000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE outbox"))  # what autovacuum does on a live table
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": f"{tmp}/var",
               "GRIDLINE_LOG_LEVEL": "WARNING"}  # fmt: skip
        log = Path(tmp) / "workers.log"
        for name, kind, processes in (("naive", "naive", 1), ("one", "batch", 1), ("two", "batch", 2)):
            results[name] = _measure(engine, receiver, env, kind, processes, log)
            print(name, results[name], file=sys.stderr, flush=True)
    receiver.stop()
    engine.dispose()
    return _section(machine, results, receiver.bad)


def _section(machine: str, r: dict[str, dict], bad: int) -> str:
    names = {
        "naive": "naive loop (one row per poll: select, send, update), 1 process",
        "one": "`gridline notify run`, 1 process",
        "two": "`gridline notify run`, 2 processes",
    }
    lines = "\n".join(
        f"| {names[k]} | {m['backlog_rate']:,.0f} | {m['steady_rate']:,.0f} | {m['p50']:,.0f} / {m['p99']:,.0f} / "
        f"{m['max']:,.0f} | {m['lost']} | {m['twice']} |"
        for k, m in r.items()
    )
    one, two, naive = r["one"], r["two"], r["naive"]
    met = min(one["backlog_rate"], two["backlog_rate"]) >= 200 and max(one["p99"], two["p99"]) <= 1000
    goal = "met" if met else "NOT met"
    return f"""### Department notices: delivered per second, and case event → delivered

{machine}. `python -m bench notices` — PostgreSQL 15 (localhost TCP), a local webhook receiver (aiohttp, in the
benchmark's process) that verifies every Standard Webhooks signature and notes each `webhook-id`'s first arrival.
The outbox holds {HISTORY:,} notices sent before (its statistics analysed, as autovacuum keeps a live table's).
Each variant gets the same rows in the same database after a warm-up: a backlog of {BACKLOG:,} notices (two per case,
all due at once; notices per second until the last arrives), then a steady stream of {RATE} notices per second for
{STEADY_S:.0f} s written as case events write them ({int(RATE * TICK_S)} every {TICK_S * 1000:.0f} ms), timed from
each row's `created_at` to its arrival. Every loop pauses {IDLE_S} s only when it found nothing due. The worker
claims up to 100 rows per statement (`FOR UPDATE SKIP LOCKED`), has up to 32 in flight and settles a batch in one
transaction.

| loop | backlog notices/s | steady notices/s | created → delivered p50 / p99 / max ms | lost | delivered twice |
|---|---:|---:|---:|---:|---:|
{lines}

Ratios: backlog — 1 worker process {one["backlog_rate"] / naive["backlog_rate"]:.1f}× the naive loop, 2 processes
{two["backlog_rate"] / one["backlog_rate"]:.2f}× one; steady p99 — naive {naive["p99"] / max(one["p99"], 1):.1f}× the
1-process worker's. Goal (≥ 200 notices/s, p99 ≤ 1 s, by the worker): {goal}. Signatures refused: {bad}.
"""
