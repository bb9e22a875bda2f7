"""综合评价 (CJ/T 292, standards.md §5): indicators, 综合指标值 and grade for 部门, 区域 and 岗位 over a period.

The standard's own tables were not found; formulas, weights and bands follow the implementation quoted in
standards.md §5, with its evident slips corrected where they are said to be. All weights, bands and grade bounds are
the ``Weights`` defaults, which a centre may override.

Rules common to every object, so that the figures can be recomputed by hand:

- Period: a month ``2026-11`` or inclusive dates ``2026-11-01..2026-11-15``, in Beijing time (Asia/Shanghai). An
  action counts in the period when its event's time lies in [first day 00:00, day after the last 00:00).
- As known at the end of the period: the history of every case touched in the period is read up to the period's end
  and no further, so a month's figures do not change when they are recomputed later (a dispatch in the period that
  is undone after it still counts as accurate for that period).
- On time: an action is on time unless its event says ``on_time`` False. ``None`` (the stage had no clock) counts
  as on time, because nothing without a limit can be late.
- Rates are percentages 0–100 rounded 四舍五入 to 0.1. A rate whose denominator is zero is None; in the
  综合指标值 a None "good" rate (处置率, 按时…率, 结案率, 准确…率, 有效上报率, 监督举报率) scores 100 and a None
  "bad" rate (返工率, 漏报率) counts as 0, so 100 − rate scores 100 too: nothing was asked of the object, so
  nothing went wrong. Counts score through their bands, where 0 is a count like any other (0 受理 scores 0,
  0 派遣 to a department scores 100).
- 综合指标值 = the weighted sum of the rounded values shown, rounded 四舍五入 to 0.1; the grade is read from it.
- An object gets a row only if something of it happened in the period (no row for an idle department or region;
  for 岗位, one row per user and role that acted, plus 监督员 whose reports or whose grid's 立案 fall in it).
- Actions of the system (auto-accept, auto-dispatch: no user) count for departments and regions, for no 岗位.
- Each row keeps the ids of the cases its figures count (``Row.cases``), so a page can list them.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import AppUser, CaseEvent, CaseFile, Department, GridCell, Region, Report

LOCAL = ZoneInfo("Asia/Shanghai")
Kind = Literal["dept", "region", "post"]
KINDS: tuple[Kind, ...] = ("dept", "region", "post")
LEVELS = {"street": 9, "community": 12, "grid": 15}  # code prefix length of CaseFile.grid_code per level
LEVEL_NAMES = {"street": "街道", "community": "社区", "grid": "单元网格"}
ROLE_NAMES = {"collector": "监督员", "operator": "受理员", "shift_lead": "值班长", "dispatcher": "派遣员"}
DISPATCH = frozenset({"dispatch", "redispatch"})
ACCEPT = frozenset({"accept", "send_verify", "reject", "merge"})  # every way out of 待受理
VERIFY = frozenset({"verify", "self_handle"})  # every way out of 待核实
Value = float | int | None


@dataclass(frozen=True)
class Bands:
    """The score of a count: that of the first step whose upper bound (inclusive) holds it, else ``above``."""

    steps: tuple[tuple[int, float], ...]
    above: float = 0.0

    def score(self, count: int) -> float:
        for upper, value in self.steps:
            if count <= upper:
                return value
        return self.above


# 受理数分值 (standards.md §5): ≤100 → 0, 101–300 → 40, 301–500 → 60, 501–1200 → 75, 1201–2000 → 90, ≥2001 → 100
WORKLOAD_BANDS = Bands(((100, 0), (300, 40), (500, 60), (1200, 75), (2000, 90)), above=100)


@dataclass(frozen=True)
class Weights:
    """Weights (fractions, in the order of each formula) and bands of the 综合指标值; the defaults are §5's."""

    # 部门: 派遣数分值 ×10 % + 处置率 ×30 % + 按时处置率 ×30 % + (100 − 返工率) ×30 %
    dept: tuple[float, float, float, float] = (0.10, 0.30, 0.30, 0.30)
    # 派遣数分值 on 应处置数: ≤50 → 100, ≤100 → 90, ≤200 → 75, ≤500 → 60, ≤1000 → 40, more → 0
    dept_bands: Bands = Bands(((50, 100), (100, 90), (200, 75), (500, 60), (1000, 40)), above=0)
    # 区域: 监督举报率 ×10 % + 立案数分值 ×20 % + 结案率 ×30 % + 按期结案率 ×40 %. standards.md notes that the
    # implementation it quotes has 10 % for the last, so its weights sum to 70 %; 40 % is the inferred intent.
    region: tuple[float, float, float, float] = (0.10, 0.20, 0.30, 0.40)
    # 立案数分值, 一类区域: 0 → 100, 1–2 → 90, 3–4 → 75, 5–6 → 60, 7–8 → 40, ≥9 → 0
    region_bands_a: Bands = Bands(((0, 100), (2, 90), (4, 75), (6, 60), (8, 40)), above=0)
    # 立案数分值, 二类区域: 0 → 100, 1–3 → 90, 4–5 → 75, 6–7 → 60, 8–9 → 40, ≥10 → 0
    region_bands_b: Bands = Bands(((0, 100), (3, 90), (5, 75), (7, 60), (9, 40)), above=0)
    # 监督员: 有效上报率 ×40 % + (100 − 漏报率) ×20 % + 按时核实率 ×20 % + 按时核查率 ×20 %
    collector: tuple[float, float, float, float] = (0.40, 0.20, 0.20, 0.20)
    # 受理员: 受理数分值 ×25 % + 核实按时派发率 ×40 % + 核查按时派发率 ×35 %
    operator: tuple[float, float, float] = (0.25, 0.40, 0.35)
    operator_bands: Bands = WORKLOAD_BANDS
    # 值班长: 按时立案率 ×25 % + 准确立案率 ×40 % + 按时结案率 ×35 % (the quoted code applies 25 % twice: a slip)
    shift_lead: tuple[float, float, float] = (0.25, 0.40, 0.35)
    # 派遣员: 派遣数分值 ×20 % + 按时派遣率 ×40 % + 准确派遣率 ×40 %
    dispatcher: tuple[float, float, float] = (0.20, 0.40, 0.40)
    # §5 gives no 派遣数分值 bands for 派遣员; a workload count like 受理数, so the same bands (inferred)
    dispatcher_bands: Bands = WORKLOAD_BANDS
    # grade: the first whose lower bound (inclusive) the score reaches, else the last: A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40
    grades: tuple[tuple[float, str], ...] = ((90, "A"), (75, "B"), (60, "C"), (40, "D"))
    lowest_grade: str = "E"

    def grade(self, score: float) -> str:
        return next((g for bound, g in self.grades if score >= bound), self.lowest_grade)


