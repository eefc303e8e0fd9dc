"""Accepting an uploaded image: format from decoding, pixel limit from the header, a thumbnail.

The file's format is what Pillow decodes (never the name or the client's content type); the pixel
count is checked on the header before any pixel is decoded; the whole file is then decoded once,
at a reduced scale where the format allows (JPEG), to make the thumbnail, so a truncated or
corrupt file is refused here rather than when a job starts. No float copy of the image is made:
accepting a large photo costs about its 8-bit pixel buffer.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image

from ..errors import ImpastoError
from ..image import oriented_size
from .encode import thumbnail
from .store import FileRecord, Store, sanitize_name

__all__ = ["UPLOAD_FORMATS", "UploadError", "ingest_upload"]

# Formats accepted for upload (decoded by Pillow, never guessed from the name). Formats whose
# decoders run external programs (EPS: Ghostscript) or are rarely wanted are not on the list.
UPLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", "image/jpeg"),
    "MPO": (".jpg", "image/jpeg"),
    "WEBP": (".webp", "image/webp"),
    "TIFF": (".tif", "image/tiff"),
    "BMP": (".bmp", "image/bmp"),
    "GIF": (".gif", "image/gif"),
}


class UploadError(ImpastoError):
    """An upload is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _accepted_names() -> str:
    return ", ".join(dict.fromkeys(f if f != "MPO" else "JPEG" for f in UPLOAD_FORMATS))


def _undecodable(exc: Exception) -> UploadError:
    """A file of a format it reads, which it cannot decode: cut short or damaged (a truncated
    PNG was called 'not a supported image')."""
    return UploadError(422, f"cannot decode the upload (damaged or truncated?): {exc}")


def _too_many_pixels(what: str, max_pixels: int) -> UploadError:
    """An upload over the pixel limit, which the refusal names."""
    return UploadError(413, f"{what}; this server's limit (max_pixels) is {max_pixels:,}")


def _decode(src: Path, max_pixels: int) -> tuple[str, tuple[int, int], bytes]:
    """(format, oriented size, thumbnail PNG) of an upload; raises :class:`UploadError`."""
    Image.init()  # registers every plugin (MPO included) before the format filter
    formats = [f for f in UPLOAD_FORMATS if f in Image.OPEN]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src, formats=formats)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels("image has too many pixels", max_pixels) from exc
    except Image.UnidentifiedImageError as exc:
        raise UploadError(415, f"not a supported image (accepted: {_accepted_names()})") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # a format it knows, cut short or damaged
        raise _undecodable(exc) from exc
    with im:
        fmt, (w, h) = im.format, im.size
        if w * h > max_pixels:
            raise _too_many_pixels(f"image is {w}x{h} = {w * h:,} pixels", max_pixels)
        try:
            w, h = oriented_size(im)  # as the engine will see it
            small = thumbnail(im)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise _undecodable(exc) from exc
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return fmt, (w, h), buf.getvalue()


def ingest_upload(store: Store, src: Path, filename: str | None, max_pixels: int) -> FileRecord:
    """Check that ``src`` is a real image within the limits and store it with a thumbnail.

    Raises:
        UploadError: 415 not a supported image, 413 too many pixels, 422 undecodable.
    """
    fmt, (width, height), thumb_png = _decode(src, max_pixels)
    ext, media_type = UPLOAD_FORMATS[fmt]
    thumb_id, thumb_path = store.reserve(".png")
    thumb_path.write_bytes(thumb_png)
    store.add_file(thumb_id, thumb_path, kind="thumb", media_type="image/png")
    file_id, path = store.reserve(ext)
    os.replace(src, path)
    return store.add_file(
        file_id,
        path,
        kind="upload",
        media_type=media_type,
        display_name=sanitize_name(filename),
        width=width,
        height=height,
        thumb=thumb_id,
    )
