"""impasto: neural style transfer by optimising the image through VGG19 (Gatys et al.).

>>> import impasto
>>> img = impasto.stylize("photo.jpg", "painting.jpg", size=512)   # doctest: +SKIP
>>> img.save("out.png")                                            # doctest: +SKIP

The names below are imported on first use, so ``import impasto`` (and ``impasto --help``) does
not load torch.
"""

from __future__ import annotations

from .lazy import lazy_dir, lazy_getattr
from .version import __version__

_EXPORTS = {
    "stylize": "api",
    "reconstruct_content": "api",
    "reconstruct_style": "api",
    "Stylizer": "api",
    "Result": "api",
    "RunCache": "api",
    "Iterate": "callbacks",
    "Note": "progress",
    "TileTick": "progress",
    "Settings": "settings",
    "StyleInput": "settings",
    "ImpastoError": "errors",
    "ImageError": "errors",
    "SettingsError": "errors",
    "WeightsError": "errors",
    "Cancelled": "errors",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
__dir__ = lazy_dir(__all__)