@dataclass(frozen=True)
class Row:
    """One evaluated object; ``role`` is the 岗位's role code for kind "post" and empty otherwise; ``cases`` are
    the ids of the cases its figures count (not part of ``as_dict``: the answer stays one line per object)."""

    object_code: str
    object_name: str
    role: str
    indicators: dict[str, Value]
    score: float
    grade: str
    cases: frozenset[int] = field(default=frozenset(), compare=False, repr=False)

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
    """``2026-11`` (a month) or ``2026-11-01..2026-11-15`` (inclusive dates) → [start, end) in Beijing time."""
    text = period.strip() if isinstance(period, str) else ""
    usage = "应为月份 2026-11 或日期范围 2026-11-01..2026-11-15（含首尾两日）"
    try:
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            first = date(int(m[1]), int(m[2]), 1)
            after = (first + timedelta(days=32)).replace(day=1)
        elif m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text):
            first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
            after = last + timedelta(days=1)
        else:
            raise ValueError(period)
    except (ValueError, OverflowError):
        raise ValueError(f"评价周期 {period!r} 无效：{usage}") from None
    if after <= first:
        raise ValueError(f"评价周期 {period!r} 的结束日期早于开始日期")
    midnight = datetime.min.time()
    return datetime.combine(first, midnight, LOCAL), datetime.combine(after, midnight, LOCAL)


def round1(value: float) -> float:
    """四舍五入 to 0.1 after shedding float noise (75 × 0.35 is 26.249999…), so 73.25 shows as 73.3."""
    return float(Decimal(repr(round(value, 9))).quantize(Decimal("0.1"), ROUND_HALF_UP))


def rate(part: int, whole: int) -> float | None:
    """part / whole as a percentage; None when there was nothing to measure."""
    return round1(100.0 * part / whole) if whole else None


def _good(value: float | None) -> float:
    return 100.0 if value is None else value


