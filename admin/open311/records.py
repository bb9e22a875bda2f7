"""What Open311 shows of the centre and takes from a client application: the city's 管理事项 as services grouped
by 大类, the questions some 事项 ask (``attributes``), cases as service requests, and a client's POST as an intake
report of channel ``open311``.

A service request is a case, whatever channel it came in on, and shows no personal data: not the reporter, and
the description and address with mobile and 身份证 numbers masked (``core.notices.mask_numbers``). Its status is
``closed`` once the case has ended (结案, 作废, 不予受理 or 合并), with the words a citizen reads of that state
(``bots.citizen``) as ``status_notes``, and the reason of a refusal as the citizen was told it.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bots.citizen import STATE_WORDS
from core.apikeys import Client
from core.cases import LOCAL, TERMINAL, CaseLoop
from core.intake import Incoming
from core.models import CaseEvent, CaseFile, Department, FilingCondition, Report, TaxonomyItem
from core.notices import mask_numbers

CHANNEL = "open311"
SPAN = timedelta(days=90)  # GeoReport v2: a query covers at most 90 days …
MAX_RESULTS = 1000  # … and answers at most 1,000 requests
MAX_DESCRIPTION = 4000
YEARS = (1970, 9998)  # dates outside would overflow the 90-day arithmetic or the drivers
CLIENT_ID = "client_request_id"  # attribute[client_request_id]: the client's own id, for idempotent POSTs
TOKEN = re.compile(r"[0-9a-f]{32}")
COMPONENT_ID = re.compile(r"\d{17}")
REFUSALS = ("reject", "void")  # the public events whose reason the citizen is told


class Refused(Exception):
    """A request Open311 answers with its error list; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields without a value are left out (the swagger document allows no null)."""
    return {key: value for key, value in fields.items() if value is not None}


# --- services ---------------------------------------------------------------------------------------------------
def _matters(session: Session, code: str | None = None) -> list[tuple[TaxonomyItem, list[FilingCondition]]]:
    items = select(TaxonomyItem).where(TaxonomyItem.kind == "matter").order_by(TaxonomyItem.code)
    levels = select(FilingCondition).order_by(FilingCondition.matter_code, FilingCondition.level)
    if code is not None:
        items, levels = items.where(TaxonomyItem.code == code), levels.where(FilingCondition.matter_code == code)
    conditions: dict[str, list[FilingCondition]] = {}
    for condition in session.exec(levels):
        conditions.setdefault(condition.matter_code, []).append(condition)
    return [(item, conditions.get(item.code, [])) for item in session.exec(items)]


def attributes(item: TaxonomyItem, conditions: Sequence[FilingCondition]) -> list[dict[str, Any]]:
    """The questions a 事项 asks beyond the description, none of them required: the 部件标识码 where the 事项 is
    the anomaly of a 部件 (大类 01–05), and which of its 立案条件 the scene is closest to where it has several."""
    asked: list[dict[str, Any]] = []
    if item.component_code:
        asked.append(
            {
                "variable": True,
                "code": "component_id",
                "datatype": "string",
                "required": False,
                "datatype_description": f"17 位数字：6 位区划代码、部件小类代码 {item.component_code}、6 位顺序码",
                "description": "部件标识码（部件上喷涂或挂牌的编码），不知道可不填",
            }
        )
    if len(conditions) > 1:
        asked.append(
            {
                "variable": True,
                "code": "condition_level",
                "datatype": "singlevaluelist",
                "required": False,
                "description": "现场最接近哪种情形（立案条件），不确定可不选",
                "values": [{"key": str(c.level), "name": f"{c.severity}：{c.condition}"} for c in conditions],
            }
        )
    return [{**attribute, "order": order} for order, attribute in enumerate(asked, 1)]


def services(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [
            compact(
                {
                    "service_code": item.code,
                    "service_name": item.name,
                    "description": item.description or None,
                    "metadata": bool(attributes(item, conditions)),
                    "type": "realtime",  # a POST files the case at once and answers with its number
                    "keywords": ",".join(item.keywords) or None,
                    "group": item.major_name,
                }
            )
            for item, conditions in _matters(session)
        ]


def _matter(engine: Engine, code: str) -> tuple[TaxonomyItem, list[FilingCondition]] | None:
    if not (code.isascii() and code.isdigit() and len(code) <= 8):
        return None
    with Session(engine) as session:
        found = _matters(session, code)
    return found[0] if found else None


def definition(engine: Engine, code: str) -> dict[str, Any]:
    found = _matter(engine, code)
    if found is None:
        raise Refused(404, f"service_code {code} 不存在")
    return {"service_code": found[0].code, "attributes": attributes(*found)}


# --- a client's POST --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    incoming: Incoming
    token: str


def _single(code: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise Refused(400, f"attribute[{code}] 只能给一个值")
    return values[0].strip()


def answered(
    item: TaxonomyItem, conditions: Sequence[FilingCondition], given: Mapping[str, Sequence[str]]
) -> tuple[list[str], str]:
    """The answers to the 事项's questions as lines of the report's text (where the 受理员 reads them, and the
    classifier with them), and the client's own id (empty if none was given)."""
    asked = {a["code"]: a for a in attributes(item, conditions)}
    unknown = sorted(set(given) - set(asked) - {CLIENT_ID})
    if unknown:
        raise Refused(400, f"attribute[{unknown[0]}]: 事项 {item.code} 没有这个属性（见 services/{item.code}.json）")
    client_id = _single(CLIENT_ID, given[CLIENT_ID]) if CLIENT_ID in given else ""
    if len(client_id) > 64 or not client_id.isprintable():
        raise Refused(400, f"attribute[{CLIENT_ID}] 最多 64 个可打印字符")
    lines = []
    if "component_id" in given:
        value = _single("component_id", given["component_id"])
        if not COMPONENT_ID.fullmatch(value) or value[6:11] != item.component_code:
            raise Refused(400, f"attribute[component_id] 应为 17 位数字，第 7–11 位是部件小类 {item.component_code}")
        lines.append(f"部件标识码：{value}")
    if "condition_level" in given:
        value = _single("condition_level", given["condition_level"])
        names = {v["key"]: v["name"] for v in asked["condition_level"]["values"]}
        if value not in names:
            raise Refused(400, f"attribute[condition_level] 应为 {'、'.join(names)} 之一")
        lines.append(f"情形：{names[value]}")
    return lines, client_id


