"""The 监督中心 console on a city's worth of cases: 20,000 in the database (most 已结案, a few hundred 待受理, the open
ones in every light, with their events and reports), a real ``gridline serve``, and one logged-in 受理员 requesting
the 受理 queue, the map's case layer and case pages, and confirming cases from the queue. Then, on the same database
and server, the indexes the console's migrations added are dropped and the same requests are timed again, so the two
stand side by side in one run.

SQLite and, when ``GRIDLINE_BENCH_PG`` (default: the local server) can be reached, PostgreSQL. The time is the
round trip on loopback of one client, one request at a time: an upper bound of the server's time."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import bindparam, delete, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from admin.console.casemap import CaseFilter, CaseLayer
from admin.console.queue import ARRIVED, OLDEST, SHOWN
from admin.runtime import Runtime
from bench.harness import demo_city, scratch_postgres, serving
from bench.timing import percentiles
from core import db, users
from core.cases import ACTIONS, LOCAL, STAGE, TERMINAL, Actor, CaseLoop, Collectors
from core.config import load_settings
from core.models import (
    CaseCounter,
    CaseEvent,
    CaseFile,
    Department,
    FilingCondition,
    GridCell,
    Place,
    Region,
    Report,
    TaxonomyItem,
    row_defaults,
)
from core.worktime import WorkCalendar

CASES = 20_000
OPEN = {
    "待受理": 600,
    "待核实": 80,
    "待立案": 200,
    "待派遣": 200,
    "处置中": 1_200,
    "挂账": 40,
    "待核查": 150,
    "待结案": 80,
}
ENDED = {"不予受理": 600, "已作废": 300, "已合并": 300}  # and the rest 已结案
REQUESTS = 150  # per page and pass
ROUNDS = 2  # passes of each variant, alternating; the best p50 and p99 of the passes (as bench.timing.percentiles)
WARM = 10  # requests before each pass, not timed
ACCEPTS = 150  # 待受理 cases confirmed per pass, put back as they were after it
MAP_CALLS = 20  # the map layer's variants in process, per pass
TARGETS = {"queue": 150, "map": 150, "case": 150, "accept": 100}  # p99 ms
PASSWORD = "bench-console-2026"
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# the actions that brought a case to its state, after its report (seq 1)
PATHS = {
    "待受理": (),
    "待核实": ("send_verify",),
    "待立案": ("accept",),
    "待派遣": ("accept", "file"),
    "处置中": ("accept", "file", "dispatch"),
    "挂账": ("accept", "file", "dispatch", "sign", "request_suspend", "approve"),
    "待核查": ("accept", "file", "dispatch", "sign", "complete"),
    "待结案": ("accept", "file", "dispatch", "sign", "complete", "check"),
    "已结案": ("accept", "file", "dispatch", "sign", "complete", "check", "close"),
    "不予受理": ("reject",),
    "已作废": ("accept", "void"),
    "已合并": ("merge",),
}
AFTER = {
    "send_verify": "待核实",
    "accept": "待立案",
    "file": "待派遣",
    "dispatch": "处置中",
    "sign": "处置中",
    "request_suspend": "处置中",
    "approve": "挂账",
    "complete": "待核查",
    "check": "待结案",
    "close": "已结案",
    "reject": "不予受理",
    "void": "已作废",
    "merge": "已合并",
}
ENDED_STAGE = {"已结案": "结案", "不予受理": "受理", "已合并": "受理", "已作废": "立案"}
PEOPLE = {"operator": "受理员王敏", "collector": "监督员李强", "shift_lead": "值班长陈静", "dispatcher": "派遣员赵磊"}
CHANNELS = (("wechat", 40), ("hotline", 25), ("collector", 15), ("webchat", 10), ("telegram", 5), ("operator", 5))
PROBLEMS = (
    "门口一大堆垃圾没人清",
    "井盖破了很危险",
    "有人占道摆摊",
    "路灯晚上不亮",
    "电线杆上贴满小广告",
    "汽车乱停堵住了路口",
    "绿化带里的树倒了",
    "人行道砖松动",
    "下水道堵了污水漫出来",
    "工地晚上施工噪音很大",
)
LIGHTS = (("green", 0.6, (0.1, 0.75)), ("yellow", 0.25, (0.82, 0.97)), ("red", 0.15, (1.2, 4.0)))  # share, used


# ------------------------------------------------------------------------------------------------------- seeding
@dataclass
class City:
    """What the seeding draws from: the demo city's door plates and places, its code table and departments."""

    places: list[tuple[str, float, float, dict[str, Any]]]  # address, lon, lat, the grid cell as intake stores it
    matters: list[tuple[str, str]]
    conditions: dict[str, tuple[int, str, dict[str, float], str]]  # matter → level 1: severity, limits, unit
    departments: list[str]
    collectors: Collectors

    @classmethod
    def load(cls, engine: Engine) -> City:
        with engine.connect() as conn:
            names = dict(conn.execute(select(Region.code, Region.name)).all())
            cells = {
                code: {
                    "code": code,
                    "name": name,
                    "area_class": area,
                    "street": names.get(street, ""),
                    "community": names.get(community, ""),
                }
                for code, name, area, street, community in conn.execute(
                    select(
                        GridCell.code, GridCell.name, GridCell.area_class, GridCell.street_code, GridCell.community_code
                    )
                )
            }
            places = [
                (address or name, lon, lat, cells[grid])
                for name, address, lon, lat, grid in conn.execute(
                    select(Place.name, Place.address, Place.lon, Place.lat, Place.grid_code).where(
                        Place.kind.in_(["门牌", "兴趣点", "路口"]), Place.grid_code.is_not(None)
                    )
                )
            ]
            matters = list(
                conn.execute(select(TaxonomyItem.code, TaxonomyItem.name).where(TaxonomyItem.kind == "matter"))
            )
            conditions = {
                code: (level, severity, {"A": a, "B": b, "C": c}, unit)
                for code, level, severity, a, b, c, unit in conn.execute(
                    select(
                        FilingCondition.matter_code,
                        FilingCondition.level,
                        FilingCondition.severity,
                        FilingCondition.limit_a,
                        FilingCondition.limit_b,
                        FilingCondition.limit_c,
                        FilingCondition.unit,
                    ).where(FilingCondition.level == 1)
                )
            }
            departments = list(conn.execute(select(Department.code)).scalars())
            collectors = Collectors.load(conn)
        matters = [m for m in matters if m[0] in conditions]
        return cls(places, matters, conditions, departments, collectors)


