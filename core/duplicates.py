"""The open cases a new report may repeat, beside it in the 受理 queue, so that the 受理员 merges it instead of
opening a second case for one pothole.

"Related" cases are those of the same 事项 code or of the same 大类 (the code's first two digits, in CJ/T 214 and
GB/T 47678.5 alike): a citizen who reports 垃圾站满溢 where another reported 暴露垃圾 an hour ago very likely saw
the same heap, while a classifier's neighbouring guesses are rarely in another 大类. A report without a code (out of
scope, or a code not in the table) is compared with every open case nearby, since nothing says what it is yet.
Only earlier cases are candidates: a duplicate is merged into the original, never the other way round.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.cases import TERMINAL, Rules
from core.crs import near_distance_m
from core.models import CaseFile

METRES_PER_DEGREE = 111_195.0  # of latitude, on the mean Earth radius that ``near_distance_m`` uses


def major_of(code: str | None) -> str | None:
    """The 大类 of a 事项 code (its first two digits)."""
    return code[:2] if code else None


def possible_duplicates(engine: Engine, case: CaseFile, rules: Rules, limit: int = 5) -> list[tuple[CaseFile, float]]:
    """Open earlier cases of a related code within ``duplicate_radius_m`` and ``duplicate_window_days`` of the case,
    with their distance in metres: same code first, then the nearest, then the oldest."""
    if case.lon is None or case.lat is None:
        return []
    radius = rules.duplicate_radius_m
    dlat = radius / METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(case.lat)), 0.01)
    stmt = select(CaseFile).where(
        CaseFile.id != case.id,
        CaseFile.state.not_in(TERMINAL),
        CaseFile.created_at >= case.created_at - timedelta(days=rules.duplicate_window_days),
        CaseFile.created_at <= case.created_at,
        CaseFile.lat.between(case.lat - dlat, case.lat + dlat),
        CaseFile.lon.between(case.lon - dlon, case.lon + dlon),
    )
    if major := major_of(case.matter_code):
        stmt = stmt.where(CaseFile.matter_code.startswith(major))
    with Session(engine) as session:
        candidates = session.exec(stmt).all()
    near = [(other, near_distance_m(case.lon, case.lat, other.lon, other.lat)) for other in candidates]
    near = [(other, d) for other, d in near if d <= radius]
    near.sort(key=lambda pair: (pair[0].matter_code != case.matter_code, pair[1], pair[0].created_at))
    return near[:limit]
