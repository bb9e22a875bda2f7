"""The labelled files' readers refuse a bad line by file, line and field; out-of-scope precision and recall are
counted the same for both kinds of labelled set."""

from __future__ import annotations

import pytest

from nlp.metrics import LabelledFileError, out_of_scope_scores, read_jsonl, read_scope_jsonl


def test_a_scope_set_is_read_and_a_bad_line_is_refused_by_place_and_field(tmp_path):
    good = tmp_path / "scope.jsonl"
    good.write_text('{"id": "s1", "text": "路灯不亮", "in_scope": true}\n\n{"text": "你好", "in_scope": false}\n',
                    "utf-8")
    assert read_scope_jsonl(good) == [("路灯不亮", True), ("你好", False)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "路灯不亮", "in_scope": true}\n{"text": "你好", "in_scope": "no"}\n', "utf-8")
    with pytest.raises(LabelledFileError, match=r"bad\.jsonl:2: 字段 in_scope"):
        read_scope_jsonl(bad)
    with pytest.raises(LabelledFileError, match=r"bad\.jsonl:1: 字段 code"):  # a scope set is not a code set
        read_jsonl(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", "utf-8")
    with pytest.raises(LabelledFileError, match="没有数据"):
        read_scope_jsonl(empty)


def test_out_of_scope_scores():
    # two truly out of scope; three said so, one of them a real report
    precision, recall, f1 = out_of_scope_scores([True, True, False, False], [True, False, True, True])
    assert (precision, recall) == (pytest.approx(1 / 3), 0.5) and f1 == pytest.approx(0.4)
    assert out_of_scope_scores([False], [False]) == (0.0, 0.0, 0.0)