def _point(params: Mapping[str, str]) -> tuple[float | None, float | None]:
    lat, lon = params.get("lat", "").strip(), params.get("long", "").strip()
    if not lat and not lon:
        return None, None
    try:
        y, x = float(lat), float(lon)
    except ValueError:
        raise Refused(400, "lat 与 long 应同时给出，且为数字（WGS-84）") from None
    if not (math.isfinite(x) and math.isfinite(y) and -90 <= y <= 90 and -180 <= x <= 180):
        raise Refused(400, "lat 应在 -90–90、long 应在 -180–180 之间")
    return x, y


def _media(url: str) -> tuple[dict[str, Any], ...]:
    """A link kept as the client gave it, never fetched (no requests from the centre to addresses of strangers)."""
    if not url:
        return ()
    plain = len(url) <= 500 and url.isascii() and url.isprintable() and " " not in url
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if not (plain and parts and parts.scheme in ("http", "https") and parts.netloc):
        raise Refused(400, "media_url 应为 http 或 https 地址（ASCII，最多 500 个字符）")
    return ({"kind": "link", "url": url},)


def token_of(client: Client, client_id: str) -> str:
    """The report's ``channel_ref``, handed to the client as its token. With the client's own id it is derived from
    the key and that id, so a repeated POST is the same report (the intake is idempotent on channel_ref), and no
    one without the key can work it out; without one it is random."""
    if not client_id:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{client.key_sha256}:{client_id}".encode()).hexdigest()[:32]


def submission(
    engine: Engine, client: Client, params: Mapping[str, str], given: Mapping[str, Sequence[str]], at: datetime
) -> Submission:
    """The POST as the intake takes it: the service_code is the reporter's choice of 事项 (the case takes it; the
    classifier's view of the words is kept beside it for the 受理员)."""
    code = params.get("service_code", "").strip()
    if not code:
        raise Refused(400, "缺少 service_code（见 services.json）")
    found = _matter(engine, code)
    if found is None:
        raise Refused(400, f"service_code {code} 不存在（见 services.json）")
    item, conditions = found
    lines, client_id = answered(item, conditions, given)
    lon, lat = _point(params)
    address = params.get("address_string", "").strip()
    if lon is None and not address:
        raise Refused(400, "需要位置：lat 与 long，或 address_string（本市不使用 address_id）")
    description = params.get("description", "").strip()
    if len(description) > MAX_DESCRIPTION or len(address) > 200:
        raise Refused(400, f"description 最多 {MAX_DESCRIPTION} 字，address_string 最多 200 字")
    token = token_of(client, client_id)
    incoming = Incoming(
        channel=CHANNEL,
        channel_ref=token,
        received_at=at,
        sender=client.name,  # the client application, not a person
        text="\n".join(filter(None, (description, *lines))),
        media=_media(params.get("media_url", "").strip()),
        lon=lon,
        lat=lat,
        address=address,
        chosen_code=item.code,
    )
    return Submission(incoming, token)


def find_token(engine: Engine, token: str) -> dict[str, Any] | None:
    """The request a token stands for; without service_request_id while its case is not filed yet."""
    if not TOKEN.fullmatch(token):
        return None
    with Session(engine) as session:
        row = session.exec(
            select(Report.id, CaseFile.number)
            .outerjoin(CaseFile, CaseFile.id == Report.case_id)
            .where(Report.channel == CHANNEL, Report.channel_ref == token)
        ).first()
    return compact({"service_request_id": row[1], "token": token}) if row else None