def _states(rng: random.Random) -> list[str]:
    states = [s for s, n in (*OPEN.items(), *ENDED.items()) for _ in range(n)]
    states += ["已结案"] * (CASES - len(states))
    rng.shuffle(states)
    return states


def _share(rng: random.Random) -> float:
    """How much of its limit an open case's stage has used: most green, some yellow, a few red (``LIGHTS``)."""
    pick = rng.random()
    for _colour, share, (lo, hi) in LIGHTS:
        if pick < share:
            return rng.uniform(lo, hi)
        pick -= share
    return LIGHTS[-1][2][1]


def _timeline(rng: random.Random, state: str, now: datetime) -> list[datetime]:
    """When the report came and each action after it happened: open cases within the last fortnight (the current
    stage began with the last action), ended ones over the past year."""
    steps = len(PATHS[state])
    if state in TERMINAL:
        start = now - timedelta(days=rng.uniform(15, 365))
        end = min(start + timedelta(hours=rng.uniform(2, 240)), now - timedelta(days=1))
    else:
        end = now - timedelta(hours=rng.uniform(2, 240))
        start = end - timedelta(hours=rng.uniform(0.5, 30) * steps)
    if not steps:
        return [start]
    return [start, *sorted(start + (end - start) * rng.random() for _ in range(steps - 1)), end]


