"""The closed case loop of the 数字城管 standards: who may do what in which state, with time limits and a record.

受理 → 核实 → 立案 → 派遣 → 处置 → 核查 → 结案 (CJJ/T 106 §3, CJ/T 315; standards.md §4, §6). Every action is one
transaction: check role, scope, state and fields; compare-and-set the case on its version (so two people acting at
once get one success and one conflict, on SQLite and PostgreSQL alike); append an immutable event.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import String, bindparam, cast, func, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from core.config import ConfigError, Settings
from core.crs import distance_m
from core.grid import CellHit
from core.models import AppUser, CaseCounter, CaseEvent, CaseFile, Component, Department, FilingCondition, RoutingRule
from core.worktime import COLOURS, WorkCalendar

ROLES = {
    "operator": "受理员",
    "collector": "监督员",
    "shift_lead": "值班长",
    "dispatcher": "派遣员",
    "department": "专业部门",
    "admin": "管理员",
    "leader": "领导",
    "system": "系统",
}
STATES = (
    "待受理",
    "待核实",
    "待立案",
    "待派遣",
    "处置中",
    "挂账",
    "待核查",
    "待结案",
    "已结案",
    "已作废",
    "不予受理",
    "已合并",
)
TERMINAL = frozenset({"已结案", "已作废", "不予受理", "已合并"})
STAGE = {
    "待受理": "受理",
    "待核实": "核实",
    "待立案": "立案",
    "待派遣": "派遣",
    "处置中": "处置",
    "挂账": "处置",
    "待核查": "核查",
    "待结案": "结案",
}
FIELD_LABELS = {
    "reason": "理由",
    "target": "合并到的案卷编号",
    "confirmed": "核实结果",
    "level": "立案条件等级",
    "department": "专业部门",
    "note": "意见",
    "hours": "延期时长",
    "passed": "核查结果",
}
DEFAULT_STAGE_HOURS = {"受理": 1.0, "核实": 2.0, "立案": 0.5, "派遣": 0.5, "核查": 2.0, "结案": 1.0}
LOCAL = ZoneInfo("Asia/Shanghai")
LIGHTS = ("none", *COLOURS)  # a timer's light, "none" without a timer; ``CaseLoop.lights`` gives indices into this


class CaseError(Exception):
    """A refused action; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(CaseError):
    status = 403


class NotFound(CaseError):
    status = 404


class Conflict(CaseError):
    status = 409


class Invalid(CaseError):
    status = 422


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, or the system for configured auto-steps."""

    user_id: int | None
    name: str
    role: str
    department_code: str | None = None
    grid_scope: tuple[str, ...] = ()

    @classmethod
    def of(cls, user: AppUser) -> Actor:
        return cls(user.id, user.name, user.role, user.department_code, tuple(user.grid_scope))

    def sees(self, case: CaseFile) -> bool:
        """A department sees only its own cases; a collector only cases in the grid cells of its scope."""
        if self.role == "department":
            return case.department_code is not None and case.department_code == self.department_code
        if self.role == "collector" and self.grid_scope:
            return any((case.grid_code or "").startswith(p) for p in self.grid_scope)
        return True


SYSTEM = Actor(None, "系统", "system")


@dataclass(frozen=True)
class Rules:
    """The centre's configuration of the loop (documented defaults)."""

    stage_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_HOURS))
    extension_quota: float = 0.03
    duplicate_radius_m: float = 50.0
    duplicate_window_days: float = 7.0
    auto_accept_confidence: float = 0.0
    auto_dispatch_codes: tuple[str, ...] = ()


def rules_from_settings(settings: Settings) -> Rules:
    """The loop's rules from the flat settings; a bad value names its setting."""
    hours: dict[str, float] = dict(DEFAULT_STAGE_HOURS)
    for part in filter(None, (p.strip() for p in settings.stage_hours.split(","))):
        stage, _, value = part.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if stage.strip() not in DEFAULT_STAGE_HOURS or not (0 < amount <= 240):
            raise ConfigError(f"stage_hours: {part!r} 应为 环节=工作时，环节为 {'、'.join(DEFAULT_STAGE_HOURS)}")
        hours[stage.strip()] = amount
    if not (0 <= settings.extension_quota <= 1):
        raise ConfigError("extension_quota 应在 0 到 1 之间")
    codes = tuple(c.strip() for c in settings.auto_dispatch_codes.split(",") if c.strip())
    return Rules(
        stage_hours=hours,
        extension_quota=settings.extension_quota,
        duplicate_radius_m=settings.duplicate_radius_m,
        duplicate_window_days=settings.duplicate_window_days,
        auto_accept_confidence=settings.auto_accept_confidence,
        auto_dispatch_codes=codes,
    )


