"""Saving: format from the extension, 8 or 16 bits, sRGB-tagged, metadata, atomic writes.

Files are reproducible: the same pixels and metadata give the same bytes in every format (no
timestamps, no random ids; the embedded sRGB profile carries a fixed date).
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_file, unwritable
from ..errors import ImageError, SettingsError
from ..settings import DEFAULT_QUALITY
from .colour_management import srgb_profile_bytes
from .messages import one_line, path_str
from .metadata import check_metadata, description_json, itxt_chunk, pillow_metadata_options
from .ops import colour_and_alpha, quantise

__all__ = [
    "LOSSY_FORMATS",
    "HIGH_BIT_FORMATS",
    "MAX_DPI",
    "OUTPUT_FORMATS",
    "FileOptions",
    "check_file_options",
    "check_output_path",
    "save_image",
]

OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
"""Output file extension (lower case, with the dot) -> Pillow format name."""

LOSSY_FORMATS = ("JPEG", "WEBP")
"""The formats ``quality`` applies to (PNG and TIFF are lossless)."""

HIGH_BIT_FORMATS = ("PNG", "TIFF")
"""The formats that store 16 bits per channel (``bits=16``)."""

MAX_DPI = 65535
"""The largest print resolution accepted: JPEG's JFIF header stores it in 16 bits."""


@dataclass(frozen=True)
class FileOptions:
    """How an image file is written, apart from its path and pixels.

    Attributes:
        bits: 8 or 16 bits per channel (16: PNG and TIFF only).
        quality: JPEG/WebP quality 1-100 (WebP 100 is lossless); None:
            :data:`~impasto.settings.DEFAULT_QUALITY`. PNG and TIFF (lossless) take none.
        dpi: print resolution recorded in the file (pixels per inch), so that a print dialog
            sizes the image at width/dpi inches; None records none.
    """

    bits: int = 8
    quality: int | None = None
    dpi: float | None = None


def check_output_path(path: str | os.PathLike[str]) -> str:
    """Validate an output path before any work is done; return its Pillow format name.

    Raises:
        ImageError: not a path, unknown extension (the message lists the supported ones),
            missing or non-writable parent directory, or a directory at ``path``.
    """
    if not isinstance(path, (str, os.PathLike)):  # a file object or BytesIO: a bare TypeError
        raise ImageError(f"an output must be a file path, not {type(path).__name__}")
    p = path_str(path)
    ext = os.path.splitext(p)[1].lower()
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        shown = f"extension {ext!r}" if ext else "no extension"
        raise ImageError(f"{p}: cannot save with {shown}; supported: {', '.join(OUTPUT_FORMATS)}")
    why = unwritable(p)
    if why:
        raise ImageError(f"{p}: {why}")
    return fmt


