"""Working time (CJ/T 315): 工作时 count only inside the working windows of working days; 自然时 count always.

Working days follow chinese-calendar (法定节假日 off, 调休 weekend days on), then the centre's own overrides. For a
year chinese-calendar does not know yet, Monday–Friday plus the overrides is used, and ``coverage_warning`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

Unit = Literal["工作时", "工作日", "自然时"]
Pause = tuple[datetime, datetime | None]
DEFAULT_WINDOWS = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))


@dataclass(frozen=True)
class Light:
    used: float
    remaining_hours: float
    colour: Literal["green", "yellow", "red"]


@lru_cache(maxsize=4096)
def _official_workday(day: date) -> bool | None:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None


class WorkCalendar:
    def __init__(
        self,
        windows: Sequence[tuple[time, time]] = DEFAULT_WINDOWS,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        tz: str = "Asia/Shanghai",
    ) -> None:
        previous = None
        for start, end in windows:
            if not start < end or (previous is not None and start < previous):
                raise ValueError("工作时段应按时间先后排列、互不重叠，且开始早于结束")
            previous = end
        if not windows:
            raise ValueError("至少需要一个工作时段")
        self.windows = tuple(windows)
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        self.tz = ZoneInfo(tz)
        self.day_hours = sum(_hours(s, e) for s, e in self.windows)

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> WorkCalendar:
        windows = []
        for part in filter(None, (p.strip() for p in config.get("work_windows", "").split(","))):
            try:
                a, b = part.split("-")
                windows.append((time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
            except ValueError:
                raise ValueError(f"work_windows: {part!r} 应为 HH:MM-HH:MM") from None

        def dates(key: str) -> list[date]:
            out = []
            for part in filter(None, (p.strip() for p in config.get(key, "").split(","))):
                try:
                    out.append(date.fromisoformat(part))
                except ValueError:
                    raise ValueError(f"{key}: {part!r} 应为 YYYY-MM-DD") from None
            return out

        return cls(windows or DEFAULT_WINDOWS, dates("extra_holidays"), dates("extra_workdays"))

    def is_workday(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        official = _official_workday(day)
        return day.weekday() < 5 if official is None else official

    def coverage_warning(self, year: int) -> str | None:
        if _official_workday(date(year, 6, 1)) is None:
            return f"chinese-calendar 未收录 {year} 年的节假日安排，按周一至周五计算，请在配置中补充"
        return None

    # --- counting ---------------------------------------------------------------------------------------------
    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("需要带时区的时间")
        return at.astimezone(self.tz)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, s, self.tz), datetime.combine(day, e, self.tz)) for s, e in self.windows]

    def working_hours(self, start: datetime, end: datetime) -> float:
        """Working hours inside [start, end)."""
        start, end = self._local(start), self._local(end)
        if end <= start:
            return 0.0
        total, day = 0.0, start.date()
        while day <= end.date():
            for a, b in self._intervals(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds() / 3600
            day += timedelta(days=1)
        return total

    def add(self, start: datetime, amount: float, unit: Unit) -> datetime:
        """The instant when ``amount`` of ``unit`` has passed since ``start`` (a deadline)."""
        start = self._local(start)
        if unit == "自然时":
            return start + timedelta(hours=amount)
        hours = amount * (self.day_hours if unit == "工作日" else 1.0)
        if hours <= 0:
            return start
        day = start.date()
        for _ in range(3660):
            for a, b in self._intervals(day):
                lo = max(a, start)
                if b <= lo:
                    continue
                span = (b - lo).total_seconds() / 3600
                if hours <= span + 1e-9:
                    return lo + timedelta(hours=hours)
                hours -= span
            day += timedelta(days=1)
        raise ValueError("十年内没有足够的工作时间，请检查工作日配置")

    def elapsed(self, start: datetime, end: datetime, unit: Unit, pauses: Sequence[Pause] = ()) -> float:
        """Hours of ``unit`` between start and end, without the paused intervals (overlaps counted once)."""
        count = self._counter(unit)
        total = count(start, end)
        for a, b in _merged(pauses, end):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total -= count(lo, hi)
        return max(total, 0.0)

    def deadline(self, start: datetime, amount: float, unit: Unit, pauses: Sequence[Pause] = ()) -> datetime:
        """Like add, with the clock stopped while paused (an open pause: the deadline is as of now, moving)."""
        hours = amount * (self.day_hours if unit == "工作日" else 1.0)
        count = self._counter(unit)
        cursor, left = self._local(start), hours
        now = datetime.now(self.tz)
        for a, b in _merged(pauses, max(now, cursor)):
            if b <= cursor:
                continue
            a = max(a, cursor)
            before = count(cursor, a)
            if left <= before + 1e-9:
                break
            left -= before
            cursor = b
        step_unit: Unit = "自然时" if unit == "自然时" else "工作时"
        return self.add(cursor, left, step_unit)

    def light(self, start: datetime, amount: float, unit: Unit, now: datetime, pauses: Sequence[Pause] = ()) -> Light:
        limit = amount * (self.day_hours if unit == "工作日" else 1.0)
        used_hours = self.elapsed(start, now, unit, pauses)
        used = used_hours / limit if limit > 0 else math.inf
        colour: Literal["green", "yellow", "red"] = "green" if used < 0.8 else "yellow" if used < 1.0 else "red"
        return Light(used, limit - used_hours, colour)

    def _counter(self, unit: Unit):
        if unit == "自然时":
            return lambda a, b: max((self._local(b) - self._local(a)).total_seconds() / 3600, 0.0)
        return self.working_hours


def _hours(a: time, b: time) -> float:
    return (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds() / 3600


def _merged(pauses: Sequence[Pause], until: datetime) -> list[tuple[datetime, datetime]]:
    spans = sorted((a, b if b is not None else until) for a, b in pauses)
    out: list[tuple[datetime, datetime]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out
