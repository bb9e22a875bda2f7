"""The city's scope file: defaults, a city's changes topic by topic, and clear refusals."""

from __future__ import annotations

import pytest

from core.scope import DEFAULT_FILE, ScopeError, load_scope
from core.taxonomy import DEFAULT_FILE as TAXONOMY
from core.taxonomy import read_toml
from nlp.corpus import load_phrasings


def test_every_topic_the_classifier_learns_has_a_default_reason():
    topics = {g.topic for g in load_phrasings().out_of_scope.values()}
    scope = load_scope()
    assert topics == scope.topics.keys()  # and every default topic has material to learn it from
    assert all(t.out and t.reason and t.name for t in scope.topics.values())
    codes = {item.code for item in read_toml(TAXONOMY).items if item.kind == "matter"}
    suggested = {t.code for t in scope.topics.values() if t.code}
    assert suggested and suggested <= codes


def test_a_city_file_changes_only_the_topics_it_names(tmp_path):
    city = tmp_path / "scope.toml"
    city.write_text('[topic.renovation_noise]\nout = false\n[topic.labour]\nreason = "请拨打12333"\n', "utf-8")
    scope = load_scope(city, frozenset({"06028"}))
    default = load_scope()
    assert scope.topics["renovation_noise"].out is False and scope.topics["renovation_noise"].code == "06028"
    assert scope.topics["labour"].reason == "请拨打12333" and scope.topics["labour"].name == "劳动就业"
    assert scope.topics["education"] == default.topics["education"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[topic.labour]\ncolour = "red"\n', "未知字段 colour"),
        ("[topic.labour]\nout = 1\n", "out"),
        ('[topic.newthing]\nname = "新"\n', "需要 name 和 reason"),
        ('[topic.renovation_noise]\nout = false\ncode = "99999"\n', "99999"),
        ("[topic.labour\n", "无法读取"),
    ],
)
def test_a_bad_city_file_is_refused_naming_file_topic_and_field(tmp_path, text, says):
    city = tmp_path / "scope.toml"
    city.write_text(text, "utf-8")
    with pytest.raises(ScopeError, match=says) as caught:
        load_scope(city, frozenset({"06028"}))
    assert str(city) in str(caught.value)
    assert DEFAULT_FILE.is_file()
