"""监督指挥 on a city's worth of history: 100,000 cases on PostgreSQL (the console benchmark's seeding: most of them
已结案 over the past year, the open ones in every light, with their events and reports; the 监督员's 核查 of the last
day carry the phone's GPS position), and the wall's data timed three ways in one run: ``core.wall.figures`` (the
aggregates the page uses) in this process, the same through a real ``gridline serve`` as ``GET /console/wall.json``
for a logged-in 领导, and ``core.wall.scan`` (every case, event and report loaded and counted in Python). The two
functions must give the same figures.

PostgreSQL only (``GRIDLINE_BENCH_PG``, default the local server, database ``gridline_bench_wall``): the target is
PostgreSQL's; without a server the section says so."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from alembic import command
from sqlalchemy import bindparam, event, select, text, update
from sqlalchemy.engine import Engine

from admin.runtime import Runtime
from bench import console
from bench.harness import demo_city, scratch_postgres, serving
from bench.timing import percentiles
from core import db, users, wall
from core.config import load_settings
from core.models import AppUser, CaseEvent, CaseFile

CASES = 100_000
CALLS = 40  # figures per pass, in process and over HTTP
SCANS = 3  # scans: each reads the whole history
TARGET_MS = 300  # p99 of the wall's data
PASSWORD = "bench-wall-2026"
APPENDED = (("case_event", "ix_case_event_at"), ("report", "ix_report_received_at"))  # append-only, in time order


def place_collectors(engine: Engine, now: datetime) -> int:
    """The seeding's 监督员 submissions of the last ``COLLECTOR_HOURS`` as a phone sends them: by the 监督员 of the
    case's street (``col-<street>``), with a GPS position a few metres from the case. Returns how many."""
    e, c, u = CaseEvent.__table__.c, CaseFile.__table__.c, AppUser.__table__.c
    rng = random.Random(16)
    with engine.begin() as conn:
        collectors = dict(conn.execute(select(u.name, u.id).where(u.role == "collector")).all())
        rows = conn.execute(
            select(e.id, e.data, c.grid_code, c.lon, c.lat)
            .join(CaseFile.__table__, c.id == e.case_id)
            .where(e.role == "collector", e.at >= now - timedelta(hours=wall.COLLECTOR_HOURS), c.lon.is_not(None))
        ).all()
        changes = []
        for row in rows:
            name = f"col-{row.grid_code[:9]}"
            position = {
                "lon": row.lon + rng.uniform(-2e-4, 2e-4),
                "lat": row.lat + rng.uniform(-2e-4, 2e-4),
                "accuracy_m": round(rng.uniform(4, 25), 1),
            }
            changes.append(
                {"eid": row.id, "uid": collectors[name], "who": name, "d": {**row.data, "position": position}}
            )
        if changes:
            stmt = update(CaseEvent.__table__).where(e.id == bindparam("eid"))
            conn.execute(stmt.values(user_id=bindparam("uid"), actor=bindparam("who"), data=bindparam("d")), changes)
    return len(changes)


def rounded(value: Any) -> Any:
    """Floats to 6 decimals, all the way down: percentile_cont and numpy differ in the last bits."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def timed(func: Callable[[], Any], calls: int) -> tuple[float, float]:
    func()  # the server's and the database's caches, as a wall that has been on for a while
    return percentiles(lambda _: func(), range(calls), repeats=2)


def plans(engine: Engine, runtime: Runtime) -> list[tuple[str, float]]:
    """Each statement of ``figures`` with its time (ms, one run after a warm one), to see where the time goes."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        wall.figures(runtime.loop)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    out = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                conn.exec_driver_sql(statement, parameters)  # SET LOCAL jit = off, as figures runs them
                continue
            conn.exec_driver_sql(statement, parameters).all()
            start = time.perf_counter()
            conn.exec_driver_sql(statement, parameters).all()
            out.append((" ".join(statement.split())[:90], (time.perf_counter() - start) * 1000))
    return out


