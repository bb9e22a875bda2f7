"""One normal form for everything nlp reads, so that a message, a keyword table, a gazetteer entry and a training
sentence meet on the same characters: full-width → half-width, traditional → simplified, Chinese numbers before a
measure word as digits (八十八号 → 88号, but not 一下 or 十字路口), emoji and decoration dropped, runs of the same
character folded (啊啊啊啊 → 啊啊, ！！！ → !), no whitespace. Callers keep the original text beside it."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

import opencc

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}
MEASURES = r"号|栋|幢|单元|弄|米|层|楼|路口|个月|天|点|辆|根|盏|个"
NUMBER_WORD = re.compile(rf"[零〇一二两三四五六七八九十百千]+(?={MEASURES})")
NOISE = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D\u20E3\u3030\u303D★☆♥♡~～]+")
REPEAT = re.compile(r"(.)\1{2,}")
PUNCT_REPEAT = re.compile(r"([!?.,;:。，！？、…])\1+")
# What a caller says while thinking, which speech recognition writes down: "那个我就是那个那个我住在那个建华小区啊".
# Only words that carry nothing in a report; 然后 and 喂 stay (然后 joins clauses, 喂 is also 喂养).
SPOKEN_FILLERS = ("那个", "这个", "就是说", "就是", "嗯", "呃", "啊")
SPOKEN_FILLERS_RE = re.compile("|".join(SPOKEN_FILLERS))


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@cache
def _t2s_triggers() -> tuple[frozenset[str], tuple[str, ...]]:
    """What opencc's t2s may change: the characters it converts, and the phrases it rewrites that hold none of them
    (么麽 → 幺麽, 反覆 → 反复). A text with neither comes out of t2s as it went in, so it skips opencc, whose
    pure-Python matching was two thirds of the time of reading a 2,000-character letter."""
    folder = Path(opencc.__file__).resolve().parent / "dictionary"

    def entries(name: str) -> list[tuple[str, str]]:
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        return [(key, values.split(" ")[0]) for key, _, values in (line.partition("\t") for line in lines)]

    chars = frozenset(key for key, first in entries("TSCharacters.txt") if first != key)
    phrases = tuple(key for key, first in entries("TSPhrases.txt") if first != key and chars.isdisjoint(key))
    return chars, phrases


def _t2s_changes(text: str) -> bool:
    chars, phrases = _t2s_triggers()
    return not chars.isdisjoint(text) or any(phrase in text for phrase in phrases)


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
    text = unicodedata.normalize("NFKC", text)
    if _t2s_changes(text):
        text = _t2s().convert(text)
    text = NOISE.sub("", text)
    text = "".join(text.split())
    text = PUNCT_REPEAT.sub(r"\1", text)
    text = REPEAT.sub(r"\1\1", text)
    return NUMBER_WORD.sub(lambda m: str(cn_number(m.group())), text)


def without_fillers(text: str) -> str:
    """The normal form without spoken fillers, as the trained classifier reads it: in a hotline transcript they can
    be half of the characters, and as TF-IDF terms they dilute the vector of the problem the caller describes."""
    return SPOKEN_FILLERS_RE.sub("", text)
