"""The 泰迪杯 2020 message-board sample (real letters to a provincial 网络问政 board, ``../shared/data``) with
Gridline's own labels of it (``nlp/corpus/taidi_labels.csv``, rules in ``nlp/corpus/TAIDI.md``).

The texts cannot ship, so they are read from the shared data folder and joined with the labels by 留言编号. Three
uses, kept apart here so that no caller can mix them up:

- ``training`` rows: 附件2's classes other than 城乡建设 and 环境保护, and 附件3;
- ``heldout`` rows: 附件4, the project's own real held-out set: never trained or tuned on;
- 附件2's 城乡建设 and 环境保护 rows belong to the outside check and are never read at all.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nlp.corpus import board_text
from nlp.metrics import read_jsonl
from nlp.normalise import normalise

SHARED = Path(os.environ.get("GRIDLINE_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))
DEFAULT_DATA = SHARED / "data" / "taidi2020_c_sample"
DEFAULT_LABELS = Path(__file__).resolve().parent / "corpus" / "taidi_labels.csv"
HELDOUT_FILE = Path(__file__).resolve().parent / "corpus" / "heldout.jsonl"
FILES = {
    "附件2": "附件2_messages_labeled.csv",
    "附件3": "附件3_hot_issue_messages.csv",
    "附件4": "附件4_messages_with_replies.csv",
}
OUTSIDE_CHECK = frozenset({"城乡建设", "环境保护"})  # 附件2 classes nobody on the project reads
TRAINING = ("附件2", "附件3")
HELDOUT = ("附件4",)


@dataclass(frozen=True)
class Letter:
    source: str
    id: str
    text: str  # title, newline, body
    code: str | None
    topic: str | None
    secondary: str | None


def available(data: Path = DEFAULT_DATA) -> bool:
    return all((data / name).is_file() for name in FILES.values())


def letters(sources: tuple[str, ...], data: Path = DEFAULT_DATA, labels: Path = DEFAULT_LABELS) -> list[Letter]:
    """The labelled letters of these sources, in the labels file's order; [] when the shared data is absent."""
    if not available(data) or not labels.is_file():
        return []
    texts: dict[tuple[str, str], str] = {}
    for source in sources:
        with (data / FILES[source]).open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        # an id that the outside check uses is skipped in every class (附件2 has one id under two classes)
        outside = {row["留言编号"].strip() for row in rows if row.get("一级分类") in OUTSIDE_CHECK}
        for row in rows:
            if row["留言编号"].strip() not in outside:
                texts[source, row["留言编号"].strip()] = board_text(row["留言主题"], row["留言详情"])
    out = []
    with labels.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["source"], row["id"].strip())
            if key[0] in sources and key in texts:
                note = row.get("note") or ""
                second = note.split("second=", 1)[1][:5] if "second=" in note else None
                out.append(Letter(*key, texts[key], row["code"] or None, row["topic"] or None, second))
    return out


def training_examples(data: Path = DEFAULT_DATA, labels: Path = DEFAULT_LABELS) -> list[tuple[str, str | None]]:
    """The training letters as (text, 事项 code or scope topic); [] when the shared data or the labels are absent.
    Each letter also counts once without its title, since many letters reach a centre without one. A letter whose
    body is (within 90 % of) a message of heldout.jsonl stays out: the held-out set keeps it."""
    from rapidfuzz import fuzz, process

    held = [normalise(row.text) for row in read_jsonl(HELDOUT_FILE)]  # some of its messages came from this sample
    out = []
    for letter in letters(TRAINING, data, labels):
        body = normalise(letter.text.split("\n", 1)[-1])
        if process.extractOne(body, held, scorer=fuzz.ratio, score_cutoff=90) is not None:
            continue
        key = letter.code or letter.topic
        out.append((letter.text, key))
        if "\n" in letter.text:
            out.append((letter.text.split("\n", 1)[1], key))
    return out


def digest(examples: list[tuple[str, str | None]]) -> str:
    """What a model learnt from the real letters (their texts and labels, never the held-out rows' labels), for the
    model card's check that the shipped model is the one this checkout trains."""
    return hashlib.sha256(json.dumps(examples, ensure_ascii=False).encode()).hexdigest()[:16]
