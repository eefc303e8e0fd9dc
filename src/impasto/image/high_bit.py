"""16-bit-per-channel colour PNG and TIFF decoding (Pillow truncates these to 8 bits).

PNG goes through ``pypng`` (pure Python: about 0.15 s per megabyte of pixel data in the worst
case, i.e. ~1 s per megapixel of 16-bit RGB), TIFF through ``tifffile`` (numpy). When
``tifffile`` cannot decode a TIFF (LZW or PackBits compression need the optional
``imagecodecs`` package) the caller falls back to Pillow's 8-bit decoding of the same file.

:func:`read_tiff` also decodes 8-bit TIFFs, for files over Pillow's decompression-bomb limit
that an explicit, higher ``max_pixels`` admits (Pillow's TIFF plugin checks its own limit again
when it decodes).

:func:`describe_unsupported_tiff` names the sample layout of a TIFF Pillow cannot open (32-bit
float RGB, for one), so the error says what the file is instead of "not a recognised image".
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .pixels import float_from_high_precision

__all__ = [
    "apply_orientation",
    "decode_unmapped_if_turned",
    "describe_unsupported_tiff",
    "is_high_bit_colour_tiff",
    "read_high_bit_depth",
    "oriented_size",
    "read_tiff",
    "tiff_stored_size",
]

_TIFF_IMAGE_WIDTH = 256
_TIFF_IMAGE_LENGTH = 257
_TIFF_BITS_PER_SAMPLE = 258
_TIFF_SAMPLES_PER_PIXEL = 277
_TIFF_MAGICS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF
_TIFF_KINDS = {1: "unsigned integer", 2: "signed integer", 3: "float"}  # SampleFormat
_TIFF_COLOURS = {0: "grey", 1: "grey", 2: "RGB", 3: "palette", 5: "CMYK", 6: "YCbCr"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = (2, 4, 6)  # RGB, gray + alpha, RGBA (16-bit gray is Pillow's I;16)

_PROBING = threading.local()


class _WhileProbing(logging.Filter):
    """Drops tifffile's log records in the thread that is inside :func:`_quiet_tifffile`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_PROBING, "on", False)


_QUIET_FILTER = _WhileProbing()


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs what it finds wrong in a file; the caller raises one ImageError instead."""
    log = logging.getLogger("tifffile")
    if _QUIET_FILTER not in log.filters:
        log.addFilter(_QUIET_FILTER)
    _PROBING.on = True
    try:
        yield
    finally:
        _PROBING.on = False


Planes = tuple[np.ndarray, np.ndarray | None]
"""(colour ``(H, W, 1|3)`` float32 in [0, 1], alpha ``(H, W)`` float32 or None)."""


def apply_orientation(arr: np.ndarray, orientation: object) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to ``(H, W)`` or ``(H, W, C)`` float data.

    Uses :func:`PIL.ImageOps.exif_transpose` one plane at a time (as float ``F`` images,
    because Pillow cannot hold 16-bit colour), so the result is exactly Pillow's. Values
    outside 2-8 leave the data as it is.
    """
    if not isinstance(orientation, int) or not 2 <= orientation <= 8:
        return arr
    planes = arr[..., None] if arr.ndim == 2 else arr
    out = []
    for c in range(planes.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32))
        plane.getexif()[ExifTags.Base.Orientation] = orientation
        out.append(np.asarray(ImageOps.exif_transpose(plane)))
    result = np.stack(out, axis=-1)
    return result[..., 0] if arr.ndim == 2 else result


def _png_header(path: str) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a PNG's IHDR, or None."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _split_alpha(arr: np.ndarray, has_alpha: bool) -> Planes:
    if has_alpha:
        return arr[..., :-1], arr[..., -1]
    return arr, None


def _read_png16(path: str) -> Planes:
    """16-bit colour PNG -> (colour, alpha); ``tRNS`` becomes alpha (pypng's ``asDirect``)."""
    import png  # pypng

    with open(path, "rb") as fh:
        width, height, rows, info = png.Reader(file=fh).asDirect()
        planes = int(info["planes"])
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    arr = arr.reshape(height, width, planes)
    maxval = float(2 ** int(info["bitdepth"]) - 1)
    return _split_alpha(arr.astype(np.float32) / maxval, bool(info["alpha"]))


def _tiff_samples(path: str, size: tuple[int, int]) -> tuple[np.ndarray, int, tuple] | None:
    """First page of a TIFF as ``(H, W, S)`` samples, photometric, extra samples; or None.

    None when tifffile cannot decode it, or its layout is not one sample plane of the stored
    ``size`` Pillow read from the header (:func:`tiff_stored_size`; checked before any pixel is
    decoded).
    """
    import tifffile

    width, height = size
    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape, axes = tuple(page.shape), page.axes
            if axes not in ("YX", "YXS", "SYX") or min(shape, default=0) < 1:
                return None
            if int(np.prod(shape)) > 8 * width * height:  # a lying header: no big allocation
                return None
            photometric = int(page.photometric)
            extras = tuple(int(e) for e in page.extrasamples)
            data = page.asarray()
    except Exception:  # noqa: BLE001 - missing codec or odd layout: let Pillow try
        return None
    if data.ndim != len(axes) or data.dtype.kind not in "uf":
        return None
    if axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    elif axes == "YX":
        data = data[..., None]
    if data.shape[:2] != (height, width):
        return None
    return data, photometric, extras


