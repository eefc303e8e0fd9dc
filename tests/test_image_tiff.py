"""TIFF specifics of impasto.image.load: the orientation tag in every layout, unsupported samples.

Pillow 13 reports a TIFF's size with its orientation applied before decoding and memory-maps
raw L, P, RGBA and I;16 strips with that rotated size: orientations 5-8 came out scrambled (and
16-bit colour fell back to Pillow's 8 bits). Every result is checked here against numpy's own
transform of the stored pixels, the EXIF meaning the JPEG and PNG paths follow.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
from PIL import Image

from impasto.errors import ImageError
from impasto.image import load_image
from tests._image_helpers import as_hwc, assert_one_line_naming

# EXIF orientation -> the transform that shows the stored (H, W, ...) pixels upright
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}

# name -> (dtype, samples per pixel, photometric, extra samples)
LAYOUTS = {
    "grey8": (np.uint8, 1, "minisblack", None),
    "grey16": (np.uint16, 1, "minisblack", None),
    "grey_alpha8": (np.uint8, 2, "minisblack", ["unassalpha"]),
    "rgb8": (np.uint8, 3, "rgb", None),
    "rgba8": (np.uint8, 4, "rgb", ["unassalpha"]),
    "rgb16": (np.uint16, 3, "rgb", None),
    "rgba16": (np.uint16, 4, "rgb", ["unassalpha"]),
}


def _orientation_tag(orientation: int) -> list[tuple]:
    return [(274, "H", 1, orientation, False)]


def _stored(layout: str, height: int = 6, width: int = 10) -> np.ndarray:
    """Random pixels of ``layout``, not multiples of 257 (so 16 bits are really 16 bits)."""
    dtype, samples, _, _ = LAYOUTS[layout]
    top = np.iinfo(dtype).max
    shape = (height, width) if samples == 1 else (height, width, samples)
    arr = np.random.default_rng(samples).integers(0, top + 1, shape, dtype=dtype)
    if dtype == np.uint16:
        arr[arr % 257 == 0] += 1
    return arr


def test_grey16_tiff_with_orientation_6_is_a_portrait(tmp_path):
    """The tester's file: 96 wide, 64 high, a black box, orientation 6 (90 deg clockwise)."""
    a = np.tile(np.linspace(0, 65535, 96, dtype=np.uint16), (64, 1))
    a[20:40, 30:60] = 0
    tifffile.imwrite(tmp_path / "grey_rot.tif", a, extratags=_orientation_tag(6))
    li = load_image(tmp_path / "grey_rot.tif")
    assert li.rgb.shape == (1, 3, 96, 64) and li.bits == 16
    expected = np.rot90(a, -1).astype(np.float32) / 65535
    for channel in range(3):
        np.testing.assert_allclose(li.rgb[0, channel].numpy(), expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_tiff_orientation_in_every_layout(tmp_path, layout, orientation):
    dtype, samples, photometric, extras = LAYOUTS[layout]
    stored = _stored(layout)
    path = tmp_path / f"{layout}.tif"
    tifffile.imwrite(
        path,
        stored,
        photometric=photometric,
        extrasamples=extras,
        extratags=_orientation_tag(orientation),
    )
    li = load_image(path)
    upright = UPRIGHT[orientation](stored).astype(np.float64) / np.iinfo(dtype).max
    if samples == 1:
        upright = upright[..., None]
    colour = upright[..., :3] if photometric == "rgb" else upright[..., :1]
    got = as_hwc(li.rgb)
    assert got.shape == colour.shape[:2] + (3,)
    np.testing.assert_allclose(got, np.broadcast_to(colour, got.shape), atol=1e-6, rtol=0)
    assert li.bits == (8 if dtype == np.uint8 else 16)
    if extras:
        np.testing.assert_allclose(li.alpha[0, 0].numpy(), upright[..., -1], atol=1e-6, rtol=0)
    else:
        assert li.alpha is None


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_palette_and_tiled_tiffs_with_a_quarter_turn(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 16, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[274] = orientation
    palette = Image.fromarray(stored).quantize(8)
    palette.save(tmp_path / "p.tif", exif=exif)  # uncompressed: Pillow memory-maps P strips
    expected = np.asarray(palette.convert("RGB"), np.float32) / 255
    np.testing.assert_array_equal(
        as_hwc(load_image(tmp_path / "p.tif").rgb), UPRIGHT[orientation](expected)
    )
    grey = stored[..., 0].copy()
    tifffile.imwrite(tmp_path / "t.tif", grey, tile=(16, 16), extratags=_orientation_tag(6))
    got = load_image(tmp_path / "t.tif").rgb[0, 0].numpy()
    np.testing.assert_array_equal(got, np.rot90(grey, -1).astype(np.float32) / 255)


def test_rotated_16bit_tiff_over_pillows_limit(tmp_path, monkeypatch):
    """An explicit, higher max_pixels: tifffile decodes the stored (unrotated) size."""
    stored = _stored("grey16", 20, 30)
    tifffile.imwrite(tmp_path / "big.tif", stored, extratags=_orientation_tag(6))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    li = load_image(tmp_path / "big.tif", max_pixels=1000)
    expected = np.rot90(stored, -1).astype(np.float32) / 65535
    np.testing.assert_allclose(li.rgb[0, 0].numpy(), expected, atol=1e-7, rtol=0)


# --------------------------------------------------------------------------------------------
# samples Pillow cannot open


@pytest.mark.parametrize(
    ("dtype", "samples", "says"),
    [
        (
            np.float32,
            3,
            "RGB TIFF with 32-bit float samples is not supported; save it as 8- or 16-bit",
        ),
        (np.uint32, 3, "RGB TIFF with 32-bit unsigned integer samples is not supported"),
        (np.float32, 4, "RGB + alpha TIFF with 32-bit float samples"),
        (np.float64, 1, "grey TIFF with 64-bit float samples"),
        (np.float16, 3, "16-bit float samples is not supported; save it as 8- or 16-bit unsigned"),
        (np.int16, 3, "RGB TIFF with 16-bit signed integer samples"),
        (np.uint16, 2, "grey + alpha TIFF with 16-bit samples is not supported"),
    ],
)
def test_unsupported_tiff_samples_are_named(tmp_path, dtype, samples, says):
    shape = (8, 10) if samples == 1 else (8, 10, samples)
    photometric = "rgb" if samples >= 3 else "minisblack"
    extras = ["unassalpha"] if samples in (2, 4) else None
    data = np.ones(shape, dtype)
    tifffile.imwrite(tmp_path / "odd.tif", data, photometric=photometric, extrasamples=extras)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "odd.tif")
    assert_one_line_naming(exc, "odd.tif")
    assert says in str(exc.value)


def test_a_broken_tiff_header_stays_not_recognised_and_quiet(tmp_path, caplog):
    (tmp_path / "bad.tif").write_bytes(b"II*\0" + b"\xff" * 60)
    with caplog.at_level(logging.DEBUG, logger="tifffile"):
        with pytest.raises(ImageError, match="not a recognised image file") as exc:
            load_image(tmp_path / "bad.tif")
    assert_one_line_naming(exc, "bad.tif")
    assert not [r for r in caplog.records if r.name == "tifffile"]
    logging.getLogger("tifffile").warning("still heard outside the probe")
    assert [r for r in caplog.records if r.name == "tifffile"]
