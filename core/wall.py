"""监督指挥: the figures of the centre's wall (CJJ/T 106's 监督指挥子系统), what is happening in the city now.

``figures`` asks the database for aggregates (GROUP BY, window functions, percentiles), so its cost follows the
open cases and the last ``DAYS`` days, not the city's whole history; ``scan`` computes the same figures by loading every
case, event and report into Python. Only the benchmark uses ``scan``, as the alternative to set beside it, and the
tests check that the two agree. Both end in the same shaping functions, so a figure means one thing in both.

What each figure counts (``now`` is the loop's clock; days are Beijing days, Asia/Shanghai, which has kept UTC+8
without summer time since 1991):

- today: reports received since 00:00 today, by channel.
- states: open cases by state; ``GROUPS`` gathers them as the wall shows them (待核实 is part of 受理: the
  受理员 sent it for 核实 before 立案; 挂账 is part of 处置).
- lights: every open case's stage light, by ``CaseLoop.lights`` (working time needs the calendar, which the
  database does not have, so the open cases' clocks are read: a few columns of the open cases, no history), and the
  located ones as markers, red first, at most ``MAX_MARKERS``.
- cells: open cases per 万米单元网格 cell.
- collectors: each 监督员's last position from a task submission (核实, 自处理, 核查 with the phone's GPS) within
  ``COLLECTOR_HOURS``.
- days, by_channel, by_major: reports per day of the last ``DAYS`` days by channel, and by the 大类 of their
  case's 事项 (未分类 without one): each report is filed as a case of its own, so these are the cases by the day
  they were filed, read from the cases alone (joining each report to its case was among the wall's slowest
  statements on 100,000 cases).
- top: the ``TOP`` 事项 with most cases created in those days, leaving out 不予受理, 已合并 and 已作废 ones
  (not problems of the city, or a problem already counted).
- departments: 按期结案率 of each department over its cases 结案 in those days: on time when no 处置完成 of the
  case was late, as ``core.evaluation`` counts 按期结案.
- stages: how long each state lasted (natural hours from entering it to leaving it), median and 90th percentile,
  over the stays that ended in the last ``STAGE_DAYS`` days: how long a stage takes now. Each stay needs the change
  before it, so this is the one figure whose cost follows the events rather than the cases: on 100,000 cases the
  30 days' 34,000 stays took PostgreSQL 130 ms, more than the rest of the wall together; a week's 17 ms.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Float, Integer, and_, case, cast, exists, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import String
from sqlmodel import Session

from core.cases import LIGHTS, LOCAL, STATES, TERMINAL, CaseLoop
from core.evaluation import rate
from core.models import CaseEvent, CaseFile, Department, Report, TaxonomyItem

OPEN_STATES = tuple(s for s in STATES if s not in TERMINAL)
GROUPS = (
    ("待受理", ("待受理", "待核实")),
    ("待立案", ("待立案",)),
    ("待派遣", ("待派遣",)),
    ("处置中", ("处置中", "挂账")),
    ("待核查", ("待核查",)),
    ("待结案", ("待结案",)),
)
NOT_PROBLEMS = ("不予受理", "已合并", "已作废")
DAYS = 30
STAGE_DAYS = 7
TOP = 10
MAX_MARKERS = 3000
COLLECTOR_HOURS = 24
QUANTILES = (0.5, 0.9)
UNCLASSIFIED = ("", "未分类")
RANK = {light: -k for k, light in enumerate(LIGHTS)}  # red first: LIGHTS runs none, green, yellow, red

_C, _E, _R, _T = CaseFile.__table__.c, CaseEvent.__table__.c, Report.__table__.c, TaxonomyItem.__table__.c


# --- two expressions the databases spell differently ------------------------------------------------------------
class local_day(FunctionElement):
    """The Beijing date of a stored UTC time: a date on PostgreSQL, ``YYYY-MM-DD`` text on SQLite (``str`` of
    either is the ISO date)."""

    type = String()
    inherit_cache = True


@compiles(local_day)
def _local_day_sqlite(element: local_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


@compiles(local_day, "postgresql")
def _local_day_pg(element: local_day, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AT TIME ZONE 'Asia/Shanghai' AS DATE)"


class epoch(FunctionElement):
    """Seconds since 1970 of a stored time, with its fraction (SQLAlchemy's extract('epoch') on SQLite drops it)."""

    type = Float()
    inherit_cache = True


@compiles(epoch)
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: Any, **kw: Any) -> str:
    # date_part is double precision; extract is numeric since PostgreSQL 14, and its arithmetic several times slower
    return f"date_part('epoch', {compiler.process(element.clauses, **kw)})"


