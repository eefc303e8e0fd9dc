"""Tests for impasto.image.load: modes, 16 bits, EXIF orientation, errors and the pixel limit."""

from __future__ import annotations

import os
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageFile, ImageOps

from impasto.errors import ImageError
from impasto.image import LoadedImage, fit_long_side, load_image, resize
from tests._image_helpers import (
    as_hwc,
    assert_one_line_naming,
    gradient16,
    lzw_tiff16,
    png_header_only,
    rgb_array,
    write_png16,
)

# --------------------------------------------------------------------------------------------
# the result type


def test_loaded_image_size_and_frozen():
    li = LoadedImage(rgb=torch.zeros(1, 3, 5, 7), alpha=None, bits=8, name="x.png")
    assert li.size == (7, 5)
    with pytest.raises(AttributeError):
        li.bits = 16  # frozen


# --------------------------------------------------------------------------------------------
# 8-bit modes


def test_rgb_png_exact(tmp_path):
    arr = rgb_array()
    Image.fromarray(arr).save(tmp_path / "a.png")
    li = load_image(tmp_path / "a.png")
    assert li.rgb.shape == (1, 3, 8, 12) and li.rgb.dtype == torch.float32
    assert li.alpha is None and li.bits == 8 and li.name == "a.png"
    np.testing.assert_allclose(as_hwc(li.rgb) * 255, arr, atol=1e-4)


def test_rgba_alpha_separate_and_colour_under_transparency_kept(tmp_path):
    arr = np.zeros((4, 5, 4), np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 200, 100, 50
    arr[..., 3] = 0  # fully transparent, yet the colour must survive
    arr[0, 0, 3], arr[1, 1, 3] = 255, 128
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    li = load_image(tmp_path / "a.png")
    assert li.alpha is not None and li.alpha.shape == (1, 1, 4, 5)
    assert li.alpha[0, 0, 0, 0] == 1.0 and li.alpha[0, 0, 2, 2] == 0.0
    assert li.alpha[0, 0, 1, 1] == pytest.approx(128 / 255)
    np.testing.assert_allclose(as_hwc(li.rgb)[2, 2] * 255, [200, 100, 50], atol=1e-4)


def test_grayscale_gives_three_equal_channels(tmp_path):
    g = np.arange(40, dtype=np.uint8).reshape(5, 8) * 6
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    li = load_image(tmp_path / "g.png")
    assert li.alpha is None and li.bits == 8
    for c in range(3):
        np.testing.assert_allclose(li.rgb[0, c].numpy() * 255, g, atol=1e-4)


def test_la_mode(tmp_path):
    la = np.stack([np.full((3, 4), 90, np.uint8), np.full((3, 4), 30, np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    li = load_image(tmp_path / "la.png")
    assert torch.allclose(li.rgb, torch.full_like(li.rgb, 90 / 255))
    assert torch.allclose(li.alpha, torch.full((1, 1, 3, 4), 30 / 255))


def _palette_image(transparent: bool) -> Image.Image:
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.putdata([0, 1, 2, 2, 1, 0])
    if transparent:
        im.info["transparency"] = 1
    return im


@pytest.mark.parametrize("ext", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, ext):
    _palette_image(True).save(tmp_path / f"p{ext}")
    li = load_image(tmp_path / f"p{ext}")
    assert li.alpha is not None
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    # the transparent index keeps its palette colour (green)
    assert as_hwc(li.rgb)[0, 1].tolist() == [0.0, 1.0, 0.0]
    assert as_hwc(li.rgb)[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_palette_without_transparency(tmp_path):
    _palette_image(False).save(tmp_path / "p.png")
    li = load_image(tmp_path / "p.png")
    assert li.alpha is None
    assert as_hwc(li.rgb)[0, 2].tolist() == [0.0, 0.0, 1.0]


def test_transparency_key_on_l_and_rgb(tmp_path):
    g = Image.fromarray(np.array([[0, 10], [20, 10]], np.uint8), "L")
    g.save(tmp_path / "l.png", transparency=10)
    li = load_image(tmp_path / "l.png")
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    rgb = Image.fromarray(np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8), "RGB")
    rgb.save(tmp_path / "rgb.png", transparency=(4, 5, 6))
    li = load_image(tmp_path / "rgb.png")
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0]]


@pytest.mark.parametrize("name", ["c.tif", "c.jpg"])
def test_cmyk_converted_like_pillow(tmp_path, name):
    rng = np.random.default_rng(4)
    cmyk = Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "CMYK")
    cmyk.save(tmp_path / name)
    li = load_image(tmp_path / name)
    with Image.open(tmp_path / name) as im:  # no ICC profile: Pillow's own CMYK -> RGB
        expected = np.asarray(im.convert("RGB"), np.float32) / 255
    np.testing.assert_array_equal(as_hwc(li.rgb), expected)


def test_bilevel_mode(tmp_path):
    im = Image.new("1", (4, 2), 0)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "b.png")
    li = load_image(tmp_path / "b.png")
    assert li.rgb[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert li.rgb[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------------
# high bit depths


def test_16bit_grayscale_png_i16(tmp_path):
    g = np.linspace(0, 65535, 600).round().astype(np.uint16).reshape(20, 30)
    Image.fromarray(g).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    li = load_image(tmp_path / "g16.png")
    assert li.bits == 16
    assert len(torch.unique(li.rgb[0, 0])) == 600
    np.testing.assert_allclose(li.rgb[0, 1].numpy() * 65535, g, atol=1e-2)


def test_16bit_grayscale_big_endian_tiff(tmp_path):
    g = (np.arange(300, dtype=np.uint16).reshape(15, 20) * 200).astype(np.uint16)
    tifffile.imwrite(tmp_path / "be.tif", g, byteorder=">")
    with Image.open(tmp_path / "be.tif") as im:
        assert im.mode == "I;16B"
    li = load_image(tmp_path / "be.tif")
    assert li.bits == 16
    np.testing.assert_allclose(li.rgb[0, 2].numpy() * 65535, g, atol=1e-2)


def test_mode_i_and_f_pil_images():
    i = Image.fromarray(np.array([[0, 32768, 65535, 70000]], np.int32), "I")
    li = load_image(i)
    assert li.name == "<image>" and li.bits == 16
    np.testing.assert_allclose(li.rgb[0, 0, 0].numpy(), [0, 32768 / 65535, 1, 1], atol=1e-6)
    f01 = Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32), "F")
    np.testing.assert_allclose(load_image(f01).rgb[0, 1, 0].numpy(), [0, 0.25, 1], atol=1e-6)
    f255 = Image.fromarray(np.array([[0.0, 127.5, 300.0]], np.float32), "F")
    np.testing.assert_allclose(load_image(f255).rgb[0, 1, 0].numpy(), [0, 0.5, 1], atol=1e-6)


