"""Reading the files a city hands over (GeoJSON, CSV) with errors that name the file and the place in it.

Every importer validates the whole file before it writes anything, so a DataError always means the
database is as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from core.crs import UnknownCRS, parse_crs, to_wgs84_array

WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "CRS84",
}


class DataError(ValueError):
    """Bad input data: ``str(err)`` is one line naming file, place and problem."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        self.path, self.where, self.problem = str(path), where, problem
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


@dataclass(frozen=True)
class Feature:
    index: int
    geometry: BaseGeometry
    properties: dict[str, Any]

    @property
    def where(self) -> str:
        return f"第 {self.index} 个要素 (features[{self.index}])"


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(path, "", "文件不存在") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"字节 {exc.start}", "不是 UTF-8 编码") from None
    except OSError as exc:
        raise DataError(path, "", f"无法读取: {exc.strerror}") from None


def _check_crs(path: Path, collection: dict[str, Any], crs: str) -> str:
    declared = collection.get("crs")
    if declared is None:
        return crs
    name = (declared.get("properties") or {}).get("name", "") if isinstance(declared, dict) else ""
    if name not in WGS84_CRS_NAMES:
        raise DataError(path, "crs", f"不支持的坐标系 {name or declared!r}，GeoJSON 应为 WGS-84 经纬度")
    return crs


def _transform(geom: BaseGeometry, crs: str) -> BaseGeometry:
    if crs == "wgs84":
        return geom

    return shapely.transform(geom, lambda xy: np.column_stack(to_wgs84_array(xy[:, 0], xy[:, 1], crs)))


def read_geojson(path: Path, crs: str = "wgs84", allowed: tuple[str, ...] = ()) -> list[Feature]:
    """Features of a FeatureCollection, in WGS-84, each checked for geometry type and coordinate range."""
    try:
        crs = parse_crs(crs)
    except UnknownCRS as exc:
        raise DataError(path, "--crs", str(exc)) from None
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"第 {exc.lineno} 行第 {exc.colno} 列", f"JSON 格式错误: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise DataError(path, "", "应为 GeoJSON FeatureCollection")
    crs = _check_crs(path, doc, crs)
    raw_features = doc.get("features")
    if not isinstance(raw_features, list):
        raise DataError(path, "features", "缺少要素数组")
    features = []
    for i, raw in enumerate(raw_features):
        where = f"第 {i} 个要素 (features[{i}])"
        if not isinstance(raw, dict) or not isinstance(raw.get("geometry"), dict):
            raise DataError(path, where, "缺少 geometry")
        gtype = raw["geometry"].get("type")
        if allowed and gtype not in allowed:
            raise DataError(path, where, f"几何类型 {gtype} 不在允许的 {'/'.join(allowed)} 之内")
        try:
            geom = shape(raw["geometry"])
        except Exception as exc:  # shapely raises several types for malformed coordinates
            raise DataError(path, where, f"几何无法解析: {exc}") from None
        if geom.is_empty:
            raise DataError(path, where, "几何为空")
        _check_lonlat(path, where, geom)
        props = raw.get("properties") or {}
        if not isinstance(props, dict):
            raise DataError(path, where, "properties 应为对象")
        features.append(Feature(i, _transform(geom, crs), props))
    if not features:
        raise DataError(path, "features", "没有任何要素")
    return features


def _check_lonlat(path: Path, where: str, geom: BaseGeometry) -> None:
    minx, miny, maxx, maxy = geom.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise DataError(path, where, "坐标不是有限数值")
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise DataError(path, where, f"坐标 ({minx:.3f}, {miny:.3f}) 超出经纬度范围，是否为投影坐标？")


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str]

    def where(self, column: str = "") -> str:
        return f"第 {self.line} 行" + (f" 字段 {column}" if column else "")


def read_csv(path: Path, required: tuple[str, ...], aliases: dict[str, tuple[str, ...]] | None = None) -> list[Row]:
    """Rows keyed by canonical column names (``aliases`` maps a canonical name to other accepted headers)."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(path, "第 1 行", "文件为空，缺少表头") from None
    aliases = aliases or {}
    canonical: dict[str, str] = {}
    for name in header:
        for canon, others in aliases.items():
            if name == canon or name in others:
                canonical[name] = canon
                break
        else:
            canonical[name] = name
    missing = [c for c in required if c not in canonical.values()]
    if missing:
        raise DataError(path, "第 1 行", f"缺少列 {', '.join(missing)}")
    rows = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(path, f"第 {reader.line_num} 行", f"CSV 格式错误: {exc}") from None
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataError(path, f"第 {line} 行", f"应有 {len(header)} 列，实际 {len(cells)} 列")
        rows.append(Row(line, {canonical[h]: c.strip() for h, c in zip(header, cells, strict=True)}))
    return rows


def parse_float(path: Path, row: Row, column: str) -> float:
    raw = row.values.get(column, "")
    try:
        value = float(raw)
    except ValueError:
        raise DataError(path, row.where(column), f"应为数值，得到 {raw!r}") from None
    if not math.isfinite(value):
        raise DataError(path, row.where(column), f"应为有限数值，得到 {raw!r}")
    return value