@dataclass
class Change:
    """What an action does to a case, built by the action's handler before the compare-and-set."""

    to_state: str
    values: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    department_code: str | None = None


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    roles: frozenset[str]
    states: frozenset[str]
    requires: tuple[str, ...] = ()
    photo: bool = False


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("accept", "受理", frozenset({"operator", "system"}), frozenset({"待受理"})),
        Action("send_verify", "发核实", frozenset({"operator"}), frozenset({"待受理"})),
        Action("reject", "不予受理", frozenset({"operator"}), frozenset({"待受理"}), ("reason",)),
        Action("merge", "合并", frozenset({"operator"}), frozenset({"待受理"}), ("target",)),
        Action("verify", "核实", frozenset({"collector"}), frozenset({"待核实"}), ("confirmed",)),
        Action("self_handle", "自处理", frozenset({"collector"}), frozenset({"待核实"}), (), True),
        Action("file", "立案", frozenset({"shift_lead"}), frozenset({"待立案"}), ("level",)),
        Action("void", "作废", frozenset({"shift_lead"}), frozenset({"待立案"}), ("reason",)),
        Action("dispatch", "派遣", frozenset({"dispatcher", "system"}), frozenset({"待派遣"}), ("department",)),
        Action("redispatch", "重新派遣", frozenset({"dispatcher"}), frozenset({"处置中"}), ("department",)),
        Action("urge", "督办", frozenset({"dispatcher", "shift_lead"}), frozenset({"处置中"}), ("note",)),
        Action("sign", "签收", frozenset({"department"}), frozenset({"处置中"})),
        Action("complete", "处置完成", frozenset({"department"}), frozenset({"处置中"}), (), True),
        Action("request_return", "申请回退", frozenset({"department"}), frozenset({"处置中"}), ("reason",)),
        Action("request_extension", "申请延期", frozenset({"department"}), frozenset({"处置中"}), ("hours", "reason")),
        Action("request_suspend", "申请挂账", frozenset({"department"}), frozenset({"处置中"}), ("reason",)),
        Action("approve", "批准申请", frozenset({"shift_lead"}), frozenset({"处置中"})),
        Action("deny", "驳回申请", frozenset({"shift_lead"}), frozenset({"处置中"}), ("reason",)),
        Action("resume", "恢复挂账", frozenset({"shift_lead"}), frozenset({"挂账"})),
        Action("check", "核查", frozenset({"collector"}), frozenset({"待核查"}), ("passed",), True),
        Action("close", "结案", frozenset({"shift_lead"}), frozenset({"待结案"})),
    )
}
# the roles that act on cases; a 领导 (leader) looks at the wall and the evaluation and is in none of them
ACTING_ROLES = frozenset().union(*(a.roles for a in ACTIONS.values())) - {"system"}
# who watches the city as a whole: the 监督指挥 wall and the 综合评价 (console and API)
OVERSEERS = frozenset({"shift_lead", "leader", "admin"})


def now_utc() -> datetime:
    return datetime.now(UTC)


def _next_numbers(insert: Any) -> Any:
    counter = CaseCounter.__table__
    stmt = insert(counter).values(day=bindparam("day"), last=bindparam("n"))
    stmt = stmt.on_conflict_do_update(index_elements=["day"], set_={"last": counter.c.last + bindparam("n")})
    return stmt.returning(counter.c.last)


_NEXT_NUMBERS = {False: _next_numbers(sqlite_insert), True: _next_numbers(pg_insert)}  # built once: keyed by "is PG"


def allocate_numbers(conn: Connection, at: datetime, count: int = 1) -> list[str]:
    """The next ``count`` case numbers of the day, ``YYYYMMDD`` + 4 digits: one upsert with RETURNING, atomic on
    both databases (PostgreSQL locks the day's row; SQLite serialises writers), rolled back with the cases if they
    fail."""
    day = at.astimezone(LOCAL).strftime("%Y%m%d")
    last = conn.execute(_NEXT_NUMBERS[conn.dialect.name == "postgresql"], {"day": day, "n": count}).scalar_one()
    return [f"{day}{n:04d}" for n in range(last - count + 1, last + 1)]


