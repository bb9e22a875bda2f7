"""Real calls through a real Asterisk 22 (``../shared/tools/asterisk-peer.sh``) to the hotline's FastAGI server:
the caller id arrives, the caller's speech is recorded and reaches the recogniser, key presses choose, the receipt
digits are heard, a hand-over runs the dialplan's seat branch, and a hang-up mid-call leaves no report.

The four calls run at the same time. The recogniser is scripted (it knows the Mandarin sentences the callers play
and recognises them by cross-correlation), so what is tested is the telephony, not Chinese accuracy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from core.cases import SYSTEM
from core.intake import Incoming
from core.models import Report
from ivr.prompts import speak
from ivr.server import Background
from tests.conftest import PG_ADMIN_URL, SHARED
from tests.ivr.fakes import ScriptedSpeech, best_match, wav_pcm

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(PG_ADMIN_URL), reason="telephony does not depend on the database: real calls run in the SQLite pass only"
    ),
]

TOOL = SHARED / "tools" / "asterisk-peer.sh"
PEER_ROOT = Path(os.environ.get("ASTERISK_PEER_ROOT", "/var/cache/asterisk-peer/sid"))
SOUNDS = PEER_ROOT / "usr/share/asterisk/sounds"
# The production context of docs/hotline.md, with the seat queue replaced by a sound the caller can be heard to hear.
DIALPLAN = """
[gridline-test]
exten => s,1,Gosub(peer-ivr-pre,s,1(${CONTEXT}))
 same => n,AGI(${PEER_AGI_URL})
 same => n,GotoIf($["${GRIDLINE_ACTION}" = "handover"]?seat)
 same => n,Hangup()
 same => n(seat),Playback(hello-world)
 same => n,Hangup()
"""
PROBLEM, PLACE, OTHER = "人民路88号门口的井盖没了", "人民路88号", "解放路上有人乱扔垃圾"


def _tool(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(TOOL), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pcm(path: Path) -> np.ndarray:
    return np.frombuffer(wav_pcm(path.read_bytes()), dtype="<i2")


def _sound(name: str) -> np.ndarray:
    """One of Asterisk's own English sounds as 8 kHz PCM, decoded from the GSM file it plays (``en`` is an
    absolute symlink inside the chroot, so the voice's own folder is looked up)."""
    path = next(p for p in sorted(SOUNDS.glob(f"en*/{name}.gsm")) if p.is_file())
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "gsm", "-i", str(path), "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype="<i2")


def _heard_in_order(heard: np.ndarray, sounds: list[np.ndarray], start: int = 0, gap_s: float = 3.0) -> list[float]:
    """The correlation of each sound found in ``heard`` after the previous one, within ``gap_s`` of it."""
    scores = []
    for sound in sounds:
        score, at = best_match(heard[start : start + sound.size + int(gap_s * 8000)], sound)
        scores.append(round(score, 3))
        start += at + sound.size
    return scores


@pytest.fixture(scope="module")
def peer(ivr_runtime, prompt_set, tmp_path_factory):
    """Asterisk in its chroot, calling an in-process AGI server on a port of this run's own."""
    if os.geteuid() != 0:
        pytest.skip("asterisk-peer needs root (chroot, mount)")
    if not TOOL.is_file():
        pytest.skip(f"no {TOOL}")
    setup = _tool("setup", timeout=600)
    assert setup.returncode == 0, f"asterisk-peer setup failed:\n{setup.stderr[-2000:]}"
    folder = tmp_path_factory.mktemp("peer")
    speech = ScriptedSpeech(threshold=0.5)
    voices = {}
    for text in (PROBLEM, PLACE, OTHER):
        audio = speak(text)
        voices[text] = folder / f"voice-{len(voices)}.wav"
        voices[text].write_bytes(audio)
        speech.say(text, wav_pcm(audio))
    hotline = ivr_runtime.hotline(prompt_set, folder / "calls", speech)
    hotline.check()
    server = Background(hotline, "127.0.0.1", 0).start()
    plan = folder / "dialplan.conf"
    plan.write_text(DIALPLAN)
    started = _tool("start", "--agi-port", str(server.server.port), "--dialplan", str(plan), timeout=60)
    if started.returncode != 0:
        server.stop()
        status = _tool("status", timeout=30)
        if status.returncode == 0:
            pytest.skip(f"another run is using asterisk-peer: {started.stderr.strip()[-300:]}")
        pytest.fail(f"asterisk-peer start failed: {started.stderr[-2000:]}")
    yield server, hotline, voices, folder
    _tool("stop", timeout=60)
    server.stop()


