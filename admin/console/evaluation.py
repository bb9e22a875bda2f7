"""综合评价 for the 值班长, 领导 and admin: for a period, the 部门, 区域 and 岗位 tables with every indicator that
``core.evaluation`` computes, the 综合指标值 and grade, sorted on the server by the column clicked; a bar chart per
table, the 区域 grades on the grid, each row's cases, and the workbook (XLSX) and CSV of the same figures. The
figures are ``core.evaluation``'s alone: the page only orders and shows them, so it cannot disagree with the CLI."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlmodel import Session, select

from admin.console.casepage import local
from admin.console.session import allow, page, refused
from admin.responses import in_thread, json_error
from admin.runtime import RUNTIME, Runtime
from core import evaluation as ev
from core.cases import LOCAL, OVERSEERS
from core.models import CaseFile, Department

HERE = "/console/evaluation"
SCORE = "综合指标值"
DEFAULT_SORT = "-" + SCORE  # the best first: a ranking
SHOWN = 200  # cases per page of a row's list
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class BadQuery(ValueError):
    """A query value the page cannot use: a 400 with the reason."""


def chosen(query: Mapping[str, str], runtime: Runtime) -> tuple[str, str]:
    """(period, level) from the query: ``period`` as ``parse_period`` takes it, or the picker's ``from`` and ``to``
    dates; this month (Beijing time) when neither is given. BadQuery names a bad value."""
    level = query.get("level", "street").strip() or "street"
    if level not in ev.LEVELS:
        raise BadQuery(f"区域层级 {level[:20]!r} 应为 street（街道）、community（社区）或 grid（单元网格）")
    first, last = query.get("from", "").strip(), query.get("to", "").strip()
    period = query.get("period", "").strip()
    if not period and (first or last):
        period = f"{first}..{last}"
    period = period or runtime.loop.clock().astimezone(LOCAL).strftime("%Y-%m")
    try:
        ev.parse_period(period)
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    return period, level


def sort_key(raw: str, columns: set[str]) -> tuple[str, bool]:
    """(column, descending) of a ``-列名`` or ``列名`` sort; BadQuery for a column the table does not have."""
    column, descending = (raw[1:], True) if raw.startswith("-") else (raw, False)
    if column not in columns:
        raise BadQuery(f"不能按“{column[:20]}”排序：表中没有这一列")
    return column, descending


Pair = tuple[ev.Row, list[Any]]


def ordered(pairs: list[Pair], header: list[str], column: str, descending: bool) -> list[Pair]:
    """The (row, line) pairs by one column, blanks (a rate with nothing to measure) last either way; ties keep
    the evaluation's own order (by code)."""
    if column not in header:
        return pairs
    i = header.index(column)
    present = [p for p in pairs if p[1][i] is not None]
    return sorted(present, key=lambda p: p[1][i], reverse=descending) + [p for p in pairs if p[1][i] is None]


def link(query: Mapping[str, str], **changes: str) -> str:
    """This page with some query values changed."""
    return f"{HERE}?{urlencode({**query, **changes})}"


def drill(period: str, level: str, kind: str, row: ev.Row) -> str:
    params = {"period": period, "object": kind, "code": row.object_code}
    params.update({"level": level} if kind == "region" else {"role": row.role} if kind == "post" else {})
    return f"{HERE}/cases?{urlencode(params)}"