# --- service requests -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """GET requests' filters; ``ids`` given, the others are not applied (GeoReport v2)."""

    start: datetime
    end: datetime
    ids: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    statuses: frozenset[str] = frozenset()


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _when(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or not YEARS[0] <= value.year <= YEARS[1]:
        raise Refused(400, f"{name} 应为 {YEARS[0]}–{YEARS[1]} 年的 ISO 8601 时间，如 2026-12-01T08:00:00+08:00")
    return value if value.tzinfo else value.replace(tzinfo=LOCAL)  # without a zone: Beijing time


def parse_query(params: Mapping[str, str], now: datetime) -> Query:
    """The filters of GET requests: without dates the last 90 days; one date alone spans 90 days from it."""
    ids = _list(params.get("service_request_id", ""))
    if len(ids) > MAX_RESULTS:
        raise Refused(400, f"service_request_id 最多 {MAX_RESULTS} 个")
    statuses = frozenset(_list(params.get("status", "")))
    if statuses - {"open", "closed"}:
        raise Refused(400, "status 应为 open 或 closed（可用逗号分隔）")
    start, end = _when(params, "start_date"), _when(params, "end_date")
    if start is None:
        end = end or now
        start = end - SPAN
    elif end is None:
        end = start + SPAN
    if end < start:
        raise Refused(400, "end_date 早于 start_date")
    if end - start > SPAN:
        raise Refused(400, "start_date 与 end_date 相隔不能超过 90 天")
    return Query(start, end, tuple(ids), tuple(_list(params.get("service_code", ""))), statuses)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(LOCAL).isoformat(timespec="seconds") if value else None


def _request(
    loop: CaseLoop, case: CaseFile, department: str | None, link: str | None, reason: str | None
) -> dict[str, Any]:
    closed = case.state in TERMINAL
    notes = STATE_WORDS.get(case.state, case.state).format(dept=department or "责任部门")
    if reason:
        notes += f"（原因：{mask_numbers(reason)}）"
    if case.state == "已合并" and case.duplicate_of:
        notes += f"，编号 {case.duplicate_of}"
    timer = loop.timer(case) if case.state == "处置中" else None
    return compact(
        {
            "service_request_id": case.number,
            "status": "closed" if closed else "open",
            "status_notes": notes,
            "service_name": case.matter_name or None,
            "service_code": case.matter_code or "",  # empty while the 受理员 has not decided the 事项
            "description": mask_numbers(case.description)[:MAX_DESCRIPTION] or None,
            "agency_responsible": department,
            "requested_datetime": _iso(case.created_at),
            "updated_datetime": _iso(case.closed_at if closed and case.closed_at else case.updated_at),
            "expected_datetime": _iso(timer.deadline) if timer else None,  # the 处置 deadline
            "address": mask_numbers(case.address) or None,
            "lat": case.lat,
            "long": case.lon,
            "media_url": link,
        }
    )


def service_requests(session: Session, loop: CaseLoop, cases: Sequence[CaseFile]) -> list[dict[str, Any]]:
    """The cases as service requests, with what they need read at once for all of them."""
    ids = [c.id for c in cases]
    departments = dict(session.exec(select(Department.code, Department.name)).all())
    links: dict[int, str] = {}
    linked = select(Report.case_id, Report.media).where(Report.channel == CHANNEL, Report.case_id.in_(ids))
    for case_id, media in session.exec(linked.order_by(Report.id)):
        for item in media:
            if item.get("kind") == "link":
                links.setdefault(case_id, item["url"])
    reasons: dict[int, str] = {}
    refused = [c.id for c in cases if c.state in ("不予受理", "已作废")]
    if refused:
        for case_id, data, note in session.exec(
            select(CaseEvent.case_id, CaseEvent.data, CaseEvent.note)
            .where(CaseEvent.case_id.in_(refused), CaseEvent.action.in_(REFUSALS))
            .order_by(CaseEvent.seq)
        ):
            reasons[case_id] = (data or {}).get("reason") or note
    return [
        _request(loop, c, departments.get(c.department_code or ""), links.get(c.id), reasons.get(c.id)) for c in cases
    ]


def find_requests(loop: CaseLoop, query: Query) -> list[dict[str, Any]]:
    """The newest matching cases first, at most 1,000."""
    stmt = select(CaseFile)
    if query.ids:
        stmt = stmt.where(CaseFile.number.in_(query.ids))
    else:
        stmt = stmt.where(CaseFile.created_at >= query.start, CaseFile.created_at <= query.end)
        if query.codes:
            stmt = stmt.where(CaseFile.matter_code.in_(query.codes))
        if query.statuses == {"open"}:
            stmt = stmt.where(CaseFile.state.not_in(TERMINAL))
        elif query.statuses == {"closed"}:
            stmt = stmt.where(CaseFile.state.in_(TERMINAL))
    stmt = stmt.order_by(CaseFile.created_at.desc(), CaseFile.id.desc()).limit(MAX_RESULTS)
    with Session(loop.engine) as session:
        return service_requests(session, loop, session.exec(stmt).all())