def _bad(value: float | None) -> float:
    return 100.0 - (value or 0.0)


def _on_time(event: CaseEvent) -> bool:
    return event.on_time is not False


def _row(
    code: str,
    name: str,
    role: str,
    ind: dict[str, Value],
    weights: Sequence[float],
    values: Sequence[float],
    w: Weights,
    cases: set[int],
) -> Row:
    score = round1(sum(k * v for k, v in zip(weights, values, strict=True)))
    return Row(code, name, role, ind, score, w.grade(score), frozenset(cases))


@dataclass
class _Data:
    """What one evaluation reads: the period and the histories (up to its end) of the cases touched in it."""

    start: datetime
    end: datetime
    cases: dict[int, CaseFile]
    history: dict[int, list[CaseEvent]]
    reports: list[Report] = field(default_factory=list)

    def within(self, event: CaseEvent) -> bool:
        return self.start <= event.at < self.end

    def in_period(self) -> Iterator[CaseEvent]:
        for events in self.history.values():
            yield from (e for e in events if self.within(e))


def _load(session: Session, start: datetime, end: datetime, with_reports: bool) -> _Data:
    """Three queries: the touched cases, their events before the end, and (for 岗位) the collectors' reports."""
    touched = select(CaseEvent.case_id).where(CaseEvent.at >= start, CaseEvent.at < end).distinct()
    events = session.exec(
        select(CaseEvent)
        .where(CaseEvent.case_id.in_(touched), CaseEvent.at < end)
        .order_by(CaseEvent.case_id, CaseEvent.seq)
    ).all()
    history: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in events:
        history[e.case_id].append(e)
    cases = {c.id: c for c in session.exec(select(CaseFile).where(CaseFile.id.in_(touched))).all()}
    reports: list[Report] = []
    if with_reports:
        reports = list(
            session.exec(
                select(Report).where(
                    Report.channel == "collector", Report.received_at >= start, Report.received_at < end
                )
            ).all()
        )
    return _Data(start, end, cases, dict(history), reports)


def evaluate(
    engine: Engine, period: str, kind: Kind, level: str = "street", weights: Weights | None = None
) -> list[Row]:
    """Indicators, 综合指标值 and grade of every department, region (at ``level``) or 岗位 active in ``period``.
    Raises ValueError, naming the bad value, for a bad period, kind or level."""
    start, end = parse_period(period)
    if kind not in ("dept", "region", "post"):
        raise ValueError(f"评价对象 {kind!r} 应为 dept、region 或 post")
    if level not in LEVELS:
        raise ValueError(f"区域层级 {level!r} 应为 grid、community 或 street")
    w = weights or Weights()
    with Session(engine) as session:
        data = _load(session, start, end, with_reports=kind == "post")
        if kind == "dept":
            return _departments(session, data, w)
        if kind == "region":
            return _regions(session, data, w, LEVELS[level])
        return _posts(session, data, w)


@dataclass
class _DeptTally:
    owed: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    on_time: int = 0
    late: int = 0
    rework: int = 0
    extended: int = 0
    counted: set[int] = field(default_factory=set)  # every case one of the figures counts


def _departments(session: Session, data: _Data, w: Weights) -> list[Row]:
    """专业部门, from the events' department_code (the department the case was with, or was dispatched to):

    应处置数 = distinct cases dispatched (or redispatched) to it in the period, plus cases dispatched earlier that
    it completed in the period (so 处置率 cannot pass 100); 处置数 = distinct cases it completed (处置完成);
    按时/超时处置数 count its completions (a case sent back by 返工 is completed again, on a fresh clock);
    返工数 = 核查 failed (passed false) of its work; 延期数 = 延期 approved to it.
    处置率 = 处置数 / 应处置数; 按时处置率 = 按时处置数 / completions; 返工率 = 返工数 / completions;
    延期率 = 延期数 / 应处置数. 派遣数分值 is the band of 应处置数. A case returned (回退) or redispatched away
    still counts in the first department's 应处置数, as the standard's 应处置 does.
    """
    tallies: dict[str, _DeptTally] = defaultdict(_DeptTally)
    for e in data.in_period():
        if not e.department_code:
            continue
        t = tallies[e.department_code]
        if e.action in DISPATCH:
            t.owed.add(e.case_id)
        elif e.action == "complete":
            t.owed.add(e.case_id)
            t.done.add(e.case_id)
            if _on_time(e):
                t.on_time += 1
            else:
                t.late += 1
        elif e.action == "check" and e.data.get("passed") is False:
            t.rework += 1
        elif e.action == "approve" and e.data.get("approved") == "延期":
            t.extended += 1
        else:
            continue
        t.counted.add(e.case_id)
    names = {d.code: d.name for d in session.exec(select(Department)).all()}
    rows = []
    for code, t in sorted(tallies.items()):
        owed, done, completions = len(t.owed), len(t.done), t.on_time + t.late
        ind: dict[str, Value] = {
            "应处置数": owed,
            "处置数": done,
            "按时处置数": t.on_time,
            "超时处置数": t.late,
            "返工数": t.rework,
            "延期数": t.extended,
            "处置率": rate(done, owed),
            "按时处置率": rate(t.on_time, completions),
            "返工率": rate(t.rework, completions),
            "延期率": rate(t.extended, owed),
            "派遣数分值": w.dept_bands.score(owed),
        }
        values = (ind["派遣数分值"], _good(ind["处置率"]), _good(ind["按时处置率"]), _bad(ind["返工率"]))
        rows.append(_row(code, names.get(code, code), "", ind, w.dept, values, w, t.counted))
    return rows


