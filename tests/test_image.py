"""Tests for impasto.image: loading (modes, orientation, ICC, errors), saving, resizing."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import png
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile

from impasto import image as imgmod
from impasto.errors import ImageError, SettingsError
from impasto.image import (
    DEFAULT_MAX_PIXELS,
    OUTPUT_FORMATS,
    LoadedImage,
    check_output_path,
    fit_long_side,
    load_image,
    read_metadata,
    resize,
    save_image,
    to_pil,
    to_tensor,
)

# --------------------------------------------------------------------------------------------
# helpers


def _rgb_array(w: int = 12, h: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _as_hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


def _srgb_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _bgr_profile() -> bytes:
    """A valid, non-sRGB RGB profile: LittleCMS's sRGB with the red and blue colorants swapped.

    A file tagged with it stores blue in its first channel and red in its third, so converting
    it to sRGB must swap the channels. The description is patched so it no longer says sRGB.
    """
    data = bytearray(_srgb_bytes())
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


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_png16(path, arr: np.ndarray, *, icc: bytes | None = None) -> None:
    """Write an (H, W, C) uint16 array as a 16-bit PNG with pypng (optionally with iCCP)."""
    h, w, c = arr.shape
    writer = png.Writer(w, h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=16)
    buf = io.BytesIO()
    writer.write(buf, arr.reshape(h, w * c))
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    if icc is not None:
        chunks.insert(1, (b"iCCP", b"x\0\0" + zlib.compress(icc)))
    with open(path, "wb") as fh:
        png.write_chunks(fh, chunks)


def _gradient16(w: int = 64, h: int = 8) -> np.ndarray:
    """A smooth (H, W, 3) uint16 gradient with far more than 256 levels per channel."""
    x = np.linspace(0, 65535, w * h).reshape(h, w)
    return np.stack([x, x[::-1], np.full_like(x, 12345.0)], axis=-1).round().astype(np.uint16)


# --------------------------------------------------------------------------------------------
# API surface


def test_constants_and_dataclass():
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert OUTPUT_FORMATS == {
        ".png": "PNG",
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".webp": "WEBP",
    }
    li = LoadedImage(rgb=torch.zeros(1, 3, 5, 7), alpha=None, bits=8, name="x.png")
    assert li.size == (7, 5)
    with pytest.raises(AttributeError):
        li.bits = 16  # frozen


# --------------------------------------------------------------------------------------------
# modes


def test_rgb_png_exact(tmp_path):
    arr = _rgb_array()
    Image.fromarray(arr).save(tmp_path / "a.png")
    li = load_image(tmp_path / "a.png")
    assert li.rgb.shape == (1, 3, 8, 12) and li.rgb.dtype == torch.float32
    assert li.alpha is None and li.bits == 8 and li.name == "a.png"
    np.testing.assert_allclose(_as_hwc(li.rgb) * 255, arr, atol=1e-4)


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
    np.testing.assert_allclose(_as_hwc(li.rgb)[2, 2] * 255, [200, 100, 50], atol=1e-4)


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
    assert _as_hwc(li.rgb)[0, 1].tolist() == [0.0, 1.0, 0.0]
    assert _as_hwc(li.rgb)[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_palette_without_transparency(tmp_path):
    _palette_image(False).save(tmp_path / "p.png")
    li = load_image(tmp_path / "p.png")
    assert li.alpha is None
    assert _as_hwc(li.rgb)[0, 2].tolist() == [0.0, 0.0, 1.0]


def test_transparency_key_on_l_and_rgb(tmp_path):
    g = Image.fromarray(np.array([[0, 10], [20, 10]], np.uint8), "L")
    g.save(tmp_path / "l.png", transparency=10)
    li = load_image(tmp_path / "l.png")
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    rgb = Image.fromarray(np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8), "RGB")
    rgb.save(tmp_path / "rgb.png", transparency=(4, 5, 6))
    li = load_image(tmp_path / "rgb.png")
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0]]


def test_cmyk_converted(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # no cyan/black, full magenta+yellow
    cmyk.save(tmp_path / "c.tif")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    for name in ("c.tif", "c.jpg"):
        li = load_image(tmp_path / name)
        np.testing.assert_allclose(_as_hwc(li.rgb)[2, 2], [1.0, 0.0, 0.0], atol=0.03)


def test_bilevel_mode(tmp_path):
    im = Image.new("1", (4, 2), 0)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "b.png")
    li = load_image(tmp_path / "b.png")
    assert li.rgb[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]
    assert li.rgb[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]


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
    arr = _gradient16()
    _write_png16(tmp_path / "c16.png", arr)
    # Pillow alone would give 8 bits per channel:
    with Image.open(tmp_path / "c16.png") as im:
        assert np.asarray(im).dtype == np.uint8
    li = load_image(tmp_path / "c16.png")
    assert li.bits == 16 and li.alpha is None
    assert len(torch.unique(li.rgb[0, 0])) > 256
    np.testing.assert_allclose(_as_hwc(li.rgb) * 65535, arr, atol=1e-2)


def test_16bit_rgba_and_la_png(tmp_path):
    arr = _gradient16()
    a = np.linspace(0, 65535, arr.shape[0] * arr.shape[1]).astype(np.uint16)
    rgba = np.concatenate([arr, a.reshape(arr.shape[:2])[..., None]], -1)
    _write_png16(tmp_path / "rgba16.png", rgba)
    li = load_image(tmp_path / "rgba16.png")
    assert li.bits == 16 and li.alpha is not None
    np.testing.assert_allclose(li.alpha[0, 0].numpy() * 65535, rgba[..., 3], atol=1e-2)
    np.testing.assert_allclose(_as_hwc(li.rgb) * 65535, arr, atol=1e-2)
    la = np.stack([arr[..., 0], rgba[..., 3]], -1)
    _write_png16(tmp_path / "la16.png", la)
    li = load_image(tmp_path / "la16.png")
    assert li.bits == 16
    for c in range(3):
        np.testing.assert_allclose(li.rgb[0, c].numpy() * 65535, arr[..., 0], atol=1e-2)
    np.testing.assert_allclose(li.alpha[0, 0].numpy() * 65535, rgba[..., 3], atol=1e-2)


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_rgb_tiff(tmp_path, alpha):
    arr = _gradient16()
    if alpha:
        arr = np.concatenate([arr, arr[..., :1]], -1)
        tifffile.imwrite(tmp_path / "t.tif", arr, photometric="rgb", extrasamples=["unassalpha"])
    else:
        tifffile.imwrite(tmp_path / "t.tif", arr, photometric="rgb", compression="zlib")
    li = load_image(tmp_path / "t.tif")
    assert li.bits == 16 and (li.alpha is not None) == alpha
    assert len(torch.unique(li.rgb[0, 1])) > 256
    np.testing.assert_allclose(_as_hwc(li.rgb) * 65535, arr[..., :3], atol=1e-2)


def test_16bit_tiff_falls_back_to_pillow_when_tifffile_cannot(tmp_path, monkeypatch):
    # e.g. LZW-compressed files without the optional imagecodecs package
    arr = _gradient16()
    tifffile.imwrite(tmp_path / "t.tif", arr, photometric="rgb")
    monkeypatch.setattr(imgmod, "_read_tiff16", lambda path: None)
    li = load_image(tmp_path / "t.tif")
    assert li.bits == 16  # the source's depth, even though Pillow decoded 8 bits
    np.testing.assert_allclose(_as_hwc(li.rgb), arr / 65535.0, atol=1 / 255)


def test_truncated_16bit_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", _gradient16(256, 64), photometric="rgb")
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "cut.tif")
    _assert_one_line_naming(exc, "cut.tif")


def test_16bit_tiff_with_associated_alpha_is_unpremultiplied(tmp_path):
    straight = np.full((4, 4, 3), 40000, np.uint16)
    a = np.full((4, 4, 1), 32768, np.uint16)
    premultiplied = (straight.astype(np.float64) * (a / 65535)).round().astype(np.uint16)
    data = np.concatenate([premultiplied, a], -1)
    tifffile.imwrite(tmp_path / "p.tif", data, photometric="rgb", extrasamples=["assocalpha"])
    li = load_image(tmp_path / "p.tif")
    np.testing.assert_allclose(li.rgb.numpy(), 40000 / 65535, atol=1e-4)


def test_to_tensor_and_to_pil_round_trip():
    arr = _rgb_array(9, 7, seed=3)
    im = Image.fromarray(arr)
    t = to_tensor(im)
    assert t.shape == (1, 3, 7, 9) and t.dtype == torch.float32
    np.testing.assert_array_equal(np.asarray(to_pil(t)), arr)
    # grayscale input: three equal channels
    g = to_tensor(im.convert("L"))
    assert torch.equal(g[0, 0], g[0, 2])
    rgba = to_pil(t, torch.full((1, 1, 7, 9), 0.5))
    assert rgba.mode == "RGBA" and np.asarray(rgba)[0, 0, 3] == 128


def test_to_pil_rounds_instead_of_truncating():
    t = torch.tensor([254.6 / 255, 0.4 / 255, 0.6 / 255]).reshape(1, 3, 1, 1)
    assert np.asarray(to_pil(t))[0, 0].tolist() == [255, 0, 1]
    over = torch.tensor([1.7, -0.3, 0.5]).reshape(1, 3, 1, 1)
    assert np.asarray(to_pil(over))[0, 0].tolist() == [255, 0, 128]


# --------------------------------------------------------------------------------------------
# orientation


def test_exif_orientation_6_jpeg_rotates_and_moves_corner(tmp_path):
    arr = np.full((8, 16, 3), 128, np.uint8)  # 16 wide, 8 high
    arr[:3, :3] = (255, 0, 0)  # red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    li = load_image(tmp_path / "r.jpg")
    assert li.size == (8, 16)  # width/height swapped
    hwc = _as_hwc(li.rgb)
    # after a clockwise quarter turn the top-left corner is at the top-right
    np.testing.assert_allclose(hwc[0, -1], [1.0, 0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(hwc[0, 0], [0.5, 0.5, 0.5], atol=0.1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_16bit_matches_pillow(tmp_path, orientation):
    arr8 = _rgb_array(7, 5, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr8).save(tmp_path / "ref.png", exif=exif)
    reference = load_image(tmp_path / "ref.png")  # Pillow path (ImageOps.exif_transpose)
    arr16 = arr8.astype(np.uint16) * 257
    tifffile.imwrite(
        tmp_path / "t16.tif", arr16, photometric="rgb", extratags=[(274, "H", 1, orientation)]
    )
    li = load_image(tmp_path / "t16.tif")  # tifffile path (own orientation code)
    assert li.bits == 16
    assert li.size == reference.size
    torch.testing.assert_close(li.rgb, reference.rgb, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# colour management


def test_bgr_profile_is_converted_to_srgb(tmp_path):
    arr = np.zeros((2, 2, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)  # means blue under the BGR profile
    arr[0, 1] = (0, 0, 255)  # means red
    arr[1] = (0, 255, 0)  # green stays green
    Image.fromarray(arr).save(tmp_path / "bgr.png", icc_profile=_bgr_profile())
    li = load_image(tmp_path / "bgr.png")
    hwc = _as_hwc(li.rgb)
    np.testing.assert_allclose(hwc[0, 0], [0, 0, 1], atol=0.02)
    np.testing.assert_allclose(hwc[0, 1], [1, 0, 0], atol=0.02)
    np.testing.assert_allclose(hwc[1, 0], [0, 1, 0], atol=0.02)


def test_bgr_profile_on_16bit_png_keeps_precision(tmp_path):
    arr = _gradient16()
    _write_png16(tmp_path / "bgr16.png", arr, icc=_bgr_profile())
    li = load_image(tmp_path / "bgr16.png")
    hwc = _as_hwc(li.rgb)
    expected = arr[..., ::-1] / 65535.0  # channels swapped back to sRGB order
    np.testing.assert_allclose(hwc, expected, atol=3 / 255)
    assert len(np.unique(hwc[..., 2])) > 256  # no 8-bit banding


def test_srgb_tagged_loads_identically(tmp_path):
    arr = _rgb_array(10, 6, seed=5)
    Image.fromarray(arr).save(tmp_path / "plain.png")
    Image.fromarray(arr).save(tmp_path / "tagged.png", icc_profile=_srgb_bytes())
    a, b = load_image(tmp_path / "plain.png"), load_image(tmp_path / "tagged.png")
    assert torch.equal(a.rgb, b.rgb)


def test_garbage_icc_profile_warns_and_loads(tmp_path):
    arr = _rgb_array(4, 4)
    Image.fromarray(arr).save(tmp_path / "bad.png", icc_profile=b"not a profile at all" * 10)
    with pytest.warns(UserWarning, match="ICC"):
        li = load_image(tmp_path / "bad.png")
    np.testing.assert_allclose(_as_hwc(li.rgb) * 255, arr, atol=1e-4)


@pytest.mark.parametrize(
    ("ext", "bits"),
    [(".png", 8), (".jpg", 8), (".tif", 8), (".webp", 8), (".png", 16), (".tif", 16)],
)
def test_outputs_are_tagged_srgb(tmp_path, ext, bits):
    out = tmp_path / f"o{ext}"
    save_image(torch.rand(1, 3, 6, 5), out, bits=bits)
    with Image.open(out) as im:
        icc = im.info.get("icc_profile")
    assert icc, f"{ext} has no ICC profile"
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


# --------------------------------------------------------------------------------------------
# errors


def _assert_one_line_naming(exc: pytest.ExceptionInfo, name: str) -> None:
    message = str(exc.value)
    assert name in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "nope.png")
    _assert_one_line_naming(exc, "nope.png")


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="directory") as exc:
        load_image(tmp_path)
    _assert_one_line_naming(exc, str(tmp_path))


@pytest.mark.parametrize("content", [os.urandom(2048), b"hello, this is a text file\n" * 20, b""])
def test_not_an_image(tmp_path, content):
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "x.png")
    _assert_one_line_naming(exc, "x.png")


@pytest.mark.parametrize("kind", ["png", "jpg", "png16"])
def test_truncated_files(tmp_path, kind):
    arr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / f"full.{kind[:3]}"
    if kind == "png16":
        _write_png16(full, arr.astype(np.uint16) * 257)
    else:
        Image.fromarray(arr).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{kind[:3]}"
    cut.write_bytes(data[: len(data) // 2])
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError) as exc:
        load_image(cut)
    _assert_one_line_naming(exc, "cut.")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_zero_size():
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_zero_size_png_header(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    (tmp_path / "z.png").write_bytes(data)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "z.png")
    _assert_one_line_naming(exc, "z.png")


def test_max_pixels_checked_on_header_before_decoding(tmp_path):
    # Header claims 5000 x 5000 (under Pillow's own bomb limit) but there is no pixel data:
    # decoding would fail with a different message.
    ihdr = struct.pack(">IIBBBBB", 5000, 5000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + _png_chunk(b"IEND", b"")
    )
    (tmp_path / "huge.png").write_bytes(data)
    with pytest.raises(ImageError, match="too large") as exc:
        load_image(tmp_path / "huge.png", max_pixels=1_000_000)
    _assert_one_line_naming(exc, "huge.png")


def test_max_pixels_limit(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "s.png")
    assert load_image(tmp_path / "s.png", max_pixels=200).size == (20, 10)
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "s.png", max_pixels=199)


def test_pillow_decompression_bomb_becomes_image_error(tmp_path, monkeypatch):
    Image.new("RGB", (32, 32)).save(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 1024 > 2 * 400: Pillow refuses
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 600 < 1024 <= 1200: Pillow only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "b.png").size == (32, 32)


def test_extreme_aspect_ratio(tmp_path):
    Image.new("RGB", (1, 3000), (10, 20, 30)).save(tmp_path / "thin.png")
    li = load_image(tmp_path / "thin.png")
    assert li.size == (1, 3000)
    size = fit_long_side(li.size, 100)
    assert size == (1, 100)
    assert resize(li.rgb, size).shape == (1, 3, 100, 1)


# --------------------------------------------------------------------------------------------
# saving


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "a.PNG") == "PNG"
    assert check_output_path(str(tmp_path / "a.JpEg")) == "JPEG"
    assert check_output_path(tmp_path / "a.tiff") == "TIFF"
    assert check_output_path(tmp_path / "a.webp") == "WEBP"
    with pytest.raises(ImageError) as exc:
        check_output_path(tmp_path / "a.bmp")
    assert all(ext in str(exc.value) for ext in OUTPUT_FORMATS)
    with pytest.raises(ImageError, match="supported"):
        check_output_path(tmp_path / "noext")
    with pytest.raises(ImageError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageError, match="directory"):
        check_output_path(tmp_path / "d.png")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_check_output_path_unwritable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ImageError, match="not writable"):
            check_output_path(ro / "a.png")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("o.PNG", "PNG"),
        ("o.JpEg", "JPEG"),
        ("o.jpg", "JPEG"),
        ("o.TIF", "TIFF"),
        ("o.webp", "WEBP"),
    ],
)
def test_format_by_extension(tmp_path, name, fmt):
    save_image(torch.rand(1, 3, 5, 6), tmp_path / name)
    with Image.open(tmp_path / name) as im:
        assert im.format == fmt and im.size == (6, 5)


def test_save_validation(tmp_path):
    rgb = torch.rand(1, 3, 4, 4)
    with pytest.raises(ImageError, match="supported"):
        save_image(rgb, tmp_path / "a.gif")
    for ext in (".jpg", ".webp"):
        with pytest.raises(ImageError, match="16 bits"):
            save_image(rgb, tmp_path / f"a{ext}", bits=16)
    with pytest.raises(SettingsError):
        save_image(rgb, tmp_path / "a.png", bits=12)
    with pytest.raises(SettingsError):
        save_image(rgb, tmp_path / "a.jpg", quality=0)
    assert list(tmp_path.iterdir()) == []


def test_png_8bit_round_trip(tmp_path):
    rgb = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    save_image(rgb, tmp_path / "r.png")
    li = load_image(tmp_path / "r.png")
    assert li.bits == 8 and li.alpha is None
    assert (li.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_round_trip(tmp_path, ext, with_alpha):
    x = torch.linspace(0, 1, 40 * 30).reshape(1, 1, 30, 40)
    rgb = torch.cat([x, 1 - x, x * 0.5], dim=1)
    alpha = x.flip(-1) if with_alpha else None
    out = tmp_path / f"g{ext}"
    save_image(rgb, out, bits=16, alpha=alpha, metadata={"seed": "7"})
    li = load_image(out)
    assert li.bits == 16
    assert len(torch.unique(li.rgb[0, 0])) > 256
    assert (li.rgb - rgb).abs().max() <= 2 / 65535
    if with_alpha:
        assert (li.alpha - alpha).abs().max() <= 2 / 65535
    else:
        assert li.alpha is None
    assert read_metadata(out) == {"seed": "7"}


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_alpha_round_trip_lossless(tmp_path, ext):
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(1, 3, 8, 8, generator=g)
    alpha = torch.rand(1, 1, 8, 8, generator=g)
    alpha[..., :2, :] = 0.0  # fully transparent rows: colour must be kept there too
    out = tmp_path / f"a{ext}"
    save_image(rgb, out, alpha=alpha, quality=100)  # quality 100 -> lossless WebP
    li = load_image(out)
    assert li.alpha is not None
    assert (li.alpha - alpha).abs().max() <= 0.5 / 255 + 1e-6
    assert (li.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6


def test_webp_lossy_keeps_alpha(tmp_path):
    rgb = torch.full((1, 3, 16, 16), 0.5)
    alpha = torch.zeros(1, 1, 16, 16)
    alpha[..., 4:12, 4:12] = 1.0
    save_image(rgb, tmp_path / "a.webp", alpha=alpha, quality=80)
    li = load_image(tmp_path / "a.webp")
    assert li.alpha is not None
    assert (li.alpha - alpha).abs().max() <= 2 / 255


def test_jpeg_drops_alpha_and_quality_matters(tmp_path):
    rgb = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    save_image(rgb, tmp_path / "hi.jpg", alpha=torch.zeros(1, 1, 32, 32), quality=95)
    save_image(rgb, tmp_path / "lo.jpg", quality=20)
    with Image.open(tmp_path / "hi.jpg") as im:
        assert im.mode == "RGB"
    assert load_image(tmp_path / "hi.jpg").alpha is None
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_metadata_round_trip(tmp_path, ext):
    meta = {"style": "great_wave", "content_weight": "1.0", "note": 'café ☕ / "quotes"'}
    out = tmp_path / f"m{ext}"
    save_image(torch.rand(1, 3, 6, 6), out, metadata=meta)
    assert read_metadata(out) == meta


def test_read_metadata_without_metadata_and_errors(tmp_path):
    Image.new("RGB", (3, 3)).save(tmp_path / "plain.jpg")
    assert read_metadata(tmp_path / "plain.jpg") == {}
    with pytest.raises(ImageError):
        read_metadata(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"junk" * 10)
    with pytest.raises(ImageError):
        read_metadata(tmp_path / "junk.png")


def test_bad_metadata_keys_rejected(tmp_path):
    with pytest.raises(ValueError):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "a.png", metadata={"": "x"})
    with pytest.raises(TypeError):
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "a.png", metadata={"k": 1})


def _dir_listing(path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("boom")])
def test_save_is_atomic_on_failure(tmp_path, monkeypatch, error):
    target = tmp_path / "out.png"
    target.write_bytes(b"original content")

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"partial garbage")
        raise error

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(ImageError if isinstance(error, OSError) else RuntimeError) as exc:
        save_image(torch.rand(1, 3, 4, 4), target)
    if isinstance(error, OSError):
        _assert_one_line_naming(exc, "out.png")
    assert target.read_bytes() == b"original content"
    assert _dir_listing(tmp_path) == ["out.png"]  # temp file removed


def test_save_replaces_via_fsynced_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out.webp"
    target.write_bytes(b"old")
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync")
        return real_fsync(fd)

    def replace(src, dst):
        calls.append("replace")
        assert os.path.dirname(os.fspath(src)) == str(tmp_path)  # same directory
        assert target.read_bytes() == b"old"  # untouched until the final rename
        return real_replace(src, dst)

    monkeypatch.setattr(imgmod.os, "fsync", fsync)
    monkeypatch.setattr(imgmod.os, "replace", replace)
    save_image(torch.rand(1, 3, 4, 4), target)
    assert calls[:2] == ["fsync", "replace"]
    assert _dir_listing(tmp_path) == ["out.webp"]
    with Image.open(target) as im:
        assert im.format == "WEBP"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------
# geometry


@given(
    w=st.integers(1, 20_000),
    h=st.integers(1, 20_000),
    long_side=st.integers(1, 8_000),
)
def test_fit_long_side_properties(w, h, long_side):
    nw, nh = fit_long_side((w, h), long_side)
    assert max(nw, nh) == long_side
    assert nw >= 1 and nh >= 1
    # the short side is the nearest integer to the exact value (or 1)
    if w >= h:
        exact = h * long_side / w
        assert nw == long_side
        assert abs(nh - exact) <= 0.5 or (nh == 1 and exact < 1)
    else:
        exact = w * long_side / h
        assert nh == long_side
        assert abs(nw - exact) <= 0.5 or (nw == 1 and exact < 1)


def test_fit_long_side_examples_and_errors():
    assert fit_long_side((400, 300), 200) == (200, 150)
    assert fit_long_side((300, 400), 200) == (150, 200)
    assert fit_long_side((100_000, 1), 512) == (512, 1)
    assert fit_long_side((3, 2), 3) == (3, 2)
    with pytest.raises(ValueError):
        fit_long_side((0, 5), 10)
    with pytest.raises(ValueError):
        fit_long_side((5, 5), 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    nh=st.integers(1, 40),
    nw=st.integers(1, 40),
)
def test_resize_shapes_and_range(n, c, h, w, nh, nw):
    t = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(h * 41 + w))
    out = resize(t, (nw, nh))
    assert out.shape == (n, c, nh, nw)
    assert out.dtype == t.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_resize_noop_returns_same_tensor():
    t = torch.rand(1, 3, 7, 9)
    assert resize(t, (9, 7)) is t


def test_resize_clamps_overshoot():
    t = torch.zeros(1, 1, 8, 8)
    t[..., 4:] = 1.0  # a hard edge makes bicubic overshoot when upsampling
    out = resize(t, (32, 32))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_resize_is_antialiased_and_matches_pillow():
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)  # 1-pixel checkerboard
    t = torch.from_numpy(checker)[None, None]
    out = resize(t, (20, 20))
    # without antialiasing, sampling a 1-pixel checkerboard aliases to near-black/white
    assert float((out - 0.5).abs().max()) < 0.02
    # a smooth image shrunk like Pillow's BICUBIC (the same antialiased Keys filter)
    arr = _rgb_array(64, 48, seed=9)
    ours = to_pil(resize(to_tensor(Image.fromarray(arr)), (20, 15)))
    pillow = Image.fromarray(arr).resize((20, 15), Image.Resampling.BICUBIC)
    diff = np.abs(np.asarray(ours, np.int16) - np.asarray(pillow, np.int16))
    assert diff.max() <= 2