def _call(*args: str) -> dict:
    done = _tool("call", "--context", "gridline-test", "--turn-wait", "10", *args, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report_of(runtime, caller: str) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report).where(Report.channel == "hotline", Report.sender == caller)))


def test_real_calls_through_asterisk(peer, ivr_runtime, prompt_set):
    server, hotline, voices, _folder = peer
    known, _ = ivr_runtime.intake.submit(
        Incoming("hotline", "peer-known", datetime.now(UTC), sender="13500000009", text="路灯晚上不亮", address=PLACE)
    )
    calls = {
        "report": ["--callerid", "13912345678", "--dtmf", "1", "--speech", str(voices[PROBLEM]),
                   "--speech", str(voices[PLACE]), "--dtmf", "1", "--timeout", "150"],
        "hangup": ["--callerid", "13700000001", "--dtmf", "1", "--speech", str(voices[OTHER]),
                   "--linger", "1", "--timeout", "90"],
        "seat": ["--callerid", "13600000002", "--dtmf", "0", "--timeout", "90"],
        "query": ["--callerid", "13500000003", "--dtmf", "2", "--dtmf", f"{known.case_number}#", "--timeout", "120"],
    }  # fmt: skip
    with ThreadPoolExecutor(len(calls)) as pool:
        results = dict(zip(calls, pool.map(lambda args: _call(*args), calls.values()), strict=True))
    outcomes = {o.caller: o for o in server.server.finished}

    # a report by voice: caller id, recordings, recogniser, key presses, receipt digits heard
    report = results["report"]
    assert report["ended_by"] == "ivr" and report["steps_done"] == 4, report
    assert report["agi_status"] == "HANGUP" and report["hangup_cause"] == 0  # the IVR ended it with HANGUP
    [filed] = _report_of(ivr_runtime, "13912345678")
    assert filed.text == PROBLEM and filed.address == PLACE  # the speech reached the recogniser and was matched
    recorded = [np.frombuffer(wav_pcm(ivr_runtime.attachments.open(m["sha256"])), dtype="<i2") for m in filed.media]
    for audio, text in zip(recorded, (PROBLEM, PLACE), strict=True):
        assert best_match(audio, _pcm(voices[text]))[0] > 0.9  # RECORD FILE kept what the caller said
    number = outcomes["13912345678"].case_number
    assert ivr_runtime.loop.get(number, SYSTEM)[0].id == filed.case_id
    heard = _pcm(Path(report["heard_wav"]))
    receipt_at = best_match(heard, _pcm(Path(prompt_set.path("receipt") + ".wav")))[1]
    scores = _heard_in_order(heard, [_sound(f"digits/{d}") for d in number], receipt_at)
    assert min(scores) > 0.9, scores  # every digit of the receipt number reached the caller, in order

    # hanging up while the IVR records: nothing is filed, nothing is left
    hung = results["hangup"]
    assert hung["ended_by"] == "caller" and hung["steps_done"] == 2, hung
    assert _report_of(ivr_runtime, "13700000001") == []
    assert outcomes["13700000001"].kind == "hangup"
    assert list(hotline.workdir.glob("*")) == []

    # 0 for a person: the dialplan's seat branch runs after the AGI script
    seat = results["seat"]
    assert seat["agi_status"] == "SUCCESS" and outcomes["13600000002"].reason == "caller", seat
    heard = _pcm(Path(seat["heard_wav"]))
    handover_at = best_match(heard, _pcm(Path(prompt_set.path("handover") + ".wav")))[1]
    hello = _sound("hello-world")[:8000]  # its first second: the recording stops as the dialplan hangs up
    assert _heard_in_order(heard, [hello], handover_at)[0] > 0.9

    # 2 and the number by keys: the state in plain words
    query = results["query"]
    assert outcomes["13500000003"].kind == "queried" and outcomes["13500000003"].case_number == known.case_number
    heard = _pcm(Path(query["heard_wav"]))
    assert best_match(heard, _pcm(Path(prompt_set.path("state_received") + ".wav")))[0] > 0.9