@dataclass
class _RegionTally:
    filed: set[int] = field(default_factory=set)
    closed: set[int] = field(default_factory=set)


def _regions(session: Session, data: _Data, w: Weights, size: int) -> list[Row]:
    """区域 = the first ``size`` characters of the case's grid code (street 9, community 12, grid cell 15):

    立案数 = cases 立案 in the period; 结案数 = cases 结案 in the period that had been 立案 (自处理 cases never
    were); 应结案数 = cases 立案 or 结案 in the period (those filed earlier and closed now were owed too);
    按期结案数 = cases 结案 whose every 处置完成 was on time. 结案率, 按期结案率 are over 应结案数;
    监督举报率 = 立案 cases that were not public reports (found by 监督员) / 立案数.
    A region scores 立案数 on the 一类区域 bands when more than half of its counted (应结案) cases lie in class A
    cells, else (ties included) on the 二类 bands: a region mixing classes is judged by the bulk of its cases.
    """
    filed_ever = {cid for cid, events in data.history.items() if any(e.action == "file" for e in events)}
    tallies: dict[str, _RegionTally] = defaultdict(_RegionTally)
    for e in data.in_period():
        case = data.cases.get(e.case_id)
        if case is None or not case.grid_code:
            continue
        if e.action == "file":
            tallies[case.grid_code[:size]].filed.add(e.case_id)
        elif e.action == "close" and e.case_id in filed_ever:
            tallies[case.grid_code[:size]].closed.add(e.case_id)
    if size == LEVELS["grid"]:
        names = {g.code: g.name for g in session.exec(select(GridCell).where(GridCell.code.in_(list(tallies))))}
    else:
        names = {r.code: r.name for r in session.exec(select(Region).where(Region.code.in_(list(tallies))))}
    rows = []
    for code, t in sorted(tallies.items()):
        owed = t.filed | t.closed
        timely = [cid for cid in t.closed if all(_on_time(e) for e in data.history[cid] if e.action == "complete")]
        first_class = 2 * sum(data.cases[cid].area_class == "A" for cid in owed) > len(owed)
        filed = len(t.filed)
        ind: dict[str, Value] = {
            "立案数": filed,
            "结案数": len(t.closed),
            "应结案数": len(owed),
            "按期结案数": len(timely),
            "结案率": rate(len(t.closed), len(owed)),
            "按期结案率": rate(len(timely), len(owed)),
            "监督举报率": rate(sum(not data.cases[cid].public for cid in t.filed), filed),
            "一类区域": int(first_class),
            "立案数分值": (w.region_bands_a if first_class else w.region_bands_b).score(filed),
        }
        values = (_good(ind["监督举报率"]), ind["立案数分值"], _good(ind["结案率"]), _good(ind["按期结案率"]))
        rows.append(_row(code, names.get(code) or code, "", ind, w.region, values, w, owed))
    return rows


