"""Speech to text with Vosk (Kaldi), offline: the 12319 hotline, WeChat voice (AMR) and Telegram voice (OGG/Opus).

A Vosk model takes hundreds of megabytes and seconds to load, so each model directory is loaded once per process
and shared: every call, chat message and thread makes its own cheap recogniser on the same model (Vosk's model is
read-only and safe to share between threads; its C calls release the GIL, so threads decode in parallel).

Three ways in:
- ``Speech.stream(8000)``: PCM as it arrives (telephone audio is 8 kHz; Vosk resamples to the model's rate);
- ``Speech.transcribe_file(path)``: any container ffmpeg reads (AMR, OGG/Opus, MP3, WAV), decoded to 16-bit mono
  PCM at the model's own rate; this is the intake's ``Transcriber``;
- a restricted grammar (``grammar=``) for answers that can only be a few words (yes/no, digits): far more reliable
  on a phone line than free recognition, and it cannot answer with anything outside the list.

Chinese models write words separated by spaces (井盖 没 了); spaces between Chinese characters are removed.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import threading
import wave
from collections.abc import Sequence
from pathlib import Path
from time import monotonic
from typing import Any

TELEPHONE_RATE = 8000
DEFAULT_MODEL_RATE = 16000
MAX_SECONDS = 300  # longer voice messages are cut: no citizen report needs five minutes, a stuck stream might
CHUNK_SECONDS = 0.25
UNKNOWN = "[unk]"

_CJK = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_CJK_GAP = re.compile(rf"(?<={_CJK})\s+(?={_CJK})")


class SpeechError(RuntimeError):
    """Speech recognition cannot be used or failed; the message says why, in Chinese."""


class SpeechTimeout(SpeechError):
    """Recognition took longer than allowed: callers go on without a transcript rather than wait."""


def join_words(text: str) -> str:
    """Vosk's words → text: spaces between Chinese characters dropped, other spaces kept."""
    return _CJK_GAP.sub("", " ".join(text.split()))


def model_rate(path: str | Path) -> int:
    """The sample rate a model was trained on (``--sample-frequency`` in conf/mfcc.conf, else Kaldi's 16 kHz)."""
    conf = Path(path) / "conf" / "mfcc.conf"
    if conf.is_file():
        for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.strip().partition("=")
            if key == "--sample-frequency":
                return int(float(value))
    return DEFAULT_MODEL_RATE


_models: dict[Path, Any] = {}
_models_lock = threading.Lock()
loads = 0  # how many models this process has loaded (tests check that a model is loaded once)


def load_model(path: str | Path) -> Any:
    """The Vosk model at ``path``, loaded on first use and shared by every caller in this process."""
    global loads
    folder = Path(path).expanduser().resolve()
    with _models_lock:
        if folder in _models:
            return _models[folder]
        if not folder.is_dir():
            raise SpeechError(f"语音模型目录不存在: {folder}")
        if not ((folder / "am" / "final.mdl").is_file() or (folder / "final.mdl").is_file()):
            raise SpeechError(f"{folder} 不是 Vosk 模型目录（缺少 am/final.mdl）")
        try:
            import vosk
        except ImportError:
            raise SpeechError("未安装 vosk（pip install vosk）") from None
        vosk.SetLogLevel(-1)
        try:
            model = vosk.Model(str(folder))
        except Exception as exc:
            raise SpeechError(f"无法载入语音模型 {folder}: {exc}") from None
        _models[folder] = model
        loads += 1
        return model


class Stream:
    """One utterance recognised from 16-bit mono PCM as it arrives: ``accept`` chunks, then ``result`` once."""

    def __init__(self, recognizer: Any, rate: int, timeout: float | None) -> None:
        self._recognizer = recognizer
        self._bytes_per_second = 2 * rate
        self._timeout = timeout
        self._start = monotonic()
        self._parts: list[str] = []
        self._fed = 0
        self._odd = b""
        self._done = False

    @property
    def seconds(self) -> float:
        """Audio accepted so far."""
        return self._fed / self._bytes_per_second

    def _check(self) -> None:
        """Recognition may fall behind the audio by ``timeout`` seconds at most (a call's recording arrives in real
        time over a minute; a voice message arrives at once)."""
        if self._timeout is not None and monotonic() - self._start > self._timeout + self.seconds:
            raise SpeechTimeout("语音识别超时")

    def accept(self, pcm: bytes) -> None:
        if self._done:
            raise SpeechError("这段语音已识别完毕")
        pcm = self._odd + bytes(pcm)
        cut = len(pcm) - len(pcm) % 2  # a sample split between two chunks waits for its other byte
        pcm, self._odd = pcm[:cut], pcm[cut:]
        room = MAX_SECONDS * self._bytes_per_second - self._fed
        pcm = pcm[: max(room, 0)]
        step = int(CHUNK_SECONDS * self._bytes_per_second)
        for start in range(0, len(pcm), step):
            self._check()
            if self._recognizer.AcceptWaveform(pcm[start : start + step]):
                self._parts.append(json.loads(self._recognizer.Result()).get("text", ""))
        self._fed += len(pcm)

    def words(self) -> list[str]:
        """Everything heard, as Vosk's words (``[unk]`` left out); ends the stream."""
        if not self._done:
            self._check()
            self._parts.append(json.loads(self._recognizer.FinalResult()).get("text", ""))
            self._done = True
        return [w for part in self._parts for w in part.split() if w != UNKNOWN]

    def result(self) -> str:
        """Everything heard, as text; ends the stream."""
        return join_words(" ".join(self.words()))


