"""Working time with the real 2026 calendar (chinese-calendar): 国庆 holidays 10-01…10-07 with 10-03/04 a weekend,
and Saturday 2026-10-10 a 调休 working day."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.worktime import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()


def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def test_working_days_follow_the_official_calendar():
    assert CAL.is_workday(date(2026, 10, 10))  # Saturday, 调休
    assert not CAL.is_workday(date(2026, 10, 5))  # Monday, 国庆
    assert not CAL.is_workday(date(2026, 10, 11))  # Sunday
    assert CAL.day_hours == 7.5


@pytest.mark.parametrize(
    ("start", "amount", "unit", "deadline"),
    [
        (t(10, 9, 16, 30), 4, "工作时", t(10, 10, 11, 30)),  # Friday late → the 调休 Saturday morning
        (t(10, 10, 17, 0), 4, "工作时", t(10, 12, 12, 0)),  # Saturday evening → over Sunday, ends at a window end
        (t(9, 30, 16, 0), 2, "工作时", t(10, 8, 9, 0)),  # the whole 国庆 block is skipped
        (t(10, 12, 12, 30), 1, "工作时", t(10, 12, 14, 30)),  # starting at lunch: counting starts at 13:30
        (t(10, 11, 10, 0), 1, "工作日", t(10, 12, 17, 30)),  # a Sunday start: one working day is Monday
        (t(10, 3, 22, 0), 5, "自然时", t(10, 4, 3, 0)),  # natural hours ignore calendars
    ],
)
def test_deadlines(start, amount, unit, deadline):
    assert CAL.add(start, amount, unit) == deadline


def test_elapsed_is_the_inverse_of_add():
    rng = random.Random(3)
    for _ in range(200):
        start = t(1, 1, 0) + timedelta(minutes=rng.randrange(0, 360 * 24 * 60))
        hours = rng.uniform(0.1, 60)
        end = CAL.add(start, hours, "工作时")
        assert CAL.elapsed(start, end, "工作时") == pytest.approx(hours, abs=1e-6)


def test_pauses_stop_the_clock_once_even_when_they_overlap():
    start = t(11, 2, 9, 0)  # Monday
    pauses = [(t(11, 2, 10, 0), t(11, 2, 11, 0)), (t(11, 2, 10, 30), t(11, 2, 11, 30))]
    assert CAL.elapsed(start, t(11, 2, 12, 0), "工作时", pauses) == pytest.approx(1.5)
    assert CAL.deadline(start, 2, "工作时", pauses) == t(11, 2, 14, 0)
    assert CAL.elapsed(start, t(11, 2, 12, 0), "工作时", [(t(11, 2, 10, 0), None)]) == pytest.approx(1.0)


# 2 working hours from 8:30: 80 % is at 10:06, 100 % at 10:30
@pytest.mark.parametrize(("now", "colour"), [((11, 2, 10, 5), "green"), ((11, 2, 10, 6), "yellow"),
                                              ((11, 2, 10, 29), "yellow"), ((11, 2, 10, 30), "red")])
def test_light_thresholds(now, colour):
    start = t(11, 2, 8, 30)
    light = CAL.light(start, 2, "工作时", t(*now))
    assert light.colour == colour


def test_local_overrides_win_and_uncovered_years_say_so():
    cal = WorkCalendar.from_config({"extra_holidays": "2026-11-02", "extra_workdays": "2026-11-01",
                                    "work_windows": "09:00-12:00,14:00-17:00"})
    assert not cal.is_workday(date(2026, 11, 2)) and cal.is_workday(date(2026, 11, 1)) and cal.day_hours == 6
    assert cal.coverage_warning(2026) is None
    assert "2030" in cal.coverage_warning(2030) and cal.is_workday(date(2030, 1, 7))


@pytest.mark.parametrize(("config", "needle"), [({"work_windows": "9-12"}, "work_windows"),
                                                ({"work_windows": "14:00-12:00"}, "工作时段"),
                                                ({"extra_holidays": "2026/12/31"}, "extra_holidays")])
def test_bad_configuration_is_refused(config, needle):
    with pytest.raises(ValueError, match=needle):
        WorkCalendar.from_config(config)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="时区"):
        CAL.add(datetime(2026, 11, 2, 9), 1, "工作时")
