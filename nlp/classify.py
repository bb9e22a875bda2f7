"""Text → 管理事项 code: the interface the rest of Gridline uses (``Label``, ``Classification``, ``Classifier``) and a
keyword classifier behind it. A trained model replaces the keyword classifier later without changing the interface.

nlp knows nothing of Gridline's tables: the label set is handed in as plain ``Label`` data. A classifier only has to
produce label probabilities; ``Thresholds.classification`` turns them into the answer, so the decision rule (auto /
review / out of scope) and the severity cues stay the same whichever model produced the numbers.

The keyword classifier looks for each label's name and citizen keywords in the text (full-width → half-width, no
spaces). The longest match comes first: a span that matched 占道停车 does not also count for 占道, and each character
of the text counts for at most one term. Besides the terms as written it knows three derived kinds:

- the keyword with its problem word said another way (井盖没了 → 井盖缺失, 井盖丢了, 井盖不见了 …), as strong as the
  keyword;
- the object alone (井盖没了 → 井盖, 下水道井盖破了 → 下水道井盖; for 01–05 matters also the 部件 name, 路灯异常 →
  路灯). It is a little weaker, counts like the keyword when a problem word of that keyword follows within a few
  characters (路灯晚上都不亮), and gets a smaller bonus for any other problem word in the text (井盖 … 被人偷走了);
- the words of a keyword, split by jieba when the classifier is built (never per message). All of them close together
  count like the keyword (半夜施工 in 半夜还在施工). One word alone counts little, and less the commoner it is in
  everyday Chinese (jieba's word counts: 问题 ≈ 0, 油烟 = 1) and the more labels share it.

A label's score ``s`` is the characters its terms cover (times the weight of their kind) plus a bonus per keyword.
``p = exp(s/T) / (Σ exp(s'/T) + exp(s0/T))`` over the matched labels and a "none of these" score ``s0``. So one
short word gives a low p, a long keyword or several a high one, and labels sharing the evidence share the p. With the
defaults (T = 0.7, s0 = 3) a lone keyword of two characters gives p ≈ 0.5 (review), of three or more p ≥ 0.8.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from nlp.normalise import normalise

Decision = Literal["auto", "review", "out_of_scope"]
Severity = Literal["一般", "紧急"]

URGENT_CUES = (
    "掉进去",
    "掉下去",
    "掉井里",
    "摔倒",
    "滑倒",
    "摔伤",
    "崴脚",
    "漏气",
    "燃气味",
    "煤气味",
    "天然气味",
    "大面积积水",
    "积水很深",
    "淹了",
    "倒伏",
    "压车",
    "压住",
    "压到",
    "砸到",
    "砸伤",
    "砸中",
    "冒烟",
    "起火",
    "着火",
    "火灾",
    "塌陷",
    "塌了",
    "坍塌",
    "漏电",
    "触电",
    "电线掉下来",
    "爆管",
    "管道破裂",
    "受伤",
)

# Problem words citizens use after an object (井盖 + 没了). Each group is said many ways; a keyword that ends in one
# member is also matched when written with another.
PROBLEM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("没了", "缺失", "丢了", "丢失", "不见了", "被偷了", "没有了", "缺了", "少了"),
    ("坏了", "损坏", "坏掉了", "坏掉", "烂了", "有问题", "出问题了"),
    ("破了", "破损", "碎了", "破裂", "裂了"),
    ("不亮", "不亮了", "灭了", "黑了", "不亮灯"),
    ("倒了", "倒伏", "倒下了", "倒塌", "倒在地上"),
    ("歪了", "倾斜", "斜了"),
    ("松动", "松了", "晃动", "晃了", "松动了"),
    ("断了", "断裂", "折断"),
    ("堵了", "堵塞", "堵住了", "堵死了"),
    ("掉了", "脱落", "掉下来了"),
    ("塌了", "塌陷", "陷下去了"),
    ("漏水", "渗水", "冒水"),
    ("生锈", "锈了", "锈蚀", "锈迹斑斑"),
    ("看不清", "模糊", "褪色了"),
)
# More problem words: stripped from keywords to find their object, and searched anywhere in the text for the bonus.
PROBLEM_WORDS = (
    *(w for group in PROBLEM_GROUPS for w in group),
    "翘起来",
    "翘起",
    "冒烟",
    "漏电",
    "漏油",
    "漏气",
    "冒臭水",
    "冒粪水",
    "冒热气",
    "不喷",
    "被撞",
    "被烧",
    "被挡",
    "被占",
    "被埋",
    "被涂",
    "没人管",
    "没人清",
    "没人扫",
    "没人修",
    "没盖",
    "没水",
    "满了",
    "太脏",
    "脏",
    "臭",
    "一闪一闪",
    "一直闪",
    "用不了",
    "打不开",
    "关不上",
    "不能用",
    "黑屏",
    "异响",
    "乱跳",
    "太吵",
    "积水",
    "坏",
    "破",
    "丢",
    "偷",
    "缺",
    "断",
    "倒",
    "歪",
    "塌",
    "漏",
    "锈",
    "堵",
)
PROBLEM_SET = frozenset(PROBLEM_WORDS)
PROBLEMS_LONGEST_FIRST = tuple(sorted(PROBLEM_SET, key=len, reverse=True))
# Places, not objects: never a term on their own (but a word of a keyword: 汽车停人行道).
NOT_OBJECTS = frozenset(
    [
        "路边",
        "马路",
        "路上",
        "门口",
        "路口",
        "小区",
        "树上",
        "河里",
        "河边",
        "公园",
        "楼顶",
        "地上",
        "路面",
        "地面",
        "墙上",
        "店门口",
        "人行道",
        "河面",
        "水面",
        "桥下",
        "桥上",
        "工地",
        "门前",
        "地下室",
    ]
)
# Words of keywords too common to be evidence on their own (besides problem words and places).
STOP_WORDS = frozenset(
    [
        "没有",
        "没人",
        "有人",
        "东西",
        "一堆",
        "一块",
        "一路",
        "一地",
        "私自",
        "擅自",
        "乱放",
        "太大",
        "不能",
        "不了",
        "晚上",
        "附近",
        "周边",
        "里面",
        "外面",
        "上面",
        "下面",
        "露出",
        "不知道",
        "马路上",
        "路中间",
        "过期",
        "下来",
    ]
)
SPLIT = re.compile(r"\([^)]*\)")

PHRASE_BONUS = 1.0  # per matched name or keyword, so that a specific two-character keyword (违停, 违建) is not nothing
OBJECT_WEIGHT = 0.8  # an object alone counts per character less than a keyword with its problem word
PROBLEM_BONUS = 1.5  # an object and a problem word somewhere in the same text
WORD_WEIGHT = 0.8  # one word of a keyword alone, divided by √(labels sharing the word)
COMMON_IDF, RARE_IDF = 8.0, 14.0  # -log(share of jieba's corpus) of an everyday word and of a rare one
WORD_GAP = 6  # all words of a keyword within its length + this many characters count like the keyword


@dataclass(frozen=True)
class Label:
    """One 管理事项 the classifier may answer with."""

    code: str  # "06010"
    name: str  # "暴露垃圾"
    major: str  # "06"
    component: str | None  # the 部件 code for matters of 大类 01–05, else None
    keywords: tuple[str, ...]  # words citizens use for it


@dataclass(frozen=True)
class Guess:
    """One candidate answer with its probability."""

    code: str
    name: str
    p: float
    major: str | None = None
    component: str | None = None

    @classmethod
    def of(cls, label: Label, p: float) -> Guess:
        return cls(label.code, label.name, p, label.major, label.component)


@dataclass(frozen=True)
class Topic:
    """One reason a message is not a 城管 matter (社保, 物业管理, 企业污染 …), as a city configures it: ``out`` False
    means the city takes such messages in, as ``code`` when it names one."""

    key: str
    name: str
    reason: str  # what the citizen and the 受理员 read
    out: bool = True
    code: str | None = None


@dataclass(frozen=True)
class Scope:
    """The city's scope: the topics a trained model may recognise, each out (pointed to 12345) or taken in."""

    topics: dict[str, Topic]
    unclear: str = "没有看出需要城管处理的具体问题"  # the reason when no topic stands out

    def reason(self, key: str | None) -> str:
        topic = self.topics.get(key or "")
        return topic.reason if topic else self.unclear