class Speech:
    """A Vosk model directory and the ways to recognise with it; the model itself loads on first use."""

    def __init__(self, model_path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(model_path).expanduser()
        self.timeout = timeout
        self.rate = model_rate(self.path)

    @property
    def model(self) -> Any:
        return load_model(self.path)

    def knows(self, word: str) -> bool:
        """Whether the model's vocabulary has this word (grammar words outside it are useless)."""
        return self.model.vosk_model_find_word(word) >= 0

    def phrase(self, text: str) -> str | None:
        """A grammar phrase as the model's words: Chinese is split into the longest known words (确认 → 确认, or
        确 认); None when some part is not in the vocabulary."""
        words: list[str] = []
        for chunk in text.split():
            if self.knows(chunk):
                words.append(chunk)
                continue
            start = 0
            while start < len(chunk):
                for end in range(len(chunk), start, -1):
                    if self.knows(chunk[start:end]):
                        words.append(chunk[start:end])
                        start = end
                        break
                else:
                    return None
        return " ".join(words) or None

    def grammar(self, choices: Sequence[str]) -> list[str]:
        """The choices the model can recognise, as its words, with ``[unk]`` (when known) for anything else."""
        phrases = [p for p in dict.fromkeys(self.phrase(c) for c in choices) if p]
        if not phrases:
            raise SpeechError("语法中的词都不在语音模型的词表里")
        return [*phrases, UNKNOWN] if self.knows(UNKNOWN) else phrases

    def stream(self, rate: int = TELEPHONE_RATE, grammar: Sequence[str] | None = None) -> Stream:
        """A recogniser for one utterance at ``rate`` Hz; with a grammar it only ever hears those phrases."""
        import vosk

        model = self.model
        if grammar is None:
            recognizer = vosk.KaldiRecognizer(model, float(rate))
        else:
            words = json.dumps(self.grammar(grammar), ensure_ascii=False)  # Vosk's JSON reader knows no \u escapes
            recognizer = vosk.KaldiRecognizer(model, float(rate), words)
        return Stream(recognizer, rate, self.timeout or None)

    def transcribe_pcm(self, pcm: bytes, rate: int = TELEPHONE_RATE, grammar: Sequence[str] | None = None) -> str:
        stream = self.stream(rate, grammar)
        stream.accept(pcm)
        return stream.result()

    def choose(self, pcm: bytes, choices: Sequence[str], rate: int = TELEPHONE_RATE) -> str | None:
        """Which of ``choices`` was said first (as given), or None."""
        heard = self.transcribe_pcm(pcm, rate, choices)
        found = [(heard.find(join_words(c)), c) for c in choices if join_words(c) and join_words(c) in heard]
        return min(found)[1] if found else None

    def transcribe_file(self, path: str | Path) -> str:
        """A voice message or recording in any format ffmpeg reads → text (the intake's ``Transcriber``)."""
        pcm = decode(path, self.rate, timeout=self.timeout)
        return self.transcribe_pcm(pcm, self.rate)


def decode(path: str | Path, rate: int, *, timeout: float = 60.0) -> bytes:
    """Any audio file → 16-bit mono PCM at ``rate``, at most MAX_SECONDS long. A plain PCM WAV already at that rate
    is read directly; everything else goes through ffmpeg."""
    path = Path(path)
    if not path.is_file():
        raise SpeechError(f"音频文件不存在: {path}")
    pcm = _plain_wav(path, rate)
    if pcm is not None:
        return pcm[: MAX_SECONDS * 2 * rate]
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SpeechError("需要 ffmpeg 来解码语音（apt-get install ffmpeg）")
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-t", str(MAX_SECONDS)]
    command += ["-ac", "1", "-ar", str(rate), "-f", "s16le", "-acodec", "pcm_s16le", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SpeechTimeout(f"解码音频超时（{timeout:g} 秒）") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SpeechError(f"无法解码音频 {path.name}: {reason[-1] if reason else '格式不支持'}")
    return done.stdout


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """Mono 16-bit PCM → a WAV file's bytes: what Asterisk plays and what ``decode`` reads back without ffmpeg."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def _plain_wav(path: Path, rate: int) -> bytes | None:
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() == 1 and wav.getsampwidth() == 2 and wav.getframerate() == rate:
                return wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        pass
    return None
