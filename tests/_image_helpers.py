"""Shared helpers of the tests/test_image_*.py files: small synthetic images and files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import ImageCms


def rgb_array(w: int = 12, h: int = 8, seed: int = 0) -> np.ndarray:
    """Random ``(h, w, 3)`` uint8 pixels."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def as_hwc(t: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` tensor -> ``(H, W, C)`` array."""
    return t[0].permute(1, 2, 0).numpy()


def srgb_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def bgr_profile() -> bytes:
    """A valid, non-sRGB RGB profile: LittleCMS's sRGB with the red and blue colorants swapped.

    A file tagged with it stores blue in its first channel and red in its third, so converting
    it to sRGB must swap the channels. The description is patched so it no longer says sRGB.
    """
    data = bytearray(srgb_bytes())
    count = struct.unpack(">I", data[128:132])[0]
    entries = {}
    for i in range(count):
        pos = 132 + 12 * i
        entries[bytes(data[pos : pos + 4])] = pos
    r, b = entries[b"rXYZ"], entries[b"bXYZ"]
    data[r + 4 : r + 12], data[b + 4 : b + 12] = data[b + 4 : b + 12], data[r + 4 : r + 12]
    utf16 = "sRGB".encode("utf-16-be")
    at = bytes(data).index(utf16)
    data[at : at + len(utf16)] = "sBGR".encode("utf-16-be")
    return bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    """An 8-bit RGB PNG whose IHDR claims ``width x height`` but holds ``idat`` as pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + (png_chunk(b"IDAT", idat) if idat else b"")
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


def png16_bytes(arr: np.ndarray, *, icc: bytes | None = None) -> bytes:
    """An ``(H, W, C)`` uint16 array as 16-bit PNG bytes, written by pypng (optional iCCP)."""
    h, w, c = arr.shape
    writer = png.Writer(w, h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=16)
    buf = io.BytesIO()
    writer.write(buf, arr.reshape(h, w * c))
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    if icc is not None:
        chunks.insert(1, (b"iCCP", b"x\0\0" + zlib.compress(icc)))
    out = io.BytesIO()
    png.write_chunks(out, chunks)
    return out.getvalue()


def write_png16(path, arr: np.ndarray, *, icc: bytes | None = None) -> None:
    """Write an ``(H, W, C)`` uint16 array as a 16-bit PNG with pypng (optional iCCP)."""
    with open(path, "wb") as fh:
        fh.write(png16_bytes(arr, icc=icc))


def gradient16(w: int = 64, h: int = 8) -> np.ndarray:
    """A smooth ``(H, W, 3)`` uint16 gradient with far more than 256 levels per channel."""
    x = np.linspace(0, 65535, w * h).reshape(h, w)
    return np.stack([x, x[::-1], np.full_like(x, 12345.0)], axis=-1).round().astype(np.uint16)


def _lzw_literal(data: bytes) -> bytes:
    """A TIFF LZW stream of literal codes only (9 bits each, a Clear code every 250 codes)."""
    codes: list[int] = []
    for i in range(0, len(data), 250):
        codes.append(256)
        codes.extend(data[i : i + 250])
    codes.append(257)
    bits = "".join(format(c, "09b") for c in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def lzw_tiff16(path, arr: np.ndarray) -> None:
    """Write ``(H, W, 3)`` uint16 as a one-strip LZW TIFF (which tifffile cannot decode
    without the optional imagecodecs package, while Pillow can, in 8 bits)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="rgb", rowsperstrip=arr.shape[0])
    raw = bytearray(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        page = tif.pages[0]
        start = page.dataoffsets[0]
        stream = _lzw_literal(bytes(raw[start : start + page.databytecounts[0]]))
        patches = [("Compression", 5), ("StripOffsets", len(raw)), ("StripByteCounts", len(stream))]
        for name, value in patches:
            tag = page.tags[name]
            fmt = {3: "<H", 4: "<I"}[int(tag.dtype)]
            raw[tag.valueoffset : tag.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    with open(path, "wb") as fh:
        fh.write(bytes(raw) + stream)


def assert_one_line_naming(exc: pytest.ExceptionInfo, name: str) -> None:
    """The error message names ``name`` and fits on one line."""
    message = str(exc.value)
    assert name in message and "\n" not in message
