"""Image input/output and resizing: everything impasto needs from image files goes through here.

Loading (:func:`load_image`) turns any still image Pillow can read into a float32 sRGB tensor of
shape ``(1, 3, H, W)`` in ``[0, 1]`` plus an optional, separate alpha tensor. Along the way it

* honours the EXIF orientation tag (:func:`PIL.ImageOps.exif_transpose`);
* converts embedded ICC profiles to sRGB (:mod:`PIL.ImageCms`); profiles that describe
  themselves as sRGB are taken as-is (no round trip through LittleCMS);
* keeps 16-bit precision: Pillow decodes 16-bit grayscale itself (modes ``I;16``/``I;16B``), but
  it truncates 16-bit-per-channel colour PNG and TIFF to 8 bits, so those are decoded with
  ``pypng`` (pure Python: about 0.15 s per megabyte of pixel data in the worst case, i.e. ~1 s per
  megapixel of 16-bit RGB) and ``tifffile`` (numpy) instead. If ``tifffile`` cannot decode a TIFF
  (LZW or PackBits compression need the optional ``imagecodecs`` package) the loader falls back to
  Pillow's 8-bit decoding of the same file (``bits`` still reports 16, the source's depth);
* refuses images over ``max_pixels`` from the header size, before any pixel is decoded, and
  turns every decoding failure (truncated file included: Pillow's ``LOAD_TRUNCATED_IMAGES`` is
  never set) into a one-line :class:`~impasto.errors.ImageError` naming the file.

Saving (:func:`save_image`) picks the format from the extension (:data:`OUTPUT_FORMATS`), writes
atomically (temporary file in the target directory, ``fsync``, :func:`os.replace`), tags the file
as sRGB with an embedded ICC profile, embeds text metadata (read back by :func:`read_metadata`)
and can write 16 bits per channel to PNG (``pypng``) and TIFF (``tifffile``).

Resizing (:func:`resize`) is antialiased bicubic (Keys kernel, a = -0.5, the same filter as
Pillow's ``BICUBIC`` reduce), so shrinking an image does not alias.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageCms, ImageOps
from PIL.PngImagePlugin import PngInfo

from .errors import ImageError, SettingsError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "LoadedImage",
    "load_image",
    "to_tensor",
    "to_pil",
    "fit_long_side",
    "resize",
    "check_output_path",
    "save_image",
    "read_metadata",
    "srgb_profile_bytes",
]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest accepted input, in pixels (width x height); bigger inputs raise :class:`ImageError`."""

OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
"""Output file extension (lower case, with the dot) -> Pillow format name."""

_EXIF_IMAGE_DESCRIPTION = 0x010E
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_SAMPLES_PER_PIXEL = 277
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Grid of the 3-D lookup table used to colour-manage 16-bit sources (52 nodes = every 5th
# 8-bit level, so each node is exactly representable as an 8-bit LittleCMS input).
_LUT_STEP = 5


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded input image.

    Attributes:
        rgb: ``(1, 3, H, W)`` float32 in ``[0, 1]``, sRGB-encoded (not linear). Grayscale
            sources give three equal channels. Colour under fully transparent pixels is whatever
            the file stores there (straight, not premultiplied, alpha; nothing is filled in).
        alpha: ``(1, 1, H, W)`` float32 in ``[0, 1]``, or ``None`` when the source has neither an
            alpha channel nor a transparency key. A source with an alpha channel keeps it even
            if it is fully opaque.
        bits: bit depth per channel of the source: 16 for 16-bit (and 32-bit integer/float)
            sources, 8 otherwise (1-, 2- and 4-bit sources included).
        name: the file's base name, or ``"<image>"`` for a PIL image.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    bits: int
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.rgb.shape[-1]), int(self.rgb.shape[-2])


# --------------------------------------------------------------------------------------------
# small helpers


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def srgb_profile_bytes() -> bytes:
    """The ICC profile embedded in every output: LittleCMS's built-in sRGB, serialised."""
    return _srgb_profile().tobytes()


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """Whether an ICC profile says it is (gamma-encoded) sRGB, so no conversion is needed."""
    try:
        description = ImageCms.getProfileDescription(profile).lower()
    except ImageCms.PyCMSError:
        return False
    return "srgb" in description and "linear" not in description