def test_float_gray_tiff(tmp_path):
    g = np.linspace(0, 1, 50, dtype=np.float32).reshape(5, 10)
    tifffile.imwrite(tmp_path / "f.tif", g)
    li = load_image(tmp_path / "f.tif")
    assert li.bits == 16
    np.testing.assert_allclose(li.rgb[0, 0].numpy(), g, atol=1e-6)


def test_pillow_truncates_16bit_rgb_png_but_we_do_not(tmp_path):
    arr = gradient16()
    write_png16(tmp_path / "c16.png", arr)
    with Image.open(tmp_path / "c16.png") as im:  # Pillow alone gives 8 bits per channel
        assert np.asarray(im).dtype == np.uint8
    li = load_image(tmp_path / "c16.png")
    assert li.bits == 16 and li.alpha is None
    assert len(torch.unique(li.rgb[0, 0])) > 256
    np.testing.assert_allclose(as_hwc(li.rgb) * 65535, arr, atol=1e-2)


def test_16bit_rgba_and_la_png(tmp_path):
    arr = gradient16()
    a = np.linspace(0, 65535, arr.shape[0] * arr.shape[1]).astype(np.uint16)
    rgba = np.concatenate([arr, a.reshape(arr.shape[:2])[..., None]], -1)
    write_png16(tmp_path / "rgba16.png", rgba)
    li = load_image(tmp_path / "rgba16.png")
    assert li.bits == 16 and li.alpha is not None
    np.testing.assert_allclose(li.alpha[0, 0].numpy() * 65535, rgba[..., 3], atol=1e-2)
    np.testing.assert_allclose(as_hwc(li.rgb) * 65535, arr, atol=1e-2)
    la = np.stack([arr[..., 0], rgba[..., 3]], -1)
    write_png16(tmp_path / "la16.png", la)
    li = load_image(tmp_path / "la16.png")
    assert li.bits == 16
    for c in range(3):
        np.testing.assert_allclose(li.rgb[0, c].numpy() * 65535, arr[..., 0], atol=1e-2)
    np.testing.assert_allclose(li.alpha[0, 0].numpy() * 65535, rgba[..., 3], atol=1e-2)


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_rgb_tiff(tmp_path, alpha):
    arr = gradient16()
    if alpha:
        arr = np.concatenate([arr, arr[..., :1]], -1)
        tifffile.imwrite(tmp_path / "t.tif", arr, photometric="rgb", extrasamples=["unassalpha"])
    else:
        tifffile.imwrite(tmp_path / "t.tif", arr, photometric="rgb", compression="zlib")
    li = load_image(tmp_path / "t.tif")
    assert li.bits == 16 and (li.alpha is not None) == alpha
    assert len(torch.unique(li.rgb[0, 1])) > 256
    np.testing.assert_allclose(as_hwc(li.rgb) * 65535, arr[..., :3], atol=1e-2)


