"""Reports through the whole intake pipeline (store → classify → locate → duplicates → file) and case actions, on
SQLite and on PostgreSQL side by side, with p50/p99 latency: one at a time, and from 8 threads at once.

PostgreSQL is used when ``GRIDLINE_BENCH_PG`` names a server's maintenance database (default: the local one);
the benchmark creates and drops its own database there."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from admin.cli import main as gridline
from admin.runtime import Runtime
from bench.harness import scratch_postgres
from core import users
from core.cases import Actor
from core.config import load_settings
from core.intake import Incoming
from core.models import CaseFile

REPORTS = 600
WORKERS = 16
ADDRESSES = ("人民路88号", "解放路和人民路交叉口", "阳光小区东门", "市一医院对面", "建设路120号", "中山路45号")
TEXTS = (
    "门口一大堆垃圾没人清",
    "井盖没了很危险",
    "有人占道摆摊卖水果",
    "路灯晚上不亮",
    "小广告贴满了电线杆",
    "汽车乱停堵住了路口",
)


def _report(i: int, prefix: str) -> Incoming:
    return Incoming(
        "operator", f"{prefix}{i}", datetime.now(UTC), text=TEXTS[i % len(TEXTS)], address=ADDRESSES[i % len(ADDRESSES)]
    )


def _ms(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] * 1000


def _measure(url: str, folder: Path) -> dict[str, float]:
    env = {"GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": str(folder)}
    os.environ.update(env)
    assert gridline(["init", "--demo"]) == 0
    runtime = Runtime(load_settings(environ=env))
    actor = Actor.of(users.add_user(runtime.engine, "op", "operator"))
    intake = runtime.intake
    runtime.warm()  # as `gridline serve` does before its first request
    intake.submit(_report(0, "warm"))

    def timed(report: Incoming) -> float:
        t = time.perf_counter()
        intake.submit(report)
        return time.perf_counter() - t

    start = time.perf_counter()
    latencies = [timed(_report(i, "r")) for i in range(REPORTS)]
    sequential = REPORTS / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        loaded = list(pool.map(lambda i: timed(_report(i, "p")), range(REPORTS * 2)))
    parallel = REPORTS * 2 / (time.perf_counter() - start)
    with Session(runtime.engine) as s:
        numbers = list(s.exec(select(CaseFile.number).limit(REPORTS // 2)).all())
    acting = []
    start = time.perf_counter()
    for number in numbers:
        t = time.perf_counter()
        runtime.loop.act(number, "reject", actor, {"reason": "基准测试"})
        acting.append(time.perf_counter() - t)
    actions = len(numbers) / (time.perf_counter() - start)
    runtime.close()
    return {
        "seq": sequential,
        "par": parallel,
        "r50": _ms(latencies, 50),
        "r99": _ms(latencies, 99),
        "p50": _ms(loaded, 50),
        "p99": _ms(loaded, 99),
        "act": actions,
        "a50": _ms(acting, 50),
        "a99": _ms(acting, 99),
    }


def run(machine: str) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite (WAL, file)", _measure(f"sqlite:///{tmp}/bench.db", Path(tmp) / "sqlite")))
        pg = scratch_postgres("gridline_bench")
        if pg:
            rows.append(("PostgreSQL 15 (localhost TCP)", _measure(pg, Path(tmp) / "pg")))
    table = "\n".join(
        f"| {name} | {m['seq']:,.0f} | {m['r50']:.1f} / {m['r99']:.1f} | {m['par']:,.0f} | "
        f"{m['p50']:.0f} / {m['p99']:.0f} "
        f"| {m['act']:,.0f} | "
        f"{m['a50']:.1f} / {m['a99']:.1f} |"
        for name, m in rows
    )
    return f"""### Intake pipeline and case actions, SQLite beside PostgreSQL

{machine}. `python -m bench intake` — {REPORTS} reports, each stored, classified, located in the demo city,
checked for duplicates and filed as a case: one after another, then {REPORTS * 2} more from {WORKERS} threads at once
(reports arriving together are stored together and filed together: `core/groupcommit.py`); then {REPORTS // 2}
cases acted on (不予受理) one after another. One process; latency is per report, from submit to filed case.

| database | reports/s, 1 client | p50 / p99 ms | reports/s, {WORKERS} clients | p50 / p99 ms | actions/s | p50/p99 ms |
|---|---:|---:|---:|---:|---:|---:|
{table}

Targets: ≥ 300 reports/s, p99 ≤ 100 ms.
"""
