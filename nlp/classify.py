"""Text → 管理事项 code. The interface the rest of Gridline uses (``Classifier``, ``Classification``) and a keyword
classifier behind it; a trained model replaces the latter later without changing the former.

nlp knows nothing of Gridline's tables: the label set is handed in as plain ``Label`` data.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Decision = Literal["auto", "review", "out_of_scope"]
URGENT_CUES = (
    "掉进去",
    "掉下去",
    "摔倒",
    "漏气",
    "燃气味",
    "煤气味",
    "大面积积水",
    "淹了",
    "倒伏",
    "倒了",
    "压车",
    "砸到",
    "砸伤",
    "冒烟",
    "起火",
    "着火",
    "塌陷",
    "塌了",
    "漏电",
    "触电",
    "爆管",
    "喷水",
)


@dataclass(frozen=True)
class Label:
    """One 管理事项 the classifier may answer with."""

    code: str
    name: str
    major: str
    component: str | None
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Guess:
    code: str
    name: str
    p: float


@dataclass(frozen=True)
class Classification:
    text: str
    top: tuple[Guess, ...]
    decision: Decision
    severity: Literal["一般", "紧急"]
    component: str | None = None

    @property
    def code(self) -> str | None:
        return self.top[0].code if self.top and self.decision != "out_of_scope" else None

    @property
    def major(self) -> str | None:
        return self.code[:2] if self.code else None

    @property
    def component_code(self) -> str | None:
        return self.component if self.code else None


class Classifier(Protocol):
    def classify(self, text: str) -> Classification: ...


def normalise(text: str) -> str:
    """Full-width → half-width and no whitespace: what the keyword tables are written in."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def severity_of(text: str) -> Literal["一般", "紧急"]:
    return "紧急" if any(cue in text for cue in URGENT_CUES) else "一般"


class KeywordClassifier:
    """Scores each label by the characters of its names and keywords found in the text, the longest match first
    (a span that matched 占道停车 does not also count for 占道), and turns scores into probabilities."""

    def __init__(self, labels: Sequence[Label], *, auto_threshold: float = 0.8, temperature: float = 2.0) -> None:
        self.labels = list(labels)
        self.auto_threshold, self.temperature = auto_threshold, temperature
        terms: dict[str, set[int]] = {}
        for i, label in enumerate(self.labels):
            name = normalise(label.name)
            for term in {name, name.removesuffix("异常"), *map(normalise, label.keywords)}:
                if len(term) >= 2:
                    terms.setdefault(term, set()).add(i)
        self.terms = sorted(terms.items(), key=lambda kv: -len(kv[0]))

    def classify(self, text: str) -> Classification:
        norm = normalise(text)[:2000]
        scores: dict[int, float] = {}
        taken = [False] * len(norm)
        for term, owners in self.terms:
            start = norm.find(term)
            while start != -1:
                span = range(start, start + len(term))
                if not any(taken[k] for k in span):
                    for k in span:
                        taken[k] = True
                    for i in owners:
                        scores[i] = scores.get(i, 0.0) + len(term) / len(owners)
                start = norm.find(term, start + 1)
        severity = severity_of(norm)
        if not scores:
            return Classification(text, (), "out_of_scope", severity)
        best = sorted(scores.items(), key=lambda kv: -kv[1])
        weights = [math.exp(s / self.temperature) for _, s in best]
        # probability mass left for "none of these": an unmatched label set of the same size as the matched ones
        total = sum(weights) + len(best) * 0.5
        top = tuple(
            Guess(self.labels[i].code, self.labels[i].name, w / total) for (i, _), w in zip(best, weights, strict=False)
        )[:3]
        decision: Decision = "auto" if top[0].p >= self.auto_threshold else "review"
        return Classification(text, top, decision, severity, self.labels[best[0][0]].component)
