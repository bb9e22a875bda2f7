"""The tables. Geometry is stored as WKT text so SQLite and PostgreSQL share one schema without PostGIS;
spatial work happens in memory (shapely STRtree) over what the tables hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TaxonomyItem(SQLModel, table=True):
    """One 管理部件 (kind ``component``) or 管理事项 (kind ``matter``) of the city's code table."""

    __tablename__ = "taxonomy_item"
    __table_args__ = (UniqueConstraint("kind", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10, index=True)
    code: str = Field(max_length=8, index=True)
    name: str = Field(max_length=60)
    major_code: str = Field(max_length=4)
    major_name: str = Field(max_length=40)
    component_code: str | None = Field(default=None, max_length=8)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class FilingCondition(SQLModel, table=True):
    """A 立案条件 of a 管理事项: a severity level with its 处置时限 per area class and its 结案条件 (CJ/T 315)."""

    __tablename__ = "filing_condition"
    __table_args__ = (UniqueConstraint("matter_code", "level"),)

    id: int | None = Field(default=None, primary_key=True)
    matter_code: str = Field(max_length=8, index=True)
    level: int
    severity: str = Field(max_length=10)
    condition: str = Field(sa_column=Column(Text, nullable=False))
    limit_a: float
    limit_b: float
    limit_c: float
    unit: str = Field(max_length=6)
    closing: str = Field(sa_column=Column(Text, nullable=False))


class Region(SQLModel, table=True):
    """区 (6-digit code), 街道 (9) or 社区 (12): the hierarchy above the grid cells."""

    __tablename__ = "region"

    code: str = Field(primary_key=True, max_length=12)
    level: str = Field(max_length=10)
    name: str = Field(max_length=60)
    parent_code: str | None = Field(default=None, max_length=12, index=True)
    local_code: str | None = Field(default=None, max_length=40)


class GridCell(SQLModel, table=True):
    """A 万米单元网格 with its 15-character code (CJ/T 213 / GB/T 30428.1)."""

    __tablename__ = "grid_cell"

    code: str = Field(primary_key=True, max_length=15)
    local_code: str | None = Field(default=None, max_length=40, index=True)
    name: str = Field(default="", max_length=100)
    street_code: str = Field(max_length=9, index=True)
    community_code: str = Field(max_length=12, index=True)
    area_m2: float
    area_class: str = Field(default="B", max_length=1)
    centroid_lon: float
    centroid_lat: float
    geometry_wkt: str = Field(sa_column=Column(Text, nullable=False))


class Place(SQLModel, table=True):
    """A gazetteer entry (CJ/T 215 / GB/T 30428.3 kinds): 区域, 地片, 区片, 街巷, 门牌, 兴趣点, 路口."""

    __tablename__ = "place"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=6, index=True)
    name: str = Field(max_length=120, index=True)
    address: str = Field(default="", max_length=200)
    road: str = Field(default="", max_length=60, index=True)
    number: str = Field(default="", max_length=20)
    lon: float
    lat: float
    geometry_wkt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    grid_code: str | None = Field(default=None, max_length=15, index=True)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source: str = Field(default="", max_length=200, index=True)


class Department(SQLModel, table=True):
    """A 专业部门 that receives dispatched cases and owns components."""

    __tablename__ = "department"

    code: str = Field(primary_key=True, max_length=20)
    name: str = Field(max_length=100)
    kind: str = Field(default="", max_length=20)
    # where its notices go (core.notices; set with `gridline department set` or on the console's admin page): read
    # at delivery time, so a changed address applies to notices still waiting
    webhook_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    webhook_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # whsec_…
    email: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    wecom_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # 企业微信群机器人
    dingtalk_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # 钉钉机器人
    dingtalk_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    telegram_chat_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Component(SQLModel, table=True):
    """A surveyed 管理部件 instance: 17-digit id = 6 区划 + 2 大类 + 3 小类 + 6 顺序码 (GB/T 47678.5)."""

    __tablename__ = "component"

    id: str = Field(primary_key=True, max_length=17)
    type_code: str = Field(max_length=5, index=True)
    dept_code: str = Field(foreign_key="department.code", max_length=20, index=True)
    grid_code: str | None = Field(default=None, max_length=15, index=True)
    lon: float
    lat: float
    state: str = Field(default="完好", max_length=10)