@dataclass(frozen=True)
class Timer:
    """The current stage's clock: deadline, remaining working time and the light (CJ/T 315 style)."""

    stage: str
    limit: float
    unit: str
    deadline: datetime | None
    remaining_hours: float
    used: float
    light: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "limit": self.limit,
            "unit": self.unit,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "remaining_hours": round(self.remaining_hours, 2),
            "used": round(self.used, 3),
            "light": self.light,
        }


@dataclass(frozen=True)
class Collectors:
    """The active 监督员 and their grid scopes, loaded once for a batch of cases."""

    scopes: tuple[tuple[int, tuple[str, ...]], ...]

    @classmethod
    def load(cls, conn: Connection | Session) -> Collectors:
        user = AppUser.__table__.c
        rows = conn.execute(select(user.id, user.grid_scope).where(user.role == "collector", user.active))
        return cls(tuple((user_id, tuple(scope)) for user_id, scope in rows))

    def for_cell(self, grid_code: str | None) -> int | None:
        """The one whose scope covers the cell most narrowly."""
        if not grid_code:
            return None
        best: tuple[int, int] | None = None
        for user_id, scope in self.scopes:
            for prefix in scope:
                if grid_code.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), user_id)
        return best[1] if best else None


class CaseLoop:
    """The workflow over one database, calendar and rule set."""

    def __init__(
        self,
        engine: Engine,
        calendar: WorkCalendar,
        rules: Rules | None = None,
        clock: Callable[[], datetime] = now_utc,
        cell_at: Callable[[float, float], CellHit | None] | None = None,
    ) -> None:
        self.engine = engine
        self.calendar = calendar
        self.rules = rules or Rules()
        self.clock = clock
        self.cell_at = cell_at  # the grid, for a 受理员 who corrects a report's place
        # called with (session, case after the action, its event) inside the action's transaction, before commit
        self.on_event: list[Callable[[Session, CaseFile, CaseEvent], None]] = []

    # --- timers ---------------------------------------------------------------------------------------------
    def _pauses(self, case: CaseFile) -> list[tuple[datetime, datetime | None]]:
        return self._parsed_pauses(case.pauses)

    @staticmethod
    def _parsed_pauses(pauses: Sequence[Sequence[str | None]]) -> list[tuple[datetime, datetime | None]]:
        return [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None) for a, b in pauses]

    def timer(self, case: CaseFile, now: datetime | None = None) -> Timer | None:
        if case.state in TERMINAL:
            return None
        now = now or self.clock()
        stage = STAGE[case.state]
        limit = case.stage_limit + case.stage_extra_hours
        unit = case.stage_unit
        hours = self.calendar.in_hours(limit, unit)
        pauses = self._pauses(case)
        deadline = self.calendar.deadline(case.stage_started_at, limit, unit, pauses)
        light = self.calendar.light(case.stage_started_at, limit, unit, now, pauses)
        return Timer(stage, limit, unit, deadline, light.remaining_hours, light.used, light.colour) if hours else None

    def lights(
        self,
        states: Sequence[str],
        started_s: ArrayLike,
        limits: ArrayLike,
        extras: ArrayLike,
        units: Sequence[str],
        pauses: Sequence[Sequence[Sequence[str | None]]],
        now: datetime | None = None,
    ) -> NDArray[np.intp]:
        """Each case's light as an index into LIGHTS, as ``timer(case).light`` gives it ("none": no timer), for many
        cases at once from their columns (state, stage_started_at as epoch seconds, stage_limit, stage_extra_hours,
        stage_unit, pauses): the map's thousands of open cases, ~70 µs each through ``timer``."""
        now = now or self.clock()
        limit = np.asarray(limits, dtype=float) + np.asarray(extras, dtype=float)
        paused = {i: self._parsed_pauses(p) for i, p in enumerate(pauses) if p}
        codes = self.calendar.lights(started_s, limit, units, now, paused) + 1
        ended = np.fromiter((state in TERMINAL for state in states), dtype=bool, count=len(states))
        codes[ended | (limit == 0)] = 0  # no timer: an ended case, or a stage without a limit
        return codes

    def _stage_values(
        self, case: CaseFile, state: str, at: datetime, limit: float | None = None, unit: str = "工作时"
    ) -> dict[str, Any]:
        """Entering a new stage restarts the clock with that stage's limit."""
        stage = STAGE.get(state)
        if stage is None or (stage == STAGE.get(case.state) and limit is None):
            return {}
        hours = self.rules.stage_hours.get(stage, 1.0) if limit is None else limit
        return {
            "stage": stage,
            "stage_started_at": at,
            "stage_limit": hours,
            "stage_unit": unit,
            "stage_extra_hours": 0.0,
            "pauses": [],
        }

    # --- reading ----------------------------------------------------------------------------------------------
    def get(self, number: str, actor: Actor) -> tuple[CaseFile, list[CaseEvent]]:
        with Session(self.engine) as session:
            case = session.exec(select(CaseFile).where(CaseFile.number == number)).first()
            if case is None or not actor.sees(case):
                raise NotFound(f"案卷 {number} 不存在")
            events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.seq)).all()
            return case, list(events)

    def query(
        self,
        actor: Actor,
        *,
        state: str | None = None,
        code: str | None = None,
        grid: str | None = None,
        department: str | None = None,
        text: str | None = None,
        light: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[CaseFile]]:
        stmt = select(CaseFile)
        if actor.role == "department":
            stmt = stmt.where(CaseFile.department_code == actor.department_code)
        elif actor.role == "collector" and actor.grid_scope:
            stmt = stmt.where(or_(*(CaseFile.grid_code.startswith(p) for p in actor.grid_scope)))
        if state:
            stmt = stmt.where(CaseFile.state == state)
        if code:
            stmt = stmt.where(CaseFile.matter_code.startswith(code))
        if grid:
            stmt = stmt.where(CaseFile.grid_code.startswith(grid))
        if department:
            stmt = stmt.where(CaseFile.department_code == department)
        if text:
            like = f"%{text}%"
            stmt = stmt.where(
                or_(
                    CaseFile.description.like(like),
                    CaseFile.address.like(like),
                    CaseFile.number.like(like),
                    CaseFile.matter_name.like(like),
                )
            )
        with Session(self.engine) as session:
            if light:
                cases = [
                    c
                    for c in session.exec(
                        stmt.where(CaseFile.state.not_in(TERMINAL)).order_by(CaseFile.created_at.desc())
                    ).all()
                    if (t := self.timer(c)) and t.light == light
                ]
                return len(cases), cases[offset : offset + limit]
            total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
            cases = session.exec(stmt.order_by(CaseFile.created_at.desc()).offset(offset).limit(limit)).all()
            return total, list(cases)

    def available(self, case: CaseFile, actor: Actor) -> list[Action]:
        """The actions this actor may take on the case now: role and state, and what the case's own fields allow
        (签收 once, one pending request at a time, approvals only of a pending one)."""
        if not actor.sees(case):
            return []
        out = []
        for action in ACTIONS.values():
            if actor.role not in action.roles or case.state not in action.states:
                continue
            if action.name == "sign" and case.signed:
                continue
            if action.name.startswith("request_") and case.pending:
                continue
            if action.name in ("approve", "deny") and not case.pending:
                continue
            out.append(action)
        return out

    def lights_of(self, cases: Sequence[CaseFile], now: datetime | None = None) -> NDArray[np.intp]:
        """``lights`` for case rows (indices into LIGHTS)."""
        return self.lights(
            [c.state for c in cases],
            [c.stage_started_at.timestamp() for c in cases],
            [c.stage_limit for c in cases],
            [c.stage_extra_hours for c in cases],
            [c.stage_unit for c in cases],
            [c.pauses for c in cases],
            now,
        )

    def may_see_attachment(self, sha256: str, actor: Actor) -> bool:
        """Whether the attachment belongs to a case this actor sees (a department: only its own cases' photos; a
        collector: its scope's). The centre's roles see every case, and files uploaded but not yet used."""
        if actor.role not in ("department", "collector"):
            return True
        from core.models import Report

        pattern = f'%"{sha256}"%'  # in the JSON text of a report's media or an event's attachments
        with Session(self.engine) as session:
            cases = session.exec(
                select(CaseFile).where(
                    or_(
                        CaseFile.id.in_(select(Report.case_id).where(cast(Report.media, String).like(pattern))),
                        CaseFile.id.in_(
                            select(CaseEvent.case_id).where(cast(CaseEvent.attachments, String).like(pattern))
                        ),
                    )
                )
            ).all()
        return any(actor.sees(case) for case in cases)

    def worklist(self, *where: Any, order: Any, limit: int = 100) -> tuple[int, list[CaseFile]]:
        """A centre desk's list (every case, no visibility filter: for the centre's roles only): how many cases
        match, and the first ``limit`` in ``order``. Count and rows come from one session, so an arrival between them
        cannot push the oldest off the list."""
        stmt = select(CaseFile).where(*where)
        with Session(self.engine) as session:
            total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
            cases = session.exec(stmt.order_by(*order).limit(limit)).all()
        return total, list(cases)

    # --- acting -----------------------------------------------------------------------------------------------
    def act(
        self,
        number: str,
        action_name: str,
        actor: Actor,
        fields: dict[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> CaseFile:
        """Do one action, all or nothing. Raises CaseError subclasses with a Chinese message."""
        fields = dict(fields or {})
        action = ACTIONS.get(action_name)
        if action is None:
            raise NotFound(f"没有这个操作: {action_name}")
        if actor.role not in action.roles:
            raise Forbidden(f"{ROLES.get(actor.role, actor.role)}不能执行“{action.label}”")
        for name in action.requires:
            if fields.get(name) in (None, ""):
                raise Invalid(f"“{action.label}”需要填写{FIELD_LABELS.get(name, name)}（{name}）")
        if action.photo and not fields.get("attachments"):
            raise Invalid(f"“{action.label}”需要上传现场照片")
        at = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            case = session.exec(select(CaseFile).where(CaseFile.number == number)).first()
            if case is None or not actor.sees(case):
                raise NotFound(f"案卷 {number} 不存在")
            if fields.get("key") and self._already_done(session, case, actor, action.name, str(fields["key"])):
                return case  # the same submission again (a phone that resent it after the network came back)
            if expected_version is not None and expected_version != case.version:
                raise Conflict(f"案卷 {number} 已被他人更新（版本 {case.version}），请刷新后再操作")
            if case.state not in action.states:
                raise Conflict(f"案卷 {number} 当前状态为“{case.state}”，不能“{action.label}”")
            timer = self.timer(case, at)
            change = getattr(self, f"_do_{action.name}")(session, case, actor, fields, at)
            version, from_state, department = case.version, case.state, case.department_code
            values = {**self._stage_values(case, change.to_state, at), **change.values}
            values.update(state=change.to_state, version=version + 1, updated_at=at)
            if change.to_state in TERMINAL:
                values["closed_at"] = at
            result = session.execute(
                update(CaseFile).where(CaseFile.id == case.id, CaseFile.version == version).values(**values),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:
                session.rollback()
                raise Conflict(f"案卷 {number} 已被他人同时更新，请刷新后再操作")
            data = {**change.data, **self._field_record(case, fields)}
            event = CaseEvent(
                case_id=case.id,
                seq=version + 1,
                at=at,
                user_id=actor.user_id,
                actor=actor.name,
                role=actor.role,
                action=action.name,
                from_state=from_state,
                to_state=change.to_state,
                department_code=change.department_code or department,
                on_time=None if timer is None else timer.light != "red",
                note=str(fields.get("note") or fields.get("reason") or ""),
                data=data,
                attachments=list(fields.get("attachments") or []),
            )
            session.add(event)
            session.flush()
            updated = session.exec(
                select(CaseFile).where(CaseFile.id == case.id).execution_options(populate_existing=True)
            ).one()
            for hook in self.on_event:  # e.g. the departments' notices: in this transaction, or not at all
                hook(session, updated, event)
            session.commit()
        follow = self._auto_step(updated)
        return follow or updated

    def _already_done(self, session: Session, case: CaseFile, actor: Actor, action: str, key: str) -> bool:
        """Whether this actor's submission with this idempotency key is already an event of the case."""
        events = session.exec(
            select(CaseEvent.data).where(
                CaseEvent.case_id == case.id, CaseEvent.action == action, CaseEvent.actor == actor.name
            )
        ).all()
        return any((data or {}).get("key") == key for data in events)

    def _field_record(self, case: CaseFile, fields: dict[str, Any]) -> dict[str, Any]:
        """What a 监督员's phone adds to an event: the submission's idempotency key and the GPS position with its
        accuracy, flagged when it is farther from the case than the duplicate radius (was the collector there?)."""
        out: dict[str, Any] = {}
        if fields.get("key"):
            key = str(fields["key"])
            if len(key) > 64:
                raise Invalid("key 最多 64 个字符")
            out["key"] = key
        if fields.get("gps_lon") is not None or fields.get("gps_lat") is not None:
            lon, lat = _float(fields.get("gps_lon"), "gps_lon"), _float(fields.get("gps_lat"), "gps_lat")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise Invalid("GPS 位置超出经纬度范围")
            accuracy = _float(fields.get("gps_accuracy", 0) or 0, "gps_accuracy")
            position: dict[str, Any] = {"lon": lon, "lat": lat, "accuracy_m": round(max(accuracy, 0.0), 1)}
            if case.lon is not None and case.lat is not None:
                metres = distance_m(lon, lat, case.lon, case.lat)
                position |= {"distance_m": round(metres, 1), "far": metres > self.rules.duplicate_radius_m}
            out["position"] = position
        return out

    def _auto_step(self, case: CaseFile) -> CaseFile | None:
        """Configured auto-dispatch: a case of a listed code with a suggested department is dispatched at once."""
        if (
            case.state == "待派遣"
            and case.suggested_department
            and case.matter_code
            and any(case.matter_code.startswith(c) for c in self.rules.auto_dispatch_codes)
        ):
            return self.act(
                case.number, "dispatch", SYSTEM, {"department": case.suggested_department, "note": "按配置自动派遣"}
            )
        return None

    # --- the actions ------------------------------------------------------------------------------------------
    def _do_accept(self, session, case, actor, fields, at) -> Change:
        code = fields.get("matter_code") or case.matter_code
        if not code:
            raise Invalid("受理前需确定事项代码 matter_code")
        values = self._matter_values(session, code)
        data: dict[str, Any] = {"matter_code": code}
        if code != case.matter_code:
            data["suggested_code"] = case.matter_code
        if fields.get("lon") is not None or fields.get("lat") is not None:
            place = self._place_values(session, case, fields)
            values |= place
            data["place"] = {
                "from": [case.lon, case.lat, case.grid_code],
                "to": [place["lon"], place["lat"], place["grid_code"]],
            }
        return Change("待立案", values, data)

    def _place_values(self, session: Session, case: CaseFile, fields: dict[str, Any]) -> dict[str, Any]:
        """A corrected place (WGS-84): its grid cell, area class and the cell's 监督员 follow from the point."""
        lon, lat = _float(fields.get("lon"), "lon"), _float(fields.get("lat"), "lat")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise Invalid("lon、lat 超出经纬度范围")
        cell = self.cell_at(lon, lat) if self.cell_at else None
        if cell is None:
            raise Invalid("该位置不在任何单元网格内，请重新选择")
        address = str(fields.get("address") or case.address)[:200]
        return {
            "lon": lon,
            "lat": lat,
            "address": address,
            "grid_code": cell.code,
            "area_class": cell.area_class,
            "collector_id": self.collector_for(session, cell.code),
        }

    def _do_send_verify(self, session, case, actor, fields, at) -> Change:
        collector = case.collector_id or self.collector_for(session, case.grid_code)
        if collector is None:
            raise Invalid("该网格没有监督员，无法发核实")
        return Change("待核实", {"collector_id": collector}, {"collector_id": collector})

    def _do_reject(self, session, case, actor, fields, at) -> Change:
        return Change("不予受理", data={"reason": fields["reason"]})

    def _do_merge(self, session, case, actor, fields, at) -> Change:
        target = session.exec(select(CaseFile).where(CaseFile.number == str(fields["target"]))).first()
        if target is None or target.id == case.id or target.state in TERMINAL:
            raise Invalid(f"合并目标 {fields['target']} 不存在或已办结")
        return Change("已合并", {"duplicate_of": target.number}, {"target": target.number})

    def _do_verify(self, session, case, actor, fields, at) -> Change:
        confirmed = _bool(fields["confirmed"], "confirmed")
        return Change("待立案", data={"confirmed": confirmed})

    def _do_self_handle(self, session, case, actor, fields, at) -> Change:
        level1 = self._conditions(session, case.matter_code)
        if level1 and level1[0].severity != "一般":
            raise Invalid("只有一般问题可以自处理")
        return Change("待结案", data={"self_handled": True})

    def _do_file(self, session, case, actor, fields, at) -> Change:
        if not case.matter_code:
            raise Invalid("立案前需确定事项代码")
        level = _int(fields["level"], "level")
        condition = next((c for c in self._conditions(session, case.matter_code) if c.level == level), None)
        if condition is None:
            raise Invalid(f"事项 {case.matter_code} 没有第 {level} 级立案条件")
        suggestion = self.suggest_department(session, case)
        return Change(
            "待派遣",
            {"condition_level": level, "severity": condition.severity, "suggested_department": suggestion},
            {"level": level, "suggested": suggestion},
        )

    def _do_void(self, session, case, actor, fields, at) -> Change:
        return Change("已作废", data={"reason": fields["reason"]})

    def _dispatch_values(self, session, case, fields, at) -> Change:
        dept = str(fields["department"])
        if session.get(Department, dept) is None:
            raise Invalid(f"专业部门 {dept} 不存在")
        condition = next(
            (c for c in self._conditions(session, case.matter_code) if c.level == case.condition_level), None
        )
        if condition is None:
            raise Invalid("案卷没有立案条件，无法计算处置时限")
        limit = {"A": condition.limit_a, "B": condition.limit_b, "C": condition.limit_c}[case.area_class]
        values = self._stage_values(case, "处置中", at, limit, condition.unit)
        values.update(department_code=dept, signed=False, dispatch_count=case.dispatch_count + 1)
        return Change(
            "处置中",
            values,
            {"department": dept, "limit": limit, "unit": condition.unit, "suggested": case.suggested_department},
            dept,
        )

    def _do_dispatch(self, session, case, actor, fields, at) -> Change:
        return self._dispatch_values(session, case, fields, at)

    def _do_redispatch(self, session, case, actor, fields, at) -> Change:
        if str(fields["department"]) == case.department_code:
            raise Invalid("重新派遣需选择另一个专业部门")
        return self._dispatch_values(session, case, fields, at)

    def _do_urge(self, session, case, actor, fields, at) -> Change:
        return Change("处置中")

    def _do_sign(self, session, case, actor, fields, at) -> Change:
        if case.signed:
            raise Conflict("案卷已签收")
        return Change("处置中", {"signed": True})

    def _do_complete(self, session, case, actor, fields, at) -> Change:
        return Change("待核查", {"pending": None})

    def _request(self, case, kind: str, data: dict[str, Any]) -> Change:
        if case.pending:
            raise Conflict(f"已有待审批的申请（{case.pending['type']}）")
        return Change("处置中", {"pending": {"type": kind, **data}}, {"request": kind, **data})

    def _do_request_return(self, session, case, actor, fields, at) -> Change:
        return self._request(case, "回退", {"reason": fields["reason"]})

    def _do_request_extension(self, session, case, actor, fields, at) -> Change:
        hours = float(fields["hours"])
        if not (0 < hours <= 24 * 30) or math.isnan(hours):
            raise Invalid("延期时长 hours 应在 0 到 720 之间")
        return self._request(case, "延期", {"hours": hours, "reason": fields["reason"]})

    def _do_request_suspend(self, session, case, actor, fields, at) -> Change:
        return self._request(case, "挂账", {"reason": fields["reason"]})

    def _do_approve(self, session, case, actor, fields, at) -> Change:
        if not case.pending:
            raise Conflict("没有待审批的申请")
        kind = case.pending["type"]
        if kind == "回退":
            return Change("待派遣", {"pending": None, "department_code": None}, {"approved": kind})
        if kind == "挂账":
            return Change(
                "挂账", {"pending": None, "pauses": [*case.pauses, [at.isoformat(), None]]}, {"approved": kind}
            )
        over = self.quota_use(session, case.department_code, at)[2]
        values = {
            "pending": None,
            "stage_extra_hours": case.stage_extra_hours + case.pending["hours"],
            "extension_count": case.extension_count + 1,
        }
        return Change("处置中", values, {"approved": kind, "hours": case.pending["hours"], "over_quota": over})

    def _do_deny(self, session, case, actor, fields, at) -> Change:
        if not case.pending:
            raise Conflict("没有待审批的申请")
        return Change("处置中", {"pending": None}, {"denied": case.pending["type"]})

    def _do_resume(self, session, case, actor, fields, at) -> Change:
        pauses = [list(p) for p in case.pauses]
        pauses[-1][1] = at.isoformat()
        return Change("处置中", {"pauses": pauses})

    def _do_check(self, session, case, actor, fields, at) -> Change:
        if _bool(fields["passed"], "passed"):
            return Change("待结案", data={"passed": True})
        values = self._stage_values(case, "处置中", at, case.stage_limit, case.stage_unit)
        limit_data = self._last_dispatch(session, case)
        if limit_data:
            values.update(stage_limit=limit_data["limit"], stage_unit=limit_data["unit"])
        values.update(rework_count=case.rework_count + 1, signed=False)
        return Change("处置中", values, {"passed": False, "rework": True})

    def _do_close(self, session, case, actor, fields, at) -> Change:
        return Change("已结案")

    # --- helpers ----------------------------------------------------------------------------------------------
    def _conditions(self, session: Session, code: str | None) -> list[FilingCondition]:
        if not code:
            return []
        return list(
            session.exec(
                select(FilingCondition).where(FilingCondition.matter_code == code).order_by(FilingCondition.level)
            ).all()
        )

    def _matter_values(self, session: Session, code: str) -> dict[str, Any]:
        from core.models import TaxonomyItem

        item = session.exec(
            select(TaxonomyItem).where(TaxonomyItem.kind == "matter", TaxonomyItem.code == code)
        ).first()
        if item is None:
            raise Invalid(f"事项代码 {code} 不在分类代码表中")
        return {"matter_code": code, "matter_name": item.name}

    def _last_dispatch(self, session: Session, case: CaseFile) -> dict[str, Any] | None:
        event = session.exec(
            select(CaseEvent)
            .where(CaseEvent.case_id == case.id, CaseEvent.action.in_(["dispatch", "redispatch"]))
            .order_by(CaseEvent.seq.desc())
        ).first()
        return event.data if event else None

    def quota_use(self, session: Session, dept: str | None, at: datetime) -> tuple[int, int, bool]:
        """Hangzhou rule: a department may extend at most ``extension_quota`` of its cases dispatched this month.
        Returns (extensions approved this month, cases dispatched this month, whether one more goes over), so the
        值班长 sees it before approving."""
        month = at.astimezone(LOCAL).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        dispatched = session.exec(
            select(func.count(func.distinct(CaseEvent.case_id))).where(
                CaseEvent.action.in_(["dispatch", "redispatch"]),
                CaseEvent.department_code == dept,
                CaseEvent.at >= month,
            )
        ).one()
        extended = session.exec(
            select(func.count())
            .select_from(CaseEvent)
            .where(
                CaseEvent.action == "approve",
                CaseEvent.department_code == dept,
                CaseEvent.at >= month,
                CaseEvent.data["approved"].as_string() == "延期",
            )
        ).one()
        return extended, dispatched, (extended + 1) > self.rules.extension_quota * max(dispatched, 1)

    def collector_for(self, session: Session, grid_code: str | None) -> int | None:
        """The 监督员 whose scope covers the cell most narrowly."""
        return Collectors.load(session).for_cell(grid_code)

    def suggest_department(self, session: Session, case: CaseFile) -> str | None:
        return self.explain_department(session, case)[0]

    def explain_department(self, session: Session, case: CaseFile) -> tuple[str | None, str]:
        """The suggested department and why, so the 派遣员 can judge it: rule table first (longest 事项 prefix, then
        longest region prefix); for 部件 matters the owner of the nearest census component of that class."""
        code, grid = case.matter_code or "", case.grid_code or ""
        rules = [
            r
            for r in session.exec(select(RoutingRule)).all()
            if code.startswith(r.matter_prefix) and grid.startswith(r.region_prefix)
        ]
        if rules:
            best = max(rules, key=lambda r: (len(r.matter_prefix), len(r.region_prefix)))
            region = best.region_prefix or "全部"
            return best.department_code, f"派遣规则：事项前缀 {best.matter_prefix} × 区域 {region}"
        if code[:2] <= "05" and case.lon is not None and case.lat is not None:
            nearest = _nearest_component(session, code, case.lon, case.lat)
            if nearest is not None:
                return nearest.dept_code, f"最近的部件 {nearest.id} 的权属单位"
        return None, "没有匹配的派遣规则，附近也没有同类部件"


def _nearest_component(session: Session, type_code: str, lon: float, lat: float) -> Component | None:
    box = 0.003  # ~300 m
    candidates = session.exec(
        select(Component).where(
            Component.type_code == type_code,
            Component.lon.between(lon - box, lon + box),
            Component.lat.between(lat - box, lat + box),
        )
    ).all()
    k = math.cos(math.radians(lat))
    return min(candidates, key=lambda c: ((c.lon - lon) * k) ** 2 + (c.lat - lat) ** 2, default=None)


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    raise Invalid(f"{name} 应为 true 或 false")


def _float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} 应为数字") from None
    if not math.isfinite(number):
        raise Invalid(f"{name} 应为数字")
    return number


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} 应为整数") from None
