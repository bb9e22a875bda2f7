"""The lights of many stage clocks at once (``WorkCalendar.lights``, ``CaseLoop.lights``) are the ones the single
clock gives (``WorkCalendar.light``, ``CaseLoop.timer``): every unit, extensions, closed, open and overlapping pauses,
no limit, ended cases, over the 2026 国庆 holidays and a 调休 Saturday."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.cases import LIGHTS, CaseLoop
from core.worktime import COLOURS, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
UNITS = ("工作时", "工作日", "自然时")


def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def random_stage(rng: random.Random, now: datetime) -> SimpleNamespace:
    """A case's stage columns as the database keeps them: limit and extension apart, pauses as ISO text."""
    started = now - timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
    pauses: list[list[str | None]] = []
    for _ in range(rng.choice((0, 0, 0, 1, 2, 3))):
        a = started + timedelta(minutes=rng.randrange(-600, 30 * 24 * 60))  # some begin before the stage
        b = None if rng.random() < 0.2 else a + timedelta(minutes=rng.randrange(0, 5 * 24 * 60))  # some after now
        pauses.append([a.isoformat(), None if b is None else b.isoformat()])
    return SimpleNamespace(
        state=rng.choice(("待受理", "待派遣", "处置中", "挂账", "待核查", "已结案")),
        stage_started_at=started,
        stage_limit=rng.choice((0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0, 100.0, 300.0)),
        stage_extra_hours=rng.choice((0.0, 0.0, 0.0, 2.0, 8.0)),
        stage_unit=rng.choice(UNITS),
        pauses=pauses,
    )


@pytest.mark.parametrize("now", [t(10, 9, 10, 17), t(11, 20, 15, 3), t(10, 5, 20, 0), t(10, 10, 12, 45)])
def test_the_batch_gives_each_case_the_light_of_its_timer(now):
    rng = random.Random(now.day)
    loop = CaseLoop(None, CAL, clock=lambda: now)  # type: ignore[arg-type]  # timers need no database
    cases = [random_stage(rng, now) for _ in range(600)]
    codes = loop.lights_of(cases)
    expected = [timer.light if (timer := loop.timer(c)) else "none" for c in cases]  # type: ignore[arg-type]
    assert [LIGHTS[k] for k in codes] == expected
    assert set(expected) == set(LIGHTS)


def test_the_batch_gives_each_clock_the_light_of_light_for_any_limit_and_unit():
    rng = random.Random(7)
    now = t(10, 12, 9, 41).astimezone(UTC)  # any time zone: the calendar counts in its own
    clocks = []
    for _ in range(800):
        start = now - timedelta(seconds=rng.randrange(0, 30 * 24 * 3600))
        spans = [(start + timedelta(hours=rng.uniform(-5, 400)), None) for _ in range(rng.choice((0, 0, 1, 2)))]
        pauses = [(a, None if rng.random() < 0.3 else a + timedelta(hours=rng.uniform(0, 48))) for a, _ in spans]
        unit = rng.choice((*UNITS, "其他"))  # a unit the calendar does not know counts as light counts it
        clocks.append((start, rng.choice((-1.0, 0.0, rng.uniform(0.1, 200))), unit, pauses))
    codes = CAL.lights(
        [s.timestamp() for s, _, _, _ in clocks],
        [a for _, a, _, _ in clocks],
        [u for _, _, u, _ in clocks],
        now,
        {i: p for i, (_, _, _, p) in enumerate(clocks) if p},
    )
    assert [COLOURS[k] for k in codes] == [CAL.light(s, a, u, now, p).colour for s, a, u, p in clocks]  # type: ignore[arg-type]


# 2 working hours from 8:30: 80 % is at 10:06, 100 % at 10:30, exactly
@pytest.mark.parametrize(
    ("now", "colour"),
    [((11, 2, 10, 5), "green"), ((11, 2, 10, 6), "yellow"), ((11, 2, 10, 29), "yellow"), ((11, 2, 10, 30), "red")],
)
def test_the_batch_has_the_thresholds_of_light(now, colour):
    start = t(11, 2, 8, 30)
    (code,) = CAL.lights([start.timestamp()], [2.0], ["工作时"], t(*now))
    assert COLOURS[code] == CAL.light(start, 2, "工作时", t(*now)).colour == colour


def test_the_working_clock_counts_what_working_hours_counts():
    rng = random.Random(11)
    first, last = t(9, 25, 0), t(10, 20, 0)
    clock = CAL.working_clock(first.timestamp(), last.timestamp())
    for _ in range(300):
        a = first + timedelta(seconds=rng.randrange(0, 25 * 24 * 3600))
        b = a + timedelta(seconds=rng.randrange(0, 5 * 24 * 3600))
        b = min(b, last)
        counted = clock(np.array([a.timestamp(), b.timestamp()]))
        assert (counted[1] - counted[0]) / 3600 == pytest.approx(CAL.working_hours(a, b), abs=1e-9)


def test_no_clocks_no_lights_and_naive_now_is_refused():
    assert CAL.lights([], [], [], t(11, 2, 9)).shape == (0,)
    with pytest.raises(ValueError, match="时区"):
        CAL.lights([t(11, 2, 9).timestamp()], [1.0], ["工作时"], datetime(2026, 11, 2, 10))