def _report(rng: random.Random, i: int, city: City, matter: tuple[str, str], located: bool) -> dict[str, Any]:
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    address, lon, lat, cell = rng.choice(city.places)
    lon, lat = lon + rng.uniform(-2e-4, 2e-4), lat + rng.uniform(-1.5e-4, 1.5e-4)
    words = f"{address}{rng.choice(PROBLEMS)}"
    sender = {
        "hotline": f"139{rng.randrange(10**8):08d}",
        "operator": f"0575{rng.randrange(10**7):07d}",
        "collector": "监督员李强",
        "telegram": str(rng.randrange(10**9)),
    }.get(channel)
    others = rng.sample(city.matters, 2)
    ps = sorted((rng.uniform(0.5, 0.95), rng.uniform(0.02, 0.2), rng.uniform(0.01, 0.1)), reverse=True)
    top = [{"code": c, "name": n, "p": round(p, 4)} for (c, n), p in zip([matter, *others], ps, strict=True)]
    photo = channel in ("wechat", "telegram", "collector", "webchat") and rng.random() < 0.4
    return {
        **row_defaults(Report),
        "channel": channel,
        "channel_ref": f"bench-{i}",
        "sender": sender or f"o{hashlib.sha256(str(i).encode()).hexdigest()[:27]}",
        "text": "" if channel == "hotline" else words,
        "transcript": words if channel == "hotline" else "",
        "media": [
            {"sha256": hashlib.sha256(f"photo{i}".encode()).hexdigest(), "media_type": "image/jpeg", "kind": "photo"}
        ]
        if photo
        else [],
        "lon": lon if located and channel in ("wechat", "collector") else None,
        "lat": lat if located and channel in ("wechat", "collector") else None,
        "address": address if located else "",
        "classification": {
            "code": matter[0],
            "decision": "auto" if ps[0] > 0.7 else "review",
            "severity": "紧急" if rng.random() < 0.05 else "一般",
            "top": top,
        },
        "place": {
            "lon": lon,
            "lat": lat,
            "matched": address,
            "method": "门牌",
            "confidence": 0.95,
            "grid": cell,
            "duplicate_of": None,
        }
        if located
        else {"found": False, "reason": "无地址"},
        "steps": {step: {"status": "ok"} for step in ("store", "classify", "locate", "duplicates", "file")},
    }


def seed(engine: Engine, calendar: WorkCalendar, now: datetime) -> dict[str, Any]:
    """CASES cases with their reports and events, inserted by Core bulk statements (as ``core.intake`` files them):
    the rows a busy year leaves. Returns what the doc says about them."""
    rng = random.Random(2026)
    for street in ("339901001", "339901002", "339901003", "339901004", "339901005"):
        users.add_user(engine, f"col-{street}", "collector", scope=[street])
    city = City.load(engine)
    cases, reports, paths = [], [], []
    lights: Counter[str] = Counter()
    for i, state in enumerate(_states(rng)):
        matter = rng.choice(city.matters)
        report = _report(rng, i, city, matter, located=state != "待受理" or rng.random() > 0.04)
        times = _timeline(rng, state, now)
        path = PATHS[state]
        level, severity, limits, unit = city.conditions[matter[0]]
        place, cls = report["place"], report["classification"]
        cell = place.get("grid") or {}
        dept = rng.choice(city.departments) if "dispatch" in path else None
        stage = STAGE.get(state) or ENDED_STAGE[state]
        row = {
            **row_defaults(CaseFile),
            "state": state,
            "version": 1 + len(path),
            "matter_code": matter[0],
            "matter_name": matter[1],
            "condition_level": level if "file" in path else None,
            "severity": severity if "file" in path else cls["severity"],
            "description": report["text"] or report["transcript"],
            "address": report["address"],
            "lon": place.get("lon"),
            "lat": place.get("lat"),
            "grid_code": cell.get("code"),
            "area_class": cell.get("area_class") or "B",
            "source": report["channel"],
            "public": report["channel"] != "collector",
            "collector_id": city.collectors.for_cell(cell.get("code")),
            "department_code": dept,
            "suggested_department": dept,
            "stage": stage,
            "stage_started_at": times[-1],
            "stage_limit": limits[cell.get("area_class") or "B"] if stage == "处置" else 1.0,
            "stage_unit": unit if stage == "处置" else "工作时",
            "pauses": [[times[-1].isoformat(), None]] if state == "挂账" else [],
            "signed": "sign" in path,
            "dispatch_count": int(dept is not None),
            "pending": {"type": "延期", "hours": 8.0, "reason": "材料未到"}
            if state == "处置中" and i % 20 == 0
            else None,
            "created_at": times[0],
            "updated_at": times[-1],
            "closed_at": times[-1] if state in TERMINAL else None,
        }
        if state not in TERMINAL:
            row["stage_limit"] = _limit(rng, calendar, row, now) or row["stage_limit"]
            lights[
                calendar.light(row["stage_started_at"], row["stage_limit"], row["stage_unit"], now, _pauses(row)).colour
            ] += 1
        cases.append(row)
        reports.append({**report, "received_at": times[0]})
        paths.append((path, times))
    order = sorted(range(CASES), key=lambda k: cases[k]["created_at"])
    last: Counter[str] = Counter()
    for k in order:
        day = cases[k]["created_at"].astimezone(LOCAL).strftime("%Y%m%d")
        last[day] += 1
        cases[k]["number"] = f"{day}{last[day]:04d}"
        reports[k]["steps"]["file"]["detail"] = cases[k]["number"]
    open_numbers = [c["number"] for c in cases if c["state"] not in TERMINAL]
    for row in cases:
        if row["state"] == "已合并":
            row["duplicate_of"] = rng.choice(open_numbers)
    start = time.perf_counter()
    with engine.begin() as conn:
        ids = _insert(conn, CaseFile, cases)
        for report, case_id in zip(reports, ids, strict=True):
            report["case_id"] = case_id
        report_ids = _insert(conn, Report, reports)
        events = [
            event
            for row, case_id, report_id, report, (path, times) in zip(
                cases, ids, report_ids, reports, paths, strict=True
            )
            for event in _events(rng, row, case_id, report_id, report, path, times)
        ]
        conn.execute(insert(CaseEvent.__table__), events)
        conn.execute(insert(CaseCounter.__table__), [{"day": d, "last": n} for d, n in last.items()])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))  # what autovacuum does within a minute of a load this size
    states = Counter(c["state"] for c in cases)
    return {"states": states, "events": len(events), "lights": lights, "seconds": time.perf_counter() - start}