def test_lzw_16bit_tiff_loads_with_or_without_imagecodecs(tmp_path):
    # Without the optional imagecodecs package tifffile cannot decode LZW; the loader then
    # falls back to Pillow's 8-bit decoding and still reports the source's 16 bits.
    arr = gradient16()
    lzw_tiff16(tmp_path / "t.tif", arr)
    li = load_image(tmp_path / "t.tif")
    assert li.bits == 16 and li.alpha is None
    np.testing.assert_allclose(as_hwc(li.rgb), arr / 65535.0, atol=1 / 255)


def test_truncated_16bit_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", gradient16(256, 64), photometric="rgb")
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "cut.tif")
    assert_one_line_naming(exc, "cut.tif")


def test_16bit_tiff_with_associated_alpha_is_unpremultiplied(tmp_path):
    straight = np.full((4, 4, 3), 40000, np.uint16)
    a = np.full((4, 4, 1), 32768, np.uint16)
    premultiplied = (straight.astype(np.float64) * (a / 65535)).round().astype(np.uint16)
    data = np.concatenate([premultiplied, a], -1)
    tifffile.imwrite(tmp_path / "p.tif", data, photometric="rgb", extrasamples=["assocalpha"])
    li = load_image(tmp_path / "p.tif")
    np.testing.assert_allclose(li.rgb.numpy(), 40000 / 65535, atol=1e-4)


# --------------------------------------------------------------------------------------------
# orientation


def _with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_exif_orientation_6_rotates_and_moves_corner(tmp_path):
    arr = np.full((8, 16, 3), 128, np.uint8)  # 16 wide, 8 high
    arr[:3, :3] = (255, 0, 0)  # red mark in the stored top-left corner
    Image.fromarray(arr).save(tmp_path / "r.png", exif=_with_orientation(6))  # 90 deg clockwise
    li = load_image(tmp_path / "r.png")
    assert li.size == (8, 16)  # width/height swapped
    hwc = as_hwc(li.rgb)
    # after a clockwise quarter turn the stored top-left corner is at the top-right
    assert hwc[0, -1].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(hwc[0, 0], np.float32(128 / 255))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg_matches_pillow(tmp_path, orientation):
    Image.fromarray(rgb_array(16, 8)).save(tmp_path / "r.jpg", exif=_with_orientation(orientation))
    li = load_image(tmp_path / "r.jpg")
    with Image.open(tmp_path / "r.jpg") as im:
        expected = np.asarray(ImageOps.exif_transpose(im), np.float32) / 255
    np.testing.assert_array_equal(as_hwc(li.rgb), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_16bit_matches_pillow(tmp_path, orientation):
    arr8 = rgb_array(7, 5, seed=orientation)
    Image.fromarray(arr8).save(tmp_path / "ref.png", exif=_with_orientation(orientation))
    reference = load_image(tmp_path / "ref.png")  # decoded by Pillow
    arr16 = arr8.astype(np.uint16) * 257
    tifffile.imwrite(
        tmp_path / "t16.tif", arr16, photometric="rgb", extratags=[(274, "H", 1, orientation)]
    )
    li = load_image(tmp_path / "t16.tif")  # decoded by tifffile, oriented plane by plane
    assert li.bits == 16
    assert li.size == reference.size
    np.testing.assert_allclose(li.rgb.numpy(), reference.rgb.numpy(), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# errors


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "nope.png")
    assert_one_line_naming(exc, "nope.png")


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="directory") as exc:
        load_image(tmp_path)
    assert_one_line_naming(exc, str(tmp_path))


@pytest.mark.parametrize("content", [os.urandom(2048), b"hello, this is a text file\n" * 20, b""])
def test_not_an_image(tmp_path, content):
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "x.png")
    assert_one_line_naming(exc, "x.png")


@pytest.mark.parametrize("kind", ["png", "jpg", "png16"])
def test_truncated_files(tmp_path, kind):
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / f"full.{kind[:3]}"
    if kind == "png16":
        write_png16(full, arr.astype(np.uint16) * 257)
    else:
        Image.fromarray(arr).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{kind[:3]}"
    cut.write_bytes(data[: len(data) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError) as exc:
        load_image(cut)
    assert_one_line_naming(exc, "cut.")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_zero_size():
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_zero_size_png_header(tmp_path):
    (tmp_path / "z.png").write_bytes(png_header_only(0, 5))
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "z.png")
    assert_one_line_naming(exc, "z.png")


