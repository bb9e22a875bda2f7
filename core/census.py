"""专业部门 and the 部件 census: who owns which component where (the basis of 部件 routing)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.datafile import DataError, parse_float, read_csv
from core.db import session_scope
from core.grid import GridIndex
from core.models import Component, Department, TaxonomyItem

COMPONENT_ID = re.compile(r"^\d{17}$")
STATES = ("完好", "破损", "丢失", "废弃", "移除", "占用")


@dataclass
class CensusImport:
    departments: int = 0
    components: int = 0
    outside_grid: int = 0


def import_census(engine: Engine, departments: Path, components: Path) -> CensusImport:
    """Replace departments and components from two CSV files, all or nothing."""
    depts = []
    seen: set[str] = set()
    for row in read_csv(departments, ("code", "name")):
        code, name = row.values["code"], row.values["name"]
        if not code or not name:
            raise DataError(departments, row.where(), "code 与 name 不能为空")
        if code in seen:
            raise DataError(departments, row.where("code"), f"重复的部门代码 {code}")
        seen.add(code)
        depts.append(Department(code=code, name=name, kind=row.values.get("kind", "")))
    with Session(engine) as session:
        types = set(session.exec(select(TaxonomyItem.code).where(TaxonomyItem.kind == "component")).all())
    comps, ids = [], set()
    for row in read_csv(components, ("id", "type_code", "dept_code", "lon", "lat")):
        v = row.values
        if not COMPONENT_ID.match(v["id"]):
            raise DataError(components, row.where("id"), f"部件标识码 {v['id']!r} 应为 17 位数字")
        if v["id"] in ids:
            raise DataError(components, row.where("id"), f"重复的部件标识码 {v['id']}")
        ids.add(v["id"])
        if v["id"][6:11] != v["type_code"]:
            raise DataError(components, row.where("type_code"), f"标识码第 7–11 位与部件类型 {v['type_code']} 不符")
        if types and v["type_code"] not in types:
            raise DataError(components, row.where("type_code"), f"未知的部件类型 {v['type_code']}")
        if v["dept_code"] not in seen:
            raise DataError(components, row.where("dept_code"), f"部门 {v['dept_code']} 不在部门表中")
        state = v.get("state") or "完好"
        if state not in STATES:
            raise DataError(components, row.where("state"), f"状态 {state!r} 应为 {'、'.join(STATES)}")
        comps.append(
            Component(
                id=v["id"],
                type_code=v["type_code"],
                dept_code=v["dept_code"],
                lon=parse_float(components, row, "lon"),
                lat=parse_float(components, row, "lat"),
                state=state,
            )
        )
    result = CensusImport(departments=len(depts), components=len(comps))
    result.outside_grid = GridIndex.load(engine).assign(comps)
    with session_scope(engine) as session:
        session.exec(delete(Component))
        session.exec(delete(Department))
        session.add_all(depts)
        session.flush()
        session.add_all(comps)
    return result
