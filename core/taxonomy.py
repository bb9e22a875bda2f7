"""The code table of 管理部件 and 管理事项, with the 立案条件 each 事项 is filed under.

The default is GB/T 47678.5-2026 (``core/data/taxonomy_gbt47678_5.toml``: codes and names of the standard,
keywords and 立案条件 as Gridline's documented defaults). A city may replace it with its own table: the same
TOML format, or a CSV with ``kind,major_code,major_name,minor_code,minor_name[,keywords]`` — CJ/T 214 cities
use 4-digit codes (2 大类 + 2 小类), GB/T 47678.5 5-digit (2 + 3). An import is all or nothing.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.datafile import DataError, read_csv, read_text
from core.db import session_scope
from core.models import FilingCondition, TaxonomyItem
from nlp.classify import Label

DEFAULT_FILE = Path(__file__).parent / "data" / "taxonomy_gbt47678_5.toml"
KINDS = {
    "component": "component",
    "部件": "component",
    "matter": "matter",
    "event": "matter",
    "事件": "matter",
    "事项": "matter",
}
SEVERITIES = ("一般", "较重", "紧急")
UNITS = ("工作时", "工作日", "自然时")
CODE = re.compile(r"^\d{4,5}$")
# A city CSV carries no 立案条件: every 事项 gets this one, 8/16/24 工作时 for area classes A/B/C.
DEFAULT_CONDITION = {
    "level": 1,
    "severity": "一般",
    "condition": "经核实属实",
    "limits": [8.0, 16.0, 24.0],
    "unit": "工作时",
    "closing": "问题已处置完毕，经核查属实",
}


@dataclass
class Taxonomy:
    items: list[TaxonomyItem] = field(default_factory=list)
    conditions: list[FilingCondition] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(i.kind == kind for i in self.items)


def _condition(path: Path, where: str, code: str, raw: dict[str, Any]) -> FilingCondition:
    try:
        level, severity, unit = int(raw["level"]), str(raw["severity"]), str(raw["unit"])
        limits = [float(v) for v in raw["limits"]]
        text, closing = str(raw["condition"]), str(raw["closing"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, where, f"立案条件字段缺失或类型错误: {exc}") from None
    if severity not in SEVERITIES:
        raise DataError(path, where, f"severity {severity!r} 应为 {'、'.join(SEVERITIES)}")
    if unit not in UNITS:
        raise DataError(path, where, f"unit {unit!r} 应为 {'、'.join(UNITS)}")
    if len(limits) != 3 or any(v <= 0 for v in limits):
        raise DataError(path, where, "limits 应为 A、B、C 三类区域的正数时限")
    return FilingCondition(
        matter_code=code,
        level=level,
        severity=severity,
        condition=text,
        limit_a=limits[0],
        limit_b=limits[1],
        limit_c=limits[2],
        unit=unit,
        closing=closing,
    )


def _check_code(path: Path, where: str, code: str, major: str, seen: set[tuple[str, str]], kind: str) -> None:
    if not CODE.match(code):
        raise DataError(path, where, f"代码 {code!r} 应为 4 位 (CJ/T 214) 或 5 位 (GB/T 47678.5) 数字")
    if not code.startswith(major):
        raise DataError(path, where, f"代码 {code} 与大类 {major} 不符")
    if (kind, code) in seen:
        raise DataError(path, where, f"重复的代码 {code}")
    seen.add((kind, code))


def read_toml(path: Path) -> Taxonomy:
    try:
        doc = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(path, "", f"TOML 格式错误: {exc}") from None
    majors = {(m.get("kind"), m.get("code")): m.get("name", "") for m in doc.get("major", [])}
    taxonomy, seen = Taxonomy(), set()
    for kind in ("component", "matter"):
        for i, raw in enumerate(doc.get(kind, [])):
            where = f"[[{kind}]] 第 {i + 1} 项"
            code, name = str(raw.get("code", "")), str(raw.get("name", "")).strip()
            if not name:
                raise DataError(path, where, "缺少名称 name")
            major = code[:2]
            _check_code(path, where, code, major, seen, kind)
            if (kind, major) not in majors:
                raise DataError(path, where, f"大类 {major} 未在 [[major]] 中定义")
            item = TaxonomyItem(
                kind=kind,
                code=code,
                name=name,
                major_code=major,
                major_name=majors[(kind, major)],
                component_code=raw.get("component"),
                keywords=list(raw.get("keywords", [])),
                description=str(raw.get("description", "")),
            )
            taxonomy.items.append(item)
            if kind == "matter":
                conditions = raw.get("condition") or []
                if not conditions:
                    raise DataError(path, where, f"事项 {code} 没有立案条件")
                taxonomy.conditions += [
                    _condition(path, f"{where} 立案条件 {j + 1}", code, c) for j, c in enumerate(conditions)
                ]
    _check_components(path, taxonomy)
    return taxonomy


def _check_components(path: Path, taxonomy: Taxonomy) -> None:
    components = {i.code for i in taxonomy.items if i.kind == "component"}
    for item in taxonomy.items:
        if item.kind == "matter" and item.component_code and item.component_code not in components:
            raise DataError(path, f"事项 {item.code}", f"关联的部件 {item.component_code} 不存在")


def read_city_csv(path: Path) -> Taxonomy:
    taxonomy, seen = Taxonomy(), set()
    for row in read_csv(path, ("kind", "major_code", "major_name", "minor_code", "minor_name")):
        values = row.values
        kind = KINDS.get(values["kind"].lower())
        if kind is None:
            raise DataError(path, row.where("kind"), f"类型 {values['kind']!r} 应为 component(部件) 或 event(事件)")
        code, major, name = values["minor_code"], values["major_code"], values["minor_name"]
        if not name:
            raise DataError(path, row.where("minor_name"), "缺少名称")
        if not re.fullmatch(r"\d{2}", major):
            raise DataError(path, row.where("major_code"), f"大类代码 {major!r} 应为 2 位数字")
        try:
            _check_code(path, row.where("minor_code"), code, major, seen, kind)
        except DataError as exc:
            if "重复" in exc.problem:
                first = next(r for r in taxonomy.items if r.kind == kind and r.code == code)
                raise DataError(path, row.where("minor_code"), f"重复的代码 {code}（已见于 {first.name}）") from None
            raise
        keywords = [k.strip() for k in values.get("keywords", "").split("|") if k.strip()]
        taxonomy.items.append(
            TaxonomyItem(
                kind=kind, code=code, name=name, major_code=major, major_name=values["major_name"], keywords=keywords
            )
        )
        if kind == "matter":
            taxonomy.conditions.append(_condition(path, row.where(), code, DEFAULT_CONDITION))
    if not taxonomy.items:
        raise DataError(path, "", "没有任何代码行")
    return taxonomy


def read_file(path: Path) -> Taxonomy:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return read_toml(path)
    if suffix == ".csv":
        return read_city_csv(path)
    raise DataError(path, "", "不支持的文件类型，应为 .toml 或 .csv")


def install(engine: Engine, taxonomy: Taxonomy) -> None:
    """Replace the code table in one transaction."""
    with session_scope(engine) as session:
        session.exec(delete(FilingCondition))
        session.exec(delete(TaxonomyItem))
        session.add_all([TaxonomyItem.model_validate(i) for i in taxonomy.items])
        session.add_all([FilingCondition.model_validate(c) for c in taxonomy.conditions])


def is_installed(engine: Engine) -> bool:
    with Session(engine) as session:
        return session.exec(select(TaxonomyItem.id).limit(1)).first() is not None


@dataclass(frozen=True)
class ItemView:
    """One code with what hangs on it, for ``taxonomy show`` and the API."""

    item: TaxonomyItem
    conditions: list[FilingCondition]
    related: list[TaxonomyItem]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.item.kind,
            "code": self.item.code,
            "name": self.item.name,
            "major_code": self.item.major_code,
            "major_name": self.item.major_name,
            "component_code": self.item.component_code,
            "keywords": self.item.keywords,
            "description": self.item.description,
            "conditions": [
                {
                    "level": c.level,
                    "severity": c.severity,
                    "condition": c.condition,
                    "limits": {"A": c.limit_a, "B": c.limit_b, "C": c.limit_c},
                    "unit": c.unit,
                    "closing": c.closing,
                }
                for c in self.conditions
            ],
            "related": [{"kind": r.kind, "code": r.code, "name": r.name} for r in self.related],
        }


def show(engine: Engine, code: str) -> list[ItemView]:
    """Every item with this code (a 部件 and its 异常 事项 share one), with conditions and the related item."""
    with Session(engine) as session:
        items = session.exec(select(TaxonomyItem).where(TaxonomyItem.code == code).order_by(TaxonomyItem.kind)).all()
        views = []
        for item in items:
            conditions = (
                session.exec(
                    select(FilingCondition).where(FilingCondition.matter_code == code).order_by(FilingCondition.level)
                ).all()
                if item.kind == "matter"
                else []
            )
            related = [i for i in items if i is not item]
            views.append(ItemView(item, list(conditions), related))
        return views


def as_labels(items: Iterable[TaxonomyItem]) -> list[Label]:
    """The 管理事项 among ``items`` as the classifier's label set (nlp knows nothing of our tables)."""
    return [
        Label(code=i.code, name=i.name, major=i.major_code, component=i.component_code, keywords=tuple(i.keywords))
        for i in sorted(items, key=lambda i: i.code)
        if i.kind == "matter"
    ]


def labels(engine: Engine) -> list[Label]:
    """The installed 管理事项 as the classifier's label set."""
    with Session(engine) as session:
        return as_labels(session.exec(select(TaxonomyItem).where(TaxonomyItem.kind == "matter")).all())