def _pauses(row: dict[str, Any]) -> list[tuple[datetime, datetime | None]]:
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None) for a, b in row["pauses"]]


def _limit(rng: random.Random, calendar: WorkCalendar, row: dict[str, Any], now: datetime) -> float | None:
    """A stage limit that puts the case's light at a chosen colour (most green, some yellow, a few red) for the
    working time its stage has really run; None when none has run yet (a light that is green whatever the limit)."""
    unit = row["stage_unit"]
    used = calendar.elapsed(row["stage_started_at"], now, unit, _pauses(row))
    if used <= 0:
        return None
    return round(used / _share(rng) / (calendar.day_hours if unit == "工作日" else 1.0), 3)


def _insert(conn: Any, model: type, rows: list[dict[str, Any]]) -> list[int]:
    """Rows with ids given here, so the statement needs no RETURNING: psycopg then sends them as one pipelined
    executemany (with RETURNING, SQLAlchemy renders batches of a thousand rows whose parameter conversion cost
    psycopg ten times the database's work). The sequence is moved past them."""
    table = model.__table__
    first = (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1
    ids = list(range(first, first + len(rows)))
    conn.execute(insert(table), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), {ids[-1]})"))
    return ids


def _events(
    rng: random.Random,
    row: dict[str, Any],
    case_id: int,
    report_id: int,
    report: dict[str, Any],
    path: tuple[str, ...],
    times: list[datetime],
) -> Iterator[dict[str, Any]]:
    yield {
        **row_defaults(CaseEvent),
        "case_id": case_id,
        "seq": 1,
        "at": times[0],
        "actor": report["channel"],
        "role": "system",
        "action": "report",
        "from_state": "",
        "to_state": "待受理",
        "data": {"report_id": report_id, "classification": report["classification"]},
        "attachments": [m["sha256"] for m in report["media"]],
    }
    state = "待受理"
    for seq, (action, at) in enumerate(zip(path, times[1:], strict=True), start=2):
        role = min(ACTIONS[action].roles - {"system"})
        data: dict[str, Any] = {
            "accept": {"matter_code": row["matter_code"]},
            "file": {"level": row["condition_level"], "suggested": row["department_code"]},
            "dispatch": {"department": row["department_code"], "limit": row["stage_limit"], "unit": row["stage_unit"]},
            "check": {"passed": True},
            "reject": {"reason": "不属于城市管理范围"},
            "void": {"reason": "现场核实无此问题"},
            "merge": {"target": row["duplicate_of"]},
            "send_verify": {"collector_id": row["collector_id"]},
            "request_suspend": {"request": "挂账", "reason": "需市级协调"},
            "approve": {"approved": "挂账"},
        }.get(action, {})
        photo = [hashlib.sha256(f"{case_id}-{seq}".encode()).hexdigest()] if ACTIONS[action].photo else []
        yield {
            **row_defaults(CaseEvent),
            "case_id": case_id,
            "seq": seq,
            "at": at,
            "actor": PEOPLE.get(role, row["department_code"] or role),
            "role": role,
            "action": action,
            "from_state": state,
            "to_state": AFTER[action],
            "department_code": row["department_code"] if seq > 4 else None,
            "on_time": rng.random() > 0.08,
            "note": str(data.get("reason", "")),
            "data": data,
            "attachments": photo,
        }
        state = AFTER[action]


