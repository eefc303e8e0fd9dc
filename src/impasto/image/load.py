"""Loading: any still image Pillow can read -> an sRGB float tensor plus optional alpha.

Along the way :func:`load_image`

* honours the EXIF orientation tag (:func:`PIL.ImageOps.exif_transpose`);
* converts embedded ICC profiles to sRGB (:mod:`.colour_management`);
* keeps 16-bit precision (:mod:`.high_bit`; Pillow decodes 16-bit grayscale itself);
* refuses too large images from the header size, before any pixel is decoded: by default with
  Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``; refused past twice that),
  or with an explicit per-call ``max_pixels`` that may be lower or higher than Pillow's;
* turns every decoding failure (truncated file included: Pillow's ``LOAD_TRUNCATED_IMAGES`` is
  never set) into a one-line :class:`~impasto.errors.ImageError` naming the file.
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from ..errors import ImageError
from .colour_management import float_to_srgb, is_srgb, parse_profile
from .high_bit import (
    apply_orientation,
    decode_unmapped_if_turned,
    describe_unsupported_tiff,
    is_high_bit_colour_tiff,
    read_high_bit_depth,
    read_tiff,
    tiff_stored_size,
)
from .messages import one_line, path_str
from .pixels import pil_to_arrays

__all__ = ["LoadedImage", "check_image_source", "load_image"]

# max_input_pixels reads --max-input-pixels on the command line (impasto.cli.named_as_flags)
_RAISE_LIMIT = "max_input_pixels raises the limit"
_PILLOW_ONLY = (
    "only Pillow decodes this file and its own limit still applies "
    "(raise PIL.Image.MAX_IMAGE_PIXELS to allow it)"
)


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


def _pixel_limit(max_pixels: int | None) -> int | None:
    """The limit in force: ``max_pixels``, else twice Pillow's (None when Pillow's is off)."""
    if max_pixels is not None:
        return max_pixels
    pillow = Image.MAX_IMAGE_PIXELS
    return None if pillow is None else 2 * int(pillow)


def _check_size(size: tuple[int, int], label: str, limit: int | None) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{label}: image has zero size ({width}x{height})")
    if limit is not None and width * height > limit:
        raise ImageError(
            f"{label}: image is too large ({width}x{height} = {width * height:,} pixels, "
            f"limit {limit:,}); {_RAISE_LIMIT}"
        )


def _open_without_pillow_limit(path: str) -> Image.Image:
    """:func:`PIL.Image.open` without its global decompression-bomb check.

    Only for an explicit ``max_pixels`` above Pillow's limit: the caller checks the header size
    itself. Tries the registered format plugins (``Image.ID``/``Image.OPEN``, the registry
    ``Image.open`` uses) in the same order, and like it reads only the header.
    """
    Image.init()
    with open(path, "rb") as fh:
        prefix = fh.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        accepted = accept(prefix) if accept else True
        if not accepted or isinstance(accepted, str):
            continue
        try:
            return factory(path, path)  # a path: the plugin opens and owns the file
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise Image.UnidentifiedImageError(f"cannot identify image file {path!r}")


def _open(path: str, label: str, max_pixels: int | None) -> Image.Image:
    """Open ``path`` lazily (header only), mapping every failure to :class:`ImageError`."""
    try:
        with warnings.catch_warnings():
            # Below twice its limit Pillow only warns; the size is checked by the caller.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                return Image.open(path)
            except Image.DecompressionBombError:
                if max_pixels is None:
                    raise
                return _open_without_pillow_limit(path)  # WebP's plugin checks again
    except Image.DecompressionBombError as exc:
        hint = _RAISE_LIMIT if max_pixels is None else _PILLOW_ONLY
        why = one_line(exc).removesuffix(", could be decompression bomb DOS attack.")
        raise ImageError(f"{label}: image is too large ({why}); {hint}") from exc
    except Image.UnidentifiedImageError as exc:
        why = describe_unsupported_tiff(path) or "not a recognised image file"
        raise ImageError(f"{label}: {why}") from exc
    except OSError as exc:
        raise ImageError(f"{label}: cannot read file ({exc.strerror or one_line(exc)})") from exc
    except Exception as exc:  # SyntaxError, ValueError, struct.error from broken headers
        raise ImageError(f"{label}: not a valid image file ({one_line(exc)})") from exc


def _to_loaded(colour: np.ndarray, alpha: np.ndarray | None, bits: int, name: str) -> LoadedImage:
    rgb = torch.from_numpy(np.ascontiguousarray(colour.transpose(2, 0, 1), dtype=np.float32))
    alpha_t = None
    if alpha is not None:
        alpha_t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    return LoadedImage(rgb=rgb.unsqueeze(0), alpha=alpha_t, bits=bits, name=name)


def _finish_planes(
    im: Image.Image, planes: tuple[np.ndarray, np.ndarray | None], label: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Orientation and colour management for pixels decoded outside Pillow (pypng, tifffile)."""
    colour, alpha = planes
    orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    colour = apply_orientation(colour, orientation)
    if alpha is not None:
        alpha = apply_orientation(alpha, orientation)
    icc = im.info.get("icc_profile")
    profile = parse_profile(icc, label) if icc else None
    converted = None
    if profile is not None and not is_srgb(profile):
        converted = float_to_srgb(colour, profile, label)
    if converted is not None:
        return converted, alpha
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return colour, alpha


