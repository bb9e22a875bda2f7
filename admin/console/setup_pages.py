"""The 管理员's pages: accounts, departments and routing rules, the working calendar, and the audit trail of all
of it. Every change goes through a ``core.users`` / ``core.audit`` function that takes the acting admin and writes
the change's audit event in the same transaction; a refused change (``SetupError``) is shown with ``refused`` and
nothing is written."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import chinese_calendar
from aiohttp import web
from sqlmodel import Session, select

from admin.console.session import Handler, actor, allow, done, form, page, refused
from admin.responses import in_thread
from admin.runtime import RUNTIME, Runtime
from core import audit, notices, setup, users
from core.audit import ACTIONS, SetupError
from core.cases import LOCAL, ROLES
from core.models import AuditEvent, GridCell, Region, TaxonomyItem

PER_PAGE = 50
CALENDAR_DAYS = 60
WEEKDAYS = "一二三四五六日"
HOLIDAY_NAMES = {h.value: h.chinese for h in chinese_calendar.Holiday}
FIELD_LABELS = {
    "name": "名称",
    "role": "角色",
    "department": "部门",
    "scope": "范围",
    "active": "启用",
    "ended_sessions": "结束的登录会话",
    "code": "代码",
    "kind": "类别",
    "matter_prefix": "事项前缀",
    "region_prefix": "区域前缀",
    "day": "日期",
    "workday": "工作日",
    "note": "说明",
    **setup.NOTICE_FIELDS,
    "webhook_signing": "Webhook 签名密钥已设置",
    "dingtalk_signing": "钉钉加签密钥已设置",
    "channel": "渠道",
    "recipient": "接收方",
    "case": "案卷",
    "event": "事件",
    "status": "状态",
}
NOTICE_CHANNELS = {  # a form's channel → its columns; its 停用 box clears them
    "webhook": ("webhook_url", "webhook_secret"),
    "email": ("email",),
    "wecom": ("wecom_url",),
    "dingtalk": ("dingtalk_url", "dingtalk_secret"),
    "telegram": ("telegram_chat_id",),
}
SCOPE_SEPARATORS = re.compile(r"[\s,，、;；]+")


def changes(handler: Handler) -> Handler:
    """A refused change (a bad field, a clash, nothing there) becomes the refusal page; nothing was written."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SetupError as exc:
            return refused(request, exc.status, exc.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def field(request: web.Request, name: str) -> str:
    return str(form(request).get(name, ""))


def number(raw: str, what: str) -> int:
    """An id from the page's URL; anything else is a 404 (a hand-made URL)."""
    if not raw.isdigit() or len(raw) > 12:
        raise SetupError(f"没有这个{what}", 404)
    return int(raw)


async def change(request: web.Request, func: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a core change as the signed-in admin, off the event loop."""
    return await in_thread(partial(func, request.app[RUNTIME].engine, actor(request), *args, **kw))


def today() -> date:
    return datetime.now(LOCAL).date()


# --- users ------------------------------------------------------------------------------------------------------


def scope_codes(raw: str) -> list[str]:
    return [code.upper() for code in SCOPE_SEPARATORS.split(raw.strip()) if code]


def assignment(request: web.Request) -> dict[str, Any]:
    """Role, department and scope as the form gives them (``core.users`` checks them)."""
    return {
        "role": field(request, "role"),
        "department": field(request, "department").strip() or None,
        "scope": scope_codes(field(request, "scope")),
    }


@allow("admin")
async def users_page(request: web.Request) -> web.Response:
    engine = request.app[RUNTIME].engine
    people, depts = await in_thread(users.staff, engine), await in_thread(setup.departments, engine)
    names = {d.code: d.name for d in depts}
    rows = [
        {
            "user": u,
            "role": ROLES.get(u.role, u.role),
            "department": f"{names.get(u.department_code, '')}（{u.department_code}）" if u.department_code else "",
            "scope": "、".join(u.grid_scope),
        }
        for u in people
    ]
    roles = [(r, ROLES[r]) for r in users.STAFF_ROLES]
    return page(
        request,
        "admin_users.html",
        {"rows": rows, "roles": roles, "departments": depts, "password_length": users.PASSWORD_LENGTH},
    )


@allow("admin")
@changes
async def user_add(request: web.Request) -> web.StreamResponse:
    name = field(request, "name").strip()
    await change(request, users.create_user, name, **assignment(request), password=field(request, "password"))
    done("/console/admin/users", f"已新增用户 {name}")


@allow("admin")
@changes
async def user_update(request: web.Request) -> web.StreamResponse:
    user_id = number(request.match_info["id"], "用户")
    changed = await change(request, users.update_user, user_id, **assignment(request))
    done("/console/admin/users", "已保存用户的角色、部门与范围" if changed else "没有改变")


@allow("admin")
@changes
async def user_password(request: web.Request) -> web.StreamResponse:
    user_id = number(request.match_info["id"], "用户")
    name = await change(request, users.reset_password, user_id, field(request, "password"))
    done("/console/admin/users", f"已重置 {name} 的密码，其登录会话已结束")


@allow("admin")
@changes
async def user_active(request: web.Request) -> web.StreamResponse:
    user_id = number(request.match_info["id"], "用户")
    wanted = field(request, "active")
    if wanted not in ("0", "1"):
        raise SetupError("启用状态应为 1（启用）或 0（停用）")
    changed = await change(request, users.set_active, user_id, wanted == "1")
    label = "启用" if wanted == "1" else "停用"
    done("/console/admin/users", f"已{label}该用户" if changed else f"该用户原已{label}")


# --- departments and routing rules ------------------------------------------------------------------------------


def routing_view(runtime: Runtime) -> dict[str, Any]:
    """Departments and rules, each rule with the names of its 事项 and region so a person can read it."""
    depts, rules = setup.departments(runtime.engine), setup.routing_rules(runtime.engine)
    matters = {r.matter_prefix for r in rules}
    regions = {r.region_prefix for r in rules if r.region_prefix}
    with Session(runtime.engine) as session:
        items = session.exec(select(TaxonomyItem).where(TaxonomyItem.code.in_(matters))).all()
        majors = session.exec(select(TaxonomyItem.major_code, TaxonomyItem.major_name).distinct()).all()
        places = session.exec(select(Region.code, Region.name).where(Region.code.in_(regions))).all()
        cells = session.exec(select(GridCell.code, GridCell.name).where(GridCell.code.in_(regions))).all()
    matter_names = {**dict(majors), **{i.code: i.name for i in items}}
    region_names = {**dict(cells), **dict(places)}
    dept_names = {d.code: d.name for d in depts}
    dead = notices.dead_letters(runtime.engine)
    for row in dead:
        row["event_name"] = notices.EVENT_NAMES.get(row["event"], row["event"])
        row["channel_name"] = notices.CHANNEL_NAMES.get(row["channel"], row["channel"])
        row["department"] = "值班长" if row["recipient"] == notices.SHIFT_LEAD else dept_names.get(row["recipient"], "")
    return {
        "departments": depts,
        "notice": {
            d.code: {**setup.notice_view(d), "channels": [notices.CHANNEL_NAMES[c] for c in notices.channels_of(d)]}
            for d in depts
        },
        "dead": dead,
        "rules": [
            {
                "rule": r,
                "matter": matter_names.get(r.matter_prefix, ""),
                "region": region_names.get(r.region_prefix, "") if r.region_prefix else "全区",
                "department": dept_names.get(r.department_code, r.department_code),
            }
            for r in rules
        ],
    }


@allow("admin")
async def departments_page(request: web.Request) -> web.Response:
    return page(request, "admin_departments.html", await in_thread(routing_view, request.app[RUNTIME]))


@allow("admin")
@changes
async def department_add(request: web.Request) -> web.StreamResponse:
    dept = await change(request, setup.add_department, field(request, "code"), field(request, "name"),
                        field(request, "kind"))  # fmt: skip
    done("/console/admin/departments", f"已新增部门 {dept.name}（{dept.code}）")


@allow("admin")
@changes
async def department_rename(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    changed = await change(request, setup.rename_department, code, field(request, "name"))
    done("/console/admin/departments", f"已将部门 {code} 更名" if changed else "没有改变")


@allow("admin")
@changes
async def department_notices(request: web.Request) -> web.StreamResponse:
    """Where a department's notices go. Fields left empty stay as they are (a secret is never shown again to be
    resubmitted); a channel's 停用 box clears it."""
    code = request.match_info["code"]
    wanted: dict[str, str | None] = {}
    for channel, columns in NOTICE_CHANNELS.items():
        clear = field(request, f"clear_{channel}") == "1"
        for column in columns:
            value = field(request, column).strip()
            if clear or value:
                wanted[column] = "" if clear else value
    changed = bool(wanted) and await change(request, setup.set_notice_channels, code, wanted)
    done("/console/admin/departments", f"已保存部门 {code} 的通知设置" if changed else "没有改变")


@allow("admin")
@changes
async def notice_resend(request: web.Request) -> web.StreamResponse:
    values = await change(request, notices.resend, number(request.match_info["id"], "通知"))
    done("/console/admin/departments", f"已将案卷 {values['case'] or '—'} 的这条通知重新排队发送")


@allow("admin")
@changes
async def rule_add(request: web.Request) -> web.StreamResponse:
    rule = await change(request, setup.add_rule, field(request, "matter_prefix"), field(request, "region_prefix"),
                        field(request, "department"))  # fmt: skip
    done("/console/admin/departments", f"已新增派遣规则：{rule.matter_prefix} → {rule.department_code}")


@allow("admin")
@changes
async def rule_delete(request: web.Request) -> web.StreamResponse:
    rule = await change(request, setup.delete_rule, number(request.match_info["id"], "派遣规则"))
    done("/console/admin/departments", f"已删除派遣规则：{rule.matter_prefix} → {rule.department_code}")


# --- the working calendar ---------------------------------------------------------------------------------------


def official_reason(day: date) -> str:
    """Why chinese-calendar makes a day what it is (a holiday, a 调休 working weekend, a weekend), for display."""
    try:
        holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return "法定安排未收录，按周一至周五"
    festival = HOLIDAY_NAMES.get(name, name or "")
    if holiday:
        return f"{festival}假期" if festival else "周末"
    return f"{festival}调休上班" if festival else ""


def calendar_view(runtime: Runtime) -> dict[str, Any]:
    start = today()
    calendar = runtime.loop.calendar
    overrides = {d.day: d for d in setup.upcoming_days(runtime.engine, start)}
    days = []
    for offset in range(CALENDAR_DAYS):
        day = start + timedelta(days=offset)
        if day in overrides:
            reason = "中心设置" + (f"：{overrides[day].note}" if overrides[day].note else "")
        elif day in calendar.extra_holidays or day in calendar.extra_workdays:
            reason = "配置文件（extra_holidays / extra_workdays）"
        else:
            reason = official_reason(day)
        days.append({"day": day, "weekday": WEEKDAYS[day.weekday()], "working": calendar.is_workday(day),
                     "reason": reason, "centre": day in overrides})  # fmt: skip
    warnings = sorted({w for d in days if (w := calendar.coverage_warning(d["day"].year))})
    return {"days": days, "overrides": list(overrides.values()), "warnings": warnings, "today": start}


@allow("admin")
async def calendar_page(request: web.Request) -> web.Response:
    return page(request, "admin_calendar.html", await in_thread(calendar_view, request.app[RUNTIME]))


def day_of(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise SetupError(f"日期应为 YYYY-MM-DD，得到“{raw[:20]}”") from None


async def after_calendar_change(request: web.Request, message: str) -> None:
    """This process's timers follow at once; other processes read the calendar when they start."""
    await in_thread(request.app[RUNTIME].reload_calendar)
    done("/console/admin/calendar", message)


@allow("admin")
@changes
async def day_set(request: web.Request) -> web.StreamResponse:
    day, kind = day_of(field(request, "day")), field(request, "kind")
    if kind not in ("off", "work"):
        raise SetupError("类型应为休息日或工作日")
    changed = await change(request, setup.set_day, day, kind == "work", field(request, "note"))
    label = "工作日" if kind == "work" else "休息日"
    await after_calendar_change(request, f"已将 {day.isoformat()} 设为{label}" if changed else "没有改变")


@allow("admin")
@changes
async def day_clear(request: web.Request) -> web.StreamResponse:
    day = day_of(request.match_info["day"])
    await change(request, setup.clear_day, day)
    await after_calendar_change(request, f"已取消 {day.isoformat()} 的中心设置，恢复法定安排")


# --- the audit trail --------------------------------------------------------------------------------------------


def shown(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if key == "region_prefix" and value == "":
        return "全区"
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, list):
        return "、".join(map(str, value))
    return ROLES.get(value, value) if key == "role" else str(value)


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An event as a person reads it: for a change, only the fields that differ (before → after)."""
    before, after = event.data.get("before") or {}, event.data.get("after") or {}
    keys = list(dict.fromkeys([*before, *after]))
    if before and after:
        keys = [k for k in keys if before.get(k) != after.get(k)]
    return {
        "at": event.at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"),
        "actor": event.actor,
        "role": ROLES.get(event.role, event.role),
        "action": ACTIONS.get(event.action, event.action),
        "target": event.target,
        "values": [
            {
                "label": FIELD_LABELS.get(k, k),
                "before": shown(k, before[k]) if k in before else "",
                "after": shown(k, after[k]) if k in after else "",
            }
            for k in keys
        ],
    }


@allow("admin")
async def audit_page(request: web.Request) -> web.Response:
    raw = request.query.get("page", "1")
    current = max(int(raw), 1) if raw.isdigit() and len(raw) < 7 else 1
    rows, total = await in_thread(audit.events, request.app[RUNTIME].engine, current, PER_PAGE)
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return page(
        request,
        "admin_audit.html",
        {"events": [event_view(e) for e in rows], "page_no": current, "pages": pages, "total": total},
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console/admin/users", users_page)
    r.add_post("/console/admin/users", user_add)
    r.add_post("/console/admin/users/{id}/update", user_update)
    r.add_post("/console/admin/users/{id}/password", user_password)
    r.add_post("/console/admin/users/{id}/active", user_active)
    r.add_get("/console/admin/departments", departments_page)
    r.add_post("/console/admin/departments", department_add)
    r.add_post("/console/admin/departments/{code}/rename", department_rename)
    r.add_post("/console/admin/departments/{code}/notices", department_notices)
    r.add_post("/console/admin/notices/{id}/resend", notice_resend)
    r.add_post("/console/admin/routing", rule_add)
    r.add_post("/console/admin/routing/{id}/delete", rule_delete)
    r.add_get("/console/admin/calendar", calendar_page)
    r.add_post("/console/admin/calendar", day_set)
    r.add_post("/console/admin/calendar/{day}/delete", day_clear)
    r.add_get("/console/admin/audit", audit_page)
