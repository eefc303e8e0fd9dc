"""Text metadata embedded in output files, and read back from them.

* PNG: one iTXt chunk per key (UTF-8 text).
* JPEG and WebP: the whole dictionary as JSON in EXIF ImageDescription.
* TIFF: the same JSON in the TIFF ImageDescription tag.

A print resolution (dots per inch), when one is given, goes where each format keeps it.

The JSON is written with sorted keys, so the same dictionary always gives the same bytes.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PIL.TiffImagePlugin import IFDRational

from ..errors import ImageError
from .messages import one_line, path_str

__all__ = [
    "check_metadata",
    "description_json",
    "itxt_chunk",
    "pillow_metadata_options",
    "read_metadata",
]

_EXIF_IMAGE_DESCRIPTION = 0x010E
_TIFF_IMAGE_DESCRIPTION = 270
_EXIF_X_RESOLUTION, _EXIF_Y_RESOLUTION, _EXIF_RESOLUTION_UNIT, _INCH = 282, 283, 296, 2


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Validate metadata before anything is written; return a copy (``{}`` for None).

    Raises:
        TypeError: a key or value that is not ``str``.
        ValueError: a key that is not 1-79 printable Latin-1 characters (a PNG keyword).
    """
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


def description_json(metadata: dict[str, str]) -> str:
    """The ImageDescription text: ASCII JSON with sorted keys."""
    return json.dumps(metadata, ensure_ascii=True, sort_keys=True)


def itxt_chunk(key: str, value: str) -> bytes:
    """The body of an uncompressed PNG iTXt chunk (no language tag, no translated keyword)."""
    # keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
    return key.encode("latin-1") + b"\0\0\0" + b"\0" + b"\0" + value.encode("utf-8")


def pillow_metadata_options(
    fmt: str, metadata: dict[str, str], dpi: float | None = None
) -> dict[str, Any]:
    """Keyword arguments for :meth:`PIL.Image.Image.save` that embed ``metadata`` (and the print
    resolution ``dpi``, when given) in ``fmt``. JPEG and WebP carry the resolution in EXIF
    (WebP has no other place; JPEG also in its JFIF header), PNG in pHYs, TIFF in its tags."""
    options: dict[str, Any] = {} if dpi is None or fmt == "WEBP" else {"dpi": (dpi, dpi)}
    if fmt == "PNG":
        info = PngInfo()
        for key, value in metadata.items():
            info.add_itxt(key, value)
        return {**options, "pnginfo": info}
    if fmt in ("JPEG", "WEBP") and (metadata or dpi is not None):
        exif = Image.Exif()
        if metadata:
            exif[_EXIF_IMAGE_DESCRIPTION] = description_json(metadata)
        if dpi is not None:
            exif[_EXIF_X_RESOLUTION] = exif[_EXIF_Y_RESOLUTION] = IFDRational(dpi)
            exif[_EXIF_RESOLUTION_UNIT] = _INCH
        options["exif"] = exif.tobytes()
    elif fmt == "TIFF" and metadata:
        options["description"] = description_json(metadata)
    return options


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
    """The text metadata of an image file, as :func:`~impasto.image.save_image` embeds it.

    PNG: all tEXt/zTXt/iTXt chunks. TIFF, JPEG and WebP: the JSON object in ImageDescription
    (a description that is not such an object comes back as ``{"ImageDescription": text}``).
    Files without metadata give ``{}``.

    Raises:
        ImageError: the file is missing or not a readable image.
    """
    p = path_str(path)
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
                    return _decode_description(im.tag_v2.get(_TIFF_IMAGE_DESCRIPTION))
                return _decode_description(im.getexif().get(_EXIF_IMAGE_DESCRIPTION))
    except Exception as exc:
        raise ImageError(f"{p}: cannot read metadata ({one_line(exc)})") from exc
