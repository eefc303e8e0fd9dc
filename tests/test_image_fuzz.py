"""Upload decoding fuzzed: mutated PNG/JPEG/TIFF bytes either load or raise ImageError.

Valid small files (8- and 16-bit PNG, JPEG, 8- and 16-bit TIFF, an uncompressed grey TIFF
with orientation 6, and a float RGB TIFF Pillow cannot open) are mutated by bit flips,
truncation, splices of other files' bytes, chunk edits with a fixed-up CRC (so PNG's checksums
do not stop the mutation at the door) and headers that lie about the size. ``load_image`` must
then return a valid :class:`LoadedImage` within the pixel budget or raise
:class:`~impasto.errors.ImageError`; no other exception may escape. 150 examples in all.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from impasto.errors import ImageError
from impasto.image import LoadedImage, load_image
from tests._image_helpers import png16_bytes, rgb_array

EXAMPLES = 150
W, H = 16, 12
BUDGET = 4 * W * H  # the pixel budget of every fuzzed load


def _pillow_bytes(arr: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **options)
    return buf.getvalue()


def _tiff16_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr.astype(np.uint16) * 257, photometric="rgb", compression="zlib")
    return buf.getvalue()


def _tifffile_bytes(arr: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **options)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    arr = rgb_array(W, H, seed=21)
    rgba = np.concatenate([arr, arr[..., :1]], -1)
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png": _pillow_bytes(rgba, "PNG", exif=exif),
        "png16": png16_bytes(arr.astype(np.uint16) * 257),
        "jpg": _pillow_bytes(arr, "JPEG", quality=90, exif=exif),
        "tif": _pillow_bytes(arr, "TIFF", compression="tiff_deflate"),
        "tif16": _tiff16_bytes(arr),
        # raw grey strips that Pillow 13 memory-maps, and a quarter turn it applies on decoding
        "tifg6": _tifffile_bytes(arr[..., 0], extratags=[(274, "H", 1, 6, False)]),
    }


SEEDS = _seeds()
# only mutated: Pillow cannot open the valid file either (the loader names its samples)
UNOPENABLE = {
    "tiff32": _tifffile_bytes(rgb_array(W, H, seed=22) / np.float32(255), photometric="rgb")
}


# --------------------------------------------------------------------------------------------
# headers that lie about the size


def _png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset of the length field, body length) of each chunk of a PNG."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((pos, length))
        pos += 12 + length
    return out


def _fix_png_crc(data: bytearray, at: int) -> None:
    (length,) = struct.unpack(">I", data[at : at + 4])
    end = at + 8 + length
    if end + 4 <= len(data):
        data[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(data[at + 4 : end])))


def with_size(kind: str, data: bytes, width: int, height: int) -> bytes:
    """``data`` (a seed of ``kind``) with its header claiming ``width x height`` pixels."""
    out = bytearray(data)
    if kind.startswith("png"):
        out[16:24] = struct.pack(">II", width, height)
        _fix_png_crc(out, 8)
    elif kind == "jpg":
        sof = out.index(b"\xff\xc0")  # baseline start of frame: length, precision, H, W
        out[sof + 5 : sof + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    else:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            tags = tif.pages[0].tags
            for name, value in (("ImageWidth", width), ("ImageLength", height)):
                tag = tags[name]
                fmt, top = ("<H", 65535) if int(tag.dtype) == 3 else ("<I", 2**32 - 1)
                out[tag.valueoffset : tag.valueoffset + struct.calcsize(fmt)] = struct.pack(
                    fmt, min(value, top)
                )
    return bytes(out)


@pytest.mark.parametrize("kind", sorted(SEEDS))
@pytest.mark.parametrize("max_pixels", [None, 10_000])
def test_a_header_claiming_a_huge_size_is_refused_before_decoding(tmp_path, kind, max_pixels):
    path = tmp_path / f"huge.{kind[:3]}"
    path.write_bytes(with_size(kind, SEEDS[kind], 60_000, 60_000))  # 3.6 GP: ~43 GB as float
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="too large") as exc:
            load_image(path, max_pixels=max_pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "huge" in str(exc.value) and "\n" not in str(exc.value)
    assert peak < 2_000_000  # bytes (Python and numpy allocations)


def test_the_size_lie_helper_changes_only_the_size(tmp_path):
    for kind, data in SEEDS.items():
        with Image.open(io.BytesIO(with_size(kind, data, 7, 5))) as im:
            # Pillow 13 reports a TIFF's size with a quarter turn applied, earlier ones do not
            assert im.size in ((7, 5), (5, 7) if kind == "tifg6" else (7, 5)), kind


# --------------------------------------------------------------------------------------------
# mutations


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    seeds = SEEDS | UNOPENABLE
    kind = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[kind])
    how = draw(st.sampled_from(["flip", "truncate", "splice", "chunk", "size"]))
    if how == "flip":
        for at in draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=8)):
            data[at // 8] ^= 1 << (at % 8)
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "splice":
        other = seeds[draw(st.sampled_from(sorted(seeds)))]
        start = draw(st.integers(0, len(other) - 1))
        piece = other[start : start + draw(st.integers(1, 64))]
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 64))  # bytes replaced (0: inserted)
        data[at : at + cut] = piece
    elif how == "chunk" and kind.startswith("png"):
        at, length = draw(st.sampled_from(_png_chunks(bytes(data))))
        if length:
            offset = at + 8 + draw(st.integers(0, length - 1))
            data[offset] = draw(st.integers(0, 255))
            _fix_png_crc(data, at)
    else:  # "size" (and "chunk" on formats without checksums)
        width, height = draw(st.integers(1, 2**20)), draw(st.integers(1, 2**20))
        data = bytearray(with_size(kind, bytes(data), width, height))
    return kind, bytes(data)


def _assert_valid(li: LoadedImage) -> None:
    width, height = li.size
    assert 1 <= width * height <= BUDGET
    assert li.rgb.shape == (1, 3, height, width) and li.rgb.dtype == torch.float32
    assert torch.isfinite(li.rgb).all() and li.rgb.min() >= 0 and li.rgb.max() <= 1
    if li.alpha is not None:
        assert li.alpha.shape == (1, 1, height, width)
        assert li.alpha.min() >= 0 and li.alpha.max() <= 1
    assert li.bits in (8, 16)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_mutated_files_load_or_raise_image_error(tmp_path, case):
    kind, data = case
    path = tmp_path / f"fuzz.{kind[:3]}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt EXIF, unusable ICC, ...: warnings are fine
        try:
            li = load_image(path, max_pixels=BUDGET)
        except ImageError as exc:
            assert "\n" not in str(exc)
            return
    _assert_valid(li)
