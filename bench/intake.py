"""Reports through the whole intake pipeline (store → classify → locate → duplicates → file) and case actions, on
SQLite and on PostgreSQL side by side, with p50/p99 latency; single process, sequential calls.

PostgreSQL is used when ``GRIDLINE_BENCH_PG`` names a server's maintenance database (default: the local one);
the benchmark creates and drops its own database there."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from admin.cli import main as gridline
from admin.runtime import Runtime
from core import db, users
from core.cases import Actor
from core.config import load_settings
from core.intake import Incoming

REPORTS = 600
ADDRESSES = ("人民路88号", "解放路和人民路交叉口", "阳光小区东门", "市一医院对面", "建设路120号", "中山路45号")
TEXTS = (
    "门口一大堆垃圾没人清",
    "井盖没了很危险",
    "有人占道摆摊卖水果",
    "路灯晚上不亮",
    "小广告贴满了电线杆",
    "汽车乱停堵住了路口",
)


def _pg_url() -> str | None:
    admin_url = os.environ.get("GRIDLINE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        engine = create_engine(db.normalise_url(admin_url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS gridline_bench WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE gridline_bench"))
        engine.dispose()
    except Exception:
        return None
    return db.normalise_url(admin_url).rsplit("/", 1)[0] + "/gridline_bench"


def _measure(url: str, folder: Path) -> dict[str, float]:
    env = {"GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": str(folder)}
    os.environ.update(env)
    assert gridline(["init", "--demo"]) == 0
    runtime = Runtime(load_settings(environ=env))
    users.add_user(runtime.engine, "op", "operator")
    actor = Actor.of(next(iter(_users(runtime))))
    intake = runtime.intake
    intake.submit(Incoming("operator", "warm", datetime.now(UTC), text="垃圾", address="人民路88号"))
    latencies, numbers = [], []
    start = time.perf_counter()
    for i in range(REPORTS):
        t = time.perf_counter()
        report, _ = intake.submit(
            Incoming(
                "operator",
                f"r{i}",
                datetime.now(UTC),
                text=TEXTS[i % len(TEXTS)],
                address=ADDRESSES[i % len(ADDRESSES)],
            )
        )
        latencies.append(time.perf_counter() - t)
        numbers.append(report.case_id)
    report_rate = REPORTS / (time.perf_counter() - start)
    act_lat = []
    loop = runtime.loop
    from sqlmodel import Session

    from core.models import CaseFile

    with Session(runtime.engine) as s:
        cases = [c.number for c in s.exec(CaseFile.__table__.select()).all()][: REPORTS // 2]
    start = time.perf_counter()
    for number in cases:
        t = time.perf_counter()
        loop.act(number, "reject", actor, {"reason": "基准测试"})
        act_lat.append(time.perf_counter() - t)
    action_rate = len(cases) / (time.perf_counter() - start)
    runtime.close()
    q = statistics.quantiles
    return {
        "reports/s": report_rate,
        "report p50": q(latencies, n=100)[49] * 1000,
        "report p99": q(latencies, n=100)[98] * 1000,
        "actions/s": action_rate,
        "action p50": q(act_lat, n=100)[49] * 1000,
        "action p99": q(act_lat, n=100)[98] * 1000,
    }


def _users(runtime: Runtime):
    from sqlmodel import Session, select

    from core.models import AppUser

    with Session(runtime.engine) as s:
        return s.exec(select(AppUser)).all()


def run(machine: str) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite (WAL, file)", _measure(f"sqlite:///{tmp}/bench.db", Path(tmp) / "sqlite")))
        pg = _pg_url()
        if pg:
            rows.append(("PostgreSQL 15 (local socket over TCP)", _measure(pg, Path(tmp) / "pg")))
    table = "\n".join(
        f"| {name} | {m['reports/s']:,.0f} | {m['report p50']:.1f} / {m['report p99']:.1f} | {m['actions/s']:,.0f} | "
        f"{m['action p50']:.1f} / {m['action p99']:.1f} |"
        for name, m in rows
    )
    return f"""### Intake pipeline and case actions, SQLite beside PostgreSQL

{machine}. `python -m bench intake` — {REPORTS} reports, each stored, classified, located in the demo city, checked
for duplicates and filed as a case (one after another, one process); then half of them acted on (不予受理).

| database | reports/s | report p50 / p99 ms | actions/s | action p50 / p99 ms |
|---|---:|---:|---:|---:|
{table}

Targets: ≥ 300 reports/s, p99 ≤ 100 ms.
"""
