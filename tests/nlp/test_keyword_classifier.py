"""The keyword classifier behind nlp's interface, on the project's own taxonomy file and real citizen messages."""

from __future__ import annotations

import csv

import pytest

from core.taxonomy import DEFAULT_FILE, as_labels, read_toml
from nlp.classify import KeywordClassifier
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def classifier() -> KeywordClassifier:
    labels = as_labels(read_toml(DEFAULT_FILE).items)
    return KeywordClassifier(labels)


@pytest.mark.parametrize(
    ("text", "code"),
    [("人民路88号门口一大堆垃圾没人清", "06010"), ("有人占道摆摊卖水果", "09006"), ("路灯晚上不亮", "01037"),
     ("人民路88号的雨水井盖没了", "01003")],
)
def test_common_matters(classifier, text, code):
    result = classifier.classify(text)
    assert result.code == code and result.decision in ("auto", "review")
    assert 0 < result.top[0].p <= 1 and [g.p for g in result.top] == sorted((g.p for g in result.top), reverse=True)


def test_urgent_cues_and_components(classifier):
    result = classifier.classify("小区门口那个下水道盖子没了，晚上黑灯瞎火的差点掉进去")
    assert result.severity == "紧急" and result.major == "01" and result.component_code == result.code


@pytest.mark.parametrize("text", ["你好", "", "   ", "我的社保怎么交", "x" * 10_000])
def test_nothing_matched_is_out_of_scope(classifier, text):
    result = classifier.classify(text)
    assert result.decision == "out_of_scope" and result.code is None and result.top == ()


def test_real_messages_about_other_government_matters_are_rarely_auto(classifier):
    path = shared_path("data", "taidi2020_c_sample", "附件2_messages_labeled.csv")
    with path.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    label_col = next(c for c in rows[0] if "一级" in c or "标签" in c)
    text_col = next(c for c in rows[0] if "详情" in c or "内容" in c)
    other = [r[text_col] for r in rows if r[label_col] in ("劳动和社会保障", "教育文体", "卫生计生")]
    assert len(other) > 50
    auto = sum(classifier.classify(t).decision == "auto" for t in other)
    assert auto / len(other) <= 0.2, f"{auto}/{len(other)} classified as confident city-management reports"
