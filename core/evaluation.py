"""综合评价 (CJ/T 292, standards.md §5): indicators, 综合指标值 and grade for 部门, 区域 and 岗位 over a period.

Formulas and weights follow the implementation quoted in standards.md §5 (the standard's own tables were not
found), with its evident slips corrected and said so where they are. Rates are percentages rounded to 0.1; a rate
whose denominator is zero is None and scores 100 (nothing was asked of the object, so nothing went wrong). Counts
score by bands. All weights and bands are the ``Weights`` defaults, which a centre may override.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import AppUser, CaseEvent, CaseFile, Department, Region, Report

LOCAL = ZoneInfo("Asia/Shanghai")
Kind = Literal["dept", "region", "post"]
LEVELS = {"street": 9, "community": 12, "grid": 15}
Bands = tuple[tuple[float, float], ...]  # (upper bound inclusive, score), ascending; above the last: 0


@dataclass(frozen=True)
class Weights:
    # 部门: 派遣数分值 10 %, 处置率 30 %, 按时处置率 30 %, (100 − 返工率) 30 %
    dept: tuple[float, float, float, float] = (0.10, 0.30, 0.30, 0.30)
    dept_bands: Bands = ((50, 100), (100, 90), (200, 75), (500, 60), (1000, 40))
    # 区域: 监督举报率 10 %, 立案数分值 20 %, 结案率 30 %, 按期结案率 40 %
    # (the source's weights summed to 70 %; the last one was evidently meant to be 40 %)
    region: tuple[float, float, float, float] = (0.10, 0.20, 0.30, 0.40)
    region_bands_a: Bands = ((0, 100), (2, 90), (4, 75), (6, 60), (8, 40))  # 一类区域
    region_bands_b: Bands = ((0, 100), (3, 90), (5, 75), (7, 60), (9, 40))  # 二类区域
    collector: tuple[float, float, float, float] = (0.40, 0.20, 0.20, 0.20)
    operator: tuple[float, float, float] = (0.25, 0.40, 0.35)
    count_bands: Bands = ((100, 0), (300, 40), (500, 60), (1200, 75), (2000, 90))  # 受理数分值; above: 100
    shift_lead: tuple[float, float, float] = (0.25, 0.40, 0.35)
    dispatcher: tuple[float, float, float] = (0.20, 0.40, 0.40)


@dataclass(frozen=True)
class Row:
    object_code: str
    object_name: str
    role: str
    indicators: dict[str, float | int | None]
    score: float
    grade: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": self.object_code,
            "name": self.object_name,
            "role": self.role,
            "score": self.score,
            "grade": self.grade,
            "indicators": self.indicators,
        }


def parse_period(period: str) -> tuple[datetime, datetime]:
    """``2026-11`` (a month) or ``2026-11-01..2026-11-15`` (inclusive dates), in Beijing time."""
    if m := re.fullmatch(r"(\d{4})-(\d{2})", period.strip()):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"评价周期 {period!r} 的月份无效")
        first = date(year, month, 1)
        nxt = date(year + month // 12, month % 12 + 1, 1)
    elif m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", period.strip()):
        try:
            first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        except ValueError:
            raise ValueError(f"评价周期 {period!r} 的日期无效") from None
        if last < first:
            raise ValueError(f"评价周期 {period!r} 的结束早于开始")
        nxt = last + timedelta(days=1)
    else:
        raise ValueError(f"评价周期 {period!r} 应为 2026-11 或 2026-11-01..2026-11-15")
    return datetime.combine(first, datetime.min.time(), LOCAL), datetime.combine(nxt, datetime.min.time(), LOCAL)


def rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def band(value: float, bands: Bands, above: float = 0.0) -> float:
    for upper, score in bands:
        if value <= upper:
            return score
    return above


def grade(score: float) -> str:
    return "A" if score >= 90 else "B" if score >= 75 else "C" if score >= 60 else "D" if score >= 40 else "E"


def _s(value: float | None) -> float:
    return 100.0 if value is None else value


def _row(code: str, name: str, role: str, indicators: dict[str, Any], parts: Sequence[tuple[float, float]]) -> Row:
    score = round(sum(w * v for w, v in parts), 1)
    return Row(code, name, role, indicators, score, grade(score))


@dataclass
class _Data:
    events: list[CaseEvent]
    cases: dict[int, CaseFile]
    reports: list[Report] = field(default_factory=list)


def _load(engine: Engine, start: datetime, end: datetime) -> _Data:
    with Session(engine) as session:
        events = list(
            session.exec(
                select(CaseEvent)
                .where(CaseEvent.at >= start, CaseEvent.at < end)
                .order_by(CaseEvent.case_id, CaseEvent.seq)
            ).all()
        )
        ids = {e.case_id for e in events}
        cases = {c.id: c for c in session.exec(select(CaseFile).where(CaseFile.id.in_(ids))).all()} if ids else {}
        reports = list(
            session.exec(
                select(Report).where(
                    Report.received_at >= start, Report.received_at < end, Report.channel == "collector"
                )
            ).all()
        )
    return _Data(events, cases, reports)


def evaluate(
    engine: Engine, period: str, kind: Kind, level: str = "street", weights: Weights | None = None
) -> list[Row]:
    start, end = parse_period(period)
    if kind not in ("dept", "region", "post"):
        raise ValueError(f"评价对象 {kind!r} 应为 dept、region 或 post")
    if level not in LEVELS:
        raise ValueError(f"区域层级 {level!r} 应为 grid、community 或 street")
    data = _load(engine, start, end)
    w = weights or Weights()
    if kind == "dept":
        return _departments(engine, data, w)
    if kind == "region":
        return _regions(engine, data, w, LEVELS[level])
    return _posts(engine, data, w)


def _departments(engine: Engine, data: _Data, w: Weights) -> list[Row]:
    with Session(engine) as session:
        names = {d.code: d.name for d in session.exec(select(Department)).all()}
    acc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"dispatched": set(), "done": set(), "on_time": 0, "late": 0, "rework": 0, "extended": 0}
    )
    for e in data.events:
        d = e.department_code
        if not d:
            continue
        a = acc[d]
        if e.action in ("dispatch", "redispatch"):
            a["dispatched"].add(e.case_id)
        elif e.action == "complete":
            a["done"].add(e.case_id)
            a["on_time" if e.on_time is not False else "late"] += 1
        elif e.action == "check" and e.data.get("passed") is False:
            a["rework"] += 1
        elif e.action == "approve" and e.data.get("approved") == "延期":
            a["extended"] += 1
    rows = []
    for code, a in sorted(acc.items()):
        dispatched, done = len(a["dispatched"]), len(a["done"])
        completes = a["on_time"] + a["late"]
        ind = {
            "应处置数": dispatched,
            "处置数": done,
            "按时处置数": a["on_time"],
            "超时处置数": a["late"],
            "返工数": a["rework"],
            "延期数": a["extended"],
            "处置率": rate(done, dispatched),
            "按时处置率": rate(a["on_time"], completes),
            "返工率": rate(a["rework"], completes),
            "延期率": rate(a["extended"], dispatched),
        }
        rework = ind["返工率"] or 0.0
        parts = zip(
            w.dept,
            (band(dispatched, w.dept_bands), _s(ind["处置率"]), _s(ind["按时处置率"]), 100 - rework),
            strict=True,
        )
        rows.append(_row(code, names.get(code, code), "专业部门", ind, list(parts)))
    return rows


def _regions(engine: Engine, data: _Data, w: Weights, size: int) -> list[Row]:
    with Session(engine) as session:
        names = {r.code: r.name for r in session.exec(select(Region)).all()}
    acc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"filed": set(), "closed": 0, "closed_on_time": 0, "not_public": 0, "classes": []}
    )
    last_complete: dict[int, bool | None] = {}
    for e in data.events:
        case = data.cases.get(e.case_id)
        if case is None or not case.grid_code:
            continue
        a = acc[case.grid_code[:size]]
        if e.action == "complete":
            last_complete[e.case_id] = e.on_time
        elif e.action == "file":
            a["filed"].add(e.case_id)
            a["not_public"] += not case.public
            a["classes"].append(case.area_class)
        elif e.action == "close":
            a["closed"] += 1
            a["closed_on_time"] += last_complete.get(e.case_id) is not False
    rows = []
    for code, a in sorted(acc.items()):
        filed = len(a["filed"])
        if not filed and not a["closed"]:
            continue
        owed = max(filed, a["closed"])
        first_class = a["classes"].count("A") * 2 > len(a["classes"])  # majority of its cases in 一类 (A) cells
        ind = {
            "立案数": filed,
            "结案数": a["closed"],
            "应结案数": owed,
            "按期结案数": a["closed_on_time"],
            "结案率": rate(a["closed"], owed),
            "按期结案率": rate(a["closed_on_time"], owed),
            "监督举报率": rate(a["not_public"], filed),
            "区域类别": "一类" if first_class else "二类",
        }
        filed_score = band(filed, w.region_bands_a if first_class else w.region_bands_b)
        parts = zip(
            w.region, (_s(ind["监督举报率"]), filed_score, _s(ind["结案率"]), _s(ind["按期结案率"])), strict=True
        )
        rows.append(_row(code, names.get(code, code), "区域", ind, list(parts)))
    return rows


def _posts(engine: Engine, data: _Data, w: Weights) -> list[Row]:
    with Session(engine) as session:
        people = {u.id: u for u in session.exec(select(AppUser)).all()}
    by_user: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in data.events:
        if e.user_id is not None:
            by_user[e.user_id].append(e)
    filed_cases = {e.case_id for e in data.events if e.action == "file"}
    decided = {e.case_id for e in data.events if e.action in ("file", "void")}
    returned = {e.case_id for e in data.events if e.action == "approve" and e.data.get("approved") == "回退"}
    rows = []
    for uid, user in sorted(people.items()):
        events = by_user.get(uid, [])

        def count(*actions: str, on_time: bool | None = None, evs: list[CaseEvent] = events) -> int:
            return sum(e.action in actions and (on_time is None or e.on_time is not False) for e in evs)

        if user.role == "collector":
            mine = [r for r in data.reports if r.sender == user.name]
            valid = sum(r.case_id in decided for r in mine)
            missed = sum(1 for c in data.cases.values() if c.public and c.collector_id == uid and c.id in filed_cases)
            ind = {
                "上报数": len(mine),
                "有效上报数": valid,
                "漏报数": missed,
                "有效上报率": rate(valid, len(mine)),
                "漏报率": rate(missed, missed + valid),
                "按时核实率": rate(count("verify", on_time=True), count("verify")),
                "按时核查率": rate(count("check", on_time=True), count("check")),
            }
            values = (_s(ind["有效上报率"]), 100 - (ind["漏报率"] or 0.0), _s(ind["按时核实率"]), _s(ind["按时核查率"]))
            parts = zip(w.collector, values, strict=True)
        elif user.role == "operator":
            acts = ("accept", "send_verify", "reject", "merge")
            on_time = rate(count(*acts, on_time=True), count(*acts))
            # Gridline has no separate 核查派发 step: the on-time rate of 受理 stands for both dispatch rates
            ind = {"受理数": count(*acts), "按时受理率": on_time}
            parts = zip(w.operator, (band(count(*acts), w.count_bands, 100), _s(on_time), _s(on_time)), strict=True)
        elif user.role == "shift_lead":
            filed, voided = count("file"), count("void")
            # (立案 − 作废) / 立案 can go below zero when 作废 are of other cases; 立案 / (立案 + 作废) cannot
            ind = {
                "立案数": filed,
                "作废数": voided,
                "按时立案率": rate(count("file", on_time=True), filed),
                "准确立案率": rate(filed, filed + voided),
                "按时结案率": rate(count("close", on_time=True), count("close")),
            }
            parts = zip(
                w.shift_lead, (_s(ind["按时立案率"]), _s(ind["准确立案率"]), _s(ind["按时结案率"])), strict=True
            )
        elif user.role == "dispatcher":
            sent = [e for e in events if e.action in ("dispatch", "redispatch")]
            accurate = sum(e.case_id not in returned and e.action == "dispatch" for e in sent)
            ind = {
                "派遣数": len(sent),
                "按时派遣率": rate(sum(e.on_time is not False for e in sent), len(sent)),
                "准确派遣率": rate(accurate, len(sent)),
            }
            parts = zip(
                w.dispatcher,
                (band(len(sent), w.count_bands, 100), _s(ind["按时派遣率"]), _s(ind["准确派遣率"])),
                strict=True,
            )
        else:
            continue
        if not events and not (user.role == "collector" and any(ind.values())):
            continue
        rows.append(_row(str(uid), user.name, user.role, ind, list(parts)))
    return rows


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """UTF-8 with BOM so that Excel opens the Chinese headers as they are."""
    names = list(dict.fromkeys(k for r in rows for k in r.indicators))
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["对象代码", "对象名称", "岗位", *names, "综合指标值", "等级"])
        for r in rows:
            writer.writerow(
                [r.object_code, r.object_name, r.role, *(r.indicators.get(n, "") for n in names), r.score, r.grade]
            )
