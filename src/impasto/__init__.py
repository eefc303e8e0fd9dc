"""impasto: neural style transfer by optimising the image through VGG19 (Gatys et al.).

>>> import impasto
>>> img = impasto.stylize("photo.jpg", "painting.jpg", size=512)   # doctest: +SKIP
>>> img.save("out.png")                                            # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import Result, Stylizer, reconstruct_content, reconstruct_style, stylize  # noqa: E402
from .callbacks import Iterate  # noqa: E402
from .errors import Cancelled, ImageError, ImpastoError, SettingsError, WeightsError  # noqa: E402
from .settings import Settings, StyleInput  # noqa: E402

__all__ = [
    "__version__",
    "stylize",
    "reconstruct_content",
    "reconstruct_style",
    "Stylizer",
    "Result",
    "Settings",
    "StyleInput",
    "Iterate",
    "ImpastoError",
    "ImageError",
    "SettingsError",
    "WeightsError",
    "Cancelled",
]
