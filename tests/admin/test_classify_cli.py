"""gridline classify, classify-eval and train through the command's entry point."""

from __future__ import annotations

import io
import json

import pytest

from admin.cli import main
from tests.admin.test_cli import one_line_error


@pytest.fixture
def cli(db_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRIDLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDLINE_DATA_DIR", str(tmp_path / "var"))

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_classify_one_text_as_json(cli):
    code, out, _ = cli("classify", "--json", "人民路88号门口的井盖没了，晚上黑灯瞎火的差点掉进去")
    answer = json.loads(out)
    assert code == 0
    assert answer["code"].startswith("01") and answer["major"] == answer["code"][:2]
    assert answer["component_code"] and answer["severity"] == "紧急"
    assert answer["place_phrase"] == "人民路88号"
    assert [g["p"] for g in answer["top"]] == sorted((g["p"] for g in answer["top"]), reverse=True)
    assert answer["decision"] in ("auto", "review")


def test_classify_reads_lines_and_echoes_ids(cli):
    lines = ['{"id": "a1", "text": "小区门口垃圾堆了好几天没人清"}', "我想咨询一下社保转移怎么办理", ""]
    code, out, _ = cli("classify", "--json", stdin="\n".join(lines))
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(answers) == 2
    assert answers[0]["id"] == "a1" and answers[0]["decision"] != "out_of_scope"
    assert "id" not in answers[1] and answers[1]["decision"] == "out_of_scope" and answers[1]["code"] is None


def test_a_bad_input_line_names_its_line(cli):
    code, _, err = cli("classify", "--json", stdin='井盖没了\n{"id": 2, "txt": "x"}\n')
    assert code == 2 and "第 2 行" in one_line_error(err)


def test_classify_eval_reports_the_measures(cli, tmp_path):
    data = tmp_path / "eval.jsonl"
    rows = [
        {"id": "1", "text": "路灯晚上不亮，黑乎乎的", "code": "01037", "channel": "wechat"},
        {"id": "2", "text": "有个流动摊贩推车在路口卖水果", "code": "09007", "channel": "hotline"},
        {"id": "3", "text": "孩子转学需要什么手续", "code": None, "channel": "webchat"},
    ]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    code, out, _ = cli("classify-eval", "--json", str(data))
    result = json.loads(out)
    assert code == 0 and result["n"] == 2
    assert set(result["channels"]) == {"wechat", "hotline", "webchat"}
    assert 0 <= result["top1"] <= result["top3"] <= 1 and "f1" in result["out_of_scope"]


def test_classify_eval_refuses_a_broken_file_by_line_and_field(cli, tmp_path):
    data = tmp_path / "eval.jsonl"
    lines = ['{"id": "1", "text": "井盖没了", "code": "01023"}', '{"id": "2", "code": "01023"}']
    data.write_text("\n".join(lines), encoding="utf-8")
    code, _, err = cli("classify-eval", str(data))
    line = one_line_error(err)
    assert code == 2 and "eval.jsonl:2" in line and "text" in line


def test_train_from_cases_refuses_an_unknown_code_by_line(cli, tmp_path):
    assert cli("init")[0] == 0
    cases = tmp_path / "cases.csv"
    cases.write_text("text,code\n井盖没了,01023\n路灯坏了,99999\n", encoding="utf-8")
    code, _, err = cli("train", "--from-cases", str(cases), "--out", str(tmp_path / "m.npz"))
    line = one_line_error(err)
    assert code == 2 and "cases.csv" in line and "第 3 行" in line and "99999" in line
    assert not (tmp_path / "m.npz").exists()


def test_train_writes_a_model_that_classify_uses(cli, tmp_path, monkeypatch):
    """A tiny corpus (two codes and out of scope) trains in seconds and becomes the configured classifier."""
    assert cli("init")[0] == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "phrasings.toml").write_text(TINY, encoding="utf-8")
    model = tmp_path / "m.npz"
    code, out, _ = cli("train", "--json", "--corpus", str(corpus), "--out", str(model))
    assert code == 0 and json.loads(out)["examples"] > 0 and model.exists()
    monkeypatch.setenv("GRIDLINE_CLASSIFIER_MODEL", str(model))
    code, out, _ = cli("classify", "--json", "路灯坏了不亮")
    assert code == 0 and json.loads(out)["top"][0]["code"] == "01037"


TINY = """
[slots]
place = ["解放路口", "小区东门", "人民路88号门口"]
place_that = ["解放路口那个", "小区东门那个"]
time = ["昨天晚上", "今天早上"]
duration = ["好几天", "一个礼拜"]
feeling = ["太危险了", "影响市容"]
ask = ["麻烦处理一下", "请派人来看看"]

[templates]
generic = ["{place}{obj}{problem}", "{time}{place}的{obj}{problem}，{ask}", "{obj}{problem}，{feeling}"]
agent = ["{place}{obj}{problem}"]

[out_of_scope.school]
sentences = ["孩子转学要什么手续", "学区房怎么划分", "幼儿园报名什么时候开始", "老师补课收费合理吗"]

[matter."01037"]
name = "路灯异常"
volume = 30
objects = ["路灯", "街灯", "路边的灯"]
problems = ["不亮", "坏了", "一闪一闪的"]
sentences = ["路灯晚上不亮", "小区门口的路灯坏了一个月", "路灯一闪一闪的"]

[matter."06010"]
name = "暴露垃圾"
volume = 30
objects = ["垃圾", "生活垃圾", "一堆垃圾"]
problems = ["没人清", "堆成山了", "臭死了"]
sentences = ["门口一大堆垃圾没人清", "垃圾堆了好几天了", "路边垃圾臭死了"]
"""


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (None, "phrasings.toml"),  # a folder without the file
        ("[matter.01023\nphrases = [", "phrasings.toml"),  # not TOML
        ('[matter.1]\nphrases = ["井盖没了"]\n', "matter.1"),  # a code that is not one
    ],
)
def test_train_refuses_a_bad_corpus_folder_in_one_line(cli, tmp_path, content, names):
    assert cli("init")[0] == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if content is not None:
        (corpus / "phrasings.toml").write_text(content, encoding="utf-8")
    code, _, err = cli("train", "--corpus", str(corpus), "--out", str(tmp_path / "m.npz"))
    assert code == 2 and names in one_line_error(err)
    assert not (tmp_path / "m.npz").exists()