def _posts(session: Session, data: _Data, w: Weights) -> list[Row]:
    """岗位: one row per (user, role) that acted in the period, from the events' user_id and role.

    监督员: 上报数 = its reports (Report channel "collector", sender = its user name) received in the period;
    有效上报数 = those whose case was 立案 or 作废 by the period's end (§5: "立案+作废"); 漏报数 = public reports
    立案 in the period in its grid (CaseFile.collector_id); 漏报率 = 漏报数 / all cases 立案 in its grid;
    按时核实率 over its 核实 (verify, self_handle); 按时核查率 over its 核查 (check).
    受理员: 受理数 = accept + send_verify + reject + merge; 按时受理率. §5 scores 核实按时派发率 and 核查按时派发率;
    Gridline has no 核查派发 step (a completed case goes back to its grid's 监督员 by itself), and 发核实
    (send_verify) leaves the same 受理 clock as every other 受理 action, so 按时受理率 stands for both.
    值班长: 立案数, 作废数, 按时立案率; 准确立案率 = (立案数 − 作废数) / 立案数 as §5 has it, floored at 0 (None
    without 立案). In Gridline 作废 is the decision not to file a case waiting for 立案 (state 待立案), so this
    lowers the rate of a lead who voids bad reports; 按时结案率 over its 结案.
    派遣员: 派遣数 = dispatch + redispatch; 按时派遣率 over its dispatches from 待派遣 only (a redispatch leaves the
    department's 处置 clock, not a 派遣 clock); 准确派遣数 = its dispatches after which the case was not sent on
    to another department (returned and dispatched elsewhere, or redispatched) before the period's end.
    """
    users = {u.id: u for u in session.exec(select(AppUser)).all()}
    by_name = {u.name: u.id for u in users.values()}
    acts: dict[tuple[int, str], list[CaseEvent]] = defaultdict(list)
    for e in data.in_period():
        if e.user_id in users and e.role in ROLE_NAMES:
            acts[(e.user_id, e.role)].append(e)
    reports: dict[int, list[Report]] = defaultdict(list)
    for r in data.reports:
        if r.sender in by_name:
            reports[by_name[r.sender]].append(r)
    decided = {cid for cid, evs in data.history.items() if any(e.action in ("file", "void") for e in evs)}
    grid_filed: dict[int, list[CaseFile]] = defaultdict(list)
    for cid in {e.case_id for e in data.in_period() if e.action == "file"}:
        case = data.cases.get(cid)
        if case is not None and case.collector_id in users:
            grid_filed[case.collector_id].append(case)
    undone: set[int] = set()  # dispatch events after which the case went on to another department
    for events in data.history.values():
        sends = [e for e in events if e.action in DISPATCH]
        for sent, nxt in itertools.pairwise(sends):
            if _dept(nxt) != _dept(sent):
                undone.add(sent.id)

    keys = set(acts) | {(uid, "collector") for uid in (*reports, *grid_filed)}
    order = list(ROLE_NAMES)
    rows = []
    for uid, role in sorted(keys, key=lambda k: (order.index(k[1]), users[k[0]].name)):
        mine = acts.get((uid, role), [])
        counted = {e.case_id for e in mine}

        def done(names: frozenset[str] | set[str], evs: list[CaseEvent] = mine) -> list[CaseEvent]:
            return [e for e in evs if e.action in names]

        def timely(evs: list[CaseEvent]) -> int:
            return sum(_on_time(e) for e in evs)

        if role == "collector":
            sent_in = reports.get(uid, [])
            valid = sum(r.case_id in decided for r in sent_in)
            grid = grid_filed.get(uid, [])
            missed = sum(c.public for c in grid)
            counted |= {r.case_id for r in sent_in if r.case_id is not None} | {c.id for c in grid}
            verifies, checks = done(VERIFY), done({"check"})
            ind: dict[str, Value] = {
                "上报数": len(sent_in),
                "有效上报数": valid,
                "有效上报率": rate(valid, len(sent_in)),
                "漏报数": missed,
                "漏报率": rate(missed, len(grid)),
                "核实数": len(verifies),
                "按时核实率": rate(timely(verifies), len(verifies)),
                "核查数": len(checks),
                "按时核查率": rate(timely(checks), len(checks)),
            }
            weights: Sequence[float] = w.collector
            values = [_good(ind["有效上报率"]), _bad(ind["漏报率"]), _good(ind["按时核实率"]), _good(ind["按时核查率"])]
        elif role == "operator":
            accepted = done(ACCEPT)
            on_time = rate(timely(accepted), len(accepted))
            ind = {"受理数": len(accepted), "按时受理率": on_time, "受理数分值": w.operator_bands.score(len(accepted))}
            weights = w.operator
            values = [ind["受理数分值"], _good(on_time), _good(on_time)]
        elif role == "shift_lead":
            filed, voided, closed = done({"file"}), len(done({"void"})), done({"close"})
            ind = {
                "立案数": len(filed),
                "作废数": voided,
                "按时立案率": rate(timely(filed), len(filed)),
                "准确立案率": rate(max(len(filed) - voided, 0), len(filed)),
                "结案数": len(closed),
                "按时结案率": rate(timely(closed), len(closed)),
            }
            weights = w.shift_lead
            values = [_good(ind["按时立案率"]), _good(ind["准确立案率"]), _good(ind["按时结案率"])]
        else:
            sent = done(DISPATCH)
            first = done({"dispatch"})
            accurate = sum(e.id not in undone for e in sent)
            ind = {
                "派遣数": len(sent),
                "准确派遣数": accurate,
                "按时派遣率": rate(timely(first), len(first)),
                "准确派遣率": rate(accurate, len(sent)),
                "派遣数分值": w.dispatcher_bands.score(len(sent)),
            }
            weights = w.dispatcher
            values = [ind["派遣数分值"], _good(ind["按时派遣率"]), _good(ind["准确派遣率"])]
        rows.append(_row(str(uid), users[uid].name, role, ind, weights, values, w, counted))
    return rows