def _parse_profile(icc: bytes, label: str) -> ImageCms.ImageCmsProfile | None:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        warnings.warn(f"{label}: ignoring unreadable ICC profile ({_one_line(exc)})", stacklevel=4)
        return None


def _profile_space(profile: ImageCms.ImageCmsProfile) -> str:
    """The profile's colour space: ``"RGB"``, ``"GRAY"``, ``"CMYK"``, ..."""
    return profile.profile.xcolor_space.strip().upper()


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``(H, W, ...)`` array.

    Same result as :func:`PIL.ImageOps.exif_transpose`, for data Pillow cannot hold (16-bit
    colour).
    """
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _float_from_high_precision(arr: np.ndarray) -> np.ndarray:
    """Integer or float samples of a high-bit-depth source -> float32 in [0, 1].

    ``uint16`` is divided by 65535, ``uint32`` by 2**32 - 1, other integers (Pillow mode ``I``)
    are taken as 16-bit values and clipped to [0, 65535]. Floats are taken as [0, 1] when no
    value exceeds 1 and as Pillow's 0-255 scale otherwise (a 0-255 image whose values are all
    <= 1 is black either way).
    """
    if arr.dtype.kind == "f":
        out = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        if out.size and float(out.max()) > 1.0:
            out = out / 255.0
        return np.clip(out, 0.0, 1.0)
    if arr.dtype == np.uint16 or arr.dtype == np.dtype(">u2"):
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == np.uint32:
        return (arr.astype(np.float64) / 4294967295.0).astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 65535.0) / 65535.0


# --------------------------------------------------------------------------------------------
# colour management


def _icc_pil_to_srgb(
    colour: Image.Image, profile: ImageCms.ImageCmsProfile, label: str
) -> Image.Image | None:
    """Convert an ``L``/``RGB``/``CMYK`` image from ``profile`` to sRGB ``RGB``.

    Returns ``None`` (after a warning) when the profile does not fit the image's mode.
    """
    space = _profile_space(profile)
    wanted = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(space)
    if wanted is None or wanted != colour.mode:
        warnings.warn(
            f"{label}: ignoring ICC profile for colour space {space!r} on a {colour.mode} image",
            stacklevel=4,
        )
        return None
    try:
        transform = ImageCms.buildTransform(profile, _srgb_profile(), colour.mode, "RGB")
        return ImageCms.applyTransform(colour, transform)
    except ImageCms.PyCMSError as exc:
        warnings.warn(f"{label}: ignoring unusable ICC profile ({_one_line(exc)})", stacklevel=4)
        return None


def _icc_float_to_srgb(
    colour: np.ndarray, profile: ImageCms.ImageCmsProfile, label: str
) -> np.ndarray | None:
    """Convert a float ``(H, W, 1|3)`` image in [0, 1] from ``profile`` to sRGB ``(H, W, 3)``.

    Pillow's colour management only handles 8-bit data, so 16-bit sources go through a lookup
    table: LittleCMS converts a grid of colours (every 5th 8-bit level on each axis, 52**3 nodes
    for RGB; all 256 levels for gray) and the pixels are interpolated (trilinear / linear) in
    it. Smooth 16-bit gradients stay smooth; the absolute error is about that of 8-bit data.
    Returns ``None`` (after a warning) when the profile does not fit.
    """
    channels = colour.shape[-1]
    space = _profile_space(profile)
    if space == "GRAY" and channels == 1:
        ramp = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, 256), mode="L")
        converted = _icc_pil_to_srgb(ramp, profile, label)
        if converted is None:
            return None
        table = np.asarray(converted, dtype=np.float32)[0] / 255.0  # (256, 3)
        x = colour[..., 0] * 255.0
        return np.stack(
            [np.interp(x, np.arange(256), table[:, c]).astype(np.float32) for c in range(3)],
            axis=-1,
        )
    if space == "RGB" and channels == 3:
        levels = np.arange(0, 256, _LUT_STEP, dtype=np.uint8)
        n = len(levels)
        r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
        grid = np.stack([r, g, b], axis=-1).reshape(n * n, n, 3)
        converted = _icc_pil_to_srgb(Image.fromarray(grid, mode="RGB"), profile, label)
        if converted is None:
            return None
        lut = torch.from_numpy(np.asarray(converted, dtype=np.float32).reshape(n, n, n, 3) / 255.0)
        lut = lut.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, R, G, B)
        h, w, _ = colour.shape
        coords = torch.from_numpy(np.ascontiguousarray(colour, dtype=np.float32)) * 2.0 - 1.0
        # grid_sample's last dimension is (x, y, z) = (B index, G index, R index).
        coords = coords.flip(-1).reshape(1, 1, h, w, 3)
        out = F.grid_sample(lut, coords, mode="bilinear", align_corners=True)
        return out[0, :, 0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()
    warnings.warn(
        f"{label}: ignoring ICC profile for colour space {space!r} on a {channels}-channel image",
        stacklevel=4,
    )
    return None


# --------------------------------------------------------------------------------------------
# Pillow decoding


def _pil_to_arrays(
    im: Image.Image, label: str, *, colour_manage: bool
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Decoded PIL image -> (colour ``(H, W, 3)`` float32, alpha ``(H, W)`` float32 or None,
    bits)."""
    icc = im.info.get("icc_profile") if colour_manage else None
    profile = _parse_profile(icc, label) if icc else None
    if profile is not None and _is_srgb(profile):
        profile = None

    mode = im.mode
    high_precision = mode in ("I", "F") or mode.startswith("I;16")
    alpha: np.ndarray | None = None

    if high_precision:
        data = np.asarray(im)
        if "transparency" in im.info and isinstance(im.info["transparency"], int):
            alpha = (data != im.info["transparency"]).astype(np.float32)
        gray = _float_from_high_precision(data)[..., None]
        colour = None
        if profile is not None:
            colour = _icc_float_to_srgb(gray, profile, label)
        if colour is None:
            colour = np.repeat(gray, 3, axis=-1)
        return colour, alpha, 16

    # Normalise the many 8-bit modes to (L | RGB | CMYK) colour + optional alpha.
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "RGBX":
        im = im.convert("RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("LA" if mode == "L" else "RGBA")
    mode = im.mode

    if mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        im = im.convert(mode[:-1])
        mode = im.mode

    if profile is not None and mode in ("L", "RGB", "CMYK"):
        converted = _icc_pil_to_srgb(im, profile, label)
        if converted is not None:
            im = converted
            mode = im.mode

    if mode == "L":
        gray = np.asarray(im, dtype=np.float32) / 255.0
        colour = np.repeat(gray[..., None], 3, axis=-1)
    else:
        if mode != "RGB":
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
        colour = np.asarray(im, dtype=np.float32) / 255.0
    return colour, alpha, 8


# --------------------------------------------------------------------------------------------
# 16-bit colour decoding (Pillow truncates these to 8 bits)


def _png_header(path: str) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a PNG's IHDR, or None."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _split_alpha(arr: np.ndarray, has_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    if has_alpha:
        return arr[..., :-1], arr[..., -1]
    return arr, None


def _read_png16(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit colour PNG -> (colour ``(H, W, 1|3)`` float32, alpha ``(H, W)`` or None)."""
    import png  # pypng

    with open(path, "rb") as fh:
        width, height, rows, info = png.Reader(file=fh).asDirect()  # tRNS -> alpha, sBIT
        planes = int(info["planes"])
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    arr = arr.reshape(height, width, planes)
    maxval = float(2 ** int(info["bitdepth"]) - 1)
    data = arr.astype(np.float32) / maxval
    return _split_alpha(data, bool(info["alpha"]))


def _read_tiff16(path: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """High-bit-depth multi-sample TIFF -> (colour, alpha), or None to fall back to Pillow."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            photometric = int(page.photometric)
            extras = tuple(int(e) for e in page.extrasamples)
            axes = page.axes
            data = page.asarray()
    except Exception:  # noqa: BLE001 - missing codec or odd layout: let Pillow try
        return None
    if data.ndim != 3 or axes not in ("YXS", "SYX"):
        return None
    if axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    if data.dtype.kind not in "uf":
        return None
    colour_samples = {1: 1, 2: 3}.get(photometric)  # MINISBLACK, RGB
    if colour_samples is None or data.shape[-1] < colour_samples:
        return None
    values = _float_from_high_precision(data)
    colour = values[..., :colour_samples]
    alpha = None
    if extras and extras[0] in (1, 2) and data.shape[-1] > colour_samples:
        alpha = values[..., colour_samples]
        if extras[0] == 1:  # associated (premultiplied) alpha -> straight
            safe = np.where(alpha > 0, alpha, 1.0)[..., None]
            colour = np.where(alpha[..., None] > 0, np.clip(colour / safe, 0.0, 1.0), colour)
    return colour, alpha


def _is_high_bit_colour_tiff(im: Image.Image) -> bool:
    """Whether a TIFF has several samples per pixel of more than 8 bits (Pillow truncates)."""
    tags = getattr(im, "tag_v2", None)
    if im.format != "TIFF" or tags is None:
        return False
    bits = tags.get(_TIFF_BITS_PER_SAMPLE, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return tags.get(_TIFF_SAMPLES_PER_PIXEL, 1) >= 2 and max(bits) > 8


def _read_high_bit_depth(im: Image.Image, path: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Pixels of 16-bit colour PNG/TIFF files, which Pillow would truncate; None otherwise."""
    if im.format == "PNG":
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            return _read_png16(path)
        return None
    if _is_high_bit_colour_tiff(im):
        return _read_tiff16(path)
    return None


# --------------------------------------------------------------------------------------------
# loading


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{label}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: image is too large ({width}x{height} = {width * height:,} pixels, "
            f"limit {max_pixels:,})"
        )


def _to_loaded(colour: np.ndarray, alpha: np.ndarray | None, bits: int, name: str) -> LoadedImage:
    rgb = torch.from_numpy(np.ascontiguousarray(colour.transpose(2, 0, 1), dtype=np.float32))
    alpha_t = None
    if alpha is not None:
        alpha_t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    return LoadedImage(rgb=rgb.unsqueeze(0), alpha=alpha_t, bits=bits, name=name)


def _decode_file(im: Image.Image, path: str, label: str) -> LoadedImage:
    high = _read_high_bit_depth(im, path)
    if high is not None:
        colour, alpha = high
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
        colour = _apply_orientation(colour, orientation)
        if alpha is not None:
            alpha = _apply_orientation(alpha, orientation)
        icc = im.info.get("icc_profile")
        profile = _parse_profile(icc, label) if icc else None
        converted = None
        if profile is not None and not _is_srgb(profile):
            converted = _icc_float_to_srgb(colour, profile, label)
        if converted is not None:
            colour = converted
        elif colour.shape[-1] == 1:
            colour = np.repeat(colour, 3, axis=-1)
        return _to_loaded(colour, alpha, 16, os.path.basename(path))
    im.load()  # force decoding now, inside the caller's error handling
    ImageOps.exif_transpose(im, in_place=True)
    colour, alpha, bits = _pil_to_arrays(im, label, colour_manage=True)
    if _is_high_bit_colour_tiff(im):
        bits = 16  # tifffile could not decode it; Pillow gave 8-bit data of a 16-bit source
    return _to_loaded(colour, alpha, bits, os.path.basename(path))


def load_image(
    source: str | os.PathLike[str] | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Load an image file (or a PIL image) as an sRGB float tensor plus optional alpha.

    EXIF orientation is applied, embedded ICC profiles are converted to sRGB, alpha is returned
    separately (the colour under fully transparent pixels is kept exactly as stored), grayscale
    becomes three equal channels and 16-bit sources keep their precision (see the module
    docstring). Only the first frame of animated or multi-page files is used.

    Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) still applies: past
    twice that limit Pillow refuses the file and this raises :class:`ImageError`; its warning
    below that is silenced, because ``max_pixels`` is checked instead.

    Args:
        source: a path, or an already opened PIL image (whose ``info["icc_profile"]`` and EXIF
            orientation are honoured too; it is not modified).
        max_pixels: largest accepted ``width * height``, checked on the header size before any
            pixel is decoded.

    Returns:
        The decoded :class:`LoadedImage`.

    Raises:
        ImageError: missing path, a directory, not an image, truncated or corrupt data, zero
            size, or more than ``max_pixels`` pixels. The message is one line naming the file.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if isinstance(source, Image.Image):
        label = "<image>"
        _check_size(source.size, label, max_pixels)
        try:
            source.load()
            im = ImageOps.exif_transpose(source)
            colour, alpha, bits = _pil_to_arrays(im, label, colour_manage=True)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{label}: cannot decode image ({_one_line(exc)})") from exc
        return _to_loaded(colour, alpha, bits, label)

    path = os.fspath(source)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    label = path
    if not os.path.exists(path):
        raise ImageError(f"{label}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{label}: is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image is too large ({_one_line(exc)})") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{label}: not a recognised image file") from exc
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise ImageError(f"{label}: cannot read file ({reason})") from exc
    except Exception as exc:  # SyntaxError, ValueError, struct.error from broken headers
        raise ImageError(f"{label}: not a valid image file ({_one_line(exc)})") from exc

    with im:
        _check_size(im.size, label, max_pixels)
        try:
            return _decode_file(im, path, label)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(
                f"{label}: cannot decode image, the file is corrupt or truncated ({_one_line(exc)})"
            ) from exc


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float32 in ``[0, 1]``.

    Meant for ``RGB`` images; other modes are converted as :func:`load_image` would (16-bit
    grayscale keeps its precision), but without EXIF orientation, colour management or alpha.
    """
    if img.mode == "RGB":
        arr = np.asarray(img, dtype=np.float32) / 255.0
    else:
        arr, _, _ = _pil_to_arrays(img, "<image>", colour_manage=False)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0)


def _as_chw(t: torch.Tensor, channels: int, what: str) -> torch.Tensor:
    """``(1, C, H, W)`` or ``(C, H, W)`` (or ``(H, W)`` when C is 1) -> ``(C, H, W)`` on CPU."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{what} must be a floating-point torch.Tensor")
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"{what} must hold one image, got batch size {t.shape[0]}")
        t = t[0]
    elif t.dim() == 2 and channels == 1:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] != channels:
        raise ValueError(f"{what} must have shape (1, {channels}, H, W), got {tuple(t.shape)}")
    return t.to(device="cpu", dtype=torch.float32)


def _quantise(t: torch.Tensor, levels: int) -> np.ndarray:
    """``(C, H, W)`` float -> ``(H, W, C)`` integers in [0, levels], rounded to nearest."""
    q = torch.round(t.clamp(0.0, 1.0) * levels).permute(1, 2, 0).contiguous()
    return q.numpy().astype(np.uint8 if levels == 255 else np.uint16)


def _colour_and_alpha(
    rgb: torch.Tensor, alpha: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    colour = _as_chw(rgb, 3, "rgb")
    a = None
    if alpha is not None:
        a = _as_chw(alpha, 1, "alpha")
        if a.shape[1:] != colour.shape[1:]:
            raise ValueError(
                f"alpha size {tuple(a.shape[1:])} differs from rgb size {tuple(colour.shape[1:])}"
            )
    return colour, a


def to_pil(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """``(1, 3, H, W)`` float tensor (+ optional ``(1, 1, H, W)`` alpha) -> 8-bit PIL image.

    Values are clamped to ``[0, 1]`` and rounded to the nearest 8-bit level (not truncated).
    Returns mode ``RGB``, or ``RGBA`` when ``alpha`` is given.
    """
    colour, a = _colour_and_alpha(rgb, alpha)
    if a is not None:
        colour = torch.cat([colour, a], dim=0)
    arr = _quantise(colour, 255)
    return Image.fromarray(arr, mode="RGBA" if a is not None else "RGB")


# --------------------------------------------------------------------------------------------
# geometry


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Scale ``(width, height)`` so that its longer side equals ``long_side``.

    The shorter side is rounded to the nearest integer (halves round up; exact integer
    arithmetic) and is at least 1, so the aspect ratio is kept within rounding.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    if long_side < 1:
        raise ValueError(f"long_side must be >= 1, got {long_side}")
    if width >= height:
        return long_side, max(1, (2 * height * long_side + width) // (2 * width))
    return max(1, (2 * width * long_side + height) // (2 * height)), long_side


def resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``(N, C, h, w)`` for ``size = (w, h)``.

    Bicubic with antialiasing (``torch.nn.functional.interpolate(..., antialias=True)``, the
    same filter as Pillow's ``BICUBIC``), so shrinking low-pass filters first and does not alias.
    The result is clamped to ``[0, 1]`` (bicubic overshoots at edges). Returns ``t`` itself when
    it already has the requested size.
    """
    if t.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    if (height, width) == tuple(t.shape[-2:]):
        return t
    if not t.is_floating_point():
        raise TypeError("resize needs a floating-point tensor")
    out = F.interpolate(
        t, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return out.clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# saving


def _supported_list() -> str:
    return ", ".join(OUTPUT_FORMATS)


def check_output_path(path: str | os.PathLike[str]) -> str:
    """Validate an output path before any work is done; return its Pillow format name.

    Raises:
        ImageError: unknown extension (the message lists the supported ones), missing or
            non-writable parent directory, or a directory at ``path``.
    """
    p = os.fspath(path)
    p = p if isinstance(p, str) else os.fsdecode(p)
    ext = os.path.splitext(p)[1].lower()
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        shown = f"extension {ext!r}" if ext else "no extension"
        raise ImageError(f"{p}: cannot save with {shown}; supported: {_supported_list()}")
    if os.path.isdir(p):
        raise ImageError(f"{p}: is a directory")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise ImageError(f"{p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImageError(f"{p}: directory {parent} is not writable")
    return fmt


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    if not metadata:
        return {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("metadata keys and values must be str")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"metadata key {key!r} is not Latin-1 (a PNG keyword)") from None
        if not 1 <= len(key) <= 79 or key != key.strip() or not key.isprintable():
            raise ValueError(f"metadata key {key!r} must be 1-79 printable characters")
    return dict(metadata)


def _exif_with_description(metadata: dict[str, str]) -> bytes:
    exif = Image.Exif()
    exif[_EXIF_IMAGE_DESCRIPTION] = json.dumps(metadata, ensure_ascii=True, sort_keys=True)
    return exif.tobytes()


def _itxt_chunk(key: str, value: str) -> bytes:
    # keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
    return key.encode("latin-1") + b"\0\0\0" + b"\0" + b"\0" + value.encode("utf-8")


def _write_png16(fh: IO[bytes], arr: np.ndarray, metadata: dict[str, str]) -> None:
    import png  # pypng

    height, width, planes = arr.shape
    writer = png.Writer(
        width, height, greyscale=False, alpha=planes == 4, bitdepth=16, compression=6
    )
    buf = io.BytesIO()
    big_endian = arr.astype(">u2", copy=False).reshape(height, width * planes)
    writer.write_packed(buf, (row.tobytes() for row in big_endian))
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    extra = [(b"iCCP", b"sRGB\0\0" + zlib.compress(srgb_profile_bytes()))]
    extra += [(b"iTXt", _itxt_chunk(k, v)) for k, v in metadata.items()]
    # IHDR must stay first; iCCP must come before IDAT.
    png.write_chunks(fh, [chunks[0], *extra, *chunks[1:]])


def _write_tiff16(fh: IO[bytes], arr: np.ndarray, metadata: dict[str, str]) -> None:
    import tifffile

    buf = io.BytesIO()  # tifffile wants a named file or a BytesIO, not an fdopen'ed handle
    tifffile.imwrite(
        buf,
        arr,
        photometric="rgb",
        extrasamples=["unassalpha"] if arr.shape[-1] == 4 else None,
        compression="zlib",
        description=json.dumps(metadata, ensure_ascii=True, sort_keys=True) if metadata else None,
        metadata=None,
        software="impasto",
        iccprofile=srgb_profile_bytes(),
    )
    fh.write(buf.getbuffer())


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a new temporary file next to ``path``, then move it over ``path``.

    The temporary file is created with mode ``0o666`` minus the umask (like any new file), is
    fsynced before :func:`os.replace`, and is removed on any failure, leaving an existing file
    at ``path`` untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise ImageError(f"{path}: cannot write ({exc.strerror or _one_line(exc)})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ImageError(f"{path}: cannot write ({exc.strerror or _one_line(exc)})") from exc
        raise
    _fsync_directory(directory)


def save_image(
    rgb: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    alpha: torch.Tensor | None = None,
    bits: int = 8,
    metadata: dict[str, str] | None = None,
    quality: int = 95,
) -> None:
    """Save a ``(1, 3, H, W)`` sRGB tensor in ``[0, 1]``, atomically, tagged as sRGB.

    The format follows the extension (case-insensitive, see :data:`OUTPUT_FORMATS`).

    * PNG: lossless, ``alpha`` kept, metadata as one iTXt chunk per key.
    * JPEG: ``quality``, 4:4:4 chroma when ``quality >= 90``; JPEG has no alpha channel, so
      ``alpha`` is dropped (not composited). Metadata as JSON in EXIF ImageDescription.
    * WebP: lossy at ``quality``, lossless when ``quality == 100``; ``alpha`` kept (WebP stores
      alpha losslessly by default) and the colour under transparent pixels kept (``exact``).
      Metadata as JSON in EXIF ImageDescription.
    * TIFF: deflate-compressed, ``alpha`` kept as unassociated alpha, metadata as JSON in the
      ImageDescription tag.

    ``bits=16`` writes 16 bits per channel (PNG with ``pypng``, TIFF with ``tifffile``; ICC
    profile and metadata included). Values are clamped and rounded to the nearest level.

    Raises:
        ImageError: unusable path (see :func:`check_output_path`), ``bits=16`` for JPEG/WebP,
            or a write failure; an existing file at ``path`` is then left untouched.
        SettingsError: ``bits`` not 8 or 16, or ``quality`` outside 1-100.
    """
    fmt = check_output_path(path)
    p = os.fspath(path)
    p = p if isinstance(p, str) else os.fsdecode(p)
    if bits not in (8, 16):
        raise SettingsError(f"bits must be 8 or 16, got {bits}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SettingsError(f"quality must be an integer from 1 to 100, got {quality!r}")
    if bits == 16 and fmt not in ("PNG", "TIFF"):
        raise ImageError(f"{p}: {fmt} cannot store 16 bits per channel; use .png or .tif")
    meta = _check_metadata(metadata)
    colour, a = _colour_and_alpha(rgb, alpha)
    if fmt == "JPEG":
        a = None
    channels = colour if a is None else torch.cat([colour, a], dim=0)
    icc = srgb_profile_bytes()

    if bits == 16:
        arr16 = _quantise(channels, 65535)
        writer16 = _write_png16 if fmt == "PNG" else _write_tiff16
        _atomic_write(p, lambda fh: writer16(fh, arr16, meta))
        return

    image = Image.fromarray(_quantise(channels, 255), mode="RGBA" if a is not None else "RGB")
    options: dict[str, Any] = {"icc_profile": icc}
    if fmt == "PNG":
        info = PngInfo()
        for key, value in meta.items():
            info.add_itxt(key, value)
        options["pnginfo"] = info
    elif fmt == "JPEG":
        options["quality"] = quality
        if quality >= 90:
            options["subsampling"] = 0
        if meta:
            options["exif"] = _exif_with_description(meta)
    elif fmt == "WEBP":
        options.update(quality=quality, lossless=quality == 100, exact=True)
        if meta:
            options["exif"] = _exif_with_description(meta)
    else:  # TIFF
        options["compression"] = "tiff_deflate"
        if meta:
            options["description"] = json.dumps(meta, ensure_ascii=True, sort_keys=True)
    _atomic_write(p, lambda fh: image.save(fh, format=fmt, **options))


def _decode_description(text: Any) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text:
        return {}
    text = text.rstrip("\0")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return data
    return {"ImageDescription": text}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text metadata of an image file, as :func:`save_image` embeds it.

    PNG: all tEXt/zTXt/iTXt chunks. TIFF, JPEG and WebP: the JSON object in ImageDescription
    (a description that is not such an object comes back as ``{"ImageDescription": text}``).
    Files without metadata give ``{}``.

    Raises:
        ImageError: the file is missing or not a readable image.
    """
    p = os.fspath(path)
    p = p if isinstance(p, str) else os.fsdecode(p)
    if not os.path.isfile(p):
        raise ImageError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                if im.format == "PNG":
                    im.load()  # text chunks after IDAT are only seen once the data is read
                    return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
                if im.format == "TIFF":
                    return _decode_description(im.tag_v2.get(270))
                return _decode_description(im.getexif().get(_EXIF_IMAGE_DESCRIPTION))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{p}: cannot read metadata ({_one_line(exc)})") from exc
