"""Place phrases: what part of a Chinese description names a road, a door plate, a crossing or a landmark.

Only the grammar lives here (CJ/T 215 / GB/T 37149 address parts: 街巷 + 门牌, 路口, 标志物 + 方位); which
roads and landmarks exist is the gazetteer's business, so every part found is a candidate to be matched.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}
ROAD_SUFFIX = r"(?:大道|大街|公路|胡同|路|街|巷|弄|道)"
NAME_CHARS = r"[\u4e00-\u9fa5A-Za-z0-9·]"
ROAD = rf"{NAME_CHARS}{{1,12}}?{ROAD_SUFFIX}"
NUMBER = r"\d+(?:[-－之]\d+)?"
FILLERS = (
    "那个",
    "这个",
    "就是",
    "这边",
    "那边",
    "这里",
    "那里",
    "位置",
    "地方",
    "嗯",
    "啊",
    "呃",
    "在",
    "位于",
    "我在",
    "我们",
    "的",
)
PARTS = (
    "东门",
    "西门",
    "南门",
    "北门",
    "东北门",
    "西北门",
    "东南门",
    "西南门",
    "正门",
    "大门",
    "后门",
    "侧门",
    "门口",
    "入口",
    "出口",
)
RELATIONS = (
    "斜对面",
    "对面",
    "附近",
    "旁边",
    "边上",
    "隔壁",
    "周边",
    "周围",
    "东侧",
    "西侧",
    "南侧",
    "北侧",
    "前面",
    "后面",
    "楼下",
    "里面",
    "内",
    "外",
)

DOOR_RE = re.compile(rf"(?P<road>{ROAD})(?P<number>{NUMBER})号")
CROSSING_WORD = r"(?:十字路口|丁字路口|交叉路口|交叉口|交汇处|交口|路口|口)"
CROSS_RE = re.compile(
    rf"(?P<a>{ROAD})(?:(?:和|与|跟|同|、|/|交)(?P<b>{ROAD})(?:的)?{CROSSING_WORD}?|(?P<c>{ROAD}){CROSSING_WORD})"
)
ROAD_RE = re.compile(ROAD)
NUMBER_WORD = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=号)")


def cn_number(word: str) -> int:
    """八十八 → 88, 一百零三 → 103, 二零八 → 208 (digit-by-digit reading)."""
    if not any(ch in CN_UNITS for ch in word):
        return int("".join(str(CN_DIGITS[ch]) for ch in word))
    total, current = 0, 0
    for ch in word:
        if ch in CN_DIGITS:
            current = CN_DIGITS[ch]
        else:
            total += (current or 1) * CN_UNITS[ch]
            current = 0
    return total + current


def normalise(text: str) -> str:
    """Full-width → half-width, no spaces, Chinese door numbers as digits; the rest unchanged."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\s+", "", text)
    return NUMBER_WORD.sub(lambda m: str(cn_number(m.group())), text)


@dataclass(frozen=True)
class PlacePhrase:
    """The parts of one place description; empty strings where a part is absent."""

    text: str
    road: str = ""
    number: str = ""
    cross_road: str = ""
    landmark: str = ""
    part: str = ""
    relation: str = ""

    @property
    def kind(self) -> str:
        if self.road and self.number:
            return "door"
        if self.road and self.cross_road:
            return "crossing"
        if self.landmark:
            return "landmark"
        if self.road:
            return "road"
        return "none"


def strip_fillers(text: str) -> str:
    for word in FILLERS:
        text = text.replace(word, "")
    return text


def _trailing(text: str, words: tuple[str, ...]) -> tuple[str, str]:
    for word in sorted(words, key=len, reverse=True):
        if text.endswith(word) and len(text) > len(word):
            return text[: -len(word)], word
    return text, ""


def parse(text: str) -> PlacePhrase:
    """Split a place description into road, number, crossing road, landmark, part (东门…) and relation (对面…)."""
    norm = normalise(text)
    if m := DOOR_RE.search(norm):
        number = re.sub(r"[－之]", "-", m["number"])
        tail = norm[m.end() :]
        relation = next((w for w in sorted(RELATIONS, key=len, reverse=True) if tail.startswith(w)), "")
        return PlacePhrase(norm, road=m["road"], number=number, relation=relation)
    if m := CROSS_RE.search(norm):
        return PlacePhrase(norm, road=m["a"], cross_road=m["b"] or m["c"])
    rest = strip_fillers(norm)
    rest, relation = _trailing(rest, RELATIONS)
    rest, part = _trailing(rest, PARTS)
    if not rest:
        return PlacePhrase(norm)
    if ROAD_RE.fullmatch(rest):
        return PlacePhrase(norm, road=rest, part=part, relation=relation)
    return PlacePhrase(norm, landmark=rest, part=part, relation=relation)


def split_door(address: str) -> tuple[str, str]:
    """(road, number) of a door-plate address such as 百井坊巷46-1号, or ("", "") when it is not one."""
    m = DOOR_RE.fullmatch(normalise(address))
    if not m:
        return "", ""
    return m["road"], re.sub(r"[－之]", "-", m["number"])
