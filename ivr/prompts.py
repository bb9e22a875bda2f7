"""What the hotline says: the fixed prompts, one per 事项 name and one per 社区, as 8 kHz audio files.

``gridline ivr prompts`` speaks every text with espeak-ng's Mandarin voice into ``<prompts_dir>/tts/``. A centre
replaces any of them with a recorded voice by dropping a file of the same name into ``<prompts_dir>/recorded/``
(any format Asterisk plays: .wav 8 kHz mono 16-bit, .gsm, .sln, .ulaw …): a recorded file always wins. The IVR
refuses to start while a prompt has neither, so a call never meets silence where a question should be.

Asterisk is handed paths without extension and picks the file itself, so both folders must be readable by it at
the same absolute path.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.models import Region, TaxonomyItem
from nlp.speech import wav_bytes

RATE = 8000
VOICE = "cmn"
SPEED = 200  # words per minute; espeak-ng's default 175 drags in Mandarin
#: Extensions Asterisk plays for a prompt name (a recorded file may be any of them).
PLAYABLE = (".wav", ".gsm", ".sln", ".sln16", ".wav16", ".ulaw", ".alaw", ".g722", ".g729")
MANIFEST = "manifest.json"

FIXED: dict[str, str] = {
    "welcome": "您好，这里是幺二三幺九城市管理服务热线。",
    "no_speech": "语音自助服务暂时不能使用。",
    "menu": "反映问题请按1，查询办理进度请按2，人工服务请按0。",
    "invalid_key": "按键无效。",
    "ask_problem": "请在提示音后说出您要反映的问题，说完请按井号键。",
    "ask_problem_again": "抱歉，没有听清楚。请在提示音后再说一遍您要反映的问题。",
    "understood": "您反映的是：",
    "understood_generic": "您反映的问题已经记下。",
    "ask_place": "请在提示音后说出问题所在的地点，比如路名和门牌号，或者附近的标志建筑。",
    "ask_place_again": "抱歉，没有找到这个地点。请在提示音后再说一遍，比如某某路几号，或者某某路和某某路交叉口。",
    "place_found": "位置在：",
    "place_found_generic": "已经找到您说的位置。",
    "confirm": "确认上报请按1，重新说请按2，人工服务请按0。",
    "confirm_again": "请按1确认，按2重新说，按0转人工。",
    "redo": "好的，请重新说一遍。",
    "receipt": "您的问题已经受理，受理编号是：",
    "receipt_after": "请记好您的受理编号。",
    "goodbye": "感谢您的来电，再见。",
    "handover": "正在为您转接人工坐席，请稍候。",
    "ask_number": "请输入受理编号，以井号键结束。",
    "ask_number_voice": "请在提示音后说出受理编号。",
    "number_not_heard": "没有收到受理编号。",
    "case_not_found": "没有查到这个受理编号，请核对后再查询。",
    "state_received": "您反映的问题已经收到，正在等待受理。",
    "state_verifying": "您反映的问题正在核实。",
    "state_dispatching": "您反映的问题已经立案，正在派给处理部门。",
    "state_handling": "您反映的问题正在处理中。",
    "state_checking": "您反映的问题已经处理，正在核查处理结果。",
    "state_closed": "您反映的问题已经办结。",
    "state_rejected": "您反映的问题未予受理，如有疑问请转人工服务。",
    "state_merged": "您反映的问题已经和其他市民反映的同一问题合并处理。",
}
#: Case states in plain words, for callers asking about their case (menu 2): nothing else of a case is said.
STATE_PROMPTS: dict[str, str] = {
    "待受理": "state_received",
    "待核实": "state_verifying",
    "待立案": "state_verifying",
    "待派遣": "state_dispatching",
    "处置中": "state_handling",
    "挂账": "state_handling",
    "待核查": "state_checking",
    "待结案": "state_checking",
    "已结案": "state_closed",
    "已作废": "state_rejected",
    "不予受理": "state_rejected",
    "已合并": "state_merged",
}
#: Mandarin digits for Asterisk's SAY DIGITS (copied into its sounds/zh/digits/, see docs/hotline.md).
DIGITS: dict[str, str] = {f"digits/{d}": w for d, w in enumerate("零一二三四五六七八九")}


class PromptsMissing(RuntimeError):
    """Prompt files the IVR needs are absent: the message names them and the command that makes them."""


def prompts_root(prompts_dir: str, data_dir: str) -> Path:
    """The prompt folder of the settings (``prompts_dir``, else ``<data_dir>/prompts``), absolute for Asterisk."""
    return Path(prompts_dir or Path(data_dir) / "prompts").expanduser().resolve()


def matter_key(code: str) -> str:
    return f"matter-{code}"


def place_key(community_code: str) -> str:
    return f"place-{community_code}"


def catalogue(engine: Engine) -> dict[str, str]:
    """Every prompt the IVR may play, name → text: fixed ones, one per 事项 name, one per 社区 of the grid."""
    texts = dict(FIXED)
    with Session(engine) as session:
        matters = select(TaxonomyItem.code, TaxonomyItem.name).where(TaxonomyItem.kind == "matter")
        for code, name in session.exec(matters):
            texts[matter_key(code)] = name
        regions = {r.code: r for r in session.exec(select(Region)).all()}
    for region in regions.values():
        if len(region.code) == 12:
            street = regions.get(region.parent_code or "")
            texts[place_key(region.code)] = f"{street.name if street else ''}{region.name}"
    return texts


@dataclass(frozen=True)
class PromptSet:
    """The two prompt folders; ``path(name)`` is what Asterisk is told to play."""

    root: Path

    @property
    def tts(self) -> Path:
        return self.root / "tts"

    @property
    def recorded(self) -> Path:
        return self.root / "recorded"

    def file(self, name: str) -> Path | None:
        """The audio file that will be played for ``name``: a recorded one first, else the generated one."""
        for folder in (self.recorded, self.tts):
            for ext in PLAYABLE:
                candidate = folder / f"{name}{ext}"
                if candidate.is_file():
                    return candidate
        return None

    def has(self, name: str) -> bool:
        return self.file(name) is not None

    def path(self, name: str) -> str:
        """Absolute path without extension, as STREAM FILE wants it; KeyError when there is no file."""
        found = self.file(name)
        if found is None:
            raise KeyError(name)
        return str(found.with_suffix("").resolve())

    def missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if not self.has(n)]

    def require(self, names: Iterable[str]) -> None:
        """Start-up check: every name has a file, or PromptsMissing naming what to do."""
        absent = self.missing(names)
        if absent:
            shown = "、".join(absent[:8]) + (f" 等 {len(absent)} 个" if len(absent) > 8 else "")
            raise PromptsMissing(
                f"语音提示文件缺失: {shown}（目录 {self.root}）。请运行 gridline ivr prompts 生成，"
                f"或把录音放入 {self.recorded}"
            )

    # --- generation ---------------------------------------------------------------------------------------
    def generate(
        self,
        texts: Mapping[str, str],
        *,
        voice: str = VOICE,
        rate: int = RATE,
        speed: int = SPEED,
        force: bool = False,
        workers: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Speak every text into ``tts/<name>.wav`` (8 kHz mono 16-bit); unchanged texts are skipped unless forced.
        Returns (made, kept)."""
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise PromptsMissing(f"需要 espeak-ng 生成语音提示，或把录音放入 {self.recorded}")
        self.tts.mkdir(parents=True, exist_ok=True)
        self.recorded.mkdir(parents=True, exist_ok=True)
        manifest_path = self.tts / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        todo = {}
        for name, text in texts.items():
            stamp = hashlib.sha256(f"{voice}|{rate}|{speed}|{text}".encode()).hexdigest()[:16]
            if force or manifest.get(name) != stamp or not (self.tts / f"{name}.wav").is_file():
                todo[name] = (text, stamp)
            elif progress:
                progress(1)

        def make(item: tuple[str, tuple[str, str]]) -> tuple[str, str]:
            name, (text, stamp) = item
            target = self.tts / f"{name}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            audio = speak(text, voice=voice, rate=rate, espeak=espeak, speed=speed)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(audio)
            os.replace(tmp, target)
            if progress:
                progress(1)
            return name, stamp

        with ThreadPoolExecutor(workers or max(2, (os.cpu_count() or 2) * 2)) as pool:
            for name, stamp in pool.map(make, todo.items()):
                manifest[name] = stamp
        manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=0, sort_keys=True), encoding="utf-8")
        return len(todo), len(texts) - len(todo)


def speak(text: str, *, voice: str = VOICE, rate: int = RATE, espeak: str = "espeak-ng", speed: int = SPEED) -> bytes:
    """One text → WAV bytes, mono 16-bit at ``rate``, resampled from espeak-ng's 22.05 kHz with a proper filter."""
    command = [espeak, "-v", voice, "-s", str(speed), "--stdout", text]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout:
        raise PromptsMissing(f"espeak-ng 无法朗读 {text!r}: {done.stderr.decode('utf-8', 'replace').strip()}")
    with wave.open(io.BytesIO(_fix_stream_header(done.stdout)), "rb") as wav:
        source_rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    if source_rate != rate:
        from scipy.signal import resample_poly

        g = np.gcd(source_rate, rate)
        samples = resample_poly(samples, rate // g, source_rate // g)
    return wav_bytes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes(), rate)


def _fix_stream_header(data: bytes) -> bytes:
    """espeak-ng writing to a pipe leaves the RIFF and data sizes at 0x7ffff…: set them from the real length."""
    if data[:4] != b"RIFF" or data[36:40] != b"data":
        return data
    body = len(data) - 44
    return data[:4] + (36 + body).to_bytes(4, "little") + data[8:40] + body.to_bytes(4, "little") + data[44:]