def _dept(event: CaseEvent) -> str | None:
    return event.department_code or event.data.get("department")


@dataclass(frozen=True)
class Sheet:
    """One object's evaluation as a page's table and a workbook's sheet show it."""

    kind: Kind
    title: str
    rows: list[Row]


def sheets(engine: Engine, period: str, level: str = "street") -> list[Sheet]:
    """The three objects of one period: 部门, 区域 (at ``level``) and 岗位. Raises ValueError as ``evaluate`` does."""
    if level not in LEVELS:
        raise ValueError(f"区域层级 {level!r} 应为 grid、community 或 street")
    return [Sheet(kind, title(kind, level), evaluate(engine, period, kind, level)) for kind in KINDS]


def title(kind: Kind, level: str) -> str:
    """The object's name as a heading: 部门, 区域（街道） and so on, 岗位."""
    return {"dept": "部门", "region": f"区域（{LEVEL_NAMES[level]}）", "post": "岗位"}[kind]


def table(rows: Sequence[Row]) -> list[list[Any]]:
    """Header and one line per row, as every export has it: a 岗位 column for 岗位 rows only, one column per
    indicator met in any row (None where a row has no such indicator, or its rate is None)."""
    names = list(dict.fromkeys(k for r in rows for k in r.indicators))
    posts = any(r.role for r in rows)
    lines: list[list[Any]] = [["对象代码", "对象名称", *(["岗位"] if posts else []), *names, "综合指标值", "等级"]]
    for r in rows:
        role = [ROLE_NAMES.get(r.role, r.role)] if posts else []
        lines.append([r.object_code, r.object_name, *role, *(r.indicators.get(n) for n in names), r.score, r.grade])
    return lines


def csv_bytes(rows: Sequence[Row]) -> bytes:
    """The table as CSV, blank where a value is None, in UTF-8 with BOM so that Excel opens the Chinese headers as
    they are."""
    out = io.StringIO()
    csv.writer(out).writerows([["" if v is None else v for v in line] for line in table(rows)])
    return out.getvalue().encode("utf-8-sig")


def write_csv(rows: Sequence[Row], path: str | Path) -> None:
    Path(path).write_bytes(csv_bytes(rows))


def write_xlsx(objects: Sequence[Sheet], target: str | Path | IO[bytes]) -> None:
    """One sheet per object (named by its title), the table with numbers as numbers, a bold header row that
    stays in view while scrolling and carries Excel's filter buttons."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for item in objects:
        sheet = book.create_sheet(item.title)
        for line in table(item.rows):
            sheet.append(line)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            width = max(_width(c.value) for c in sheet[cell.column_letter])
            sheet.column_dimensions[get_column_letter(cell.column)].width = min(width + 2, 40)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
    book.save(target)


def _width(value: Any) -> int:
    """A column width for the value: a CJK character is about two Latin ones wide."""
    text = "" if value is None else str(value)
    return len(text) + sum(ord(ch) >= 0x2E80 for ch in text)
