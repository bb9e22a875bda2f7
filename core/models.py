"""The tables. Geometry is stored as WKT text so SQLite and PostgreSQL share one schema without PostGIS;
spatial work happens in memory (shapely STRtree) over what the tables hold."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


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