# --- the window of the figures -----------------------------------------------------------------------------------
def _bounds(now: datetime) -> tuple[datetime, datetime, list[str]]:
    """Today's 00:00, the first day's 00:00 and the ``DAYS`` days as ISO dates, in Beijing time."""
    today = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=DAYS - 1)
    return today, first, [(first + timedelta(days=k)).date().isoformat() for k in range(DAYS)]


# --- shaping, shared by figures and scan -------------------------------------------------------------------------
def _ranked(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _series(days: list[str], counts: Mapping[tuple[str, str], int], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """(day, key) → count as one series per key with a value for every day, the biggest key first."""
    index = {day: k for k, day in enumerate(days)}
    series: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for (day, key), n in counts.items():
        if day in index:
            series[key][index[day]] += n
    order = sorted(series, key=lambda key: (-sum(series[key]), key))
    return [{"code": key, "name": names.get(key, key), "counts": series[key]} for key in order]


def _shape(
    now: datetime,
    today: Mapping[str, int],
    states: Mapping[str, int],
    open_cases: Sequence[tuple[str, str, str, float | None, float | None, int]],
    cells: Mapping[str, int],
    collectors: Iterable[dict[str, Any]],
    by_channel: Mapping[tuple[str, str], int],
    by_major: Mapping[tuple[str, str], int],
    majors: Mapping[str, str],
    top: Iterable[tuple[str, str, int]],
    closed: Iterable[tuple[str, str, int, int]],
    stages: Iterable[tuple[str, int, float, float]],
) -> dict[str, Any]:
    """The wall's JSON from the counts. ``open_cases`` are (number, state, 事项 name, lon, lat, light index)."""
    _, _, days = _bounds(now)
    states = {s: states.get(s, 0) for s in OPEN_STATES}
    lights = Counter(LIGHTS[code] for *_, code in open_cases)
    located = [c for c in open_cases if c[3] is not None and c[4] is not None]
    located.sort(key=lambda c: (RANK[LIGHTS[c[5]]], c[0]))
    return {
        "now": now.astimezone(LOCAL).isoformat(),
        "today": {"total": sum(today.values()), "channels": _ranked(today)},
        "states": states,
        "groups": [
            {"name": name, "count": sum(states[s] for s in parts), "parts": {s: states[s] for s in parts}}
            for name, parts in GROUPS
        ],
        "lights": {light: lights.get(light, 0) for light in LIGHTS},
        "markers": [
            {"number": n, "state": s, "name": name, "lon": lon, "lat": lat, "light": LIGHTS[code]}
            for n, s, name, lon, lat, code in located[:MAX_MARKERS]
        ],
        "located": len(located),
        "cells": dict(sorted(cells.items())),
        "collectors": sorted(collectors, key=lambda c: (c["name"], c["at"])),
        "days": days,
        "by_channel": _series(days, by_channel, {}),
        "by_major": _series(days, by_major, dict(majors)),
        "top": [{"code": c, "name": name, "count": n} for c, name, n in sorted(top, key=lambda t: (-t[2], t[0]))][:TOP],
        "departments": [
            {"code": c, "name": name, "closed": n, "on_time": k, "rate": rate(k, n)} for c, name, n, k in sorted(closed)
        ],
        "stages": [
            {"state": s, "count": n, "median_h": p50, "p90_h": p90}
            for s, n, p50, p90 in sorted(stages, key=lambda row: STATES.index(row[0]))
        ],
    }


def _collector(name: str, at: datetime, action: str, number: str, lon: float, lat: float, acc: Any) -> dict:
    return {
        "name": name,
        "at": at.astimezone(LOCAL).isoformat(),
        "action": action,
        "number": number,
        "lon": lon,
        "lat": lat,
        "accuracy_m": acc,
    }


# --- the aggregates ----------------------------------------------------------------------------------------------
def figures(loop: CaseLoop, now: datetime | None = None) -> dict[str, Any]:
    """The wall's figures from aggregate queries, on SQLite and PostgreSQL alike."""
    now = now or loop.clock()
    midnight, first, _ = _bounds(now)
    with loop.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # the planner's costs of these statements on a city's history cross jit_above_cost, and compiling them
            # took longer (0.7 s) than running them: the wall's statements are short, and each is new to the JIT
            conn.execute(text("SET LOCAL jit = off"))
        today = dict(
            conn.execute(select(_R.channel, func.count()).where(_R.received_at >= midnight).group_by(_R.channel)).all()
        )
        is_open = _C.state.in_(OPEN_STATES)
        states = dict(conn.execute(select(_C.state, func.count()).where(is_open).group_by(_C.state)).all())
        cells = dict(
            conn.execute(
                select(_C.grid_code, func.count()).where(is_open, _C.grid_code.is_not(None)).group_by(_C.grid_code)
            ).all()
        )
        clocks = conn.execute(
            select(
                _C.number,
                _C.state,
                _C.matter_name,
                _C.lon,
                _C.lat,
                epoch(_C.stage_started_at),
                _C.stage_limit,
                _C.stage_extra_hours,
                _C.stage_unit,
                cast(_C.pauses, String),  # as text: most are "[]", and decoding them all cost more than the rest
            ).where(is_open)
        ).all()
        collectors = _last_positions(conn, now - timedelta(hours=COLLECTOR_HOURS))
        day = local_day(_R.received_at)
        recent = _R.received_at >= first
        by_channel = {
            (str(d), ch): n
            for d, ch, n in conn.execute(select(day, _R.channel, func.count()).where(recent).group_by(day, _R.channel))
        }
        filed_on = local_day(_C.created_at)
        filed = (
            select(filed_on.label("day"), _C.matter_code.label("code"), func.count().label("n"))
            .where(_C.created_at >= first)
            .group_by(filed_on, _C.matter_code)
            .subquery()
        )
        major = (
            select(filed.c.day, _T.major_code, _T.major_name, func.sum(filed.c.n))
            .select_from(filed.outerjoin(TaxonomyItem.__table__, and_(_T.kind == "matter", _T.code == filed.c.code)))
            .group_by(filed.c.day, _T.major_code, _T.major_name)
        )
        by_major: dict[tuple[str, str], int] = {}
        majors = dict([UNCLASSIFIED])
        for d, code, name, n in conn.execute(major):
            by_major[str(d), code or ""] = by_major.get((str(d), code or ""), 0) + int(n)
            majors.setdefault(code or "", name)
        top = conn.execute(
            select(_C.matter_code, func.max(_C.matter_name), func.count())
            .where(_C.created_at >= first, _C.matter_code.is_not(None), _C.state.not_in(NOT_PROBLEMS))
            .group_by(_C.matter_code)
            .order_by(func.count().desc(), _C.matter_code)
            .limit(TOP)
        ).all()
        closed = _on_time_closes(conn, first)
        stages = _stage_times(conn, midnight - timedelta(days=STAGE_DAYS - 1))
    columns = list(zip(*clocks, strict=True)) or [()] * 10  # the rows as columns
    numbers, states_, names, lons, lats, started, limits, extras, units, pauses = columns
    pauses = [json.loads(p) if p != "[]" else () for p in pauses]
    codes = loop.lights(states_, started, limits, extras, units, pauses, now).tolist()
    open_cases = list(zip(numbers, states_, names, lons, lats, codes, strict=True))
    return _shape(now, today, states, open_cases, cells, collectors, by_channel, by_major, majors, top, closed, stages)


def _last_positions(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    """Each 监督员's newest submission with a GPS position since ``since`` (one row per user, by a window)."""
    lon, lat = _E.data[("position", "lon")].as_float(), _E.data[("position", "lat")].as_float()
    acc = _E.data[("position", "accuracy_m")].as_float()
    newest = func.row_number().over(partition_by=_E.user_id, order_by=(_E.at.desc(), _E.id.desc()))
    ranked = (
        select(
            _E.actor,
            _E.at,
            _E.action,
            _E.case_id,
            lon.label("lon"),
            lat.label("lat"),
            acc.label("acc"),
            newest.label("k"),
        )
        .where(_E.role == "collector", _E.user_id.is_not(None), _E.at >= since, lon.is_not(None), lat.is_not(None))
        .subquery()
    )
    rows = conn.execute(
        select(ranked.c.actor, ranked.c.at, ranked.c.action, _C.number, ranked.c.lon, ranked.c.lat, ranked.c.acc)
        .join(CaseFile.__table__, _C.id == ranked.c.case_id)
        .where(ranked.c.k == 1)
    )
    return [_collector(*row) for row in rows]


def _on_time_closes(conn: Connection, since: datetime) -> list[tuple[str, str, int, int]]:
    """(department, name, cases 结案 since, of them with no late 处置完成)."""
    late = CaseEvent.__table__.alias("late")
    was_late = exists().where(late.c.case_id == _E.case_id, late.c.action == "complete", late.c.on_time.is_(False))
    d = Department.__table__.c
    rows = conn.execute(
        select(_E.department_code, func.max(d.name), func.count(), func.sum(case((was_late, 0), else_=1)))
        .select_from(CaseEvent.__table__.outerjoin(Department.__table__, d.code == _E.department_code))
        .where(_E.action == "close", _E.at >= since, _E.department_code.is_not(None))
        .group_by(_E.department_code)
    )
    return [(code, name or code, n, int(k)) for code, name, n, k in rows]


def _stage_times(conn: Connection, since: datetime) -> list[tuple[str, int, float, float]]:
    """(state, stays, median hours, 90th percentile hours) of the stays in a state that ended since ``since``: a
    stay runs from the event that entered the state to the next event that changed it (an event that keeps the
    state, such as 签收 or 督办, is part of the stay).

    Only the changes since ``since`` are read: a case's events are in time order, so its changes since then follow
    one another and each one's stay began at the change before it (LAG); only the first of each case looks further
    back, for the change before it, by the (case_id, seq) key. Reading the touched cases' whole history instead cost
    PostgreSQL a scan of every event on 100,000 cases."""
    changed = _E.from_state != _E.to_state
    before = CaseEvent.__table__.alias("before")
    earlier = (
        select(before.c.at)
        .where(before.c.case_id == _E.case_id, before.c.seq < _E.seq, before.c.from_state != before.c.to_state)
        .order_by(before.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    entered = func.coalesce(func.lag(_E.at).over(partition_by=_E.case_id, order_by=_E.seq), earlier)
    moves = (
        select(_E.from_state.label("state"), ((epoch(_E.at) - epoch(entered)) / 3600.0).label("hours"))
        .where(_E.at >= since, changed)
        .subquery()
    )
    stays = select(moves.c.state, moves.c.hours).where(moves.c.hours.is_not(None)).subquery()
    if conn.dialect.name == "postgresql":
        quantiles = [func.percentile_cont(q).within_group(stays.c.hours) for q in QUANTILES]
        query = select(stays.c.state, func.count(), *quantiles).group_by(stays.c.state)
    else:  # SQLite has no percentile_cont: the same linear interpolation between the two ranks around q·(n−1)
        rank = func.row_number().over(partition_by=stays.c.state, order_by=stays.c.hours) - 1
        size = func.count().over(partition_by=stays.c.state)
        ranked = select(stays.c.state, stays.c.hours, rank.label("k"), size.label("n")).subquery()
        quantiles = [_interpolated(ranked.c.k, ranked.c.n, ranked.c.hours, q) for q in QUANTILES]
        query = select(ranked.c.state, func.max(ranked.c.n), *quantiles).group_by(ranked.c.state)
    return [(state, n, float(p50), float(p90)) for state, n, p50, p90 in conn.execute(query)]


def _interpolated(k: ColumnElement, n: ColumnElement, value: ColumnElement, q: float) -> ColumnElement:
    """percentile_cont(q) as a sum over ranked rows: the rows at ranks ⌊q·(n−1)⌋ and the next, weighted."""
    position = q * (n - 1)
    low = cast(position, Integer)  # SQLite truncates a positive REAL: the floor
    share = position - low
    return func.sum(case((k == low, value * (1 - share)), (k == low + 1, value * share), else_=0.0))


# --- the alternative: every case, event and report in Python ------------------------------------------------------
def scan(loop: CaseLoop, now: datetime | None = None) -> dict[str, Any]:
    """The same figures by loading the cases, their events and the reports and counting them in Python: what
    ``figures`` replaces (the benchmark times the two in one run)."""
    now = now or loop.clock()
    midnight, first, _ = _bounds(now)
    with Session(loop.engine) as session:
        cases = {c.id: c for c in session.scalars(select(CaseFile))}
        events = session.scalars(select(CaseEvent).order_by(CaseEvent.case_id, CaseEvent.seq)).all()
        reports = session.scalars(select(Report)).all()
        items = session.scalars(select(TaxonomyItem).where(TaxonomyItem.kind == "matter"))
        matters = {t.code: (t.major_code, t.major_name) for t in items}
        names = {d.code: d.name for d in session.scalars(select(Department))}
    opened = [c for c in cases.values() if c.state not in TERMINAL]
    open_cases = []
    for c in opened:
        timer = loop.timer(c, now)
        open_cases.append((c.number, c.state, c.matter_name, c.lon, c.lat, LIGHTS.index(timer.light) if timer else 0))
    history: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in events:
        history[e.case_id].append(e)
    today = Counter(r.channel for r in reports if r.received_at >= midnight)
    recent = [r for r in reports if r.received_at >= first]
    day = {r.id: r.received_at.astimezone(LOCAL).date().isoformat() for r in recent}
    by_channel = Counter((day[r.id], r.channel) for r in recent)
    by_major: Counter[tuple[str, str]] = Counter()
    majors = dict([UNCLASSIFIED])
    for c in cases.values():
        if c.created_at >= first:
            code, name = matters.get(c.matter_code or "", UNCLASSIFIED)
            by_major[c.created_at.astimezone(LOCAL).date().isoformat(), code] += 1
            majors.setdefault(code, name)
    counted = Counter(
        c.matter_code for c in cases.values() if c.created_at >= first and c.matter_code and c.state not in NOT_PROBLEMS
    )
    names_of = {c.matter_code: c.matter_name for c in cases.values() if c.matter_code in counted}
    closed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    since = now - timedelta(hours=COLLECTOR_HOURS)
    positions: dict[int, CaseEvent] = {}
    stays: dict[str, list[float]] = defaultdict(list)
    week = midnight - timedelta(days=STAGE_DAYS - 1)
    for evs in history.values():
        late = any(e.action == "complete" and e.on_time is False for e in evs)
        changes = [e for e in evs if e.from_state != e.to_state]
        for before, e in itertools.pairwise(changes):
            if e.at >= week:
                stays[e.from_state].append((e.at - before.at).total_seconds() / 3600)
        for e in evs:
            if e.action == "close" and e.at >= first and e.department_code:
                closed[e.department_code][0] += 1
                closed[e.department_code][1] += not late
            position = (e.data or {}).get("position") or {}
            located = position.get("lon") is not None and position.get("lat") is not None
            if e.role == "collector" and e.user_id is not None and e.at >= since and located:
                mine = positions.get(e.user_id)
                if mine is None or (e.at, e.id) > (mine.at, mine.id):
                    positions[e.user_id] = e
    collectors = []
    for e in positions.values():
        p = e.data["position"]
        collectors.append(_collector(e.actor, e.at, e.action, cases[e.case_id].number, p["lon"], p["lat"],
                                     p.get("accuracy_m")))  # fmt: skip
    return _shape(
        now,
        today,
        Counter(c.state for c in opened),
        open_cases,
        Counter(c.grid_code for c in opened if c.grid_code),
        collectors,
        by_channel,
        by_major,
        majors,
        [(code, names_of[code], n) for code, n in counted.items()],
        [(code, names.get(code, code), n, k) for code, (n, k) in closed.items()],
        [(s, len(v), *np.percentile(v, [100 * q for q in QUANTILES])) for s, v in stays.items()],
    )