def test_extreme_aspect_ratio(tmp_path):
    Image.new("RGB", (1, 3000), (10, 20, 30)).save(tmp_path / "thin.png")
    li = load_image(tmp_path / "thin.png")
    assert li.size == (1, 3000)
    size = fit_long_side(li.size, 100)
    assert size == (1, 100)
    assert resize(li.rgb, size).shape == (1, 3, 100, 1)


# --------------------------------------------------------------------------------------------
# the pixel limit


def test_max_pixels_checked_on_header_before_decoding(tmp_path):
    # The header claims 5000 x 5000 (under Pillow's own limit) but holds almost no pixel data:
    # decoding would fail with a "corrupt or truncated" message and allocate 25 MP first.
    (tmp_path / "huge.png").write_bytes(png_header_only(5000, 5000, zlib.compress(b"\0" * 10)))
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="too large") as exc:
            load_image(tmp_path / "huge.png", max_pixels=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_line_naming(exc, "huge.png")
    assert "limit 1,000,000" in str(exc.value)
    assert str(exc.value).endswith("; max_input_pixels raises the limit")
    assert peak < 1_000_000  # bytes: nothing of the image's size was allocated


def test_max_pixels_limit_is_exact(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "s.png")
    assert load_image(tmp_path / "s.png", max_pixels=200).size == (20, 10)
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "s.png", max_pixels=199)
    with pytest.raises(ImageError, match="too large"):  # PIL images too
        load_image(Image.new("RGB", (20, 10)), max_pixels=199)
    with pytest.raises(ValueError):
        load_image(tmp_path / "s.png", max_pixels=0)


def test_default_is_pillows_bomb_guard(tmp_path, monkeypatch):
    Image.new("RGB", (32, 32)).save(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 1024 > 2 * 400: Pillow refuses
    with pytest.raises(ImageError, match="too large") as exc:
        load_image(tmp_path / "b.png")
    assert_one_line_naming(exc, "b.png")
    assert str(exc.value).endswith("pixels); max_input_pixels raises the limit")  # the setting
    assert "DOS attack" not in str(exc.value)
    with pytest.raises(ImageError, match="too large"):
        load_image(Image.new("RGB", (32, 32)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 600 < 1024 <= 1200: Pillow only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... and that warning is silenced
        assert load_image(tmp_path / "b.png").size == (32, 32)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's guard off: no limit
    assert load_image(tmp_path / "b.png").size == (32, 32)


def _save_rgb(path, arr: np.ndarray) -> None:
    if path.name.endswith("16.tif"):
        tifffile.imwrite(path, arr.astype(np.uint16) * 257, photometric="rgb")
    else:
        Image.fromarray(arr).save(path)


@pytest.mark.parametrize("name", ["b.png", "b.jpg", "b.tif", "b.gif", "b16.tif"])
def test_explicit_max_pixels_raises_the_limit_for_one_call(tmp_path, monkeypatch, name):
    path = tmp_path / name
    _save_rgb(path, rgb_array(32, 32, seed=6))
    expected = load_image(path).rgb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # Pillow alone refuses 1024 pixels
    with pytest.raises(ImageError, match="too large"):
        load_image(path)
    li = load_image(path, max_pixels=1024)
    assert Image.MAX_IMAGE_PIXELS == 400  # Pillow's global setting untouched
    assert li.size == (32, 32)
    np.testing.assert_array_equal(li.rgb.numpy(), expected.numpy())
    with pytest.raises(ImageError, match="too large"):
        load_image(path, max_pixels=1023)


def test_explicit_max_pixels_cannot_lift_pillows_own_webp_check(tmp_path, monkeypatch):
    # Pillow's WebP plugin checks its global limit itself; the error says how to lift it.
    Image.fromarray(rgb_array(32, 32)).save(tmp_path / "b.webp")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)
    with pytest.raises(ImageError, match="MAX_IMAGE_PIXELS") as exc:
        load_image(tmp_path / "b.webp", max_pixels=1024)
    assert_one_line_naming(exc, "b.webp")


def test_explicit_max_pixels_lowers_the_limit_without_touching_pillow(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    Image.new("RGB", (16, 16)).save(tmp_path / "s.png")
    with pytest.raises(ImageError, match="limit 100"):
        load_image(tmp_path / "s.png", max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == before
    assert load_image(tmp_path / "s.png").size == (16, 16)  # the next call has the default
