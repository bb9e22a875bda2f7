"""Working time (CJ/T 315): 工作时 count only inside the working windows of working days; 自然时 count always.

Working days follow chinese-calendar (法定节假日 off, 调休 weekend days on), then the centre's own overrides. For a
year chinese-calendar does not know yet, Monday–Friday plus the overrides is used, and ``coverage_warning`` says so.

A stage clock's light (green below 80 % of its limit, yellow below 100 %, then red) is ``light`` for one clock and
``lights`` for many at once (the map's open cases); both take the thresholds and the 工作日 → hours rule from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np
from numpy.typing import ArrayLike, NDArray

Unit = Literal["工作时", "工作日", "自然时"]
Colour = Literal["green", "yellow", "red"]
Pause = tuple[datetime, datetime | None]
Floats = NDArray[np.float64]
DEFAULT_WINDOWS = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
COLOURS: tuple[Colour, ...] = ("green", "yellow", "red")  # by urgency: ``lights`` gives indices into this
COLOUR_NAMES = {"green": "绿灯", "yellow": "黄灯", "red": "红灯", "none": "无时限"}  # as staff and notices say them
GREEN_BELOW, YELLOW_BELOW = 0.8, 1.0  # the share of the limit used: green below 80 %, yellow below 100 %, then red


@dataclass(frozen=True)
class Light:
    used: float
    remaining_hours: float
    colour: Colour


def light_code(used: Any) -> Any:
    """The light of a used share as an index into COLOURS, for a float or an array alike: the one place the
    thresholds are applied (NaN is red, as a share never below the limit)."""
    return 2 - (used < GREEN_BELOW) - (used < YELLOW_BELOW)


def _natural(unit: str) -> bool:
    """自然时 count always; every other unit counts working time."""
    return unit == "自然时"


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

    def overridden(self, days: Mapping[date, bool]) -> WorkCalendar:
        """This calendar with ``days`` set working (True) or off (False), above its own extra days: the centre's
        later decisions win over the settings file."""
        on = {d for d, working in days.items() if working}
        off = set(days) - on
        return WorkCalendar(
            self.windows, (self.extra_holidays - on) | off, (self.extra_workdays - off) | on, self.tz.key
        )

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
        return self._working_seconds(start, end) / 3600

    def _working_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds, not hours, so that whole-second instants sum exactly: a light at exactly 80 % or 100 % of its
        limit is the same colour in ``light`` and ``lights``."""
        start, end = self._local(start), self._local(end)
        if end <= start:
            return 0.0
        total, day = 0.0, start.date()
        while day <= end.date():
            for a, b in self._intervals(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def in_hours(self, amount: float, unit: str) -> float:
        """A limit in hours of its own kind: a 工作日 is this calendar's working day (its windows' hours)."""
        return amount * (self.day_hours if unit == "工作日" else 1.0)

    def add(self, start: datetime, amount: float, unit: Unit) -> datetime:
        """The instant when ``amount`` of ``unit`` has passed since ``start`` (a deadline)."""
        start = self._local(start)
        if _natural(unit):
            return start + timedelta(hours=amount)
        hours = self.in_hours(amount, unit)
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
        count = self._seconds(unit)
        total = count(start, end)
        for a, b in _merged(pauses, end):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total -= count(lo, hi)
        return max(total, 0.0) / 3600

    def deadline(self, start: datetime, amount: float, unit: Unit, pauses: Sequence[Pause] = ()) -> datetime:
        """Like add, with the clock stopped while paused (an open pause: the deadline is as of now, moving)."""
        hours = self.in_hours(amount, unit)
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
        step_unit: Unit = "自然时" if _natural(unit) else "工作时"
        return self.add(cursor, left, step_unit)

    def light(self, start: datetime, amount: float, unit: Unit, now: datetime, pauses: Sequence[Pause] = ()) -> Light:
        """The stage clock's light: the share of the limit used (no limit: all of it, red) and the hours left."""
        limit = self.in_hours(amount, unit)
        used_hours = self.elapsed(start, now, unit, pauses)
        used = used_hours / limit if limit > 0 else math.inf
        return Light(used, limit - used_hours, COLOURS[light_code(used)])

    def lights(
        self,
        started_s: ArrayLike,
        amounts: ArrayLike,
        units: Sequence[str],
        now: datetime,
        pauses_by_index: Mapping[int, Sequence[Pause]] | None = None,
    ) -> NDArray[np.intp]:
        """The same rule as ``light``, for many stage clocks at once: each one's colour as an index into COLOURS.
        ``started_s`` are epoch seconds; ``pauses_by_index`` holds the pauses of the clocks that have any. ``light``
        walks the calendar day by day (~70 µs a clock, seconds for a city's open cases); here the working time
        between two instants is two lookups in ``working_clock``."""
        started = np.asarray(started_s, dtype=float)
        n = len(started)
        if not n:
            return np.zeros(0, dtype=np.intp)
        kinds, kind = np.unique(np.asarray(units, dtype=str), return_inverse=True)  # light's rules, once a unit
        kind = kind.reshape(-1)
        natural = np.array([_natural(u) for u in kinds])[kind]
        limit = np.asarray(amounts, dtype=float) * np.array([self.in_hours(1.0, u) for u in kinds])[kind]
        t_now = self._local(now).timestamp()
        clock = self.working_clock(min(float(started.min()), t_now), t_now)

        def seconds(lo: Floats, hi: Floats, natural: NDArray[np.bool_]) -> Floats:
            return np.maximum(np.where(natural, hi - lo, clock(hi) - clock(lo)), 0.0)

        used = seconds(started, np.full(n, t_now), natural)
        spans = [  # as in elapsed: each merged pause within [start, now] is taken off once
            (i, max(a.timestamp(), started[i]), min(b.timestamp(), t_now))
            for i, pauses in (pauses_by_index or {}).items()
            for a, b in _merged(pauses, now)
        ]
        if spans:
            idx, lo, hi = (np.array(column) for column in zip(*spans, strict=True))
            keep = hi > lo
            np.subtract.at(used, idx[keep], seconds(lo[keep], hi[keep], natural[idx[keep]]))
            np.maximum(used, 0.0, out=used)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(limit > 0, used / 3600 / limit, math.inf)
        return np.asarray(light_code(share), dtype=np.intp)

    def working_clock(self, first: float, last: float) -> Callable[[Floats], Floats]:
        """Working seconds from ``first`` to each instant (epoch seconds, up to ``last``): the working days'
        windows laid end to end, so the working time between two instants is a difference of two lookups."""
        day = datetime.fromtimestamp(first, self.tz).date() - timedelta(days=1)
        end = datetime.fromtimestamp(last, self.tz).date() + timedelta(days=1)
        opens, closes = [], []
        while day <= end:
            for a, b in self._intervals(day):
                opens.append(a.timestamp())
                closes.append(b.timestamp())
            day += timedelta(days=1)
        if not opens:
            return lambda t: np.zeros_like(t, dtype=float)
        lo, hi = np.array(opens), np.array(closes)
        before = np.concatenate(([0.0], np.cumsum(hi - lo)[:-1]))

        def clock(t: Floats) -> Floats:
            i = np.searchsorted(lo, t, side="right") - 1
            j = np.maximum(i, 0)
            return np.where(i >= 0, before[j] + np.minimum(t, hi[j]) - lo[j], 0.0)

        return clock

    def _counter(self, unit: str) -> Callable[[datetime, datetime], float]:
        count = self._seconds(unit)
        return lambda a, b: count(a, b) / 3600

    def _seconds(self, unit: str) -> Callable[[datetime, datetime], float]:
        if _natural(unit):
            return lambda a, b: max((self._local(b) - self._local(a)).total_seconds(), 0.0)
        return self._working_seconds


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
