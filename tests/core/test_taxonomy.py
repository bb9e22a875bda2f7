"""The code table: the default GB/T 47678.5 file, a city's own CSV, and refusals that change nothing."""

from __future__ import annotations

import csv
import io

import pytest
from sqlmodel import Session, select

from core import taxonomy
from core.datafile import DataError
from core.models import FilingCondition, TaxonomyItem
from tests.conftest import shared_path


def standard_rows() -> set[tuple[str, str, str]]:
    path = shared_path("standards", "gbt47678_5_codes.csv")
    kinds = {"component": "component", "event": "matter"}
    return {(kinds[r["kind"]], r["minor_code"], r["minor_name"]) for r in csv.DictReader(io.StringIO(path.read_text()))}


def test_default_file_has_every_code_of_the_standard():
    table = taxonomy.read_toml(taxonomy.DEFAULT_FILE)
    assert table.count("component") == 153 and table.count("matter") == 250
    assert {(i.kind, i.code, i.name) for i in table.items} == standard_rows()
    majors = {(i.kind, i.major_code): i.major_name for i in table.items}
    assert majors[("component", "01")] == "市政公用设施" and majors[("matter", "06")] == "市容环境类"


def test_default_file_has_what_the_rest_of_the_system_needs():
    table = taxonomy.read_toml(taxonomy.DEFAULT_FILE)
    by_code = {(i.kind, i.code): i for i in table.items}
    conditions: dict[str, list] = {}
    for c in table.conditions:
        conditions.setdefault(c.matter_code, []).append(c)
    for item in table.items:
        assert item.keywords, item.code
        if item.kind != "matter":
            continue
        levels = sorted(conditions[item.code], key=lambda c: c.level)
        assert [c.level for c in levels] == list(range(1, len(levels) + 1))
        for c in levels:
            assert 0 < c.limit_a <= c.limit_b <= c.limit_c, item.code
            assert c.severity != "紧急" or c.unit == "自然时", item.code
        if item.major_code <= "05":
            assert item.component_code == item.code and ("component", item.code) in by_code
    manhole = by_code[("matter", "01002")]
    assert any(c.severity == "紧急" for c in conditions["01002"]), manhole.name


def test_install_and_show(engine):
    taxonomy.install(engine, taxonomy.read_toml(taxonomy.DEFAULT_FILE))
    views = taxonomy.show(engine, "01001")
    assert [v.item.kind for v in views] == ["component", "matter"]
    matter = views[1].as_dict()
    assert matter["name"] == "供水井盖异常" and matter["conditions"] and matter["related"][0]["name"] == "供水井盖"
    assert set(matter["conditions"][0]["limits"]) == {"A", "B", "C"}
    assert taxonomy.show(engine, "99999") == []


def _counts(engine) -> tuple[int, int]:
    with Session(engine) as s:
        return len(s.exec(select(TaxonomyItem)).all()), len(s.exec(select(FilingCondition)).all())


def test_partial_cjt214_file_with_duplicate_codes_is_refused_with_the_line(engine):
    taxonomy.install(engine, taxonomy.read_toml(taxonomy.DEFAULT_FILE))
    before = _counts(engine)
    path = shared_path("standards", "cjt214_codes_partial.csv")
    with pytest.raises(DataError) as err:
        taxonomy.install(engine, taxonomy.read_file(path))
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    seen, first_dup = set(), None
    for line, r in enumerate(rows, start=2):
        key = (r["kind"], r["minor_code"])
        if key in seen:
            first_dup = line
            break
        seen.add(key)
    assert f"第 {first_dup} 行" in str(err.value) and "重复的代码" in str(err.value)
    assert _counts(engine) == before


def test_a_city_table_with_4_digit_codes_replaces_the_default(engine, tmp_path):
    rows = list(csv.DictReader(io.StringIO(shared_path("standards", "cjt214_codes_partial.csv").read_text())))
    one_city = [r for r in rows if r["source"].startswith("Beijing Chaoyang")]
    path = tmp_path / "city.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["kind", "major_code", "major_name", "minor_code", "minor_name"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in writer.fieldnames} for r in one_city)
    table = taxonomy.read_file(path)
    taxonomy.install(engine, table)
    assert _counts(engine) == (len(one_city), table.count("matter"))
    manhole = taxonomy.show(engine, "0101")[0]
    assert manhole.item.kind == "component" and manhole.item.name == "上水井盖"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "kind,major_code,major_name,minor_code,minor_name\ncomponent,01,公用设施,01A1,上水井盖\n",
            "第 2 行 字段 minor_code",
        ),
        ("kind,major_code,major_name,minor_code,minor_name\ncomponent,01,公用设施,0201,上水井盖\n", "与大类 01 不符"),
        ("kind,major_code,major_name,minor_code,minor_name\nthing,01,公用设施,0101,上水井盖\n", "第 2 行 字段 kind"),
        ("kind,major_code,minor_code\n", "缺少列"),
        ("", "文件为空"),
    ],
)
def test_malformed_city_tables_are_refused(engine, tmp_path, content, needle):
    taxonomy.install(engine, taxonomy.read_toml(taxonomy.DEFAULT_FILE))
    before = _counts(engine)
    path = tmp_path / "city.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=needle):
        taxonomy.install(engine, taxonomy.read_file(path))
    assert _counts(engine) == before


def test_toml_matter_without_conditions_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        '[[major]]\nkind = "matter"\ncode = "06"\nname = "市容环境类"\n\n'
        '[[matter]]\ncode = "06010"\nname = "暴露垃圾"\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="没有立案条件"):
        taxonomy.read_file(path)
