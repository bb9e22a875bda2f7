"""Voice messages → text: ffmpeg decodes what the channels send (WeChat AMR, Telegram OGG/Opus) to 16 kHz mono
WAV, which is what the speech recogniser (Vosk, behind the intake's ``Transcriber``) reads. Without ffmpeg or a
recogniser the answer is None and the dialogue asks for text instead."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from core.intake import Transcriber

log = logging.getLogger("gridline.bots")
DECODE_TIMEOUT_S = 20


def to_wav(data: bytes, folder: Path) -> Path | None:
    """Decode any audio ffmpeg knows to 16 kHz mono 16-bit WAV; None when ffmpeg is missing or fails."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        log.warning("ffmpeg not found: voice messages cannot be decoded")
        return None
    out = folder / "voice.wav"
    try:
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", "pipe:0",
             "-t", "120", "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(out)],
            input=data,
            capture_output=True,
            timeout=DECODE_TIMEOUT_S,
            check=True,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        log.info("voice decoding failed: %s", type(exc).__name__)
        return None
    return out if out.is_file() and out.stat().st_size > 44 else None


def transcribe(data: bytes, transcriber: Transcriber | None) -> str | None:
    """The recogniser's text for a voice message, or None when it cannot be had (then ask for text)."""
    if transcriber is None:
        return None
    with tempfile.TemporaryDirectory(prefix="gridline-voice-") as tmp:
        wav = to_wav(data, Path(tmp))
        if wav is None:
            return None
        try:
            text = transcriber.transcribe_file(str(wav))
        except Exception as exc:  # an unconfigured or failing recogniser must not lose the conversation
            log.info("transcription failed: %s", type(exc).__name__)
            return None
    text = (text or "").strip()
    return text or None
