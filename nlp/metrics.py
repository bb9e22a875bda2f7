"""How good a classifier is on labelled text, in the terms a centre asks about: is the first guess right (top-1), is
the right code among the three a 受理员 sees (top-3), is at least the 大类 right, and are non-city matters (社保,
学校 …) recognised as such without throwing away real reports. A report the classifier calls out of scope counts as
a miss for every in-scope measure, because the citizen is then sent elsewhere."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp.classify import Classification, Classifier

OOS = "out_of_scope"


class LabelledFileError(ValueError):
    """A labelled file that cannot be read; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Labelled:
    id: str
    text: str
    code: str | None
    channel: str = ""


def _objects(path: Path, fields: tuple[tuple[str, tuple[type, ...]], ...]) -> list[tuple[int, dict[str, Any]]]:
    """The file's JSON objects with their line numbers, each holding ``fields`` of the given types (a text field
    not blank); a file or line that is not so is refused by name."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledFileError(f"{path}: 无法读取 ({exc})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise LabelledFileError(f"{path}:{number}: 不是合法的 JSON") from None
        if not isinstance(row, dict):
            raise LabelledFileError(f"{path}:{number}: 每行应为一个 JSON 对象")
        for name, kinds in fields:
            if name not in row or not isinstance(row[name], kinds) or (name == "text" and not row[name].strip()):
                raise LabelledFileError(f"{path}:{number}: 字段 {name} 缺失或类型不对")
        rows.append((number, row))
    if not rows:
        raise LabelledFileError(f"{path}: 文件中没有数据")
    return rows


def read_jsonl(path: Path) -> list[Labelled]:
    """Lines ``{"id", "text", "code"}`` (code null for out of scope; ``channel`` optional)."""
    rows = _objects(path, (("text", (str,)), ("code", (str, type(None)))))
    return [Labelled(str(r.get("id", n)), r["text"], r["code"], str(r.get("channel", ""))) for n, r in rows]


def read_scope_jsonl(path: Path) -> list[tuple[str, bool]]:
    """Lines ``{"id", "text", "in_scope"}`` of a set labelled in or out of scope only: (text, in scope)."""
    return [(r["text"], r["in_scope"]) for _, r in _objects(path, (("text", (str,)), ("in_scope", (bool,))))]


def out_of_scope_scores(truth: Sequence[bool], said: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of "out of scope", from whether each row is out of scope and whether it was said to
    be."""
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    precision = tp / max(1, sum(said))
    recall = tp / max(1, sum(truth))
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass
class Scores:
    """In-scope accuracy of one group of rows, and what a 受理员 feels of it: the share of all rows the classifier
    decided ``auto`` and how many of those were right (an out-of-scope row decided auto is wrong)."""

    n: int = 0
    top1: float = 0.0
    top3: float = 0.0
    major: float = 0.0
    rows: int = 0
    auto_share: float = 0.0
    auto_precision: float = 0.0
    oos_f1: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class Evaluation:
    overall: Scores
    macro_f1: float
    oos_precision: float
    oos_recall: float
    oos_f1: float
    channels: dict[str, Scores] = field(default_factory=dict)
    confused: list[tuple[str, str, int]] = field(default_factory=list)  # (true, predicted, count), by count
    ms_per_text: float = 0.0
    ece: float = 0.0  # expected calibration error of the first guess's p, 15 bins

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.overall.as_dict(),
            "macro_f1": round(self.macro_f1, 4),
            "out_of_scope": {
                "precision": round(self.oos_precision, 4),
                "recall": round(self.oos_recall, 4),
                "f1": round(self.oos_f1, 4),
            },
            "ece": round(self.ece, 4),
            "channels": {name: s.as_dict() for name, s in sorted(self.channels.items())},
            "confused": [{"code": t, "predicted": p, "count": c} for t, p, c in self.confused],
            "ms_per_text": round(self.ms_per_text, 3),
        }


def _oos(pairs: Sequence[tuple[Labelled, Classification]]) -> tuple[float, float, float]:
    return out_of_scope_scores([row.code is None for row, _ in pairs], [c.code is None for _, c in pairs])


def _scores(pairs: Sequence[tuple[Labelled, Classification]]) -> Scores:
    auto = [(row, c) for row, c in pairs if c.decision == "auto"]
    feel = {
        "rows": len(pairs),
        "auto_share": len(auto) / max(1, len(pairs)),
        "auto_precision": sum(c.code == row.code for row, c in auto) / max(1, len(auto)),
        "oos_f1": _oos(pairs)[2],
    }
    inscope = [(row, c) for row, c in pairs if row.code is not None]
    if not inscope:
        return Scores(0, **feel)
    hits = [(c.code == row.code, row.code in {g.code for g in c.top} and c.code is not None,
             (c.code or "")[:2] == row.code[:2]) for row, c in inscope]  # fmt: skip
    n = len(inscope)
    return Scores(n, sum(h[0] for h in hits) / n, sum(h[1] for h in hits) / n, sum(h[2] for h in hits) / n, **feel)


def calibration_error(pairs: Sequence[tuple[Labelled, Classification]], bins: int = 15) -> float:
    """ECE (Guo et al., 2017) of the first guess: in each band of p, how far the share of rows whose code is that
    guess lies from the mean p, weighted by the band's rows. An out-of-scope row is never its guess's code."""
    banded: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for row, c in pairs:
        if c.top:
            p = c.top[0].p
            banded[min(bins - 1, int(p * bins))].append((p, c.top[0].code == row.code))
    total = sum(len(v) for v in banded.values())
    return sum(abs(sum(ok for _, ok in v) - sum(p for p, _ in v)) for v in banded.values()) / max(1, total)


def evaluate(classifier: Classifier, rows: Sequence[Labelled], confused: int = 10) -> Evaluation:
    from sklearn.metrics import f1_score  # here, not at the top: every `gridline` command imports this module

    start = time.perf_counter()
    results = [classifier.classify(row.text) for row in rows]
    ms = (time.perf_counter() - start) * 1000 / max(1, len(rows))
    pairs = list(zip(rows, results, strict=True))
    truth = [row.code or OOS for row in rows]
    predicted = [c.code or OOS for c in results]
    codes = sorted({t for t in truth if t != OOS})
    macro = float(f1_score(truth, predicted, labels=codes, average="macro", zero_division=0)) if codes else 0.0
    precision, recall, f1 = _oos(pairs)
    by_channel: dict[str, list[tuple[Labelled, Classification]]] = defaultdict(list)
    for row, c in pairs:
        by_channel[row.channel or "-"].append((row, c))
    mistakes = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return Evaluation(
        overall=_scores(pairs),
        macro_f1=macro,
        oos_precision=precision,
        oos_recall=recall,
        oos_f1=f1,
        channels={name: _scores(group) for name, group in by_channel.items()},
        confused=[(t, p, n) for (t, p), n in sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))[:confused]],
        ms_per_text=ms,
        ece=calibration_error(pairs),
    )
