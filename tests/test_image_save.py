"""Tests for impasto.image.save: formats, 16 bits, quality, sRGB tag, reproducible bytes,
atomic writes."""

from __future__ import annotations

import io
import os
import struct

import png
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

from impasto.errors import ImageError, SettingsError
from impasto.image import check_output_path, load_image, read_metadata, save_image
from impasto.image.save import OUTPUT_FORMATS
from tests._image_helpers import assert_one_line_naming


def _listing(path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --------------------------------------------------------------------------------------------
# paths and formats


def test_output_formats():
    assert OUTPUT_FORMATS == {
        ".png": "PNG",
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".webp": "WEBP",
    }


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


def test_save_validation_writes_nothing(tmp_path):
    rgb = torch.rand(1, 3, 4, 4)
    with pytest.raises(ImageError, match="supported"):
        save_image(rgb, tmp_path / "a.gif")
    for ext in (".jpg", ".webp"):
        with pytest.raises(ImageError, match="16 bits"):
            save_image(rgb, tmp_path / f"a{ext}", bits=16)
    with pytest.raises(SettingsError):
        save_image(rgb, tmp_path / "a.png", bits=12)
    for quality in (0, 101, True, 9.5):
        with pytest.raises(SettingsError):
            save_image(rgb, tmp_path / "a.jpg", quality=quality)
    for name in ("a.png", "a.tif", "a.TIFF"):  # lossless: refused, as the command line does
        with pytest.raises(SettingsError, match=r"quality applies to JPEG and WebP outputs; "):
            save_image(rgb, tmp_path / name, quality=80)
    assert _listing(tmp_path) == []


# --------------------------------------------------------------------------------------------
# pixels


def test_png_8bit_round_trip(tmp_path):
    rgb = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    save_image(rgb, tmp_path / "r.png")
    li = load_image(tmp_path / "r.png")
    assert li.bits == 8 and li.alpha is None
    assert (li.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6


def _stored_bits(path) -> tuple[int, int]:
    """(bits per sample, samples per pixel) as stored in a PNG or TIFF file."""
    if str(path).endswith(".png"):
        width, height, _, info = png.Reader(filename=str(path)).read()
        return int(info["bitdepth"]), int(info["planes"])
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return int(page.bitspersample), int(page.samplesperpixel)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_round_trip_stores_16_bits(tmp_path, ext, with_alpha):
    x = torch.linspace(0, 1, 40 * 30).reshape(1, 1, 30, 40)
    rgb = torch.cat([x, 1 - x, x * 0.5], dim=1)
    alpha = x.flip(-1) if with_alpha else None
    out = tmp_path / f"g{ext}"
    save_image(rgb, out, bits=16, alpha=alpha, metadata={"seed": "7"})
    assert _stored_bits(out) == (16, 4 if with_alpha else 3)
    li = load_image(out)
    assert li.bits == 16
    assert len(torch.unique(li.rgb[0, 0])) > 256
    assert (li.rgb - rgb).abs().max() <= 0.5 / 65535 + 1e-7  # rounded to the nearest level
    if with_alpha:
        assert (li.alpha - alpha).abs().max() <= 0.5 / 65535 + 1e-7
    else:
        assert li.alpha is None
    assert read_metadata(out) == {"seed": "7"}


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_8bit_default_stores_8_bits(tmp_path, ext):
    save_image(torch.rand(1, 3, 4, 4), tmp_path / f"e{ext}")
    assert _stored_bits(tmp_path / f"e{ext}") == (8, 3)


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_alpha_round_trip_lossless(tmp_path, ext):
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(1, 3, 8, 8, generator=g)
    alpha = torch.rand(1, 1, 8, 8, generator=g)
    alpha[..., :2, :] = 0.0  # fully transparent rows: colour must be kept there too
    out = tmp_path / f"a{ext}"
    quality = 100 if ext == ".webp" else None  # quality 100 -> lossless WebP
    save_image(rgb, out, alpha=alpha, quality=quality)
    li = load_image(out)
    assert li.alpha is not None
    assert (li.alpha - alpha).abs().max() <= 0.5 / 255 + 1e-6
    assert (li.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6


def test_webp_lossy_keeps_alpha_losslessly(tmp_path):
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(1, 3, 16, 16, generator=g)
    alpha = torch.rand(1, 1, 16, 16, generator=g)
    save_image(rgb, tmp_path / "a.webp", alpha=alpha, quality=80)
    li = load_image(tmp_path / "a.webp")
    assert li.alpha is not None
    assert (li.alpha - alpha).abs().max() <= 0.5 / 255 + 1e-6


def test_jpeg_drops_alpha_and_quality_matters(tmp_path):
    rgb = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    save_image(rgb, tmp_path / "hi.jpg", alpha=torch.zeros(1, 1, 32, 32), quality=95)
    save_image(rgb, tmp_path / "lo.jpg", quality=20)
    with Image.open(tmp_path / "hi.jpg") as im:
        assert im.mode == "RGB"
    assert load_image(tmp_path / "hi.jpg").alpha is None
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


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
# reproducible bytes


_CASES = [
    ("a.png", 8, True, None),
    ("a16.png", 16, True, None),
    ("a.tif", 8, True, None),
    ("a16.tif", 16, True, None),
    ("a.jpg", 8, False, 90),
    ("a.webp", 8, True, 80),
    ("a.webp", 8, True, 100),
]


def _save_twice(tmp_path, name, bits, with_alpha, quality) -> tuple[bytes, bytes]:
    g = torch.Generator().manual_seed(5)
    rgb = torch.rand(1, 3, 12, 10, generator=g)
    alpha = torch.rand(1, 1, 12, 10, generator=g) if with_alpha else None
    meta = {"seed": "5", "style": "starry_night"}
    out = []
    for folder in ("1", "2"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / name
        save_image(rgb.clone(), path, alpha=alpha, bits=bits, metadata=dict(meta), quality=quality)
        out.append(path.read_bytes())
    return out[0], out[1]


_DATE_TAGS = (306, 36867, 36868)  # DateTime, DateTimeOriginal, DateTimeDigitized


@pytest.mark.parametrize(("name", "bits", "with_alpha", "quality"), _CASES)
def test_same_pixels_and_metadata_give_the_same_bytes(tmp_path, name, bits, with_alpha, quality):
    first, second = _save_twice(tmp_path, name, bits, with_alpha, quality)
    assert first == second
    # ... at any time: no clock reading inside the file (the sRGB profile's date is fixed)
    with Image.open(io.BytesIO(first)) as im:
        icc = im.info["icc_profile"]
        exif = im.getexif()
    assert icc[24:36] == bytes.fromhex("07d0 0001 0001 0000 0000 0000")  # 2000-01-01 00:00
    assert not any(tag in exif for tag in _DATE_TAGS)
    if name.endswith(".png"):
        assert b"tIME" not in first  # PNG's modification-time chunk


# --------------------------------------------------------------------------------------------
# atomic writes


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
        assert_one_line_naming(exc, "out.png")
    assert target.read_bytes() == b"original content"
    assert _listing(tmp_path) == ["out.png"]  # temp file removed


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
        assert os.path.getsize(src) > 0  # written and flushed before the rename
        assert target.read_bytes() == b"old"  # untouched until the final rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_image(torch.rand(1, 3, 4, 4), target)
    assert calls[:2] == ["fsync", "replace"]
    assert _listing(tmp_path) == ["out.webp"]
    with Image.open(target) as im:
        assert im.format == "WEBP"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_gives_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "a.png").write_bytes(b"keep")
    ro.chmod(0o500)
    try:
        with pytest.raises(ImageError) as exc:
            save_image(torch.rand(1, 3, 2, 2), ro / "a.png")
    finally:
        ro.chmod(0o700)
    assert_one_line_naming(exc, "a.png")
    assert (ro / "a.png").read_bytes() == b"keep"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_file_permissions_follow_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        save_image(torch.rand(1, 3, 2, 2), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# print resolution


def _recorded_dpi(path) -> float | None:
    """The print resolution a file records, read where each format stores it (not through
    Pillow's reader, which reports 1 dpi for a TIFF with no resolution tags)."""
    data = path.read_bytes()
    if path.suffix == ".png":
        chunks = dict(png.Reader(bytes=data).chunks())
        if b"pHYs" not in chunks:
            return None
        ppm_x, ppm_y, unit = struct.unpack(">IIB", chunks[b"pHYs"])
        assert ppm_x == ppm_y and unit == 1
        return ppm_x * 0.0254
    if path.suffix == ".tif":
        tags = tifffile.TiffFile(io.BytesIO(data)).pages[0].tags
        if "ResolutionUnit" not in tags or tags["ResolutionUnit"].value != 2:  # inches
            return None
        num, den = tags["XResolution"].value
        assert tags["YResolution"].value == (num, den)
        return num / den
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        jfif = im.info.get("dpi") if path.suffix == ".jpg" else None
    if 282 not in exif:
        return None
    assert exif[296] == 2 and exif[283] == exif[282]
    if jfif is not None:  # JFIF keeps whole dots per inch
        assert jfif == (int(exif[282]), int(exif[282]))
    return float(exif[282])


_DPI_CASES = [("a.png", 8), ("a16.png", 16), ("a.tif", 8), ("a16.tif", 16), ("a.jpg", 8)]
_DPI_CASES += [("a.webp", 8)]


@pytest.mark.parametrize(("name", "bits"), _DPI_CASES)
def test_dpi_is_recorded_where_each_format_keeps_it(tmp_path, name, bits):
    rgb = torch.rand(1, 3, 6, 9)
    for dpi, tolerance in ((300, 0.013), (72.5, 0.013), (None, 0)):  # PNG: px per metre
        path = tmp_path / name
        save_image(rgb, path, bits=bits, dpi=dpi, metadata={"k": "v"})
        got = _recorded_dpi(path)
        if dpi is None:
            assert got is None, (name, got)
        else:
            assert got == pytest.approx(dpi, abs=tolerance), (name, got)
        assert read_metadata(path) == {"k": "v"}  # the resolution does not displace metadata
        assert load_image(path).rgb.shape[-2:] == (6, 9)


def test_dpi_without_metadata_is_still_recorded_in_jpeg_and_webp(tmp_path):
    rgb = torch.rand(1, 3, 6, 9)
    for name in ("a.jpg", "a.webp"):
        save_image(rgb, tmp_path / name, dpi=240)
        assert _recorded_dpi(tmp_path / name) == 240


def test_a_dpi_no_file_can_store_is_refused_before_writing(tmp_path):
    rgb = torch.rand(1, 3, 6, 9)
    for dpi in (0, -300, 0.5, 65536, float("nan"), float("inf"), True, "300"):
        with pytest.raises(SettingsError, match="dpi must be a number from 1 to 65535"):
            save_image(rgb, tmp_path / "a.png", dpi=dpi)
    assert _listing(tmp_path) == []
    for dpi, shown in ((0.0, "0"), (70000.0, "70000"), (0.5, "0.5"), ("300", "'300'")):
        with pytest.raises(SettingsError, match=f"got {shown}$"):  # as typed (--dpi 0: not 0.0)
            save_image(rgb, tmp_path / "a.png", dpi=dpi)
