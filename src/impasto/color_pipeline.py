"""What a colour mode (``Settings.preserve_colors``) changes, in one object.

Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (arXiv:1606.05897) and
"Controlling Perceptual Factors in Neural Style Transfer" (CVPR 2017, section 5). A mode changes
three things, and only here:

* the inputs the network sees (:meth:`ColorPipeline.prepare`): ``histogram`` gives every painting
  the photo's mean colour and colour covariance, ``histogram-reverse`` gives the photo the first
  painting's, ``luminance`` turns photo and paintings into YIQ luminance with each painting's
  luminance mean/std matched to the photo's; ``none`` and ``swap`` change nothing here;
* the number of channels optimised (:attr:`ColorPipeline.channels`: 1 for ``luminance``; the
  network then sees the gray image as three equal channels, :meth:`ColorPipeline.to_network`);
* the result (:meth:`ColorPipeline.finish`): ``luminance`` recombines the optimised Y with the
  photo's I and Q, ``swap`` keeps the result's luminance and takes the photo's chroma.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import color
from .errors import SettingsError

__all__ = ["ColorPipeline"]

_NEEDS_STYLE = ("histogram", "luminance", "histogram-reverse")


def _gray3(y: torch.Tensor) -> torch.Tensor:
    return y.expand(-1, 3, -1, -1)


@dataclass(frozen=True)
class ColorPipeline:
    """A colour mode and the covariance map its histogram variants use."""

    mode: str = "none"
    match: str = "chol"

    @property
    def channels(self) -> int:
        """Channels of the image being optimised."""
        return 1 if self.mode == "luminance" else 3

    def check(self, has_content: bool, n_styles: int) -> None:
        """Raise :class:`SettingsError` when the mode lacks the inputs it needs."""
        if self.mode != "none" and not has_content:
            raise SettingsError("colour preservation needs a content image")
        if self.mode in _NEEDS_STYLE and n_styles == 0:
            raise SettingsError(f"preserve colors '{self.mode}' needs a style image")

    def prepare(
        self, content: torch.Tensor | None, styles: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """``(content, styles)`` as the network will see them (``(1, 3, H, W)`` each)."""
        styles = list(styles)
        if self.mode == "histogram":
            styles = [color.match_color(s, content, method=self.match) for s in styles]
        elif self.mode == "histogram-reverse":
            content = color.match_color(content, styles[0], method=self.match)
        elif self.mode == "luminance":
            content_y = color.luminance(content)
            styles = [_gray3(color.match_luminance(color.luminance(s), content_y)) for s in styles]
            content = _gray3(content_y)
        return content, styles

    def start(self, image: torch.Tensor) -> torch.Tensor:
        """A ``(1, 3, H, W)`` start image in the optimised channels."""
        return color.luminance(image) if self.channels == 1 else image

    def to_network(self, image: torch.Tensor) -> torch.Tensor:
        """The optimised image as the network's 3-channel RGB (a view for luminance)."""
        return _gray3(image) if self.channels == 1 else image

    def finish(self, image: torch.Tensor, photo: torch.Tensor | None) -> torch.Tensor:
        """The final RGB from the optimised image and the photo at the output size."""
        if self.mode == "luminance":
            return color.combine_luminance(image, photo)
        if self.mode == "swap":
            return color.swap_colors(image, photo)
        return image
