"""The hotline's verbs: `gridline ivr prompts`, `gridline ivr`, `gridline call-sim`, and `gridline serve` answering
FastAGI beside HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import sys
import wave

import pytest
from sqlmodel import Session, select

from admin.cli import main as gridline
from core.models import CaseFile, Region, Report, TaxonomyItem
from ivr.prompts import DIGITS, FIXED, PromptSet, matter_key, place_key
from tests.ivr.conftest import FAST
from tests.ivr.fakes import FakeAsterisk, Press


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(ivr_env, monkeypatch):
    for key, value in ivr_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GRIDLINE_VOSK_MODEL", raising=False)
    return ivr_env


def test_prompts_cover_every_matter_and_community_at_8khz(prompt_set, ivr_runtime):
    with Session(ivr_runtime.engine) as session:
        matters = session.exec(select(TaxonomyItem.code).where(TaxonomyItem.kind == "matter")).all()
        communities = [r.code for r in session.exec(select(Region)).all() if len(r.code) == 12]
    names = [*FIXED, *DIGITS, *(matter_key(c) for c in matters), *(place_key(c) for c in communities)]
    assert len(matters) > 200 and len(communities) == 16
    assert prompt_set.missing(names) == []
    for name in ("welcome", "digits/7", matter_key(matters[0]), place_key(communities[0])):
        with wave.open(str(prompt_set.file(name))) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert wav.getnframes() > 1000  # spoken, not empty


def test_the_prompts_command_makes_only_what_is_missing_or_changed(env, prompt_set, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "prompts"
    shutil.copytree(prompt_set.root, copy)
    monkeypatch.setenv("GRIDLINE_PROMPTS_DIR", str(copy))
    assert gridline(["ivr", "prompts", "--speed", str(FAST), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["made"] == 0 and first["kept"] == first["prompts"]
    (copy / "tts" / "menu.wav").unlink()
    assert gridline(["ivr", "prompts", "--speed", str(FAST), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["made"] == 1
    assert PromptSet(copy).has("menu")


def test_the_hotline_refuses_to_start_without_its_prompts(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLINE_PROMPTS_DIR", str(tmp_path / "empty"))
    assert gridline(["ivr"]) == 2
    err = capsys.readouterr().err
    assert "语音提示文件缺失" in err and "gridline ivr prompts" in err


def test_a_model_path_that_is_not_a_model_stops_the_start(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRIDLINE_VOSK_MODEL", str(tmp_path / "no-model"))
    assert gridline(["ivr"]) == 2
    assert "vosk_model" in capsys.readouterr().err


def test_call_sim_runs_a_call_in_the_terminal(env, ivr_runtime, monkeypatch, capsys):
    typed = "1\n人民路88号门口的井盖没了\n人民路88号\n1\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    assert gridline(["call-sim", "--caller", "13300000001"]) == 0
    out = capsys.readouterr().out
    assert "您反映的是" in out and "IVR 报号" in out
    with Session(ivr_runtime.engine) as session:
        [report] = session.exec(select(Report).where(Report.channel == "hotline", Report.sender == "13300000001")).all()
        number = session.get(CaseFile, report.case_id).number
    assert report.text == "人民路88号门口的井盖没了" and report.address == "人民路88号"
    assert out.strip().splitlines()[-1] == f"通话结束：已上报，受理编号 {number}"


def test_call_sim_hands_over_on_zero(env, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("0\n"))
    assert gridline(["call-sim", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["kind"] == "handover" and outcome["reason"] == "caller"


def test_serve_answers_fastagi_beside_http(env, monkeypatch, capsys):
    agi_port = _free_port()
    monkeypatch.setenv("GRIDLINE_AGI_PORT", str(agi_port))
    calls = []

    def http_server(runtime):  # stands in for the aiohttp server while the hotline runs beside it
        calls.append(asyncio.run(FakeAsterisk(agi_port).call([Press("1", barge=True)], uniqueid="serve-1")))

    monkeypatch.setattr("admin.app.run", http_server)
    assert gridline(["serve"]) == 0
    [call] = calls
    assert call.names == ["welcome", "no_speech", "handover"]  # no model configured: straight to a seat
    assert call.variables["GRIDLINE_REASON"] == "no_speech"
    assert "未配置语音模型" in capsys.readouterr().err
    with socket.socket() as s:  # nothing listens on the port once serve has returned
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", agi_port))