@dataclass(frozen=True)
class Classification:
    """The answer for one text: up to three guesses (p descending, each in [0, 1], together at most 1), what to do
    with it, and how urgent it sounds. ``code``, ``major`` and ``component_code`` are None when out of scope; then
    ``scope`` names the topic (when one stands out) and ``scope_reason`` says why in words. ``secondary`` is a second
    problem a long letter raises beside the main one."""

    text: str
    top: tuple[Guess, ...]
    decision: Decision
    severity: Severity
    scope: str | None = None
    scope_reason: str | None = None
    secondary: Guess | None = None

    @property
    def code(self) -> str | None:
        return self.top[0].code if self.top and self.decision != "out_of_scope" else None

    def as_dict(self) -> dict[str, Any]:
        """The shape reports store and every face serves (intake, API, console, CLI): the scope fields only when
        out of scope, the second problem only when there is one."""
        out: dict[str, Any] = {
            "code": self.code,
            "decision": self.decision,
            "severity": self.severity,
            "top": [{"code": g.code, "name": g.name, "p": round(g.p, 4)} for g in self.top],
        }
        if self.decision == "out_of_scope":
            out |= {"scope": self.scope, "scope_reason": self.scope_reason}
        if self.secondary is not None:
            s = self.secondary
            out["secondary"] = {"code": s.code, "name": s.name, "p": round(s.p, 4)}
        return out

    @property
    def major(self) -> str | None:
        if self.code is None:
            return None
        return self.top[0].major or self.code[:2]

    @property
    def component_code(self) -> str | None:
        return self.top[0].component if self.code is not None else None