def table_view(sheet: ev.Sheet, query: Mapping[str, str], period: str, level: str) -> dict[str, Any]:
    """One object's table: its groups (one per role for 岗位, each with the indicators of that role, else one),
    sorted by the column asked for, with header links that sort again, and the bar chart's data in that order."""
    param = f"sort_{sheet.kind}"
    raw = query.get(param, "").strip() or DEFAULT_SORT
    if sheet.kind == "post":
        parts = [(ev.ROLE_NAMES[r], [row for row in sheet.rows if row.role == r]) for r in ev.ROLE_NAMES]
        parts = [(name, rows) for name, rows in parts if rows] or [("", [])]
    else:
        parts = [("", sheet.rows)]
    tables = [(name, ev.table(rows), rows) for name, rows in parts]
    column, descending = sort_key(raw, {c for _, lines, _ in tables for c in lines[0]})
    groups = []
    for name, lines, rows in tables:
        header = lines[0]
        pairs = ordered(list(zip(rows, lines[1:], strict=True)), header, column, descending)
        heads = []
        for h in header:
            now = "descending" if h == column and descending else "ascending" if h == column else ""
            flip = h if now == "descending" else "-" + h  # numbers sort biggest first on the first click
            heads.append({"name": h, "href": link(query, **{param: flip}), "sort": now})
        items = [
            {
                "row": r,
                "cells": line,
                "href": drill(period, level, sheet.kind, r),
                "label": f"{r.object_name}（{name}）" if name else r.object_name,
            }
            for r, line in pairs
        ]
        groups.append({"name": name, "heads": heads, "items": items})
    items = [item for g in groups for item in g["items"]]
    chart = {
        "title": f"{sheet.title} 综合指标值",
        "names": [i["label"] for i in items],
        "scores": [i["row"].score for i in items],
        "grades": [i["row"].grade for i in items],
        "links": [i["href"] for i in items],
        "bounds": [bound for bound, _ in ev.Weights().grades],
    }
    return {
        "kind": sheet.kind,
        "title": sheet.title,
        "groups": groups,
        "count": len(items),
        "chart": chart,
        "csv": f"{HERE}.csv?{urlencode({'period': period, 'object': sheet.kind, 'level': level})}",
    }


def evaluation_view(runtime: Runtime, query: Mapping[str, str]) -> dict[str, Any]:
    period, level = chosen(query, runtime)
    start, end = ev.parse_period(period)
    objects = ev.sheets(runtime.engine, period, level)
    shown = {"period": period, "level": level}  # the sort links keep the period and the other tables' order
    shown.update((f"sort_{k}", query[f"sort_{k}"]) for k in ev.KINDS if query.get(f"sort_{k}"))
    tables = [table_view(sheet, shown, period, level) for sheet in objects]
    regions = next(t for t in tables if t["kind"] == "region")["groups"][0]["items"]
    grades = {i["row"].object_code: [i["label"], i["row"].score, i["row"].grade, i["href"]] for i in regions}
    is_month = "." not in period
    return {
        "period": period,
        "level": level,
        "levels": ev.LEVEL_NAMES,
        "span": f"{start:%Y-%m-%d} 至 {end - timedelta(days=1):%Y-%m-%d}",
        "month": period if is_month else "",
        "first": "" if is_month else f"{start:%Y-%m-%d}",
        "last": "" if is_month else f"{end - timedelta(days=1):%Y-%m-%d}",
        "tables": tables,
        "choropleth": {"size": ev.LEVELS[level], "level": ev.LEVEL_NAMES[level], "regions": grades},
        "xlsx": f"{HERE}.xlsx?{urlencode({'period': period, 'level': level})}",
        "bands": grade_bands(),
    }


def grade_bands() -> list[tuple[str, str]]:
    """The grade bands as the legend states them (A ≥ 90 …), from the weights in force."""
    w = ev.Weights()
    bands = [(grade, f"≥ {bound:g}") for bound, grade in w.grades]
    return [*bands, (w.lowest_grade, f"< {w.grades[-1][0]:g}")]


