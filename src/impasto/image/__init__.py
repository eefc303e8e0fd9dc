"""Image input/output and resizing: everything impasto needs from image files goes through here.

One module per concern:

* :mod:`.load` -- :func:`load_image`: decoding, EXIF orientation, alpha, 8/16 bits, the
  pixel limit checked on the header (with :mod:`.pixels` for Pillow's modes and
  :mod:`.high_bit` for 16-bit colour PNG/TIFF, which Pillow truncates);
* :mod:`.colour_management` -- embedded ICC profiles -> sRGB, and the sRGB output profile;
* :mod:`.save` -- :func:`save_image`, :func:`check_output_path`: format from the extension,
  16-bit PNG/TIFF, quality, print resolution, reproducible bytes, atomic writes;
* :mod:`.metadata` -- text metadata embedded in PNG/TIFF/JPEG/WebP, :func:`read_metadata`;
* :mod:`.ops` -- :func:`to_tensor`, :func:`to_pil`, :func:`fit_long_side`, :func:`resize`,
  :func:`pad_edges`, :func:`crop_edges`, :func:`crop_to_aspect`.
"""

from __future__ import annotations

from .high_bit import decode_unmapped_if_turned, oriented_size
from .load import LoadedImage, check_image_source, load_image
from .metadata import read_metadata
from .ops import crop_edges, crop_to_aspect, fit_long_side, pad_edges, resize, to_pil, to_tensor
from .save import (
    HIGH_BIT_FORMATS,
    LOSSY_FORMATS,
    MAX_DPI,
    OUTPUT_FORMATS,
    FileOptions,
    check_file_options,
    check_output_path,
    save_image,
)

__all__ = [
    "HIGH_BIT_FORMATS",
    "LOSSY_FORMATS",
    "MAX_DPI",
    "OUTPUT_FORMATS",
    "FileOptions",
    "LoadedImage",
    "check_file_options",
    "check_image_source",
    "check_output_path",
    "crop_edges",
    "crop_to_aspect",
    "decode_unmapped_if_turned",
    "fit_long_side",
    "load_image",
    "oriented_size",
    "pad_edges",
    "read_metadata",
    "resize",
    "save_image",
    "to_pil",
    "to_tensor",
]