class Classifier(Protocol):
    def classify(self, text: str) -> Classification: ...


def severity_of(text: str) -> Severity:
    """紧急 when the (normalised) text has a cue of danger to people or property, else 一般."""
    return "紧急" if any(cue in text for cue in URGENT_CUES) else "一般"


@dataclass(frozen=True)
class Thresholds:
    """The decision rule shared by every classifier: ``auto`` when the best guess has p ≥ ``auto`` and leads the
    runner-up by at least ``margin``; ``review`` when it has p ≥ ``review``; else ``out_of_scope``."""

    auto: float = 0.8
    review: float = 0.3
    margin: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.auto <= 1.0:
            raise ValueError(f"thresholds must satisfy 0 ≤ review ≤ auto ≤ 1, got {self.review}, {self.auto}")

    def decide(self, top: Sequence[Guess]) -> Decision:
        if not top or top[0].p < self.review:
            return "out_of_scope"
        runner_up = top[1].p if len(top) > 1 else 0.0
        return "auto" if top[0].p >= self.auto and top[0].p - runner_up >= self.margin else "review"

    def classification(self, text: str, scored: Iterable[tuple[Label, float]], *, n: int = 3) -> Classification:
        """The answer from label probabilities (any order; labels with p = 0 may be left out)."""
        best = sorted(((label, p) for label, p in scored if p > 0.0), key=lambda lp: (-lp[1], lp[0].code))[:n]
        top = tuple(Guess.of(label, min(1.0, p)) for label, p in best)
        decision = self.decide(top)
        reason = Scope({}).unclear if decision == "out_of_scope" else None
        return Classification(text, top, decision, severity_of(normalise(text)), scope_reason=reason)


def _stems(name: str) -> set[str]:
    """A name and, for a 部件 anomaly, the 部件 name: 输油(气)井盖异常 → 输油(气)井盖异常, 输油井盖异常, 输油井盖."""
    name = normalise(name)
    plain = SPLIT.sub("", name)
    stems = {name, plain}
    return stems | {s.removesuffix("异常") for s in stems if s.endswith("异常")}


def _split_problem(phrase: str) -> tuple[str, str]:
    """(object, problem word) of a keyword such as 下水道井盖破了; ("", "") when it does not end in a problem word."""
    for word in PROBLEMS_LONGEST_FIRST:
        if phrase.endswith(word) and len(phrase) > len(word):
            return phrase[: -len(word)], word
    return "", ""


@functools.cache
def _tokenizer():  # jieba has no type hints
    """jieba's default dictionary, loaded once per process (about a second) and only by a classifier that needs it."""
    import jieba

    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def _rarity(word: str) -> float:
    """0 for a word of everyday Chinese (问题, 管理), up to 1 for a rare one (油烟, 井盖), from jieba's word counts."""
    tokenizer = _tokenizer()
    idf = math.log(tokenizer.total / (tokenizer.FREQ.get(word, 0) + 1))
    return min(1.0, max(0.0, (idf - COMMON_IDF) / (RARE_IDF - COMMON_IDF)))


