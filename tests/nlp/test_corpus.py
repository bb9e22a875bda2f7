"""The generated training corpus (nlp.corpus) on the project's own phrasings and taxonomy files."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tomllib
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from pypinyin import lazy_pinyin

from nlp import corpus

REPO = Path(__file__).resolve().parents[2]
TAXONOMY = REPO / "core" / "data" / "taxonomy_gbt47678_5.toml"
# The groups of the brief that need the most material: at least 25 hand-written sentences each.
COMMON = (
    *("06010", "06011", "06012", "06013", "06014", "06017", "06020", "06001", "06007", "06027", "06028", "06029"),
    *("06036", "06042", "07001", "08001", "09001", "09005", "09006", "09009", "09010", "09011"),
    *("01004", "01023", "01037", "03001", "04002"),
)


def _taxonomy() -> dict[str, str]:
    doc = tomllib.loads(TAXONOMY.read_text(encoding="utf-8"))
    return {m["code"]: m["name"] for m in doc["matter"]}


@pytest.fixture(scope="module")
def phrasings() -> corpus.Phrasings:
    return corpus.load_phrasings()


@pytest.fixture(scope="module")
def small(phrasings) -> list[corpus.Example]:
    return corpus.generate(phrasings, seed=3, per_code=12)


@pytest.fixture(scope="module")
def full(phrasings) -> list[corpus.Example]:
    return corpus.generate(phrasings)


def _digest(examples: list[corpus.Example]) -> str:
    return hashlib.sha256("\n".join(f"{e.code}\t{e.style}\t{e.text}" for e in examples).encode()).hexdigest()


def test_phrasings_match_the_taxonomy(phrasings):
    taxonomy = _taxonomy()
    assert set(phrasings.matters) == set(taxonomy)
    assert {code: g.name for code, g in phrasings.matters.items()} == taxonomy  # a mistyped code shows here
    assert all(len(g.sentences) >= 3 for g in phrasings.matters.values())
    assert all(len(phrasings.matters[code].sentences) >= 25 for code in COMMON)
    owners: dict[str, str] = {}
    for code, group in phrasings.matters.items():
        for sentence in group.sentences:
            assert owners.setdefault(sentence, code) == code, f"{sentence!r} under {owners[sentence]} and {code}"


def test_same_seed_same_corpus(phrasings, small):
    assert corpus.generate(phrasings, seed=3, per_code=12) == small
    assert corpus.generate(phrasings, seed=4, per_code=12) != small


def test_same_corpus_in_another_process(small):
    """Nothing depends on Python's per-process string hashing."""
    script = (
        "import hashlib; from nlp import corpus; "
        "ex = corpus.generate(corpus.load_phrasings(), seed=3, per_code=12); "
        "print(hashlib.sha256('\\n'.join(f'{e.code}\\t{e.style}\\t{e.text}' for e in ex).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(small)


def test_every_code_covered_and_valid(small):
    taxonomy = _taxonomy()
    per_code = Counter(e.code for e in small if e.style != "letter")
    assert set(per_code) - {None} == set(taxonomy)
    assert all(per_code[code] == 12 for code in taxonomy)
    letters = Counter(e.code for e in small if e.style == "letter")
    assert all(letters[code] >= 1 for code in taxonomy)


def test_texts_styles_and_out_of_scope(small):
    assert all(e.text and e.text == e.text.strip() for e in small)
    assert {e.style for e in small} == {"typed", "hotline", "letter"}
    messages = [e for e in small if e.style != "letter" and e.topic != corpus.FRAME]
    out_of_scope = [e for e in messages if e.code is None]
    assert 0.1 < len(out_of_scope) / len(messages) < 0.2
    assert {e.style for e in out_of_scope} == {"typed", "hotline"}
    assert all((e.code is None) == (e.topic is not None) for e in small)
    assert any(e.topic == corpus.FRAME for e in small)  # a letter's frame sentences alone
    labels: dict[str, set[str | None]] = {}
    for e in small:
        labels.setdefault(e.text, set()).add(e.code or e.topic)
    assert all(len(codes) == 1 for codes in labels.values())


def test_letters_have_a_frame_a_complaint_and_often_a_title(small, phrasings):
    letters = [e for e in small if e.style == "letter"]
    assert sum("\n" in e.text for e in letters) > len(letters) / 2
    frame = {s for part in corpus.FRAME_PARTS for s in phrasings.frame.get(part, ()) if "{" not in s}
    assert sum(any(s in e.text for s in frame) for e in letters) > 0.9 * len(letters)
    assert sum(len(e.text) for e in letters) / len(letters) > 100


def test_hotline_has_no_punctuation(small):
    messages = [e for e in small if e.style in ("typed", "hotline")]  # letters are written, never phoned in
    hotline = [e.text for e in messages if e.style == "hotline"]
    assert len(hotline) > len(messages) / 5
    for text in hotline:
        assert all(unicodedata.category(ch)[0] in "LN" for ch in text), text


@pytest.mark.slow
def test_full_corpus_volumes(full):
    counts = corpus.counts([e for e in full if e.style != "letter" and e.topic != corpus.FRAME])
    assert 15_000 <= counts["total"] <= 30_000
    assert 0.13 < counts["out_of_scope"] / counts["total"] < 0.2
    assert 0.3 < counts["hotline"] / counts["total"] < 0.5
    letters = [e for e in full if e.style == "letter"]
    assert len(letters) >= 2_000 and sum(e.code is None for e in letters) >= 600
    per_code = Counter(e.code for e in full)
    assert all(per_code[code] >= 300 for code in COMMON)
    assert all(per_code[code] >= 40 for code in _taxonomy())
    assert all(e.text for e in full)
    assert all(all(unicodedata.category(ch)[0] in "LN" for ch in e.text) for e in full if e.style == "hotline")


def test_homophones_keep_the_reading():
    table = corpus.homophones()
    assert "shi" in table and {"是", "事", "市"} <= set(table["shi"][0])
    rng = random.Random(0)
    text = "小区门口的井盖没了"
    noisy = corpus.replace_homophones(text, 1.0, rng)
    assert noisy != text and len(noisy) == len(text)
    assert lazy_pinyin(noisy) == lazy_pinyin(text)


def test_hotline_and_typed_variants():
    rng = random.Random(1)
    spoken = {corpus.hotline("人民路88号门口，井盖没了！！😡", rng) for _ in range(50)}
    assert all(all(unicodedata.category(ch)[0] in "LN" for ch in text) for text in spoken)
    assert any("八十八" in text for text in spoken) and any(f in t for t in spoken for f in corpus.FILLERS)
    typed = {corpus.typed("路灯不亮，晚上太黑了。", rng) for _ in range(50)}
    assert len(typed) > 20 and all(typed)


def test_bad_phrasings_are_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[matter."6010"]\nname = "x"\nsentences = ["a"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="5 digits"):
        corpus.load_phrasings(path)
    path.write_text('[matter."06010"]\nname = "x"\nsentences = ["a"]\ntemplates = ["{obj}"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="objects and problems"):
        corpus.load_phrasings(path)
    path.write_text('[matter."06010"]\nname = "x"\nsentences = ["a"]\ntemplates = ["{where}"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown slot"):
        corpus.load_phrasings(path)


def test_write_jsonl_and_build(tmp_path, small):
    path = tmp_path / "out" / "small.jsonl"
    assert corpus.write_jsonl(small[:50], path) == 50
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [{"text": e.text, "code": e.code, "style": e.style, "topic": e.topic} for e in small[:50]]
    mini = tmp_path / "mini.toml"
    mini.write_text(
        '[slots]\nplace = ["东门"]\n[templates]\ngeneric = ["{place}{obj}{problem}"]\n'
        '[matter."06010"]\nname = "暴露垃圾"\nvolume = 5\nobjects = ["垃圾"]\nproblems = ["没人清", "堆成山"]\n'
        'sentences = ["楼下一堆垃圾"]\n[out_of_scope.greeting]\nsentences = ["你好", "在吗"]\n',
        encoding="utf-8",
    )
    written = corpus.build(tmp_path / "var", seed=0, phrasings=mini)
    assert written == tmp_path / "var" / "train.jsonl"
    rows = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert {r["code"] for r in rows} == {"06010", None} and len(rows) == 6