def _write_png16(
    fh: IO[bytes], arr: np.ndarray, metadata: dict[str, str], dpi: float | None
) -> None:
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
    extra += [(b"iTXt", itxt_chunk(k, v)) for k, v in metadata.items()]
    if dpi is not None:  # pixels per metre, both axes, unit 1 (the metre)
        per_metre = round(dpi / 0.0254)
        extra.append((b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    # IHDR must stay first; iCCP must come before IDAT.
    png.write_chunks(fh, [chunks[0], *extra, *chunks[1:]])


def _write_tiff16(
    fh: IO[bytes], arr: np.ndarray, metadata: dict[str, str], dpi: float | None
) -> None:
    import tifffile

    buf = io.BytesIO()  # tifffile wants a named file or a BytesIO
    tifffile.imwrite(
        buf,
        arr,
        photometric="rgb",
        extrasamples=["unassalpha"] if arr.shape[-1] == 4 else None,
        compression="zlib",
        description=description_json(metadata) if metadata else None,
        metadata=None,
        software="impasto",
        iccprofile=srgb_profile_bytes(),
        **({} if dpi is None else {"resolution": (dpi, dpi), "resolutionunit": "INCH"}),
    )
    fh.write(buf.getbuffer())


def _atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a file that replaces ``path`` whole or not at all
    (:func:`impasto.atomic.atomic_file`); a failure is one :class:`ImageError` line."""
    try:
        with atomic_file(path) as fh:
            write(fh)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc.strerror or one_line(exc)})") from exc


def _pillow_options(fmt: str, file: FileOptions, metadata: dict[str, str]) -> dict[str, Any]:
    """:meth:`PIL.Image.Image.save` keyword arguments for an 8-bit ``fmt`` file."""
    options: dict[str, Any] = {"icc_profile": srgb_profile_bytes()}
    quality = DEFAULT_QUALITY if file.quality is None else file.quality
    if fmt == "JPEG":
        options["quality"] = quality
        if quality >= 90:
            options["subsampling"] = 0
    elif fmt == "WEBP":
        options.update(quality=quality, lossless=quality == 100, exact=True)
    elif fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    options.update(pillow_metadata_options(fmt, metadata, file.dpi))
    return options


def check_file_options(file: FileOptions) -> None:
    """Refuse options no file can be written with (whatever its format).

    Raises:
        SettingsError: ``bits`` not 8 or 16, ``quality`` not None or an integer 1-100, ``dpi`` not a
            number from 1 to :data:`MAX_DPI`.
    """
    bits, quality, dpi = file.bits, file.quality, file.dpi
    if bits not in (8, 16):
        raise SettingsError(f"bits must be 8 or 16, got {bits}")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        raise SettingsError(f"quality must be an integer from 1 to 100, got {quality!r}")
    if dpi is not None and (
        isinstance(dpi, bool)
        or not isinstance(dpi, (int, float))
        or not math.isfinite(dpi)
        or not 1 <= dpi <= MAX_DPI
    ):
        shown = f"{dpi:g}" if isinstance(dpi, float) else repr(dpi)  # 0, not 0.0 (a flag)
        raise SettingsError(f"dpi must be a number from 1 to {MAX_DPI}, got {shown}")


def _check_options(p: str, fmt: str, file: FileOptions) -> None:
    if file.quality is not None and fmt not in LOSSY_FORMATS:  # as the command line refuses it
        raise SettingsError(f"quality applies to JPEG and WebP outputs; {fmt} is lossless")
    check_file_options(file)
    if file.bits == 16 and fmt not in HIGH_BIT_FORMATS:
        raise ImageError(f"{p}: {fmt} cannot store 16 bits per channel; use .png or .tif")


def save_image(
    rgb: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    alpha: torch.Tensor | None = None,
    bits: int = 8,
    metadata: dict[str, str] | None = None,
    quality: int | None = None,
    dpi: float | None = None,
) -> None:
    """Save a ``(1, 3, H, W)`` sRGB tensor in ``[0, 1]``, atomically, tagged as sRGB.

    The format follows the extension (case-insensitive, see :data:`OUTPUT_FORMATS`).

    * PNG: lossless, ``alpha`` kept, metadata as one iTXt chunk per key.
    * JPEG: ``quality`` (None: :data:`~impasto.settings.DEFAULT_QUALITY`), 4:4:4 chroma when
      ``quality >= 90``; JPEG has no alpha channel, so
      ``alpha`` is dropped (not composited). Metadata as JSON in EXIF ImageDescription.
    * WebP: lossy at ``quality``, lossless when ``quality == 100``; ``alpha`` kept (WebP stores
      alpha losslessly by default) and the colour under transparent pixels kept (``exact``).
      Metadata as JSON in EXIF ImageDescription.
    * TIFF: deflate-compressed, ``alpha`` kept as unassociated alpha, metadata as JSON in the
      ImageDescription tag.

    ``bits=16`` writes 16 bits per channel (PNG with ``pypng``, TIFF with ``tifffile``; ICC
    profile and metadata included). Values are clamped and rounded to the nearest level. The
    same pixels and metadata always give the same file bytes.

    ``dpi`` records a print resolution (pixels per inch; PNG stores whole pixels per metre,
    JPEG's JFIF header whole dots per inch beside the exact value in EXIF); None records none.

    Raises:
        ImageError: unusable path (see :func:`check_output_path`), ``bits=16`` for JPEG/WebP,
            or a write failure; an existing file at ``path`` is then left untouched.
        SettingsError: ``bits`` not 8 or 16, ``quality`` outside 1-100 or given for a lossless
            format (PNG, TIFF), ``dpi`` outside 1-:data:`MAX_DPI`.
    """
    fmt = check_output_path(path)
    p = path_str(path)
    file = FileOptions(bits, quality, dpi)
    _check_options(p, fmt, file)
    meta = check_metadata(metadata)
    colour, a = colour_and_alpha(rgb, alpha)
    if fmt == "JPEG":
        a = None
    channels = colour if a is None else torch.cat([colour, a], dim=0)
    if bits == 16:
        arr16 = quantise(channels, 65535)
        writer16 = _write_png16 if fmt == "PNG" else _write_tiff16
        _atomic_write(p, lambda fh: writer16(fh, arr16, meta, dpi))
        return
    image = Image.fromarray(quantise(channels, 255), mode="RGBA" if a is not None else "RGB")
    options = _pillow_options(fmt, file, meta)
    _atomic_write(p, lambda fh: image.save(fh, format=fmt, **options))
