"""Gridline's labels of the real message-board letters: well-formed, complete for the held-out 附件4, and never
touching the rows that belong to the outside check."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from core.scope import load_scope
from core.taxonomy import DEFAULT_FILE, read_toml
from nlp import taidi

pytestmark = pytest.mark.skipif(not taidi.available(), reason=f"the taidi sample is not at {taidi.DEFAULT_DATA}")


def _rows(path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_every_label_is_one_code_or_one_topic_and_its_second_is_a_code():
    codes = {item.code for item in read_toml(DEFAULT_FILE).items if item.kind == "matter"}
    topics = set(load_scope().topics)
    labels = _rows(taidi.DEFAULT_LABELS)
    for row in labels:
        assert bool(row["code"]) != bool(row["topic"]), row
        assert row["code"] in codes or row["topic"] in topics, row
        if "second=" in row["note"]:
            assert row["note"].split("second=", 1)[1][:5] in codes, row
    assert not [k for k, n in Counter((r["source"], r["id"]) for r in labels).items() if n > 1]


def test_all_of_the_held_out_set_is_labelled_and_read_back():
    ids = [r["留言编号"].strip() for r in _rows(taidi.DEFAULT_DATA / taidi.FILES["附件4"])]
    letters = taidi.letters(taidi.HELDOUT)
    assert [x.id for x in letters] == ids
    assert all(x.text.strip() and (x.code or x.topic) for x in letters)
    assert {x.source for x in taidi.letters(taidi.TRAINING)} == {"附件2", "附件3"}  # 附件4 never trains


def test_no_row_of_the_outside_check_is_labelled_or_read():
    outside = {
        r["留言编号"].strip()
        for r in _rows(taidi.DEFAULT_DATA / taidi.FILES["附件2"])
        if r["一级分类"] in taidi.OUTSIDE_CHECK
    }
    labelled = {r["id"] for r in _rows(taidi.DEFAULT_LABELS) if r["source"] == "附件2"}
    assert outside and not labelled & outside
    assert not {x.id for x in taidi.letters(("附件2",))} & outside
    texts, _ = zip(*taidi.training_examples(), strict=True)
    letters = taidi.letters(taidi.TRAINING)  # each with and without its title, less those heldout.jsonl holds
    assert 2 * len(letters) - 60 < len(texts) < 2 * len(letters)


def test_where_the_two_labellings_differ_the_settled_label_says_why():
    second = {(r["source"], r["id"]): r for r in _rows(taidi.DEFAULT_LABELS.with_name("taidi_labels_second.csv"))}

    def label(row: dict[str, str]) -> tuple[str, str]:
        return row["code"], row["topic"]

    differ = [r for r in _rows(taidi.DEFAULT_LABELS) if label(second.get((r["source"], r["id"]), r)) != label(r)]
    assert differ and not [r for r in differ if not r["note"].strip()]
