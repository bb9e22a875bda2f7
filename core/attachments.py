"""Content-addressed store for case photos and audio, with photo metadata removed before anything is kept.

Citizens' photos routinely carry the phone's GPS position, owner name and serial numbers in EXIF/XMP/IPTC;
those must not reach the case file or the public before/after gallery. Re-encoding would need Pillow and would
lose quality, so photos are stripped losslessly by walking the container (JPEG segments, PNG chunks, WebP RIFF
chunks) and keeping only what a decoder needs, byte for byte. The file type is always sniffed from the content:
names and declared MIME types come from the client and are never trusted.

Files live at ``root/ab/cd/<sha256>`` where the hash is that of the stored (stripped) bytes, so the same photo
sent twice through WeChat and the web form is kept once. Writes are atomic: temp file in the same directory,
fsync, ``os.replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["photo", "audio"]

MIB = 1024 * 1024
FILE_MODE = 0o640
DIR_MODE = 0o750

SUPPORTED = "只接受 JPEG、PNG、WebP 照片和 AMR、OGG、WAV、MP3 音频"

#: Media type → (kind, how a person calls it).
MEDIA_TYPES: dict[str, tuple[Kind, str]] = {
    "image/jpeg": ("photo", "JPEG 照片"),
    "image/png": ("photo", "PNG 照片"),
    "image/webp": ("photo", "WebP 照片"),
    "audio/amr": ("audio", "AMR 音频"),
    "audio/amr-wb": ("audio", "AMR-WB 音频"),
    "audio/ogg": ("audio", "OGG 音频"),
    "audio/wav": ("audio", "WAV 音频"),
    "audio/mpeg": ("audio", "MP3 音频"),
}

#: Other spellings clients send for the same types (browsers, WeChat, Telegram, old Windows).
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "audio/x-amr": "audio/amr",
    "audio/3gpp-amr": "audio/amr",
    "audio/x-amr-wb": "audio/amr-wb",
    "application/ogg": "audio/ogg",
    "audio/opus": "audio/ogg",
    "audio/x-ogg": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
}

#: Declared types that say nothing about the content, so they cannot contradict it.
_UNINFORMATIVE = {"", "application/octet-stream", "binary/octet-stream", "application/unknown", "*/*"}

_HASH = re.compile(r"[0-9a-f]{64}")


class AttachmentError(ValueError):
    """An attachment that cannot be accepted or found; the message is in Chinese and shown to the user."""


@dataclass(frozen=True)
class Stored:
    """What was kept: the hash names the file, so it is the only reference callers need to save."""

    sha256: str
    media_type: str
    kind: Kind
    size: int
    path: Path
    stripped: bool  # metadata (or data after the image) was removed from what the client sent


# --------------------------------------------------------------------------------------------------- sniffing


def sniff(data: bytes) -> str:
    """The media type from magic bytes (plus a sanity check of the header), or AttachmentError."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        if not _wav_has_format(data):
            raise _malformed("WAV")
        return "audio/wav"
    if data.startswith(b"#!AMR\n"):
        return "audio/amr"
    if data.startswith(b"#!AMR-WB\n"):
        return "audio/amr-wb"
    if data.startswith(b"OggS") and _ogg_is_audio(data):
        return "audio/ogg"
    if _is_mp3(data):
        return "audio/mpeg"
    raise AttachmentError(f"不支持的文件类型（{SUPPORTED}）")


def _wav_has_format(data: bytes) -> bool:
    """A ``fmt `` chunk before ``data``; the RIFF size is ignored since streaming recorders leave it 0 or -1."""
    pos = 12
    for _ in range(64):
        if pos + 8 > len(data):
            return False
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt ":
            return size >= 16 and pos + 8 + 16 <= len(data)
        if cid == b"data":
            return False
        pos += 8 + size + (size & 1)
    return False


def _ogg_is_audio(data: bytes) -> bool:
    """First page is a stream start carrying an audio codec header (Opus, Vorbis, Speex, FLAC), not Theora video."""
    if len(data) < 27 or data[4] != 0 or not data[5] & 0x02:
        return False
    start = 27 + data[26]
    return data[start : start + 8].startswith((b"OpusHead", b"\x01vorbis", b"Speex   ", b"\x7fFLAC"))