@allow(*OVERSEERS)
async def evaluation_page(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        view = await in_thread(evaluation_view, runtime, request.query)
    except BadQuery as exc:
        return refused(request, 400, str(exc))
    return page(request, "evaluation.html", view)


# --- a row's cases ------------------------------------------------------------------------------------------------
def row_cases(runtime: Runtime, query: Mapping[str, str]) -> dict[str, Any]:
    """The cases that one row's figures count, newest first, ``SHOWN`` a page. BadQuery for a bad value; empty
    when the period has no such row."""
    period, level = chosen(query, runtime)
    kind, code, role = query.get("object", ""), query.get("code", ""), query.get("role", "")
    if kind not in ev.KINDS:
        raise BadQuery("object 应为 dept（部门）、region（区域）或 post（岗位）")
    try:
        start = int(query.get("start", "0"))
    except ValueError:
        raise BadQuery("start 应为非负整数") from None
    if start < 0:
        raise BadQuery("start 应为非负整数")
    rows = ev.evaluate(runtime.engine, period, kind, level)  # type: ignore[arg-type]
    row = next((r for r in rows if r.object_code == code and r.role == (role if kind == "post" else "")), None)
    if row is None:
        return {}
    ids = sorted(row.cases, reverse=True)[start : start + SHOWN]
    _, cases = runtime.loop.worklist(CaseFile.id.in_(ids), order=(CaseFile.id.desc(),), limit=SHOWN)
    with Session(runtime.engine) as session:
        names = {d.code: d.name for d in session.exec(select(Department))}
    lines = ev.table([row])
    here = {k: v for k, v in query.items() if k != "start"}
    return {
        "period": period,
        "title": ev.title(kind, level),  # type: ignore[arg-type]
        "row": row,
        "header": lines[0],
        "cells": lines[1],
        "total": len(row.cases),
        "start": start,
        "shown": SHOWN,
        "prev": f"{HERE}/cases?{urlencode({**here, 'start': max(start - SHOWN, 0)})}" if start else "",
        "next": f"{HERE}/cases?{urlencode({**here, 'start': start + SHOWN})}" if start + SHOWN < len(row.cases) else "",
        "back": link({"period": period, "level": level}),
        "cases": [
            {
                "case": c,
                "received": local(c.created_at),
                "department": names.get(c.department_code or "", c.department_code or ""),
            }
            for c in cases
        ],
    }


@allow(*OVERSEERS)
async def cases_page(request: web.Request) -> web.Response:
    try:
        view = await in_thread(row_cases, request.app[RUNTIME], request.query)
    except BadQuery as exc:
        return refused(request, 400, str(exc))
    if not view:
        return refused(request, 404, "该评价周期内没有这个评价对象")
    return page(request, "evaluation_cases.html", view)


# --- exports ------------------------------------------------------------------------------------------------------
def download(body: bytes, content_type: str, filename: str, charset: str | None = None) -> web.Response:
    """A file to save (an ASCII name: every browser keeps it as it is)."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return web.Response(body=body, content_type=content_type, charset=charset, headers=headers)


def workbook(runtime: Runtime, period: str, level: str) -> bytes:
    out = io.BytesIO()
    ev.write_xlsx(ev.sheets(runtime.engine, period, level), out)
    return out.getvalue()


@allow(*OVERSEERS)
async def xlsx_export(request: web.Request) -> web.Response:
    """The three objects of the period, a sheet each, as ``gridline evaluate --xlsx`` writes them."""
    runtime = request.app[RUNTIME]
    try:
        period, level = chosen(request.query, runtime)
    except BadQuery as exc:
        return json_error(400, str(exc))
    body = await in_thread(workbook, runtime, period, level)
    return download(body, XLSX, f"evaluation-{period}.xlsx")


@allow(*OVERSEERS)
async def csv_export(request: web.Request) -> web.Response:
    """One object's table as ``gridline evaluate --csv`` writes it (UTF-8 with BOM, for Excel)."""
    runtime = request.app[RUNTIME]
    kind = request.query.get("object", "")
    try:
        period, level = chosen(request.query, runtime)
        if kind not in ev.KINDS:
            raise BadQuery("object 应为 dept（部门）、region（区域）或 post（岗位）")
    except BadQuery as exc:
        return json_error(400, str(exc))
    rows = await in_thread(ev.evaluate, runtime.engine, period, kind, level)
    return download(ev.csv_bytes(rows), "text/csv", f"evaluation-{kind}-{period}.csv", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get(HERE, evaluation_page)
    app.router.add_get(HERE + "/cases", cases_page)
    app.router.add_get(HERE + ".xlsx", xlsx_export)
    app.router.add_get(HERE + ".csv", csv_export)