class Report(SQLModel, table=True):
    """What arrived on a channel, stored before anything else happens to it. Idempotent on (channel, channel_ref):
    a message delivered three times is one report."""

    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("channel", "channel_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16, index=True)
    channel_ref: str = Field(max_length=128)
    sender: str = Field(default="", max_length=128)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    media: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lon: float | None = None
    lat: float | None = None
    address: str = Field(default="", max_length=200)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    transcript: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    classification: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    place: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    steps: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    case_id: int | None = Field(default=None, foreign_key="case_file.id", index=True)
    # the reporter's own choice of 事项 (a 监督员 on the spot, an Open311 client), which the case takes; the
    # classifier's view is still kept in ``classification`` for the 受理员 to see beside it
    chosen_code: str | None = Field(default=None, max_length=8)


class CaseFile(SQLModel, table=True):
    """A case (案卷) moving through the closed loop; ``version`` makes every change a compare-and-set."""

    __tablename__ = "case_file"
    __table_args__ = (Index("ix_case_file_state_created_at", "state", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=20, unique=True)
    state: str = Field(max_length=10, index=True)
    version: int = 1
    matter_code: str | None = Field(default=None, max_length=8, index=True)
    matter_name: str = Field(default="", max_length=60)
    condition_level: int | None = None
    severity: str = Field(default="一般", max_length=6)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    address: str = Field(default="", max_length=200)
    lon: float | None = None
    lat: float | None = None
    grid_code: str | None = Field(default=None, max_length=15, index=True)
    area_class: str = Field(default="B", max_length=1)
    source: str = Field(max_length=16)
    public: bool = True
    collector_id: int | None = Field(default=None, foreign_key="app_user.id")
    department_code: str | None = Field(default=None, foreign_key="department.code", max_length=20, index=True)
    suggested_department: str | None = Field(default=None, max_length=20)
    duplicate_of: str | None = Field(default=None, max_length=20)
    stage: str = Field(max_length=6)
    stage_started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    stage_limit: float = 0.0
    stage_unit: str = Field(default="工作时", max_length=4)
    stage_extra_hours: float = 0.0
    pauses: list[list[str | None]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    signed: bool = False
    rework_count: int = 0
    dispatch_count: int = 0
    extension_count: int = 0
    pending: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


LATE = text("action = 'complete' AND on_time IS false")


class CaseEvent(SQLModel, table=True):
    """One action on a case, appended and never changed: who, in which role, what, from which state to which."""

    __tablename__ = "case_event"
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        # the late 处置完成 only, for the wall's 按期结案率 (migration 0007)
        Index("ix_case_event_late", "case_id", postgresql_where=LATE, sqlite_where=LATE),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)
    seq: int
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    actor: str = Field(max_length=60)
    role: str = Field(max_length=16)
    action: str = Field(max_length=24, index=True)
    from_state: str = Field(max_length=10)
    to_state: str = Field(max_length=10)
    department_code: str | None = Field(default=None, max_length=20)
    on_time: bool | None = None
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attachments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class CaseCounter(SQLModel, table=True):
    """The last sequence number used for case numbers of one day."""

    __tablename__ = "case_counter"

    day: str = Field(primary_key=True, max_length=8)
    last: int = 0


class AppUser(SQLModel, table=True):
    """A member of staff with one role; departments and collectors have a scope."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)
    role: str = Field(max_length=16)
    department_code: str | None = Field(default=None, foreign_key="department.code", max_length=20)
    grid_scope: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    password_hash: str | None = Field(default=None, max_length=200)
    active: bool = True


class ApiToken(SQLModel, table=True):
    """An API token, stored as its SHA-256 (tokens are random, so a fast hash is enough)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked: bool = False


class ApiKey(SQLModel, table=True):
    """An Open311 client application's key (``core.apikeys``), kept only as its SHA-256 like the staff tokens, with
    the client's rate limit. Revoked, never deleted: the name stays with the reports the key sent."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)
    key_sha256: str = Field(max_length=64, unique=True)
    rate_per_minute: int = 60
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class ConsoleSession(SQLModel, table=True):
    """A console login: the cookie's key is kept only as SHA-256, with the CSRF token its forms must carry and the
    time it was last used, so an idle session ends on the server and not only in the browser."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    key_sha256: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended: bool = False


class AuditEvent(SQLModel, table=True):
    """A change to the centre's set-up (users, departments, routing rules, the calendar): who, in which role, what,
    on which object, with the values before and after. Appended and never changed, like a case's events."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    actor: str = Field(max_length=60)
    role: str = Field(max_length=16)
    action: str = Field(max_length=32, index=True)
    target: str = Field(max_length=120)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CalendarDay(SQLModel, table=True):
    """The centre's own decision for one day, above chinese-calendar and the settings' extra days: off (a local
    holiday) or working (a 调休 the centre decides). Changed on the console's calendar page, with an audit event."""

    __tablename__ = "calendar_day"

    day: date = Field(primary_key=True)
    workday: bool
    note: str = Field(default="", max_length=60)


class RoutingRule(SQLModel, table=True):
    """事项 code (or 大类 prefix) × region (街道/社区/网格 code prefix, empty = everywhere) → department."""

    __tablename__ = "routing_rule"

    id: int | None = Field(default=None, primary_key=True)
    matter_prefix: str = Field(max_length=8, index=True)
    region_prefix: str = Field(default="", max_length=15)
    department_code: str = Field(foreign_key="department.code", max_length=20)


@cache
def _defaults(model: type[SQLModel]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    return tuple(
        (name, info.default, info.default_factory)  # type: ignore[misc]
        for name, info in model.model_fields.items()
        if not info.is_required() and name != "id"
    )


def row_defaults(model: type[SQLModel]) -> dict[str, Any]:
    """The model's field defaults as a row, for bulk inserts that skip building (and validating) model objects."""
    return {name: factory() if factory else default for name, default, factory in _defaults(model)}


# --- chat channels (bots/) ------------------------------------------------------------------------------------


class Conversation(SQLModel, table=True):
    """One citizen's dialogue on one channel. The state lives here, not in a worker's memory, so any worker can
    continue it and a restart forgets nothing; ``version`` makes every turn a compare-and-set."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "user_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_ref: str = Field(max_length=128)  # OpenID, chat id or web-chat key hash: personal data
    mode: str = Field(default="idle", max_length=12, index=True)  # idle / report / handoff (the 受理员 queue)
    state: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = 1
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ChannelDelivery(SQLModel, table=True):
    """A channel message seen (WeChat MsgId, Telegram update_id, web-chat message id): the same delivery again is
    answered from ``reply`` instead of being processed twice."""

    __tablename__ = "channel_delivery"
    __table_args__ = (UniqueConstraint("channel", "ref"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    ref: str = Field(max_length=160)
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    done: bool = False
    reply: list[dict] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Outbox(SQLModel, table=True):
    """A message written before it is sent: to a citizen (case progress, a late reply, a 受理员's answer) or to a
    department (``dept_*`` channels: dispatch notices and limit alerts, ``core.notices``). Unique on ``dedup_key``,
    so an event is announced once per recipient; retried with backoff until sent, or dead."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=200, unique=True)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=16)  # notify / reply / receipt (a marker: already told at submission)
    case_id: int | None = Field(default=None, index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=10, index=True)  # pending / sending / sent / dead
    attempts: int = 0
    next_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class ChannelState(SQLModel, table=True):
    """Small values the channel workers share: the WeChat access token, the notifier's cursor."""

    __tablename__ = "channel_state"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
