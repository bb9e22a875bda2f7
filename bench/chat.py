"""200 citizens chatting with the WeChat front door at once: a real ``gridline serve`` on the demo city, the benchmark
playing the WeChat server (wechatpy's signer), every user reporting one problem in four or five messages, and one
message in ten delivered twice at the same moment (WeChat's retry). Measures the reply latency of every delivery and
checks that each user ends with exactly one report and a receipt number.

SQLite and, when ``GRIDLINE_BENCH_PG`` (default: the local server) can be reached, PostgreSQL side by side."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import xmltodict
from sqlmodel import Session, select
from wechatpy.utils import WeChatSigner

from bench.harness import free_port, scratch_postgres, serving
from core import db
from core.crs import from_wgs84
from core.models import Report

USERS = 200
TOKEN = "bench-token"
DOOR_88_GCJ = from_wgs84(120.5981418, 29.9999542, "gcj02")
PROBLEMS = ("门口一大堆垃圾没人清", "下水道井盖破了", "有人占道摆摊卖水果", "路灯晚上不亮")
PLACES = ("人民路88号", "人民路和解放路交叉口", "阳光小区东门", "建设路120号", "中山路45号")
DUPLICATE_EVERY = 10
THINK = (2.0, 6.0)  # seconds a citizen takes to read an answer and send the next message
START_WITHIN = 5.0  # the first messages arrive within this many seconds


def _query() -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), f"{random.getrandbits(40):x}"
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce)
    return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}


def _xml(user: str, msg_id: int, kind: str, **fields: str) -> bytes:
    body = {"ToUserName": "gh_bench", "FromUserName": user, "CreateTime": str(int(time.time())), "MsgType": kind,
            **fields, "MsgId": str(msg_id)}  # fmt: skip
    return xmltodict.unparse({"xml": body}, full_document=False).encode()


def _script(i: int) -> list[tuple[str, dict[str, str]]]:
    """What user i says: a problem with its place in words, or the problem and then a shared location."""
    problem = PROBLEMS[i % len(PROBLEMS)]
    if i % 2:
        lon, lat = DOOR_88_GCJ
        steps = [("text", {"Content": problem}), ("location", {"Location_X": f"{lat:.7f}",
                 "Location_Y": f"{lon:.7f}", "Scale": "16", "Label": "人民路88号"})]  # fmt: skip
    else:
        steps = [("text", {"Content": PLACES[i % len(PLACES)] + problem})]
    return [*steps, ("text", {"Content": "跳过"}), ("text", {"Content": "确认"}), ("text", {"Content": "我的反映"})]


async def _user(session: aiohttp.ClientSession, base: str, i: int, latencies: list[float], first_id: int) -> str | None:
    """One citizen's conversation; returns the receipt number it was given."""
    user = f"bench-openid-{i:04d}-{random.getrandbits(32):08x}"
    number = None
    await asyncio.sleep(random.random() * START_WITHIN)
    for step, (kind, fields) in enumerate(_script(i)):
        body = _xml(user, first_id + i * 100 + step, kind, **fields)
        copies = 2 if (i * 7 + step) % DUPLICATE_EVERY == 0 else 1

        async def deliver(body: bytes = body) -> str:
            start = time.perf_counter()
            async with session.post(f"{base}/wechat", params=_query(), data=body) as resp:
                answer = await resp.text()
            latencies.append(time.perf_counter() - start)
            assert resp.status == 200, answer
            return answer

        answers = await asyncio.gather(*(deliver() for _ in range(copies)))
        for answer in answers:
            if "编号 " in answer and "已登记" in answer:
                number = answer.split("编号 ")[1][:12]
        await asyncio.sleep(THINK[0] + random.random() * (THINK[1] - THINK[0]))  # reading the answer, typing
    return number


async def _chat(base: str) -> tuple[list[float], list[str | None], float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = time.perf_counter()
        first_id = random.getrandbits(48) * 1000  # MsgIds of this round, unlike any before
        numbers = await asyncio.gather(*(_user(session, base, i, latencies, first_id) for i in range(USERS)))
        took = time.perf_counter() - start
    return latencies, numbers, took


def _measure(url: str, folder: Path) -> dict[str, float]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GRIDLINE_DATABASE_URL": url, "GRIDLINE_DATA_DIR": str(folder),
           "GRIDLINE_LOG_LEVEL": "WARNING", "GRIDLINE_WECHAT_TOKEN": TOKEN,
           "GRIDLINE_HTTP_PORT": str(free_port())}  # fmt: skip
    subprocess.run([str(Path(sys.executable).with_name("gridline")), "init", "--demo"], env=env, check=True)
    with serving(env, folder / "serve.log") as base:
        asyncio.run(_chat(base))  # warm-up round: the classifier and indexes load on first use
        latencies, numbers, took = asyncio.run(_chat(base))
    engine = db.make_engine(url)
    with Session(engine) as s:
        senders = [r for r in s.exec(select(Report.sender).where(Report.channel == "wechat")).all()]
    engine.dispose()
    per_user: dict[str, int] = {}
    for sender in senders:
        per_user[sender] = per_user.get(sender, 0) + 1
    given = [n for n in numbers if n]
    return {
        "deliveries": len(latencies),
        "p50": statistics.median(latencies) * 1000,
        "p99": statistics.quantiles(latencies, n=100)[98] * 1000,
        "max": max(latencies) * 1000,
        "took": took,
        "reports": len(senders),
        "doubled": sum(1 for c in per_user.values() if c > 1),
        "receipts": len(given),
        "unique": len(set(given)),
    }


def run(machine: str) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite (WAL, file)", _measure(f"sqlite:///{tmp}/chat.db", Path(tmp) / "sqlite")))
        pg = scratch_postgres("gridline_bench_chat")
        if pg:
            rows.append(("PostgreSQL 15 (localhost TCP)", _measure(pg, Path(tmp) / "pg")))
    table = "\n".join(
        f"| {name} | {m['deliveries']:,} | {m['p50']:.0f} / {m['p99']:.0f} / {m['max']:.0f} | {m['took']:.1f} | "
        f"{m['reports']:,} | {m['doubled']} | {m['receipts']} ({m['unique']} distinct) |"
        for name, m in rows
    )
    return f"""### Chat: {USERS} citizens at once through `/wechat`

{machine}. `python -m bench chat` — a real `gridline serve` (one process) on the demo city; the benchmark plays the
WeChat server with wechatpy's signer, from the same machine. {USERS} users send their first message within
{START_WITHIN:.0f} s and each reports one problem in five messages (a problem with its address, or a problem and
then a shared GCJ-02 location; 跳过 the photo; 确认; 我的反映), taking {THINK[0]:.0f}–{THINK[1]:.0f} s to read each
answer and send the next, so all {USERS} conversations run at the same time. One message in {DUPLICATE_EVERY} is
delivered twice at the same moment, as WeChat retries. Two rounds with fresh users and MsgIds; the second, on a warm
server, is measured (so twice as many reports are stored as one round makes).

| database | deliveries | reply p50 / p99 / max ms | round s | reports stored | users with 2+ | receipts |
|---|---:|---:|---:|---:|---:|---:|
{table}

Targets: reply p99 ≤ 500 ms; exactly one report and one receipt per user per round (no lost or doubled report).
"""
