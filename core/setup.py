"""The centre's set-up: departments, routing rules (事项 × region → department) and the calendar days the centre
decides itself. Each change is recorded in the audit trail (``core.audit``) in its own transaction."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.audit import SetupError, commit, one_line, record
from core.cases import LOCAL, Actor
from core.config import mask_query
from core.models import CalendarDay, Department, GridCell, RoutingRule, TaxonomyItem

DEPT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,19}$")
MATTER_PREFIX = re.compile(r"^\d{2,8}$")
REGION_PREFIX = re.compile(r"^\d{6,15}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
NOTICE_FIELDS = {  # column → what the person calls it
    "webhook_url": "Webhook 地址",
    "webhook_secret": "Webhook 签名密钥",
    "email": "电子邮箱",
    "wecom_url": "企业微信机器人地址",
    "dingtalk_url": "钉钉机器人地址",
    "dingtalk_secret": "钉钉加签密钥",
    "telegram_chat_id": "Telegram 会话 ID",
}
SECRETS = {"webhook_secret": "webhook_url", "dingtalk_secret": "dingtalk_url"}  # a secret → the URL it signs for


def departments(engine: Engine) -> list[Department]:
    with Session(engine) as session:
        return list(session.exec(select(Department).order_by(Department.code)).all())


def _dept_values(dept: Department) -> dict[str, Any]:
    return {"code": dept.code, "name": dept.name, "kind": dept.kind}


def _name_free(session: Session, name: str, code: str) -> None:
    """Two departments of one name would be indistinguishable in the dispatch list."""
    other = session.exec(select(Department).where(Department.name == name, Department.code != code)).first()
    if other is not None:
        raise SetupError(f"部门名称“{name}”已被部门 {other.code} 使用", 409)


def add_department(engine: Engine, actor: Actor, code: str, name: str, kind: str = "") -> Department:
    code = code.strip().upper()
    if not DEPT_CODE.match(code):
        raise SetupError("部门代码应为 1–20 位大写字母、数字、- 或 _，以字母或数字开头")
    name, kind = one_line(name, "部门名称", 100), one_line(kind, "部门类别", 20, required=False)
    with Session(engine, expire_on_commit=False) as session:
        if session.get(Department, code) is not None:
            raise SetupError(f"部门代码 {code} 已存在", 409)
        _name_free(session, name, code)
        dept = Department(code=code, name=name, kind=kind)
        session.add(dept)
        record(session, actor, "department.add", f"部门 {code}", None, _dept_values(dept))
        commit(session, f"部门代码 {code} 已存在")
        return dept


def rename_department(engine: Engine, actor: Actor, code: str, name: str) -> bool:
    """A new name for a department (its code, which cases and users refer to, stays); False when unchanged."""
    name = one_line(name, "部门名称", 100)
    with Session(engine) as session:
        dept = session.exec(select(Department).where(Department.code == code).with_for_update()).first()
        if dept is None:
            raise SetupError(f"部门 {code[:20]} 不存在", 404)
        if dept.name == name:
            return False
        _name_free(session, name, code)
        before = _dept_values(dept)
        dept.name = name
        record(session, actor, "department.rename", f"部门 {code}", before, _dept_values(dept))
        commit(session, f"部门名称“{name}”已被使用")
        return True


# --- where a department's notices go ---------------------------------------------------------------------------


def _url(value: str, label: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SetupError(f"{label}应以 http:// 或 https:// 开头并含主机名")
    return value


def _webhook_secret(value: str) -> str:
    """Standard Webhooks secrets are ``whsec_`` and base64 of the key (as ``standardwebhooks`` decodes them)."""
    if not value.startswith("whsec_"):
        raise SetupError("Webhook 签名密钥应以 whsec_ 开头")
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise SetupError("Webhook 签名密钥 whsec_ 之后应为至少 16 字节密钥的 base64")
    return value


def _notice_value(column: str, raw: str) -> str | None:
    """One checked value; empty clears the channel."""
    value = one_line(raw, NOTICE_FIELDS[column], 500, required=False)
    if not value:
        return None
    if column.endswith("_url"):
        return _url(value, NOTICE_FIELDS[column])
    if column == "webhook_secret":
        return _webhook_secret(value)
    if column == "email" and not EMAIL.match(value):
        raise SetupError(f"电子邮箱格式不对：{value[:60]}")
    if column == "telegram_chat_id" and not TELEGRAM_CHAT.match(value):
        raise SetupError("Telegram 会话 ID 应为数字（群组为负数）或 @频道名")
    return value


def notice_view(dept: Department) -> dict[str, Any]:
    """A department's notice settings as they may be shown, logged and audited: URLs without their query values
    (a robot URL's ``key=``/``access_token=`` is its credential), secrets only as whether they are set."""
    return {
        "webhook_url": mask_query(dept.webhook_url or ""),
        "webhook_signing": bool(dept.webhook_secret),
        "email": dept.email or "",
        "wecom_url": mask_query(dept.wecom_url or ""),
        "dingtalk_url": mask_query(dept.dingtalk_url or ""),
        "dingtalk_signing": bool(dept.dingtalk_secret),
        "telegram_chat_id": dept.telegram_chat_id or "",
    }


def set_notice_channels(engine: Engine, actor: Actor, code: str, changes: dict[str, str | None]) -> bool:
    """Change where a department's notices go. ``changes`` maps columns of ``NOTICE_FIELDS`` to a new value
    (empty: clear it); a column left out, or None, stays. Clearing a URL clears its secret too. A webhook needs
    both its URL and its secret (a URL alone would never be sent to). False when nothing changed."""
    unknown = set(changes) - set(NOTICE_FIELDS)
    if unknown:
        raise ValueError(f"not a notice setting: {sorted(unknown)}")
    wanted = {column: _notice_value(column, raw) for column, raw in changes.items() if raw is not None}
    with Session(engine) as session:
        dept = session.exec(select(Department).where(Department.code == code).with_for_update()).first()
        if dept is None:
            raise SetupError(f"部门 {code[:20]} 不存在", 404)
        before = notice_view(dept)
        old = {column: getattr(dept, column) for column in NOTICE_FIELDS}
        for column, value in wanted.items():
            setattr(dept, column, value)
        for secret, url in SECRETS.items():
            if url in wanted and wanted[url] is None:
                setattr(dept, secret, None)
        if bool(dept.webhook_url) != bool(dept.webhook_secret):
            raise SetupError("Webhook 需要同时设置地址与签名密钥（whsec_…）")
        if dept.dingtalk_secret and not dept.dingtalk_url:
            raise SetupError("钉钉加签密钥需与钉钉机器人地址一起设置")
        if all(getattr(dept, column) == value for column, value in old.items()):
            return False
        record(session, actor, "department.notices", f"部门 {code}", before, notice_view(dept))
        commit(session, f"部门 {code} 刚被修改，请重试")
        return True


# --- routing rules ----------------------------------------------------------------------------------------------


def routing_rules(engine: Engine) -> list[RoutingRule]:
    with Session(engine) as session:
        rows = session.exec(select(RoutingRule)).all()
    return sorted(rows, key=lambda r: (r.matter_prefix, r.region_prefix, r.id or 0))


def _rule_values(rule: RoutingRule) -> dict[str, Any]:
    return {
        "matter_prefix": rule.matter_prefix,
        "region_prefix": rule.region_prefix,
        "department": rule.department_code,
    }


def _rule_target(rule: RoutingRule) -> str:
    return f"派遣规则 {rule.matter_prefix}×{rule.region_prefix or '全区'}→{rule.department_code}"


def add_rule(engine: Engine, actor: Actor, matter_prefix: str, region_prefix: str, department: str) -> RoutingRule:
    """A 事项 prefix × region prefix → department rule, as ``CaseLoop.suggest_department`` reads them (longest
    事项 prefix first, then longest region prefix). The same pair twice would make the choice arbitrary: refused."""
    matter_prefix, region_prefix, department = matter_prefix.strip(), region_prefix.strip(), department.strip()
    if not MATTER_PREFIX.match(matter_prefix):
        raise SetupError("事项前缀应为 2–8 位数字（大类 2 位，小类 5 位）")
    if region_prefix and not REGION_PREFIX.match(region_prefix):
        raise SetupError("区域前缀应为 6–15 位数字（区、街道、社区或网格代码），留空表示全区")
    with Session(engine, expire_on_commit=False) as session:
        if session.get(Department, department) is None:
            raise SetupError(f"专业部门 {department[:20] or '（未选择）'} 不存在")
        known = select(TaxonomyItem.id).where(TaxonomyItem.code.startswith(matter_prefix)).limit(1)
        if session.exec(known).first() is None:
            raise SetupError(f"事项前缀 {matter_prefix} 不对应任何部件或事项代码")
        cell = select(GridCell.code).where(GridCell.code.startswith(region_prefix)).limit(1)
        if region_prefix and session.exec(cell).first() is None:
            raise SetupError(f"区域前缀 {region_prefix} 不对应任何街道、社区或网格")
        same = session.exec(
            select(RoutingRule).where(
                RoutingRule.matter_prefix == matter_prefix, RoutingRule.region_prefix == region_prefix
            )
        ).first()
        if same is not None:
            raise SetupError(f"已有同一事项前缀与区域的规则（{_rule_target(same)}），请先删除它", 409)
        rule = RoutingRule(matter_prefix=matter_prefix, region_prefix=region_prefix, department_code=department)
        session.add(rule)
        record(session, actor, "routing.add", _rule_target(rule), None, _rule_values(rule))
        commit(session, "派遣规则已变化，请刷新后重试")
        return rule


def delete_rule(engine: Engine, actor: Actor, rule_id: int) -> RoutingRule:
    with Session(engine, expire_on_commit=False) as session:
        rule = session.exec(select(RoutingRule).where(RoutingRule.id == rule_id).with_for_update()).first()
        if rule is None:
            raise SetupError("这条派遣规则不存在（可能已被删除）", 404)
        record(session, actor, "routing.delete", _rule_target(rule), _rule_values(rule), None)
        session.delete(rule)
        commit(session, "派遣规则已变化，请刷新后重试")
        return rule


# --- calendar days ----------------------------------------------------------------------------------------------


def calendar_days(engine: Engine) -> dict[date, bool]:
    """The centre's days, as ``WorkCalendar.overridden`` takes them (True: working)."""
    with Session(engine) as session:
        return {d.day: d.workday for d in session.exec(select(CalendarDay)).all()}


def upcoming_days(engine: Engine, since: date) -> list[CalendarDay]:
    with Session(engine) as session:
        return list(session.exec(select(CalendarDay).where(CalendarDay.day >= since).order_by(CalendarDay.day)).all())


def _day_values(row: CalendarDay) -> dict[str, Any]:
    return {"day": row.day.isoformat(), "workday": row.workday, "note": row.note}


def _not_past(day: date) -> None:
    """Days gone by stay as they were: their working hours are already counted in cases' limits and lights."""
    if day < datetime.now(LOCAL).date():
        raise SetupError(f"日期 {day.isoformat()} 已过去，不能再修改（已计入案卷时限）")


def set_day(engine: Engine, actor: Actor, day: date, workday: bool, note: str = "") -> bool:
    """Make a day off (a local holiday) or working (a 调休); False when it was already set so."""
    note = one_line(note, "说明", 60, required=False)
    _not_past(day)
    with Session(engine) as session:
        row = session.exec(select(CalendarDay).where(CalendarDay.day == day).with_for_update()).first()
        before = _day_values(row) if row else None
        if row is None:
            row = CalendarDay(day=day, workday=workday, note=note)
            session.add(row)
        elif (row.workday, row.note) == (workday, note):
            return False
        else:
            row.workday, row.note = workday, note
        record(session, actor, "calendar.set", f"日期 {day.isoformat()}", before, _day_values(row))
        commit(session, f"日期 {day.isoformat()} 刚被另一位管理员设置，请刷新后重试")
        return True


def clear_day(engine: Engine, actor: Actor, day: date) -> None:
    """Back to the official calendar (and the settings) for that day."""
    _not_past(day)
    with Session(engine) as session:
        row = session.exec(select(CalendarDay).where(CalendarDay.day == day).with_for_update()).first()
        if row is None:
            raise SetupError(f"日期 {day.isoformat()} 没有中心设置", 404)
        record(session, actor, "calendar.delete", f"日期 {day.isoformat()}", _day_values(row), None)
        session.delete(row)
        commit(session, "日历已变化，请刷新后重试")
