"""Evaluation (CJ/T 292) over cases run through the real loop, checked against hand-counted numbers."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest

from core import evaluation
from tests.core.test_intake import case_of, incoming, rt  # noqa: F401  (the shared fixture)


def _run_cases(rt) -> None:  # noqa: F811
    p, loop = rt.people, rt.loop
    numbers = []
    for i in range(3):
        report, _ = rt.intake.submit(incoming(f"ev-{i}"))
        numbers.append(case_of(rt, report).number)
    for n in numbers:
        loop.act(n, "accept", p["op"], {"matter_code": "06010"})
        loop.act(n, "file", p["lead"], {"level": 1})
        loop.act(n, "dispatch", p["disp"], {"department": "HW"})
    a, b, c = numbers
    # a: done on time, checked, closed
    loop.act(a, "complete", p["hw"], {"attachments": ["a" * 64]})
    loop.act(a, "check", p["col"], {"passed": True, "attachments": ["b" * 64]})
    loop.act(a, "close", p["lead"])
    # b: done late (the clock moved past 4–8 working hours), then 返工 once, then done again
    rt.clock.at += timedelta(days=3)
    loop.act(b, "complete", p["hw"], {"attachments": ["a" * 64]})
    loop.act(b, "check", p["col"], {"passed": False, "attachments": ["b" * 64]})
    loop.act(b, "complete", p["hw"], {"attachments": ["a" * 64]})
    # c: returned by HW and dispatched again to PS
    loop.act(c, "request_return", p["hw"], {"reason": "非本部门"})
    loop.act(c, "approve", p["lead"])
    loop.act(c, "dispatch", p["disp"], {"department": "PS"})


def test_department_indicators(rt):  # noqa: F811
    _run_cases(rt)
    rows = {r.object_code: r for r in evaluation.evaluate(rt.engine, "2026-11", "dept")}
    hw = rows["HW"].indicators
    # HW: dispatched a, b, c (3); completed a, b (2 cases); complete events: a on time, b late, b again on time
    # (the 返工 restarts the clock) → 2 of 3 on time; one 返工
    assert (hw["应处置数"], hw["处置数"], hw["返工数"]) == (3, 2, 1)
    assert hw["处置率"] == 66.7 and hw["按时处置率"] == 66.7 and hw["返工率"] == 33.3
    # 综合 = 100×10 % (3 dispatches: band ≤ 50) + 66.7×30 % + 66.7×30 % + (100 − 33.3)×30 % = 70.0
    assert rows["HW"].score == 70.0 and rows["HW"].grade == "C"
    assert rows["PS"].indicators["应处置数"] == 1


def test_region_and_post_indicators(rt, tmp_path):  # noqa: F811
    _run_cases(rt)
    (street,) = [r for r in evaluation.evaluate(rt.engine, "2026-11", "region", level="street")]
    assert street.indicators["立案数"] == 3 and street.indicators["结案数"] == 1
    assert street.indicators["监督举报率"] == 0.0  # all three were public reports
    posts = {r.object_name: r for r in evaluation.evaluate(rt.engine, "2026-11", "post")}
    # a, b and the corrective c → PS were right; c → HW was returned: 3 of 4
    assert posts["disp"].indicators["派遣数"] == 4 and posts["disp"].indicators["准确派遣率"] == 75.0
    assert posts["col"].indicators["漏报数"] == 3
    assert posts["lead"].indicators["立案数"] == 3
    path = tmp_path / "posts.csv"
    evaluation.write_csv(list(posts.values()), path)
    with path.open(encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert {row["对象名称"] for row in table} == set(posts) and "综合指标值" in table[0]


@pytest.mark.parametrize("period", ["2026-13", "11/2026", "2026-11-30..2026-11-01", ""])
def test_bad_periods_are_refused(rt, period):  # noqa: F811
    with pytest.raises(ValueError, match="评价周期"):
        evaluation.evaluate(rt.engine, period, "dept")


def test_nothing_outside_the_period(rt):  # noqa: F811
    _run_cases(rt)
    assert evaluation.evaluate(rt.engine, "2026-10", "dept") == []