def measure(url: str, folder: Path) -> dict[str, Any]:
    env = demo_city(url, folder)
    runtime = Runtime(load_settings(environ=env))
    engine = runtime.engine
    users.add_user(engine, "bench-boss", "leader", password=PASSWORD)
    now = datetime.now(UTC)
    with mock.patch.object(console, "CASES", CASES):  # the console benchmark's city, five times the cases
        seeded = console.seed(engine, runtime.calendar, now)
    seeded["positions"] = place_collectors(engine, now)
    start = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table, index in APPENDED:  # in the order a live centre writes them, not the seeding's shuffled one
            conn.execute(text(f"CLUSTER {table} USING {index}"))
        conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does within a minute of a load this size
    seeded["ordered_s"] = time.perf_counter() - start
    loop = runtime.loop
    figures, scanned = wall.figures(loop), wall.scan(loop)
    figures.pop("now"), scanned.pop("now")
    assert rounded(figures) == rounded(scanned), "the aggregates and the scan disagree"
    out: dict[str, Any] = {"seeded": seeded, "figures": figures}
    out["aggregates"] = timed(lambda: wall.figures(loop), CALLS)
    command.downgrade(db.alembic_config(engine), "0006")  # migration 0007 undone: its index dropped
    out["without"] = timed(lambda: wall.figures(loop), CALLS)
    db.upgrade(engine)  # and made again
    with serving(env, folder / "serve.log") as base:
        browser = console.Browser(base)
        browser.login("bench-boss", PASSWORD, "/console/wall")

        def fetch() -> None:
            status, body = browser.get("/console/wall.json")
            assert status == 200, body[:300]

        out["http"] = timed(fetch, CALLS)
        browser.close()
    start = time.perf_counter()
    out["scan"] = percentiles(lambda _: wall.scan(loop), range(SCANS), repeats=1)
    out["scan_total_s"] = time.perf_counter() - start
    out["statements"] = plans(engine, runtime)
    runtime.close()
    return out


LABELS = {
    "aggregates": "`core.wall.figures`: the aggregates, in process",
    "without": "the same without migration 0007's partial index of the late 处置完成",
    "http": "`GET /console/wall.json` as a logged-in 领导 (a real `gridline serve`, loopback)",
    "scan": "`core.wall.scan`: every case, event and report loaded and counted in Python",
}


def run(machine: str) -> str:
    url = scratch_postgres("gridline_bench_wall")
    if url is None:
        return "### 监督指挥 wall on 100,000 cases\n\nNo PostgreSQL server could be reached: not measured.\n"
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(url, Path(tmp) / "pg")
    seeded, figures = m["seeded"], m["figures"]
    best = m["aggregates"]
    rows = "\n".join(
        f"| {LABELS[way]} | {m[way][0]:,.1f} / {m[way][1]:,.1f} | {m[way][1] / best[1]:,.1f} |" for way in LABELS
    )
    statements = "\n".join(f"| `{sql}` | {ms:.1f} |" for sql, ms in m["statements"])
    states = "、".join(f"{s} {n:,}" for s, n in sorted(seeded["states"].items(), key=lambda kv: -kv[1]))
    lights = ", ".join(f"{k} {figures['lights'][k]:,}" for k in ("green", "yellow", "red"))
    verdict = "within" if best[1] <= TARGET_MS and m["http"][1] <= TARGET_MS else "OVER"
    return f"""### 监督指挥 wall on 100,000 cases: aggregates beside a scan

{machine}. `python -m bench wall` — PostgreSQL 15 (localhost TCP), the demo city with {CASES:,} cases seeded as the
console benchmark seeds them ({states}), {seeded["events"]:,} case events and one report per case, inserted in
{seeded["seconds"]:.0f} s; the open cases' lights: {lights}; {seeded["positions"]} 监督员 submissions of the last
{wall.COLLECTOR_HOURS} hours carry a GPS position ({len(figures["collectors"])} 监督员 on the map). The seeding
inserts in a shuffled order; a centre appends its events and reports as they happen, so those two tables are put
in time order (`CLUSTER` by their time index) and vacuumed and analysed as autovacuum would
({seeded["ordered_s"]:.0f} s). Of the wall's figures, the last {wall.DAYS} days hold
{sum(sum(s["counts"]) for s in figures["by_channel"]):,} reports; the stage times, over {wall.STAGE_DAYS} days,
{sum(s["count"] for s in figures["stages"]):,} ended stays in a state.

Before timing, the aggregates and the scan must give the same figures (floats to 6 decimals): they did. The
aggregates and the HTTP route: {CALLS} calls after a warm one, best p50 and best p99 of 2 passes
(`bench.timing.percentiles`); the scan: {SCANS} calls, one pass ({m["scan_total_s"]:.0f} s in all). "Without" is
the same database after migration 0007's downgrade (its partial index of the late 处置完成 dropped), made again
after it by the upgrade.

| the wall's data | p50 / p99 ms | p99 ÷ aggregates |
|---|---:|---:|
{rows}

Target: the wall's data p99 ≤ {TARGET_MS} ms on PostgreSQL; this run: {verdict} the target. Each statement of
`figures` alone, as it runs them (`SET LOCAL jit = off` first: PostgreSQL's JIT compiled the stage-time statement
for 0.7 s to save nothing), one run after a warm one, in ms:

| statement | ms |
|---|---:|
{statements}
"""
