"""Attachment store: type sniffing, lossless metadata removal, content addressing, refusals.

Photos are assembled here byte by byte (a real baseline JPEG encoder for DC-only blocks, PNG through zlib, WebP
from well-known minimal files) so the expected stripped output can be written down exactly. When Pillow happens
to be installed, the stored photos are also decoded and compared pixel for pixel with the originals.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest

from core.attachments import MIB, AttachmentError, AttachmentStore, Stored

# ------------------------------------------------------------------------------------------------ helpers


def files_under(root: Path) -> list[Path]:
    """Every file and directory in the store, hidden temp files included."""
    return sorted(root.rglob("*")) if root.exists() else []


def stored_files(root: Path) -> list[Path]:
    return [p for p in files_under(root) if p.is_file()]


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(tmp_path / "attachments")


def tiff_with_gps(lat: tuple[int, int, int] = (30, 16, 5)) -> bytes:
    """A little-endian TIFF/EXIF block: IFD0 with Make and a GPS IFD pointer, GPS IFD with latitude N."""
    make = b"Phone\x00"
    ifd0_at, gps_at = 8, 8 + 2 + 2 * 12 + 4 + len(make)
    rationals_at = gps_at + 2 + 2 * 12 + 4
    ifd0 = struct.pack("<H", 2)
    ifd0 += struct.pack("<HHII", 0x010F, 2, len(make), ifd0_at + 30)  # Make → string after the IFD
    ifd0 += struct.pack("<HHII", 0x8825, 4, 1, gps_at)  # GPSInfo
    ifd0 += struct.pack("<I", 0) + make
    gps = struct.pack("<H", 2)
    gps += struct.pack("<HHI", 0x0001, 2, 2) + b"N\x00\x00\x00"  # GPSLatitudeRef
    gps += struct.pack("<HHII", 0x0002, 5, 3, rationals_at)  # GPSLatitude
    gps += struct.pack("<I", 0) + b"".join(struct.pack("<II", v, 1) for v in lat)
    return b"II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + gps


# ------------------------------------------------------------------------------------------------ JPEG

DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)  # ITU T.81 Annex K luminance DC table
DC_VALUES = tuple(range(12))
AC_BITS = (1,) + (0,) * 15  # one code, "0", for EOB: every block here has only a DC coefficient
AC_VALUES = (0x00,)


def canonical_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, str]:
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = format(code, f"0{length}b")
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def entropy_data(dcs: list[int], restart: int) -> bytes:
    """Huffman-coded DC-only blocks with byte stuffing and an RSTn marker every ``restart`` blocks."""
    dc_codes, eob = canonical_codes(DC_BITS, DC_VALUES), canonical_codes(AC_BITS, AC_VALUES)[0]
    out, bits, pred = bytearray(), "", 0

    def flush() -> None:
        nonlocal bits
        bits += "1" * (-len(bits) % 8)
        for i in range(0, len(bits), 8):
            byte = int(bits[i : i + 8], 2)
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)
        bits = ""

    for i, dc in enumerate(dcs):
        if i and i % restart == 0:
            flush()
            out += bytes([0xFF, 0xD0 + (i // restart - 1) % 8])
            pred = 0
        diff, pred = dc - pred, dc
        size = abs(diff).bit_length()
        bits += dc_codes[size] + (format(diff if diff >= 0 else diff + (1 << size) - 1, f"0{size}b") if size else "")
        bits += eob
    flush()
    return bytes(out)


def jpeg_image_segments(dcs: list[int], width: int, height: int, restart: int = 2) -> list[bytes]:
    """DQT, SOF0, DHT ×2, DRI, SOS + scan: the part of a greyscale baseline JPEG a decoder needs."""
    assert len(dcs) == (width // 8) * (height // 8)
    dht = bytes([0x00, *DC_BITS, *DC_VALUES])
    dht_ac = bytes([0x10, *AC_BITS, *AC_VALUES])
    return [
        segment(0xDB, b"\x00" + bytes([1] * 64)),
        segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
        segment(0xC4, dht),
        segment(0xC4, dht_ac),
        segment(0xDD, struct.pack(">H", restart)),
        segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + entropy_data(dcs, restart),
    ]


JFIF = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
ICC = segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + b"\x00" * 128)
ADOBE = segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")
EXIF = segment(0xE1, b"Exif\x00\x00" + tiff_with_gps())
XMP = segment(
    0xE1,
    b"http://ns.adobe.com/xap/1.0/\x00"
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>30,16.08N</exif:GPSLatitude></x:xmpmeta>',
)
IPTC = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0c\x1c\x02\x50\x00\x06Zhang3")
COMMENT = segment(0xFE, "拍摄者 张三 13800000000".encode())
MPF = segment(0xE2, b"MPF\x00II*\x00\x08\x00\x00\x00")
DUCKY = segment(0xEC, b"Ducky\x00\x01\x00\x04\x00\x00\x00\x50\x00\x00")
TRAILER = b"PK\x03\x04 a zip after EOI"
DCS = [-783, 328, -419, -456, -516, -249, 511, 121]  # 32×16 px: 4×2 blocks; the scan has a stuffed FF00


def jpeg_parts(dcs: list[int] = DCS) -> tuple[bytes, bytes]:
    """(a phone-style JPEG with every kind of metadata, the exact bytes expected after stripping)."""
    image = jpeg_image_segments(dcs, 32, 16)
    original = b"".join(
        [b"\xff\xd8", JFIF, EXIF, XMP, ICC, MPF, ADOBE, IPTC, DUCKY, COMMENT, *image, b"\xff\xd9", TRAILER]
    )
    expected = b"".join([b"\xff\xd8", JFIF, ICC, ADOBE, *image, b"\xff\xd9"])
    return original, expected


def test_fixture_jpeg_exercises_stuffing_and_restarts():
    scan = jpeg_image_segments(DCS, 32, 16)[-1]
    assert b"\xff\x00" in scan, "the scan should contain a stuffed 0xFF byte"
    assert b"\xff\xd0" in scan and b"\xff\xd1" in scan, "the scan should contain restart markers"


def test_jpeg_metadata_removed_image_kept_byte_for_byte(store, tmp_path):
    original, expected = jpeg_parts()
    assert b"Exif\x00\x00" in original and b"GPSLatitude" in original
    result = store.put(original, "image/jpeg")
    data = store.open(result.sha256)
    assert data == expected
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
    for gone in (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"Photoshop 3.0", b"MPF\x00", b"Ducky", TRAILER):
        assert gone not in data
    assert "张三".encode() not in data
    for kept in (JFIF, ICC, ADOBE, *jpeg_image_segments(DCS, 32, 16)):
        assert kept in data
    assert result == Stored(
        sha256=hashlib.sha256(expected).hexdigest(),
        media_type="image/jpeg",
        kind="photo",
        size=len(expected),
        path=tmp_path / "attachments" / result.sha256[:2] / result.sha256[2:4] / result.sha256,
        stripped=True,
    )


def test_clean_jpeg_is_stored_unchanged(store):
    _, clean = jpeg_parts()
    result = store.put(clean)
    assert not result.stripped
    assert store.open(result.sha256) == clean


def test_jpeg_with_fill_bytes_and_several_scans(store):
    """Progressive-style layout: tables between scans and 0xFF fill bytes before markers are legal.

    Fill bytes between segments are dropped (they are padding); those before a restart marker inside a scan are
    part of the entropy-coded data and kept.
    """
    image = jpeg_image_segments(DCS, 32, 16)
    second = image[-1]
    filled = second.replace(b"\xff\xd0", b"\xff\xff\xff\xd0")
    assert filled != second
    original = b"".join([b"\xff\xd8", EXIF, *image, b"\xff\xff", image[2], COMMENT, filled, b"\xff\xd9"])
    expected = b"".join([b"\xff\xd8", *image, image[2], filled, b"\xff\xd9"])  # fill bytes carry nothing
    assert store.open(store.put(original).sha256) == expected


def test_every_truncation_of_a_jpeg_is_refused(store, tmp_path):
    original, _ = jpeg_parts()
    end = original.index(TRAILER)  # the file up to and including EOI
    for cut in range(1, end):
        with pytest.raises(AttachmentError):
            store.put(original[:cut])
    assert files_under(tmp_path / "attachments") == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(JFIF + b"\xff\xd9", id="no-scan"),
        pytest.param(b"\xff\xe0\xff\xf0JFIF\x00" + b"\xff\xd9", id="length-past-end"),
        pytest.param(b"\xff\xe0\x00\x01\xff\xd9", id="length-below-2"),
        pytest.param(jpeg_image_segments(DCS, 32, 16)[-1] + b"\xff\xd9", id="scan-before-frame"),
        pytest.param(JFIF + b"\x00garbage" + b"\xff\xd9", id="junk-between-segments"),
        pytest.param(b"\xff\xd8" + b"\xff\xd9", id="second-soi"),
    ],
)
def test_malformed_jpeg_refused(store, tmp_path, body):
    with pytest.raises(AttachmentError, match="JPEG 文件已损坏"):
        store.put(b"\xff\xd8" + body)
    assert files_under(tmp_path / "attachments") == []


# ------------------------------------------------------------------------------------------------ PNG


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_W, PNG_H = 4, 3


def png_raw_rows() -> bytes:
    return b"".join(b"\x00" + b"".join(bytes((x * 60, y * 80, 200)) for x in range(PNG_W)) for y in range(PNG_H))


def png_parts() -> tuple[bytes, bytes]:
    """(a PNG with text/time/EXIF/private chunks and data after IEND, the exact stripped bytes)."""
    compressed = zlib.compress(png_raw_rows())
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", PNG_W, PNG_H, 8, 2, 0, 0, 0))
    gama = chunk(b"gAMA", struct.pack(">I", 45455))
    phys = chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1))
    idat1, idat2 = chunk(b"IDAT", compressed[:7]), chunk(b"IDAT", compressed[7:])
    iend = chunk(b"IEND", b"")
    metadata = [
        chunk(b"tEXt", b"Author\x00Zhang San"),
        chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress("拍摄地点 下城区".encode())),
        chunk(b"iTXt", "Location\x00\x00\x00zh\x00位置\x0030.268N 120.17E".encode()),
        chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 1, 8, 30, 0)),
        chunk(b"eXIf", tiff_with_gps()),
        chunk(b"prVt", b"vendor private data"),
    ]
    original = b"".join([PNG_SIGNATURE, ihdr, *metadata[:3], gama, *metadata[3:], phys, idat1, idat2, iend, TRAILER])
    expected = b"".join([PNG_SIGNATURE, ihdr, gama, phys, idat1, idat2, iend])
    return original, expected


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Independent reader for the test: every chunk's type and body, asserting the CRCs."""
    assert data.startswith(PNG_SIGNATURE)
    pos, chunks = 8, []
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(ctype + body), ctype
        chunks.append((ctype, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def test_png_text_time_exif_removed_crcs_valid(store):
    original, expected = png_parts()
    result = store.put(original, "image/png")
    data = store.open(result.sha256)
    assert data == expected
    assert result.stripped and result.media_type == "image/png" and result.kind == "photo"
    chunks = png_chunks(data)
    assert [c for c, _ in chunks] == [b"IHDR", b"gAMA", b"pHYs", b"IDAT", b"IDAT", b"IEND"]
    assert zlib.decompress(b"".join(body for c, body in chunks if c == b"IDAT")) == png_raw_rows()
    assert b"Zhang" not in data and TRAILER not in data


@pytest.mark.parametrize("damage", ["crc", "truncated", "no-iend", "no-idat", "first-not-ihdr", "huge-length"])
def test_malformed_png_refused(store, tmp_path, damage):
    clean = png_parts()[1]
    ihdr_end = 8 + 12 + 13
    if damage == "crc":
        i = clean.index(b"IDAT") + 6
        bad = clean[:i] + bytes([clean[i] ^ 1]) + clean[i + 1 :]
    elif damage == "truncated":
        bad = clean[:-5]
    elif damage == "no-iend":
        bad = clean[: clean.index(b"IEND") - 4]
    elif damage == "no-idat":
        bad = clean[:ihdr_end] + chunk(b"IEND", b"")
    elif damage == "first-not-ihdr":
        bad = PNG_SIGNATURE + chunk(b"gAMA", b"\x00\x00\xb1\x8f") + clean[8:]
    else:
        bad = clean[:ihdr_end] + struct.pack(">I", 0xFFFFFFF0) + b"IDAT" + b"\x00" * 20
    with pytest.raises(AttachmentError, match="PNG 文件已损坏"):
        store.put(bad)
    assert files_under(tmp_path / "attachments") == []


# ------------------------------------------------------------------------------------------------ WebP

# Well-known minimal WebPs (1×1): lossy, lossless, and lossy with alpha in an extended (VP8X) container.
WEBP_LOSSY = base64.b64decode("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA")
WEBP_LOSSLESS = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
WEBP_ALPHA = base64.b64decode(
    "UklGRkoAAABXRUJQVlA4WAoAAAAQAAAAAAAAAAAAQUxQSAwAAAARBxAR/Q9ERP8DAABWUDggGAAAABQBAJ0BKgEAAQAAAP4AAA3AAP7mtQAAAA=="
)


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    (size,) = struct.unpack_from("<I", data, 4)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and size + 8 == len(data)
    pos, chunks = 12, []
    while pos < len(data):
        cid, length = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        chunks.append((cid, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    assert pos == len(data)
    return chunks


def riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(c + struct.pack("<I", len(b)) + b + b"\x00" * (len(b) & 1) for c, b in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def test_webp_exif_and_xmp_removed_flags_and_size_fixed(store):
    (vp8x, flags_etc), *image = riff_chunks(WEBP_ALPHA)
    assert vp8x == b"VP8X" and flags_etc[0] == 0x10  # alpha only
    with_meta = bytes([flags_etc[0] | 0x08 | 0x04]) + flags_etc[1:]
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>30,16N</exif:GPSLatitude></x:xmpmeta>'
    original = riff([(b"VP8X", with_meta), *image, (b"EXIF", tiff_with_gps()), (b"XMP ", xmp)]) + TRAILER
    result = store.put(original, "image/webp")
    data = store.open(result.sha256)
    assert data == WEBP_ALPHA
    assert result.stripped and result.media_type == "image/webp" and result.size == len(WEBP_ALPHA)
    assert [c for c, _ in riff_chunks(data)] == [b"VP8X", b"ALPH", b"VP8 "]


@pytest.mark.parametrize("clean", [WEBP_LOSSY, WEBP_LOSSLESS, WEBP_ALPHA], ids=["lossy", "lossless", "alpha"])
def test_clean_webp_unchanged(store, clean):
    result = store.put(clean)
    assert not result.stripped and store.open(result.sha256) == clean


@pytest.mark.parametrize("damage", ["riff-size-past-end", "chunk-past-end", "no-image", "vp8x-not-first"])
def test_malformed_webp_refused(store, tmp_path, damage):
    if damage == "riff-size-past-end":
        bad = WEBP_LOSSY[:4] + struct.pack("<I", len(WEBP_LOSSY) + 100) + WEBP_LOSSY[8:]
    elif damage == "chunk-past-end":
        bad = WEBP_LOSSY[:16] + struct.pack("<I", 9999) + WEBP_LOSSY[20:]
    elif damage == "no-image":
        bad = riff([(b"VP8X", b"\x08" + b"\x00" * 9), (b"EXIF", tiff_with_gps())])
    else:
        bad = riff([(b"EXIF", tiff_with_gps()), *riff_chunks(WEBP_ALPHA)])
    with pytest.raises(AttachmentError, match="WebP 文件已损坏"):
        store.put(bad)
    assert files_under(tmp_path / "attachments") == []


# ------------------------------------------------------------------------------------------------ audio


def ogg_first_page(packet: bytes) -> bytes:
    """An Ogg beginning-of-stream page holding one packet (the CRC is left 0: the store does not check it)."""
    header = b"OggS" + bytes([0, 0x02]) + struct.pack("<qIII", 0, 0x1234, 0, 0)
    return header + bytes([1, len(packet)]) + packet


def wav(chunks_before_fmt: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    samples = struct.pack("<8h", 0, 100, 200, 100, 0, -100, -200, -100)
    body = b"WAVE" + chunks_before_fmt + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 413  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
ID3 = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + b"TIT2\x00\x00\x00\x05\x00\x00\x03note" + b"\x00" * 5

AUDIO = {
    "amr": (b"#!AMR\n" + b"\x3c" + b"\x55" * 31, "audio/amr"),
    "amr-wb": (b"#!AMR-WB\n" + b"\x44" + b"\x55" * 60, "audio/amr-wb"),
    "ogg-opus": (ogg_first_page(b"OpusHead\x01\x01\x38\x01\x80\x3e\x00\x00\x00\x00\x00"), "audio/ogg"),
    "ogg-vorbis": (ogg_first_page(b"\x01vorbis" + b"\x00" * 22), "audio/ogg"),
    "wav": (wav(), "audio/wav"),
    "wav-list-first": (wav(b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"), "audio/wav"),
    "mp3-id3": (ID3 + MP3_FRAME * 2, "audio/mpeg"),
    "mp3-bare": (MP3_FRAME * 2, "audio/mpeg"),
    "mp3-mpeg2": (b"\xff\xf3\x48\xc4" + b"\x00" * 100, "audio/mpeg"),
}


@pytest.mark.parametrize("name", AUDIO)
def test_audio_sniffed_and_stored_unchanged(store, name):
    data, media_type = AUDIO[name]
    result = store.put(data)
    assert (result.media_type, result.kind, result.stripped) == (media_type, "audio", False)
    assert store.open(result.sha256) == data and result.size == len(data)
    assert store.put(data, media_type) == result


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(ogg_first_page(b"\x80theora" + b"\x00" * 34), id="ogg-theora-video"),
        pytest.param(b"\xff\xf1\x50\x80" + b"\x00" * 100, id="aac-adts"),
        pytest.param(b"\xff\xfb\xf0\x64" + b"\x00" * 100, id="mp3-bad-bitrate"),
        pytest.param(ID3 + b"<html>", id="id3-then-html"),
        pytest.param(b"#!SILK_V3" + b"\x00" * 10, id="wechat-silk"),
        pytest.param(b"#!AMR_MC1.0\n" + b"\x00" * 10, id="amr-multichannel"),
    ],
)
def test_other_audio_and_fake_headers_refused(store, data):
    with pytest.raises(AttachmentError, match="不支持的文件类型"):
        store.put(data)


def test_wav_without_format_chunk_refused(store):
    body = b"WAVEdata" + struct.pack("<I", 4) + b"\x00" * 4
    with pytest.raises(AttachmentError, match="WAV 文件已损坏"):
        store.put(b"RIFF" + struct.pack("<I", len(body)) + body)


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x7fELF\x02\x01\x01" + b"\x00" * 57, id="elf"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56, id="windows-exe"),
        pytest.param(b"<!DOCTYPE html><html><script>alert(1)</script></html>", id="html"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"),
        pytest.param(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, id="zip"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", id="pdf"),
        pytest.param(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", id="gif"),
        pytest.param(b"\x00\x00\x00\x18ftypheic", id="heic"),
    ],
)
def test_unsupported_files_refused(store, tmp_path, data):
    with pytest.raises(AttachmentError) as err:
        store.put(data, "image/jpeg")
    assert str(err.value) == "不支持的文件类型（只接受 JPEG、PNG、WebP 照片和 AMR、OGG、WAV、MP3 音频）"
    assert files_under(tmp_path / "attachments") == []


def test_empty_refused(store, tmp_path):
    with pytest.raises(AttachmentError, match="文件为空"):
        store.put(b"")
    assert files_under(tmp_path / "attachments") == []


@pytest.mark.parametrize("declared", ["image/png", "image/webp", "audio/mpeg", "audio/*", "text/html", "video/mp4"])
def test_declared_type_contradicting_content_refused(store, tmp_path, declared):
    jpeg, _ = jpeg_parts()
    with pytest.raises(AttachmentError) as err:
        store.put(jpeg, declared)
    assert "JPEG 照片" in str(err.value) and declared in str(err.value) and "不符" in str(err.value)
    assert files_under(tmp_path / "attachments") == []


@pytest.mark.parametrize(
    "declared",
    ["image/jpeg", "IMAGE/JPG", "image/pjpeg", "image/jpeg; charset=binary", "image/*", "application/octet-stream", ""],
)
def test_declared_type_agreeing_or_uninformative_accepted(store, declared):
    jpeg, _ = jpeg_parts()
    assert store.put(jpeg, declared).media_type == "image/jpeg"


def test_declared_audio_aliases_accepted(store):
    assert store.put(AUDIO["ogg-opus"][0], "audio/ogg; codecs=opus").media_type == "audio/ogg"
    assert store.put(AUDIO["mp3-bare"][0], "audio/mp3").media_type == "audio/mpeg"
    assert store.put(AUDIO["wav"][0], "audio/x-wav").media_type == "audio/wav"
    with pytest.raises(AttachmentError, match="MP3 音频"):
        store.put(AUDIO["mp3-bare"][0], "audio/amr")


def test_size_limits_per_kind(tmp_path):
    jpeg, _ = jpeg_parts()
    amr = AUDIO["amr"][0]
    small = AttachmentStore(tmp_path / "small", max_photo_bytes=len(jpeg) - 1, max_audio_bytes=len(amr) - 1)
    with pytest.raises(AttachmentError, match=rf"文件过大：{len(jpeg)} 字节，照片上限 {len(jpeg) - 1} 字节"):
        small.put(jpeg)
    with pytest.raises(AttachmentError, match="音频上限"):
        small.put(amr)
    assert files_under(tmp_path / "small") == []
    exact = AttachmentStore(tmp_path / "exact", max_photo_bytes=len(jpeg), max_audio_bytes=len(amr))
    assert exact.put(jpeg).kind == "photo" and exact.put(amr).kind == "audio"


def test_size_message_in_megabytes(store):
    big = b"\xff\xd8\xff" + bytes(int(12.3 * MIB) - 3)
    with pytest.raises(AttachmentError) as err:
        store.put(big)
    assert str(err.value) == "文件过大：12.3 MB，照片上限 10 MB"


def test_size_message_never_reads_as_equal_to_the_limit(store):
    with pytest.raises(AttachmentError) as err:
        store.put(b"\xff\xd8\xff" + bytes(10 * MIB - 2))
    assert str(err.value) == f"文件过大：{10 * MIB + 1} 字节，照片上限 10 MB（{10 * MIB} 字节）"


# ------------------------------------------------------------------------------------------------ storage


def test_content_addressed_layout_and_permissions(store, tmp_path):
    jpeg, expected = jpeg_parts()
    result = store.put(jpeg)
    sha = hashlib.sha256(expected).hexdigest()
    assert result.sha256 == sha
    assert result.path == tmp_path / "attachments" / sha[:2] / sha[2:4] / sha
    assert store.path(sha) == result.path
    assert result.path.stat().st_mode & 0o777 == 0o640
    assert stored_files(tmp_path / "attachments") == [result.path]


def test_same_content_twice_is_one_file(store, tmp_path):
    jpeg, clean = jpeg_parts()
    first, second = store.put(jpeg), store.put(jpeg)
    assert first == second
    stripped_upload = store.put(clean)  # the already stripped bytes land on the same file
    assert stripped_upload.sha256 == first.sha256 and not stripped_upload.stripped
    assert store.put(AUDIO["wav"][0]) == store.put(AUDIO["wav"][0])
    assert len(stored_files(tmp_path / "attachments")) == 2


def test_different_photos_are_different_files(store, tmp_path):
    a, _ = jpeg_parts()
    b, _ = jpeg_parts([dc + 8 for dc in DCS[:-1]] + [0])
    png, _ = png_parts()
    results = [store.put(x) for x in (a, b, png, WEBP_LOSSY)]
    assert len({r.sha256 for r in results}) == 4
    assert sorted(stored_files(tmp_path / "attachments")) == sorted(r.path for r in results)


def test_metadata_only_differences_collapse_to_one_file(store, tmp_path):
    """Two uploads of one picture whose EXIF differs (say, re-saved elsewhere) are the same stored photo."""
    _, expected = jpeg_parts()
    image = jpeg_image_segments(DCS, 32, 16)
    elsewhere = segment(0xE1, b"Exif\x00\x00" + tiff_with_gps((31, 14, 0)))
    other = b"".join([b"\xff\xd8", JFIF, elsewhere, ICC, ADOBE, *image, b"\xff\xd9"])
    assert store.put(jpeg_parts()[0]).sha256 == store.put(other).sha256 == hashlib.sha256(expected).hexdigest()
    assert len(stored_files(tmp_path / "attachments")) == 1


def test_store_survives_a_new_instance(tmp_path):
    jpeg, expected = jpeg_parts()
    sha = AttachmentStore(tmp_path / "a").put(jpeg).sha256
    assert AttachmentStore(tmp_path / "a").open(sha) == expected


def test_failed_write_leaves_no_temp_file(store, tmp_path, monkeypatch):
    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        store.put(AUDIO["amr"][0])
    assert stored_files(tmp_path / "attachments") == []


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "../" * 21 + "a",
        "A" * 64,
        "ab" * 16,
        "a" * 63,
        "a" * 65,
        "a" * 64 + "\n",
        "a" * 62 + "/a",
        "g" * 64,
        "",
        None,
    ],
)
def test_open_and_path_refuse_anything_but_a_lowercase_sha256(store, key):
    with pytest.raises(AttachmentError, match="附件编号无效"):
        store.open(key)  # type: ignore[arg-type]
    with pytest.raises(AttachmentError, match="附件编号无效"):
        store.path(key)  # type: ignore[arg-type]


def test_upper_case_of_a_stored_hash_is_refused(store):
    sha = store.put(AUDIO["amr"][0]).sha256
    with pytest.raises(AttachmentError, match="附件编号无效"):
        store.open(sha.upper())


def test_unknown_hash(store):
    unknown = hashlib.sha256(b"never stored").hexdigest()
    for call in (store.open, store.path):
        with pytest.raises(AttachmentError) as err:
            call(unknown)
        assert str(err.value) == "附件不存在"


def test_errors_are_value_errors():
    assert issubclass(AttachmentError, ValueError)


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning", "ignore:Image appears to be a malformed MPO")
def test_stored_photos_decode_to_the_same_pixels(store):
    """Cross-check with an independent decoder when one is installed (Pillow is not a Gridline dependency). The
    hand-made JPEG's metadata segments are odd enough for Pillow to warn about; the stored copy must not be."""
    image_mod = pytest.importorskip("PIL.Image", reason="Pillow not installed: pixel comparison skipped")
    import io
    import warnings

    jpeg, _ = jpeg_parts()
    png, _ = png_parts()
    for original in (jpeg, png, WEBP_ALPHA):
        stored = store.open(store.put(original).sha256)
        with image_mod.open(io.BytesIO(original)) as before:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                after = image_mod.open(io.BytesIO(stored))
                after.load()
                after.getexif()
            assert after.size == before.size and after.mode == before.mode
            assert after.tobytes() == before.tobytes()
            after.close()
        if original is jpeg:
            with image_mod.open(io.BytesIO(original)) as before, image_mod.open(io.BytesIO(stored)) as after:
                assert before.getexif().get_ifd(0x8825), "the original should carry GPS"
                assert not after.getexif()