Part = tuple[str, ...]  # one word of a keyword, or a problem word and its other ways of saying it
Pattern = tuple[int, tuple[Part, ...], int, tuple[float, ...]]  # label, parts after the first, span, weight per part
Index = dict[str, list[tuple[str, dict[int, tuple[float, str]]]]]  # first two characters → (term, its owners)


def _words(phrase: str, objects: list[str]) -> tuple[str, ...]:
    """The words of two characters or more of a keyword, a known object kept whole: 盲道断了 → (盲道,);
    places (人行道) are kept here for patterns but never become terms of their own."""
    head = next((o for o in objects if phrase.startswith(o) and len(o) < len(phrase)), "")
    rest = _tokenizer().lcut(phrase[len(head) :], HMM=False)
    found = [head] if head else []
    for word in rest:
        if len(word) >= 2 and word not in STOP_WORDS and word not in PROBLEM_SET and word not in found:
            found.append(word)
    return tuple(found)


@functools.lru_cache(maxsize=4)
def _tables(labels: tuple[Label, ...], words: bool) -> tuple[Index, dict[str, list[Pattern]]]:
    """The term index and the keyword patterns of a label set; built once per label set (labels are frozen)."""
    terms: dict[str, dict[int, tuple[float, str]]] = {}
    rank = {"phrase": 2, "object": 1, "word": 0}
    # a term found → keywords it starts, whose other parts may follow a few characters later
    patterns: dict[str, list[Pattern]] = {}

    def add(term: str, i: int, weight: float, kind: str) -> None:
        if len(term) < 2 or (kind != "phrase" and term in NOT_OBJECTS):
            return
        owners = terms.setdefault(term, {})
        if i not in owners or rank[owners[i][1]] < rank[kind]:
            owners[i] = (weight, kind)

    groups = {word: group for group in PROBLEM_GROUPS for word in group}
    keywords: list[set[str]] = []  # of each label, without the names: officialese (管理问题) makes poor words
    for i, label in enumerate(labels):
        keywords.append({k for k in map(normalise, label.keywords) if k})
        for phrase in _stems(label.name) | keywords[-1]:
            add(phrase, i, 1.0, "phrase")
            obj, problem = _split_problem(phrase)
            if obj and len(obj) >= 2 and obj not in NOT_OBJECTS:
                add(obj, i, OBJECT_WEIGHT, "object")
                said = groups.get(problem, (problem,))
                for other in said:
                    add(obj + other, i, 1.0, "phrase")
                patterns.setdefault(obj, []).append((i, (said,), len(phrase), (1.0, 1.0)))
        if label.component is not None:
            for stem in _stems(label.name):
                if not stem.endswith("异常"):
                    add(stem, i, OBJECT_WEIGHT, "object")
    if words:
        objects = sorted((t for t, o in terms.items() if any(k == "object" for _, k in o.values())), key=len)
        split = {phrase: _words(phrase, objects[::-1]) for mine in keywords for phrase in mine}
        share: dict[str, set[int]] = {}
        for i, mine in enumerate(keywords):
            for phrase in mine:
                for word in split[phrase]:
                    share.setdefault(word, set()).add(i)
        for i, mine in enumerate(keywords):
            for phrase in mine:
                found = split[phrase]
                for word in found:
                    if word not in NOT_OBJECTS:
                        add(word, i, WORD_WEIGHT * _rarity(word) / math.sqrt(len(share[word])), "word")
                triggers = [w for w in found if w not in NOT_OBJECTS]
                if len(found) >= 2 and triggers:
                    first = max(triggers, key=_rarity)  # the other words are looked for around it
                    rest = tuple(w for w in found if w != first)
                    weights = tuple(0.5 + 0.5 * _rarity(w) for w in (first, *rest))
                    pattern = (i, tuple((w,) for w in rest), len(phrase), weights)
                    patterns.setdefault(first, []).append(pattern)
    # first two characters → the terms starting with them, longest first
    index: dict[str, list[tuple[str, dict[int, tuple[float, str]]]]] = {}
    for term, owners in sorted(terms.items(), key=lambda kv: -len(kv[0])):
        index.setdefault(term[:2], []).append((term, owners))
    return index, patterns