def read_tiff(path: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """A gray or RGB TIFF decoded by tifffile -> (colour, alpha, bits), or None.

    ``bits`` is 8 for 8-bit samples and 16 otherwise. None when tifffile cannot decode the file
    (a missing codec, another photometric interpretation, an odd layout): Pillow then decodes it.
    """
    found = _tiff_samples(path, size)
    if found is None:
        return None
    data, photometric, extras = found
    colour_samples = {1: 1, 2: 3}.get(photometric)  # MINISBLACK, RGB
    if colour_samples is None or data.shape[-1] < colour_samples:
        return None
    values = float_from_high_precision(data)
    colour = values[..., :colour_samples]
    alpha = None
    if extras and extras[0] in (1, 2) and data.shape[-1] > colour_samples:
        alpha = values[..., colour_samples]
        if extras[0] == 1:  # associated (premultiplied) alpha -> straight
            safe = np.where(alpha > 0, alpha, 1.0)[..., None]
            colour = np.where(alpha[..., None] > 0, np.clip(colour / safe, 0.0, 1.0), colour)
    return colour, alpha, 8 if data.dtype == np.uint8 else 16


def tiff_stored_size(im: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of the pixel data a TIFF stores, before any orientation.

    Pillow 13 reports a TIFF's size with its orientation applied (width and height swapped for
    orientations 5-8) before decoding; tifffile decodes the stored data. Other images: ``im.size``.
    """
    tags = getattr(im, "tag_v2", None)
    if im.format != "TIFF" or tags is None:
        return im.size
    width, height = tags.get(_TIFF_IMAGE_WIDTH), tags.get(_TIFF_IMAGE_LENGTH)
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    return im.size


def decode_unmapped_if_turned(im: Image.Image) -> None:
    """Before ``im.load()``: make Pillow decode a turned TIFF without memory-mapping it.

    Pillow 13 rotates TIFFs (orientations 5-8) as it decodes them, but memory-maps raw L, P,
    RGBA and I;16 strips with the rotated size: the pixels come out scrambled. An image opened
    from a file object without a name (filename "") is never memory-mapped.
    """
    if tiff_stored_size(im) != im.size:
        im.filename = ""


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image once its EXIF orientation is applied, as
    :func:`impasto.image.load_image` returns it, read from the header alone. (Pillow reports a
    turned TIFF's size turned already, other formats' as stored.)"""
    if tiff_stored_size(im) != im.size:
        return im.size
    w, h = im.size
    turned = im.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    return (h, w) if turned else (w, h)


def is_high_bit_colour_tiff(im: Image.Image) -> bool:
    """Whether a TIFF has several samples per pixel of more than 8 bits (Pillow truncates)."""
    tags = getattr(im, "tag_v2", None)
    if im.format != "TIFF" or tags is None:
        return False
    bits = tags.get(_TIFF_BITS_PER_SAMPLE, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return tags.get(_TIFF_SAMPLES_PER_PIXEL, 1) >= 2 and max(bits) > 8


def read_high_bit_depth(im: Image.Image, path: str) -> Planes | None:
    """Pixels of 16-bit colour PNG/TIFF files, which Pillow would truncate; None otherwise.

    Args:
        im: the file opened (not yet decoded) by Pillow, whose header size is trusted.
        path: the same file, read again by pypng or tifffile.
    """
    if im.format == "PNG":
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in _PNG_COLOUR_TYPES:
            return _read_png16(path)
        return None
    if is_high_bit_colour_tiff(im):
        found = read_tiff(path, tiff_stored_size(im))
        return None if found is None else found[:2]
    return None


def _tiff_layout(page) -> str:
    """``"RGB"``, ``"grey + alpha"``...: a TIFF page's photometric plus its extra samples."""
    photometric = int(page.photometric)
    colour = _TIFF_COLOURS.get(photometric, f"photometric {photometric}")
    extras = tuple(int(e) for e in page.extrasamples)
    if not extras:
        return colour
    return f"{colour} + alpha" if extras[0] in (1, 2) else f"{colour} + {len(extras)} extra"


def describe_unsupported_tiff(path: str) -> str | None:
    """Why Pillow cannot open a TIFF it did not recognise, from its first header; else None.

    ``"RGB TIFF with 32-bit float samples is not supported; save it as 8- or 16-bit"`` for
    samples Pillow decodes in grey only (float, signed, over 16 bits) and for 16-bit grey +
    alpha. None when ``path`` is no TIFF, tifffile cannot read its header either, or its
    layout is not one of those (then it is likely corrupt).
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(4) not in _TIFF_MAGICS:
                return None
        import tifffile

        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            bits, layout = int(page.bitspersample), _tiff_layout(page)
            kind = _TIFF_KINDS.get(int(page.sampleformat), "other")
            samples = int(page.samplesperpixel)
    except Exception:  # noqa: BLE001 - a broken header: the caller's generic message
        return None
    if kind != "unsigned integer" or bits > 16:
        depth = "8- or 16-bit" if bits > 16 else "8- or 16-bit unsigned integer"
        return f"{layout} TIFF with {bits}-bit {kind} samples is not supported; save it as {depth}"
    if bits == 16 and samples == 2:
        return (
            f"{layout} TIFF with 16-bit samples is not supported; "
            "save it as 8-bit, or as 16-bit grey, RGB or RGBA"
        )
    return None
