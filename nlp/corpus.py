"""Training corpus for the text → 管理事项 classifier, generated from hand-written phrasings.

No public corpus maps what citizens write to GB/T 47678.5 codes, so Gridline writes its own material
(``nlp/corpus/phrasings.toml``: objects, problems, complete sentences and templates per 事项 code, plus out-of-scope
messages) and turns it into examples here. Generation is deterministic for a seed and takes a few seconds, so the
generated ``train.jsonl`` stays out of git and is rebuilt with :func:`build`.

Each example has one of two styles, the two ways reports reach Gridline:

- ``typed``: WeChat / web chat text as people type it, the hand sentences as written plus noisy copies (emoji,
  particles 啊/呀/了, ``!!!``, full-width characters, pinyin-IME typos, missing punctuation);
- ``hotline``: what speech recognition makes of a 12319 call: no punctuation at all, fillers (那个, 就是, 嗯 …),
  repeated words, numbers as spoken, and a share of characters replaced by another common character with the same
  pinyin, as an ASR system gets homophones wrong.

Common 事项 get more examples than rare ones (each table's ``volume``), about 15 % of the corpus is out of scope.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import random
import re
import string
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pypinyin import lazy_pinyin

from nlp.letters import FRAME

Style = Literal["typed", "hotline", "letter", "real"]

DEFAULT_PHRASINGS = Path(__file__).resolve().parent / "corpus" / "phrasings.toml"
LETTERS_NAME = "letters.toml"  # beside the phrasings file: the frame of long letters and formal material per 事项
FRAME_PARTS = ("salutations", "introductions", "histories", "impacts", "requests", "closings", "asides")
DEFAULT_VOLUME = 40  # examples for a 事项 whose table names no volume: rare codes still need a few dozen
OUT_OF_SCOPE_SHARE = 0.15
HOTLINE_SHARE = 0.4
LETTERS_PER_MATTER = 24  # letters for a 事项 with formal material in letters.toml
LETTERS_PER_TOPIC = 40  # letters for an out-of-scope topic with formal material: most board letters are out of scope

_CODE_RE = re.compile(r"^\d{5}$")
_OBJECT_SLOTS = frozenset({"obj", "problem"})
_MATTER_KEYS = frozenset(
    {"name", "volume", "objects", "problems", "sentences", "templates", "generic", "topic", "formal", "subjects"}
)
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_CLAUSE_SPLIT = re.compile(r"[\s,，。！!？?；;：:、…~～“”\"'‘’()（）【】\[\]<>《》/—-]+")

EMOJI = ("😡", "😠", "🙏", "😭", "👍", "😤", "💢", "🤮", "😓", "😂", "🙄", "😩", "⚠️", "‼️")
PARTICLES = ("啊", "呀", "了", "啦", "哈", "吧", "呢", "哦", "嘛")
EXCLAIMS = ("!!!", "！！！", "!!", "！！", "？？？", "???", "。。。", "!!!!!!", "～", "...")
TYPED_PREFIXES = ("你好 ", "请问，", "您好，")
REPORT_PREFIXES = ("城管你好，", "@城管 ", "投诉！", "【反映问题】", "急！", "反映：", "紧急！")
FILLERS = ("那个", "就是", "嗯", "然后", "我跟你说", "呃", "这个", "就是说", "反正", "你知道吧", "那个那个", "怎么说呢")
OPENINGS = ("喂", "喂你好", "你好", "喂喂", "哎你好", "喂是12319吗", "是城管吗", "你好你好")
REPORT_OPENINGS = ("你好我想反映个事", "我要反映个问题", "你好我要投诉", "我打电话是想说一下", "喂我反映个情况")
REPORT_CLOSINGS = (
    "你们赶紧来看看吧",
    "就这个事",
    "麻烦你们了",
    "好谢谢",
    "你们管一下",
    "就这样",
    "你们记一下",
    "尽快啊",
)
_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class Example:
    """One training example: what a citizen wrote or said, its 事项 code (None: out of scope), its style and, out of
    scope, its topic (``FRAME`` for a letter's frame sentence alone)."""

    text: str
    code: str | None
    style: Style
    topic: str | None = None


@dataclass(frozen=True)
class Group:
    """The material of one 事项 code or one out-of-scope topic."""

    key: str
    code: str | None
    name: str
    volume: int | None
    objects: tuple[str, ...]
    problems: tuple[str, ...]
    sentences: tuple[str, ...]
    templates: tuple[str, ...]
    generic: str | None  # which [templates] list also applies (None: only the group's own templates)
    slots: Mapping[str, tuple[str, ...]]  # slot lists of this group only
    topic: str | None = None  # the scope topic of an out-of-scope group
    formal: tuple[str, ...] = ()  # letter-body sentences (phrasings or letters.toml)
    subjects: tuple[str, ...] = ()  # letter titles


@dataclass(frozen=True)
class Phrasings:
    """The parsed phrasings file: shared slots and templates, one group per 事项 code and per out-of-scope topic."""

    slots: Mapping[str, tuple[str, ...]]
    templates: Mapping[str, tuple[str, ...]]
    matters: Mapping[str, Group]
    out_of_scope: Mapping[str, Group]
    frame: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # letters.toml [frame]


# ------------------------------------------------------------------------------------------------------ loading


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _fields(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


def _group(key: str, code: str | None, table: Mapping[str, object], default_generic: str | None) -> Group:
    where = f"[{'matter' if code else 'out_of_scope'}.{key}]"
    lists = {k: _strings(v, f"{where} {k}") for k, v in table.items() if isinstance(v, list)}
    volume = table.get("volume")
    if volume is not None and (not isinstance(volume, int) or volume <= 0):
        raise ValueError(f"{where} volume: expected a positive integer")
    generic = table.get("generic", default_generic)
    if generic is not None and not isinstance(generic, str):
        raise ValueError(f"{where} generic: expected the name of a [templates] list")
    local = {k: v for k, v in lists.items() if k not in _MATTER_KEYS}
    topic = table.get("topic", None if code else key)
    if not code and not isinstance(topic, str):
        raise ValueError(f"{where} topic: expected the key of a scope topic")
    return Group(
        key=key,
        code=code,
        name=str(table.get("name", key)),
        volume=volume,
        objects=lists.get("objects", ()),
        problems=lists.get("problems", ()),
        sentences=lists.get("sentences", ()),
        templates=lists.get("templates", ()),
        generic=generic if lists.get("objects") and lists.get("problems") else None,
        slots=local,
        topic=None if code else str(topic),
        formal=lists.get("formal", ()),
        subjects=lists.get("subjects", ()),
    )


def load_phrasings(path: str | Path = DEFAULT_PHRASINGS) -> Phrasings:
    """Read and check a phrasings file; a mistake (bad code, unknown slot, missing list) raises ValueError."""
    doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    slots = {k: _strings(v, f"[slots] {k}") for k, v in doc.get("slots", {}).items()}
    templates = {k: _strings(v, f"[templates] {k}") for k, v in doc.get("templates", {}).items()}
    matters: dict[str, Group] = {}
    for code, table in sorted(doc.get("matter", {}).items()):
        if not _CODE_RE.match(code):
            raise ValueError(f"[matter.{code}]: a 事项 code has 5 digits")
        matters[code] = _group(code, code, table, "generic")
    out_of_scope = {k: _group(k, None, t, None) for k, t in sorted(doc.get("out_of_scope", {}).items())}
    frame: dict[str, tuple[str, ...]] = {}
    letters_path = Path(path).with_name(LETTERS_NAME)
    if letters_path.is_file():  # a phrasings file of its own (tests, a city's) may come without letters
        letters = tomllib.loads(letters_path.read_text(encoding="utf-8"))
        frame = {k: _strings(v, f"{LETTERS_NAME} [frame] {k}") for k, v in letters.get("frame", {}).items()}
        for code, table in sorted(letters.get("matter", {}).items()):
            if code not in matters:
                raise ValueError(f"{LETTERS_NAME} [matter.{code}]: no such 事项 in the phrasings file")
            extra = {k: _strings(table.get(k, []), f"{LETTERS_NAME} [matter.{code}] {k}") if table.get(k) else ()
                     for k in ("formal", "subjects")}  # fmt: skip
            old = matters[code]
            matters[code] = dataclasses.replace(
                old, formal=old.formal + extra["formal"], subjects=old.subjects + extra["subjects"]
            )
    phrasings = Phrasings(slots, templates, matters, out_of_scope, frame)
    for group in (*matters.values(), *out_of_scope.values()):
        _check(phrasings, group)
    return phrasings


def _check(phrasings: Phrasings, group: Group) -> None:
    where = f"[{'matter' if group.code else 'out_of_scope'}.{group.key}]"
    if not group.sentences and not group.templates:
        raise ValueError(f"{where}: needs sentences or templates")
    if group.generic is not None and group.generic not in phrasings.templates:
        raise ValueError(f"{where} generic: no [templates] list {group.generic!r}")
    for template in _templates(phrasings, group):
        for name in _fields(template):
            if name in _OBJECT_SLOTS:
                if not (group.objects and group.problems):
                    raise ValueError(f"{where}: template {template!r} needs objects and problems")
            elif name not in group.slots and name not in phrasings.slots:
                raise ValueError(f"{where}: template {template!r} uses unknown slot {name!r}")


def _templates(phrasings: Phrasings, group: Group) -> tuple[str, ...]:
    shared = phrasings.templates[group.generic] if group.generic else ()
    return group.templates + shared


# --------------------------------------------------------------------------------------------------- homophones


def _gb2312_level1() -> list[str]:
    """The 3,755 characters of GB 2312 level 1 (一级汉字, the common characters), in the standard's pinyin order."""
    return [
        bytes((row, cell)).decode("gb2312")
        for row in range(0xB0, 0xD8)
        for cell in range(0xA1, 0xFF)
        if not (row == 0xD7 and cell > 0xF9)  # row 55 ends at D7F9
    ]


def _jieba_counts(chars: Iterable[str]) -> dict[str, int]:
    """How often jieba's dictionary counts each character as a word of its own (1 when it does not)."""
    import jieba  # only its dictionary file is read; no tokenizer is initialised

    wanted = set(chars)
    counts = dict.fromkeys(wanted, 1)
    with open(Path(jieba.__file__).resolve().parent / "dict.txt", encoding="utf-8") as dictionary:
        for line in dictionary:
            word, _, rest = line.partition(" ")
            if word in wanted:
                counts[word] += int(rest.split(" ", 1)[0])
    return counts


@functools.cache
def homophones() -> Mapping[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """Toneless pinyin → the common characters read that way and their counts, built with pypinyin.lazy_pinyin.

    The common characters are GB 2312 level 1; jieba's counts only weight them, so that a wrong character is more
    often a frequent one (as with ASR and pinyin input) without letting the dictionary's rare entries in.
    """
    chars = _gb2312_level1()
    counts = _jieba_counts(chars)
    table: dict[str, list[tuple[str, int]]] = {}
    for char in chars:
        table.setdefault(lazy_pinyin(char)[0], []).append((char, counts[char]))
    return {
        reading: (tuple(c for c, _ in entries), tuple(n for _, n in entries))
        for reading, entries in sorted(table.items())
        if len(entries) > 1
    }


@functools.lru_cache(maxsize=65536)
def _reading_at(window: str, k: int) -> str:
    """The pinyin of ``window[k]`` read in its context (银行 → hang, 行走 → xing); a window of hanzi only."""
    readings = lazy_pinyin(window)
    return readings[k] if len(readings) == len(window) else lazy_pinyin(window[k])[0]


def _homophone(char: str, reading: str, rng: random.Random) -> str:
    chars, counts = homophones().get(reading, ((), ()))
    options = [(c, n) for c, n in zip(chars, counts, strict=True) if c != char]
    if not options:
        return char
    # the square root flattens jieba's counts: the error is a common character, not always the same one
    return rng.choices([c for c, _ in options], weights=[n**0.5 for _, n in options])[0]


def replace_homophones(text: str, share: float, rng: random.Random) -> str:
    """Replace about ``share`` of the hanzi of ``text`` by a common character with the same (toneless) pinyin."""
    out = list(text)
    for match in _CJK_RUN.finditer(text):
        start, end = match.span()
        for i in range(start, end):
            if rng.random() < share:
                # two characters either side are context enough for pypinyin's phrases, and windows repeat (cached)
                lo, hi = max(start, i - 2), min(end, i + 3)
                out[i] = _homophone(text[i], _reading_at(text[lo:hi], i - lo), rng)
    return "".join(out)


# ----------------------------------------------------------------------------------------------------- styles


def _is_text_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN"


def _ends_in_punctuation(text: str) -> bool:
    return bool(text) and not _is_text_char(text[-1])


def _to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and (c.isalnum() or c in "!?") else c for c in text)


def _to_halfwidth_punctuation(text: str) -> str:
    return text.translate(str.maketrans("，。！？：；（）", ",.!?:;()"))


def typed(text: str, rng: random.Random, *, report: bool = True) -> str:
    """A typed variant of a sentence: one to three kinds of chat noise."""
    ops = rng.sample(range(8), k=rng.choice((1, 1, 2, 2, 3)))
    for op in sorted(ops):
        if op == 0:  # a particle before the final punctuation, or at the end
            core = text.rstrip("。！？!?.～~ ")
            text = core + rng.choice(PARTICLES) + text[len(core) :]
        elif op == 1:  # shouting or trailing off
            text = text.rstrip("。！？!?.～~ ") + rng.choice(EXCLAIMS)
        elif op == 2:  # emoji at the end, sometimes doubled
            text = text + rng.choice(EMOJI) * rng.choice((1, 1, 2, 3))
        elif op == 3:  # full-width digits and letters, or half-width punctuation from a phone keyboard
            converted = _to_fullwidth(text)
            text = converted if converted != text else _to_halfwidth_punctuation(text)
        elif op == 4:  # an IME typo: a homophone, a doubled or a dropped character
            kind = rng.random()
            hanzi = [m.start() for m in re.finditer(r"[\u4e00-\u9fff]", text)]
            if kind < 0.6 and hanzi:
                i = rng.choice(hanzi)
                lo, hi = max(0, i - 2), min(len(text), i + 3)
                window = "".join(c for c in text[lo:hi] if "\u4e00" <= c <= "\u9fff")
                k = sum(1 for c in text[lo:i] if "\u4e00" <= c <= "\u9fff")
                text = text[:i] + _homophone(text[i], _reading_at(window, k), rng) + text[i + 1 :]
            elif len(text) > 4:
                i = rng.randrange(1, len(text) - 1)
                text = text[:i] + text[i] + text[i:] if kind < 0.8 else text[:i] + text[i + 1 :]
        elif op == 5:  # no punctuation, clauses run together or split by spaces
            text = rng.choice(("", " ")).join(p for p in _CLAUSE_SPLIT.split(text) if p)
        elif op == 6:  # a prefix addressed to the city
            text = rng.choice(TYPED_PREFIXES + REPORT_PREFIXES if report else TYPED_PREFIXES) + text
        else:  # a comma dropped or a space added
            text = text.replace("，", rng.choice(("", " ", "，，", ",")), 1)
    return text.strip()


def _spoken_number(digits: str) -> str:
    """Digits as speech recognition writes them: 88 → 八十八, 12319 → 一二三一九."""
    if len(digits) >= 3 or digits.startswith("0"):
        return "".join(_DIGITS[int(d)] for d in digits)
    n = int(digits)
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


def hotline(text: str, rng: random.Random, *, report: bool = True) -> str:
    """What ASR makes of the sentence said on the phone: no punctuation, fillers, repeats, homophones."""
    text = unicodedata.normalize("NFKC", text)
    if rng.random() < 0.7:
        text = re.sub(r"\d+", lambda m: _spoken_number(m.group()), text)
    clauses = [c for c in ("".join(ch for ch in part if _is_text_char(ch)) for part in _CLAUSE_SPLIT.split(text)) if c]
    if not clauses:
        return ""
    if rng.random() < 0.35:  # a false start: the first characters of a clause said twice
        i = rng.randrange(len(clauses))
        head = clauses[i][: rng.choice((1, 2, 2, 3))]
        clauses[i] = head + clauses[i]
    pieces: list[str] = []
    if rng.random() < 0.45:
        pieces.append(rng.choice(OPENINGS + REPORT_OPENINGS if report else OPENINGS))
    for n, clause in enumerate(clauses):
        if (n > 0 and rng.random() < 0.5) or (n == 0 and rng.random() < 0.2):
            pieces.append(rng.choice(FILLERS))
        pieces.append(clause)
    if report and rng.random() < 0.3:
        pieces.append(rng.choice(REPORT_CLOSINGS))
    spoken = replace_homophones("".join(pieces), rng.uniform(0.02, 0.1), rng)
    return "".join(ch for ch in spoken if _is_text_char(ch))


# ------------------------------------------------------------------------------------------------- generation


def _fill(template: str, phrasings: Phrasings, group: Group, rng: random.Random) -> str:
    values: dict[str, str] = {}
    for name in _fields(template):
        if name in values:
            continue
        if name == "obj":
            values[name] = rng.choice(group.objects)
        elif name == "problem":
            values[name] = rng.choice(group.problems)
        else:
            values[name] = rng.choice(group.slots.get(name) or phrasings.slots[name])
    return template.format(**values)


def _volumes(phrasings: Phrasings, per_code: int | None) -> dict[str, int]:
    """How many examples each group gets: the table's volume (or per_code), out of scope ≈ 15 % of all."""
    volumes = {code: per_code or group.volume or DEFAULT_VOLUME for code, group in phrasings.matters.items()}
    in_scope = sum(volumes.values())
    oos_total = round(in_scope * OUT_OF_SCOPE_SHARE / (1 - OUT_OF_SCOPE_SHARE))
    weights = {key: len(g.sentences) + 3 * len(g.templates) for key, g in phrasings.out_of_scope.items()}
    total_weight = sum(weights.values()) or 1
    for key, weight in weights.items():
        volumes[f"oos:{key}"] = max(1, round(oos_total * weight / total_weight))
    return volumes


def _group_examples(phrasings: Phrasings, group: Group, target: int, seed: int) -> list[Example]:
    rng = random.Random(f"{seed}:{group.code or 'oos:' + group.key}")
    templates = _templates(phrasings, group)
    report = group.code is not None
    seen: dict[str, Example] = {}

    def add(text: str, style: Style) -> None:
        text = text.strip()
        if text and text not in seen:
            seen[text] = Example(text, group.code, style, group.topic)

    hand = list(group.sentences) + list(group.formal)
    # short sentences as written, formal ones only as drawn; a small target keeps room for its hotline share
    first, seeds = list(group.sentences), round(target * (1 - HOTLINE_SHARE))
    for sentence in first if seeds >= len(first) else rng.sample(first, seeds):
        add(sentence, "typed")
    attempts = 0
    while len(seen) < target and attempts < 30 * target:
        attempts += 1
        use_template = templates and (not hand or rng.random() < 0.5)
        base = _fill(rng.choice(templates), phrasings, group, rng) if use_template else rng.choice(hand)
        if rng.random() < HOTLINE_SHARE:
            add(hotline(base, rng, report=report), "hotline")
        else:
            add(base if use_template and rng.random() < 0.35 else typed(base, rng, report=report), "typed")
    return list(seen.values())


# ---------------------------------------------------------------------------------------------------------- letters


def board_text(title: str, body: str) -> str:
    """A message-board letter as Gridline reads it: the title on its own first line, then the body (the boards'
    ``_x000D_`` and runs of whitespace taken out)."""
    clean = [re.sub(r"\s+", "", part.replace("_x000D_", "")) for part in (title, body)]
    return "\n".join(part for part in clean if part)


def _sentence(text: str) -> str:
    return text if _ends_in_punctuation(text) else text + "。"


def _complaint(phrasings: Phrasings, group: Group, rng: random.Random) -> str:
    """One sentence of the group's problem: formal material first, else a hand sentence or a filled template."""
    if group.formal and rng.random() < 0.8:
        return _sentence(rng.choice(group.formal))
    templates = _templates(phrasings, group)
    if templates and (not group.sentences or rng.random() < 0.4):
        return _sentence(_fill(rng.choice(templates), phrasings, group, rng))
    return _sentence(rng.choice(group.sentences or group.formal))


def _frame(phrasings: Phrasings, part: str, share: float, rng: random.Random) -> list[str]:
    options = phrasings.frame.get(part)
    if not options or rng.random() >= share:
        return []
    places = phrasings.frame.get("places") or phrasings.slots["place"]
    return [rng.choice(options).replace("{place}", rng.choice(places))]


def letter(phrasings: Phrasings, group: Group, rng: random.Random, other: Group | None = None) -> str:
    """A letter to the centre as people write them on a 网络问政 board: often a title, a greeting, who is writing,
    the complaint in one to three sentences with its history, maybe a second, minor problem (``other``), what it
    does to people, a request and a closing, with a remark about something else now and then."""
    complaints = [_complaint(phrasings, group, rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
    parts = [
        *_frame(phrasings, "salutations", 0.5, rng),
        *_frame(phrasings, "introductions", 0.5, rng),
        *_frame(phrasings, "asides", 0.25, rng),
        complaints[0],
        *_frame(phrasings, "histories", 0.6, rng),
        *complaints[1:],
        *([_complaint(phrasings, other, rng)] if other is not None else []),
        *_frame(phrasings, "impacts", 0.5, rng),
        *_frame(phrasings, "asides", 0.15, rng),
        *_frame(phrasings, "requests", 0.8, rng),
        *_frame(phrasings, "closings", 0.5, rng),
    ]
    body = "".join(parts)
    if rng.random() >= 0.8:
        return body
    if group.subjects and phrasings.frame.get("titles"):
        title = rng.choice(phrasings.frame["titles"]).replace("{subject}", rng.choice(group.subjects))
    else:  # the complaint's first clause, as people title a letter when nothing better comes to mind
        title = next((c for c in _CLAUSE_SPLIT.split(complaints[0]) if len(c) >= 4), complaints[0])[:24]
    return board_text(title, body)


def _letters(phrasings: Phrasings, group: Group, target: int, seed: int) -> list[Example]:
    rng = random.Random(f"{seed}:letter:{group.code or 'oos:' + group.key}")
    matters = sorted(phrasings.matters)
    texts: dict[str, None] = {}
    for _ in range(3 * target):
        if len(texts) >= target:
            break
        other = None
        if rng.random() < (0.2 if group.code else 0.1):
            code = rng.choice(matters)
            other = phrasings.matters[code] if code != group.code else None
        texts[letter(phrasings, group, rng, other)] = None
    return [Example(text, group.code, "letter", group.topic) for text in texts]


def _letter_volume(group: Group, per_code: int | None) -> int:
    """Letters per group: where there is letter material, as many as the 事项 is common (a tenth of its volume, at
    most ``LETTERS_PER_MATTER``), so that letters keep the prior of the short messages; a few elsewhere, so that no
    problem is only ever seen in short messages."""
    if per_code is not None:
        return max(1, per_code // 6)
    if group.code is None:
        return LETTERS_PER_TOPIC if group.formal else 6
    if not group.formal:
        return 4
    return min(LETTERS_PER_MATTER, max(4, (group.volume or DEFAULT_VOLUME) // 10))


def _frame_examples(phrasings: Phrasings) -> list[Example]:
    """Each frame sentence alone, as the class of sentences that raise no problem at all."""
    return [
        Example(sentence, None, "typed", FRAME)
        for part in FRAME_PARTS
        for sentence in phrasings.frame.get(part, ())
        if "{" not in sentence
    ]


def generate(phrasings: Phrasings, *, seed: int = 0, per_code: int | None = None) -> list[Example]:
    """The corpus: per 事项 code its volume (or ``per_code``) of examples, then ≈15 % out of scope, then letters
    for every group and the frame sentences alone.

    Deterministic for a seed: every group draws from its own ``random.Random`` seeded with the seed and its key, and
    groups are visited in sorted order. A text that came out under two different labels is dropped everywhere, since
    it cannot teach the classifier either answer.
    """
    volumes = _volumes(phrasings, per_code)
    examples: list[Example] = []
    groups = [(code, g) for code, g in sorted(phrasings.matters.items())]
    groups += [(f"oos:{key}", g) for key, g in sorted(phrasings.out_of_scope.items())]
    for key, group in groups:
        examples.extend(_group_examples(phrasings, group, volumes[key], seed))
    if phrasings.frame:
        for _, group in groups:
            examples.extend(_letters(phrasings, group, _letter_volume(group, per_code), seed))
        examples.extend(_frame_examples(phrasings))
    labels: dict[str, set[str | None]] = {}
    for example in examples:
        labels.setdefault(example.text, set()).add(example.code or f"oos:{example.topic}")
    return [e for e in examples if len(labels[e.text]) == 1]


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    """Write one JSON object {"text", "code", "style", "topic"} per line (UTF-8); returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for e in examples:
            row = {"text": e.text, "code": e.code, "style": e.style, "topic": e.topic}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def build(out_dir: str | Path, seed: int = 0, phrasings: str | Path = DEFAULT_PHRASINGS) -> Path:
    """Generate the corpus from the phrasings file and write ``out_dir/train.jsonl`` (keep it out of git, e.g. var/)."""
    path = Path(out_dir) / "train.jsonl"
    write_jsonl(generate(load_phrasings(phrasings), seed=seed), path)
    return path


def counts(examples: Sequence[Example]) -> dict[str, int]:
    """Examples per style and out of scope, for reports and tests."""
    result = {"total": len(examples), "out_of_scope": sum(e.code is None for e in examples)}
    for e in examples:
        result[e.style] = result.get(e.style, 0) + 1
    return result


def corpus_digest(phrasings: str | Path = DEFAULT_PHRASINGS, *extra: Path) -> str:
    """What a model was trained from (sha256 of the phrasings file, its letters, this generator and any ``extra``
    files such as the real messages' labels): the model card and a test compare it with the checkout, so a stale
    model is noticed."""
    phrasings = Path(phrasings)
    digest = hashlib.sha256(phrasings.read_bytes())
    for path in (phrasings.with_name(LETTERS_NAME), Path(__file__), *extra):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