class KeywordClassifier:
    """Scores labels by the names and keywords found in the text (see the module doc); no model file, no training."""

    def __init__(
        self,
        labels: Sequence[Label],
        *,
        auto_threshold: float = 0.8,
        review_threshold: float = 0.3,
        auto_margin: float = 0.5,
        temperature: float = 0.7,
        none_score: float = 3.0,
        words: bool = True,
    ) -> None:
        """``temperature`` and ``none_score`` shape p (see the module doc); ``words=False`` skips jieba and matches
        keywords and objects only."""
        self.labels = tuple(labels)
        self.thresholds = Thresholds(auto_threshold, review_threshold, auto_margin)
        self.temperature, self.none_score = temperature, none_score
        self._index, self._patterns = _tables(self.labels, words)

    @property
    def auto_threshold(self) -> float:
        return self.thresholds.auto

    @property
    def review_threshold(self) -> float:
        return self.thresholds.review

    def scores(self, text: str) -> dict[int, float]:
        """Label index → keyword score of a normalised text; labels it does not mention are left out."""
        scores: dict[int, float] = {}
        for (i, _), value in self._credits(text).items():
            scores[i] = scores.get(i, 0.0) + value
        return scores

    def _credits(self, text: str) -> dict[tuple[int, str], float]:
        """(label index, evidence) → score of a normalised text: what ``scores`` adds up, kept apart for debugging."""
        found: list[tuple[int, int, str, dict[int, tuple[float, str]]]] = []
        index = self._index
        for start in range(len(text) - 1):
            candidates = index.get(text[start : start + 2])
            if candidates:
                for term, owners in candidates:
                    if text.startswith(term, start):
                        found.append((len(term), start, term, owners))
        if not found:
            return {}
        found.sort(key=lambda m: (-m[0], m[1]))
        taken = bytearray(len(text))
        credit: dict[tuple[int, str], float] = {}  # (label, term) → score; a term said twice counts once
        at: dict[str, int] = {}  # term → where it was first found
        objects: set[int] = set()
        for length, start, term, owners in found:
            new = length - sum(taken[start : start + length])
            if new == 0:
                continue  # inside a longer match: 占道 within 占道停车
            taken[start : start + length] = b"\x01" * length
            at.setdefault(term, start)
            for i, (weight, kind) in owners.items():
                if (i, term) not in credit:
                    credit[i, term] = new * weight + (PHRASE_BONUS if kind == "phrase" else 0.0)
                    if kind == "object":
                        objects.add(i)
        paired: set[int] = set()
        for first, start in at.items():
            for i, rest, span, weights in self._patterns.get(first, ()):
                near = self._near(text, start, first, rest, span + WORD_GAP)
                if near is None:
                    continue  # 半夜 without 施工 close by
                parts = (first, *near)
                for part, weight in zip(parts, weights, strict=True):
                    credit[i, part] = max(credit.get((i, part), 0.0), len(part) * weight)
                credit[i, "+".join(parts)] = PHRASE_BONUS
                paired.add(i)
        if objects - paired and (problem := next((w for w in PROBLEMS_LONGEST_FIRST if w in text), "")):
            for i in objects - paired:
                credit[i, f"+{problem}"] = PROBLEM_BONUS
        return credit

    @staticmethod
    def _near(text: str, start: int, first: str, rest: tuple[Part, ...], reach: int) -> list[str] | None:
        """The other parts of a keyword found within ``reach`` characters of its first part, or None."""
        lo, hi = start, start + len(first)
        near = []
        for said in rest:
            best = None
            for word in said:
                k = text.find(word, max(0, hi - reach), min(len(text), lo + reach))
                if k != -1 and max(hi, k + len(word)) - min(lo, k) <= reach:
                    best = (k, word)
                    break
            if best is None:
                return None
            lo, hi = min(lo, best[0]), max(hi, best[0] + len(best[1]))
            near.append(best[1])
        return near

    def probabilities(self, text: str) -> list[tuple[Label, float]]:
        """(label, p) for every label the text mentions; the rest of the mass is "none of these"."""
        scores = self.scores(normalise(text))
        if not scores:
            return []
        top = max(max(scores.values()), self.none_score)
        weights = {i: math.exp((s - top) / self.temperature) for i, s in scores.items()}
        total = sum(weights.values()) + math.exp((self.none_score - top) / self.temperature)
        return [(self.labels[i], w / total) for i, w in weights.items()]

    def classify(self, text: str) -> Classification:
        return self.thresholds.classification(text, self.probabilities(text))