def _load_tiff_past_pillow_limit(im: Image.Image, path: str, label: str) -> LoadedImage:
    """A TIFF that Pillow refuses to decode although ``max_pixels`` admits it: tifffile."""
    found = read_tiff(path, tiff_stored_size(im)) if im.format == "TIFF" else None
    if found is None:
        raise ImageError(f"{label}: image is too large for Pillow; {_PILLOW_ONLY}")
    colour, alpha = _finish_planes(im, found[:2], label)
    return _to_loaded(colour, alpha, found[2], os.path.basename(path))


def _decode_file(im: Image.Image, path: str, label: str) -> LoadedImage:
    name = os.path.basename(path)
    planes = read_high_bit_depth(im, path)
    if planes is not None:
        colour, alpha = _finish_planes(im, planes, label)
        return _to_loaded(colour, alpha, 16, name)
    decode_unmapped_if_turned(im)
    try:
        im.load()  # force decoding now, inside the caller's error handling
    except Image.DecompressionBombError:  # only with an explicit max_pixels over Pillow's
        return _load_tiff_past_pillow_limit(im, path, label)
    ImageOps.exif_transpose(im, in_place=True)
    colour, alpha, bits = pil_to_arrays(im, label, colour_manage=True)
    if is_high_bit_colour_tiff(im):
        bits = 16  # tifffile could not decode it; Pillow gave 8-bit data of a 16-bit source
    return _to_loaded(colour, alpha, bits, name)


def _load_pil(source: Image.Image, limit: int | None) -> LoadedImage:
    label = "<image>"
    _check_size(source.size, label, limit)
    try:
        source.load()
        im = ImageOps.exif_transpose(source)
        colour, alpha, bits = pil_to_arrays(im, label, colour_manage=True)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{label}: cannot decode image ({one_line(exc)})") from exc
    return _to_loaded(colour, alpha, bits, label)


def _load_path(path: str, max_pixels: int | None) -> LoadedImage:
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image file")
    im = _open(path, path, max_pixels)
    with im:
        _check_size(im.size, path, _pixel_limit(max_pixels))
        try:
            return _decode_file(im, path, path)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(
                f"{path}: cannot decode image, the file is corrupt or truncated ({one_line(exc)})"
            ) from exc


_MAX_PATH_BYTES = 4096  # longer bytes (or any with a NUL) are image data, not a path


def check_image_source(source: Any, what: str = "an image") -> None:
    """Refuse what :func:`load_image` cannot take, in one line saying what it takes: a tensor,
    an array, a file object or image data in bytes ended in a bare TypeError (or, for bytes, an
    "error line" holding the whole file)."""
    if isinstance(source, (str, os.PathLike, Image.Image)):
        return
    if isinstance(source, bytes) and len(source) <= _MAX_PATH_BYTES and b"\0" not in source:
        return  # a path in the file system's encoding
    kind = type(source).__name__
    hint = {
        "Tensor": "; convert a (1, 3, H, W) tensor in [0, 1] with impasto.image.to_pil",
        "ndarray": "; convert an array with PIL.Image.fromarray",
        "bytes": " of image data; open it with PIL.Image.open(io.BytesIO(data))",
    }.get(kind, "")
    raise ImageError(f"{what} must be a path, example:NAME or a PIL image, not {kind}{hint}")


def load_image(
    source: str | os.PathLike[str] | Image.Image, *, max_pixels: int | None = None
) -> LoadedImage:
    """Load an image file (or a PIL image) as an sRGB float tensor plus optional alpha.

    EXIF orientation is applied, embedded ICC profiles are converted to sRGB, alpha is returned
    separately (the colour under fully transparent pixels is kept exactly as stored), grayscale
    becomes three equal channels and 16-bit sources keep their precision (see the module
    docstring). Only the first frame of animated or multi-page files is used.

    Args:
        source: a path, or an already opened PIL image (whose ``info["icc_profile"]`` and EXIF
            orientation are honoured too; it is not modified).
        max_pixels: largest accepted ``width * height``, checked on the header size before any
            pixel is decoded. ``None`` keeps Pillow's decompression-bomb guard: refused past
            ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179 MP by default; no limit when that is
            ``None``). An integer replaces it for this call only, lower or higher, without
            touching Pillow's global setting. Pillow's warning between 1x and 2x is silenced.

    Returns:
        The decoded :class:`LoadedImage`.

    Raises:
        ImageError: not a path or PIL image (:func:`check_image_source`), missing path, a
            directory, not an image, truncated or corrupt data, zero size, or too many pixels.
            The message is one line naming the file.
        ValueError: ``max_pixels`` below 1.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1 or None, got {max_pixels}")
    check_image_source(source)
    if isinstance(source, Image.Image):
        return _load_pil(source, _pixel_limit(max_pixels))
    return _load_path(path_str(source), max_pixels)