def _mpeg_frame_header(data: bytes, pos: int) -> bool:
    """An MPEG audio frame header at pos: sync, no reserved version/layer/bitrate/sample rate (so not AAC ADTS)."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return False
    version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    bitrate, rate = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 15 and rate != 3


def _is_mp3(data: bytes) -> bool:
    """ID3v2 tag(s) then an MPEG frame, or an MPEG frame straight away."""
    pos = 0
    while data.startswith(b"ID3", pos):
        header = data[pos : pos + 10]
        if len(header) < 10 or header[3] == 0xFF or any(b & 0x80 for b in header[6:10]):
            return False
        size = (header[6] << 21) | (header[7] << 14) | (header[8] << 7) | header[9]
        pos += 10 + size + (10 if header[5] & 0x10 else 0)
        while pos < len(data) and data[pos] == 0:  # padding written past the declared tag size
            pos += 1
    return _mpeg_frame_header(data, pos)


def normalize_media_type(declared: str) -> str:
    """Lower case, parameters dropped, aliases resolved: ``Image/JPG; q=1`` → ``image/jpeg``."""
    base = declared.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _check_declared(declared: str | None, media_type: str) -> None:
    if declared is None:
        return
    wanted = normalize_media_type(declared)
    kind = MEDIA_TYPES[media_type][0]
    if wanted in _UNINFORMATIVE or wanted == media_type or wanted == {"photo": "image/*", "audio": "audio/*"}[kind]:
        return
    raise AttachmentError(f"文件内容是{MEDIA_TYPES[media_type][1]}，与声明的类型 {declared.strip()} 不符")


# ------------------------------------------------------------------------------------------ metadata removal


def _malformed(what: str) -> AttachmentError:
    return AttachmentError(f"{what} 文件已损坏或不完整，无法接收")


# APPn segments a decoder needs: JFIF/JFXX (APP0), the ICC colour profile (APP2), Adobe colour transform (APP14).
# Every other APPn is metadata or an extension (EXIF/XMP in APP1, MPF in APP2 pointing at images after EOI,
# IPTC in APP13, C2PA/JUMBF in APP11, Ducky in APP12 …) and is dropped, as is COM.
_JPEG_KEEP_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xE2: (b"ICC_PROFILE\x00",), 0xEE: (b"Adobe",)}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def strip_jpeg(data: bytes) -> bytes:
    """JPEG without metadata segments; image segments and entropy-coded data are copied unchanged.

    Anything after EOI is dropped too: phones append MPF thumbnails and depth maps there (with their own EXIF),
    and it is where zip/HTML polyglots hide.
    """
    out = [b"\xff\xd8"]
    pos, n = 2, len(data)
    seen_frame = seen_scan = False
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise _malformed("JPEG")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            raise _malformed("JPEG")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            if not seen_scan:
                raise _malformed("JPEG")
            out.append(b"\xff\xd9")
            return b"".join(out)
        if marker == 0x01:  # TEM: standalone, no length
            out.append(b"\xff\x01")
            continue
        if marker == 0x00 or marker == 0xD8 or 0xD0 <= marker <= 0xD7:
            raise _malformed("JPEG")
        if pos + 2 > n:
            raise _malformed("JPEG")
        length = struct.unpack_from(">H", data, pos)[0]
        end = pos + length
        if length < 2 or end > n:
            raise _malformed("JPEG")
        payload = data[pos + 2 : end]
        segment = data[pos - 2 : end]
        pos = end
        if 0xE0 <= marker <= 0xEF:
            if payload.startswith(_JPEG_KEEP_APP.get(marker, ())):
                out.append(segment)
            continue
        if marker == 0xFE:  # COM
            continue
        if marker in _JPEG_SOF:
            seen_frame = True
        out.append(segment)
        if marker != 0xDA:
            continue
        # SOS: the entropy-coded data runs to the next marker other than a stuffed FF00 or a restart RSTn.
        if not seen_frame or length < 8 or length != 6 + 2 * payload[0]:
            raise _malformed("JPEG")
        seen_scan = True
        scan = pos
        while True:
            ff = data.find(b"\xff", scan)
            if ff < 0 or ff + 1 >= n:
                raise _malformed("JPEG")
            follow = ff + 1
            while follow < n and data[follow] == 0xFF:  # fill bytes may precede a restart marker too
                follow += 1
            if follow >= n:
                raise _malformed("JPEG")
            if data[follow] == 0x00 or 0xD0 <= data[follow] <= 0xD7:
                scan = follow + 1
                continue
            out.append(data[pos:ff])
            pos = ff
            break


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks a viewer uses to show the image right (colour, transparency, pixel size, APNG frames).
# Text, time, eXIf and every unknown ancillary chunk (private ones such as Apple's iDOT or C2PA caBX) are dropped;
# the PNG spec lets an editor drop ancillary chunks it does not know.
_PNG_KEEP_ANCILLARY = {
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCV", b"mDCv", b"cLLI", b"cLLi", b"sBIT", b"bKGD",
    b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip


def strip_png(data: bytes) -> bytes:
    """PNG with text, time and EXIF chunks removed; every kept chunk (CRC included) is copied unchanged."""
    if not data.startswith(_PNG_SIGNATURE):
        raise _malformed("PNG")
    out = [_PNG_SIGNATURE]
    pos, n, first, has_idat = 8, len(data), True, False
    while True:
        if pos + 12 > n:
            raise _malformed("PNG")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n or not ctype.isalpha() or not ctype.isascii():
            raise _malformed("PNG")
        body = data[pos + 4 : end - 4]
        if zlib.crc32(body) != struct.unpack_from(">I", data, end - 4)[0]:
            raise _malformed("PNG")
        if first and (ctype != b"IHDR" or length != 13):
            raise _malformed("PNG")
        first = False
        has_idat |= ctype == b"IDAT"
        critical = ctype[0] & 0x20 == 0
        if critical or ctype in _PNG_KEEP_ANCILLARY:
            out.append(data[pos:end])
        pos = end
        if ctype == b"IEND":
            if not has_idat or length != 0:
                raise _malformed("PNG")
            return b"".join(out)  # anything after IEND is dropped


_WEBP_KEEP = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def strip_webp(data: bytes) -> bytes:
    """WebP without EXIF, XMP and unknown chunks; VP8X flags and the RIFF size are fixed to match."""
    if len(data) < 12 or not data.startswith(b"RIFF") or data[8:12] != b"WEBP":
        raise _malformed("WebP")
    riff_end = 8 + struct.unpack_from("<I", data, 4)[0]
    if riff_end > len(data) or riff_end % 2:
        raise _malformed("WebP")
    chunks: list[bytes] = []
    pos, has_image = 12, False
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise _malformed("WebP")
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        end = pos + 8 + size + (size & 1)
        if end > riff_end:
            raise _malformed("WebP")
        if not chunks and cid not in (b"VP8X", b"VP8 ", b"VP8L"):
            raise _malformed("WebP")
        if cid == b"VP8X" and (chunks or size != 10):
            raise _malformed("WebP")
        has_image |= cid in (b"VP8 ", b"VP8L", b"ANMF")
        if cid in _WEBP_KEEP:
            chunks.append(data[pos:end])
        pos = end
    if not has_image:
        raise _malformed("WebP")
    if chunks[0].startswith(b"VP8X"):
        flags = chunks[0][8] & ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        chunks[0] = chunks[0][:8] + bytes([flags]) + chunks[0][9:]
    body = b"".join(chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


_STRIPPERS = {"image/jpeg": strip_jpeg, "image/png": strip_png, "image/webp": strip_webp}


# ------------------------------------------------------------------------------------------------------ store


def _human_size(n: float) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{int(n)} 字节"


def _human_limit(n: int) -> str:
    return _human_size(n).replace(".0 ", " ")


class AttachmentStore:
    """Photos and audio under one root directory, named by the SHA-256 of what was stored."""

    def __init__(self, root: Path, max_photo_bytes: int = 10 * MIB, max_audio_bytes: int = 20 * MIB) -> None:
        if max_photo_bytes <= 0 or max_audio_bytes <= 0:
            raise ValueError("size limits must be positive")
        self.root = Path(root)
        self.limits: dict[Kind, int] = {"photo": max_photo_bytes, "audio": max_audio_bytes}

    def put(self, data: bytes, declared_type: str | None = None) -> Stored:
        """Check, strip (photos) and store ``data``; nothing touches the disk unless it is accepted."""
        data = bytes(data)
        if not data:
            raise AttachmentError("文件为空")
        media_type = sniff(data)
        _check_declared(declared_type, media_type)
        kind = MEDIA_TYPES[media_type][0]
        limit = self.limits[kind]
        if len(data) > limit:
            size, cap = _human_size(len(data)), _human_limit(limit)
            if size == _human_size(limit):  # "10.0 MB, limit 10 MB" would read as no excess
                size = f"{len(data)} 字节"
                cap = f"{cap}（{limit} 字节）"
            raise AttachmentError(f"文件过大：{size}，{'照片' if kind == 'photo' else '音频'}上限 {cap}")
        stored = _STRIPPERS[media_type](data) if kind == "photo" else data
        sha = hashlib.sha256(stored).hexdigest()
        path = self._location(sha)
        if not (path.is_file() and path.stat().st_size == len(stored)):
            self._write(path, stored)
        return Stored(sha, media_type, kind, len(stored), path, stored != data)

    def path(self, sha256: str) -> Path:
        """Where an existing attachment lives (for sendfile); refuses malformed hashes and unknown ones."""
        path = self._location(sha256)
        if not path.is_file():
            raise AttachmentError("附件不存在")
        return path

    def info(self, sha256: str) -> Stored:
        """What is stored under a hash, its type sniffed again from the file's head."""
        path = self.path(sha256)
        with path.open("rb") as f:
            head = f.read(4096)
        media_type = sniff(head)
        return Stored(sha256, media_type, MEDIA_TYPES[media_type][0], path.stat().st_size, path, False)

    @property
    def max_bytes(self) -> int:
        """The largest upload any kind accepts (what an HTTP handler may read before put() decides)."""
        return max(self.limits.values())

    def open(self, sha256: str) -> bytes:
        """The stored bytes of an attachment."""
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:  # removed between the check and the read
            raise AttachmentError("附件不存在") from None

    def _location(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _HASH.fullmatch(sha256):
            raise AttachmentError("附件编号无效：应为 64 位小写十六进制 SHA-256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        """Atomic and durable: a reader sees either no file or the whole file, even after a crash."""
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fchmod(f.fileno(), FILE_MODE)
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