# ------------------------------------------------------------------------------------------------------ the client
class Browser:
    """One logged-in member of staff over keep-alive HTTP, called synchronously (on a private event loop) so that
    ``bench.timing.percentiles`` times each request."""

    def __init__(self, base: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.http = self.loop.run_until_complete(self._open(base))
        self.csrf = ""

    @staticmethod
    async def _open(base: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))

    def get(self, path: str) -> tuple[int, str]:
        return self.loop.run_until_complete(self._get(path))

    async def _get(self, path: str) -> tuple[int, str]:
        async with self.http.get(path) as resp:
            return resp.status, await resp.text()

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        """The status and the redirect's target: the POST alone, as the browser's wait before it follows."""
        return self.loop.run_until_complete(self._post(path, data))

    async def _post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        async with self.http.post(path, data={"csrf_token": self.csrf, **data}, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", "") or (await resp.text())[:300]

    def login(self, name: str, password: str, page: str) -> None:
        status, html = self.get("/console/login")
        assert status == 200, html[:300]
        token = CSRF_FIELD.search(html).group(1)
        form = {"csrf_token": token, "username": name, "password": password}
        status, where = self.loop.run_until_complete(self._login(form))
        assert status == 303, where
        status, html = self.get(page)
        found = CSRF_META.search(html)
        assert status == 200 and found, html[:300]
        self.csrf = found.group(1)

    async def _login(self, form: dict[str, str]) -> tuple[int, str]:
        async with self.http.post("/console/login", data=form, allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", "")

    def close(self) -> None:
        self.loop.run_until_complete(self.http.close())
        self.loop.close()


# ----------------------------------------------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Added:
    """An index the console's migrations added to a table that was there before them: "without" drops it, and it
    is created again for the next round."""

    table: str
    name: str
    columns: tuple[str, ...]

    def drop(self, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {self.name}"))

    def create(self, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE INDEX {self.name} ON {self.table} ({', '.join(self.columns)})"))


def console_indexes(engine: Engine) -> list[Added]:
    """The indexes that migrations 0004 on (the console's) created on the tables that were there before them, as the
    database holds them now. Read from the migration files, so an index another page adds later is counted too."""
    names, tables = set(), set()
    for path in sorted((db.MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision: str = '(\d+)'", source, re.M)
        if revision and revision.group(1) >= "0004":
            names |= set(re.findall(r"create_index\(\s*(?:batch_op\.f\(|op\.f\()?'(\w+)'", source))
            tables |= set(re.findall(r"create_table\(\s*'(\w+)'", source))
    found = inspect(engine)
    return sorted(
        Added(table, ix["name"], tuple(ix["column_names"]))
        for table in found.get_table_names()
        if table not in tables
        for ix in found.get_indexes(table)
        if ix["name"] in names and not ix["unique"] and all(ix["column_names"])
    )


def _accept_pass(browser: Browser, engine: Engine, queue: list[dict[str, Any]]) -> tuple[float, float]:
    """Confirm each case as the queue's form does (its version, the code the classifier suggested, back to the
    queue); then put the cases back as they were, so every pass and both variants see the same queue."""

    def confirm(row: dict[str, Any]) -> None:
        status, where = browser.post(
            f"/console/cases/{row['number']}/do/accept",
            {"version": str(row["version"]), "matter_code": row["matter_code"], "next": "/console/queue"},
        )
        assert status == 303 and where.startswith("/console/queue?ok="), (status, where)

    try:
        return percentiles(confirm, queue, repeats=1)
    finally:
        cases, events = CaseFile.__table__, CaseEvent.__table__
        columns = [k for k in queue[0] if k != "id"]
        with engine.begin() as conn:
            conn.execute(delete(events).where(events.c.case_id.in_([r["id"] for r in queue]), events.c.seq > 1))
            conn.execute(
                update(cases).where(cases.c.id == bindparam("rid")).values({k: bindparam(f"v_{k}") for k in columns}),
                [{"rid": r["id"], **{f"v_{k}": r[k] for k in columns}} for r in queue],
            )


Timed = tuple[float, float] | str  # (p50, p99) ms, or why there is none


def _variant(
    browser: Browser,
    engine: Engine,
    pages: dict[str, Callable[[Any], Any] | None],
    samples: dict[str, list],
    queue: list[dict[str, Any]],
) -> dict[str, Timed]:
    """One pass over every page, then one over the queue's confirmations."""
    out: dict[str, Timed] = {}
    for name, fetch in pages.items():
        if fetch is None:
            out[name] = "—"
            continue
        for item in samples[name][:WARM]:  # the server's caches, and the query plans without the index
            fetch(item)
        out[name] = percentiles(fetch, samples[name], repeats=1)
    out["accept"] = _accept_pass(browser, engine, queue)
    return out


def _best(passes: list[dict[str, Timed]]) -> dict[str, Timed]:
    """The best p50 and the best p99 of the passes, as ``bench.timing.percentiles`` takes them."""
    out: dict[str, Timed] = {}
    for name, first in passes[0].items():
        timed = [p[name] for p in passes if not isinstance(p[name], str)]
        out[name] = (min(t[0] for t in timed), min(t[1] for t in timed)) if timed else first
    return out


def _page(browser: Browser, template: str, probe: str) -> Callable[[Any], Any] | None:
    """A timed GET of ``template`` (formatted with the item), or None when the page does not answer 200 yet (it is
    being written): the table says so."""

    def fetch(item: Any) -> None:
        status, body = browser.get(template.format(item))
        assert status == 200, (template.format(item), status, body[:300])

    status, _ = browser.get(template.format(probe))
    return fetch if status == 200 else None


def plain_layer(runtime: Runtime, who: Actor) -> str:
    """The map's case layer the straightforward way, to set beside the page's own: the open located cases as ORM
    objects, each one's light from ``CaseLoop.timer``, one ``json.dumps``."""
    loop = runtime.loop
    with Session(runtime.engine) as session:
        cases = session.scalars(
            select(CaseFile).where(
                CaseFile.state.not_in(TERMINAL), CaseFile.lon.is_not(None), CaseFile.lat.is_not(None)
            )
        ).all()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
            "properties": {
                "number": c.number,
                "state": c.state,
                "code": c.matter_code or "",
                "name": c.matter_name,
                "address": c.address,
                "department": c.department_code or "",
                "light": timer.light if (timer := loop.timer(c)) else "none",
            },
        }
        for c in cases
        if who.sees(c)
    ]
    lights = Counter(f["properties"]["light"] for f in features)
    layer = {"type": "FeatureCollection", "count": len(features), "lights": lights, "features": features}
    return json.dumps(layer, ensure_ascii=False)


def map_shortcuts(runtime: Runtime, who: Actor) -> dict[str, Timed]:
    """The case layer's own shortcuts (markers kept per case version, every light in one numpy pass), timed in this
    process on the same database against the layer without its cache and the plain way. The plain layer must give
    every marker the light the page gives it."""
    everything, served = CaseFilter(), CaseLayer()
    page_layer = json.loads(served.features(runtime, who, everything))
    plain = json.loads(plain_layer(runtime, who))
    assert (plain["count"], plain["lights"]) == (
        page_layer["count"],
        {k: v for k, v in page_layer["lights"].items() if v},
    )
    calls = range(MAP_CALLS)
    return {
        "served": percentiles(lambda _: served.features(runtime, who, everything), calls, repeats=2),
        "cold": percentiles(lambda _: CaseLayer().features(runtime, who, everything), calls, repeats=2),
        "plain": percentiles(lambda _: plain_layer(runtime, who), calls, repeats=2),
    }


PLAN_DETAILS = ("Sort Key", "Presorted Key", "Recheck Cond", "Index Cond")  # PostgreSQL's lines left out


def queue_plans(engine: Engine) -> str:
    """How the database answers the queue's statements (``CaseLoop.worklist`` as the page calls it, captured
    while it runs): which index, and whether it sorts."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        CaseLoop(engine, WorkCalendar()).worklist(*ARRIVED, order=OLDEST, limit=SHOWN)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    sqlite = engine.dialect.name == "sqlite"
    engine.dispose()  # sqlite3's statement cache would answer an EXPLAIN as it was before the index was dropped
    out = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
            steps = [row[-1] if sqlite else re.sub(r"\s*\(cost=.*?\)|^[\s>-]+|::text|[()]", "", row[0]) for row in rows]
            out.append(" → ".join(step for step in steps if step and not step.startswith(PLAN_DETAILS)))
    return "; ".join(f"{'count' if i == 0 else 'rows'}: {plan}" for i, plan in enumerate(out))


def _measure(url: str, folder: Path) -> dict[str, Any]:
    env = demo_city(url, folder)
    runtime = Runtime(load_settings(environ=env))
    engine = runtime.engine
    who = Actor.of(users.add_user(engine, "bench-op", "operator", password=PASSWORD))
    seeded = seed(engine, runtime.calendar, datetime.now(UTC))
    c = CaseFile.__table__.c
    with engine.connect() as conn:
        waiting = select(CaseFile.__table__).where(c.state == "待受理", c.matter_code.is_not(None))
        queue = [dict(r._mapping) for r in conn.execute(waiting.order_by(c.created_at).limit(ACCEPTS))]
        opened = list(conn.execute(select(c.number).where(c.state.not_in(TERMINAL))).scalars())
        ended = list(conn.execute(select(c.number).where(c.state.in_(TERMINAL))).scalars())
    rng = random.Random(7)
    numbers = rng.sample(opened, REQUESTS // 2) + rng.sample(ended, REQUESTS - REQUESTS // 2)
    rng.shuffle(numbers)
    samples = {"queue": [""] * REQUESTS, "map": [""] * REQUESTS, "case": numbers}
    added = console_indexes(engine)
    passes: dict[str, list[dict[str, Timed]]] = {"with": [], "without": []}
    plans = {"with": queue_plans(engine)}
    with serving(env, folder / "serve.log") as base:
        browser = Browser(base)
        browser.login("bench-op", PASSWORD, f"/console/cases/{numbers[0]}")
        pages = {
            "queue": _page(browser, "/console/queue{}", ""),
            "map": _page(browser, "/console/map/cases.geojson{}", ""),
            "case": _page(browser, "/console/cases/{}", numbers[0]),
        }
        for _ in range(ROUNDS):  # the two alternate, so that a busier minute of a shared machine falls on both
            passes["with"].append(_variant(browser, engine, pages, samples, queue))
            for index in added:
                index.drop(engine)
            plans["without"] = queue_plans(engine)
            passes["without"].append(_variant(browser, engine, pages, samples, queue))
            for index in added:
                index.create(engine)
        browser.close()
    shortcuts = map_shortcuts(runtime, who)
    runtime.close()
    return {"seeded": seeded, "with": _best(passes["with"]), "without": _best(passes["without"]), "added": added,
            "map": shortcuts, "plans": plans}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ the report
LABELS = {
    "queue": "受理 queue `GET /console/queue`",
    "map": "map's case layer `GET /console/map/cases.geojson`",
    "case": "case page `GET /console/cases/{number}`",
    "accept": "受理 from the queue `POST /console/cases/{n}/do/accept` → 303",
}


def _cell(value: tuple[float, float] | str) -> str:
    return value if isinstance(value, str) else f"{value[0]:.1f} / {value[1]:.1f}"


def _ratio(a: tuple[float, float] | str, b: tuple[float, float] | str) -> str:
    if isinstance(a, str) or isinstance(b, str):
        return "—"
    return f"{b[0] / a[0]:.2f} / {b[1] / a[1]:.2f}"


MAP_LABELS = {
    "served": "as the page serves it: markers kept per case version, the lights in one numpy pass",
    "cold": "the same without its marker cache: every open case read and encoded each time",
    "plain": "plain: the cases as ORM objects, `CaseLoop.timer` for each, one `json.dumps`",
}


def run(machine: str) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite (WAL, file)", _measure(f"sqlite:///{tmp}/bench.db", Path(tmp) / "sqlite")))
        pg = scratch_postgres("gridline_bench_console")
        if pg:
            rows.append(("PostgreSQL 15 (localhost TCP)", _measure(pg, Path(tmp) / "pg")))
    table = "\n".join(
        f"| {name} | {LABELS[page]} | {_cell(m['with'][page])} | {_cell(m['without'][page])} | "
        f"{_ratio(m['with'][page], m['without'][page])} | ≤ {TARGETS[page]} |"
        for name, m in rows
        for page in LABELS
    )
    layers = "\n".join(
        f"| {name} | {MAP_LABELS[way]} | {_cell(m['map'][way])} | {_ratio(m['map']['served'], m['map'][way])} |"
        for name, m in rows
        for way in MAP_LABELS
    )
    plans = "\n".join(f"| {name} | {m['plans']['with']} | {m['plans']['without']} |" for name, m in rows)
    missed = [
        f"{name.split(' (')[0]} {page} {m['with'][page][1]:.0f} ms"
        for name, m in rows
        for page in LABELS
        if not isinstance(m["with"][page], str) and m["with"][page][1] > TARGETS[page]
    ]
    verdict = "every p99 with the index within its target" if not missed else "over target: " + ", ".join(missed)
    seeded = rows[0][1]["seeded"]
    states = "、".join(f"{s} {n:,}" for s, n in sorted(seeded["states"].items(), key=lambda kv: -kv[1]))
    lights = ", ".join(f"{c} {seeded['lights'][c]:,}" for c in ("green", "yellow", "red"))
    added = ", ".join(f"`{ix.name}` on {ix.table} ({', '.join(ix.columns)})" for ix in rows[0][1]["added"])
    loads = "; ".join(f"{name} {m['seeded']['seconds']:.0f} s" for name, m in rows)
    return f"""### Console pages on 20,000 cases, with and without the console's indexes

{machine}. `python -m bench console` — the demo city with {CASES:,} cases ({states}), {seeded["events"]:,} case
events and one report per case (channel, text, the classifier's three guesses, the located place, photos on some),
spread over the city's door plates and grid cells; the open cases' lights: {lights}. Inserted by Core bulk
statements ({loads}). A real `gridline serve` (one process); one logged-in 受理员 on keep-alive HTTP from the same
machine, one request at a time, so each time is the round trip on loopback: an upper bound of the server's time.
Per pass {REQUESTS} requests of each page after {WARM} untimed (the queue and the map's layer as they open, case pages
of {REQUESTS // 2} open and {REQUESTS - REQUESTS // 2} ended cases), then {ACCEPTS} cases of the queue confirmed
(受理 with their version and the suggested 事项 code, back to the queue: the POST up to its 303; the queue it returns
to is the first row), put back as they were after the pass so that every pass sees the same queue. {ROUNDS} passes of
each variant, alternating; the best p50 and the best p99 of a variant's passes.

"Without" is the same database and server after `DROP INDEX` of what the console's migrations (0004 on) added to
tables that were there before them: {added or "none found"}; created again before the next pass with it. The pages'
queries are the same in both, and the single-column indexes of earlier migrations (on state, on created_at) stay.
A case page reads by number and case id and never by this index: its ratio is how far this run's noise goes.
The queue's two statements (`CaseLoop.worklist`: how many wait, the oldest {SHOWN}) as each database plans
them:

| database | with the index | without |
|---|---|---|
{plans}

| database | request | p50 / p99 ms, with | p50 / p99 ms, without | without ÷ with, p50 / p99 | target p99 ms |
|---|---|---:|---:|---:|---:|
{table}

The map's case layer has shortcuts of its own besides the index (`admin/console/casemap.py`); here they are timed
as functions in the benchmark's process on the same database, all open located cases for the same 受理员 (no HTTP),
{MAP_CALLS} calls, best of 2 passes. Every light of the plain layer equals the page's.

| database | case layer | p50 / p99 ms | ÷ as served, p50 / p99 |
|---|---|---:|---:|
{layers}

Targets: the queue, the map's layer and a case page p99 ≤ 150 ms, a 受理 from the queue p99 ≤ 100 ms; this run:
{verdict} ("—": the page did not answer 200 when this ran).
"""
