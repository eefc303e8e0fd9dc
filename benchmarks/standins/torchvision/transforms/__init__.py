"""The few ``torchvision.transforms`` classes that neural-style-pt 0.5.7 uses.

Semantics follow torchvision for the inputs neural_style passes:

* ``Resize(size)`` on a PIL image: a ``(h, w)`` pair resizes to exactly that size; an int sets
  the SHORTER side to ``size`` and the longer to ``int(size * long / short)``. Interpolation is
  bilinear (torchvision's default), done by Pillow as torchvision does for PIL images; an image
  already at the requested size is returned unchanged.
* ``ToTensor()`` on a PIL image: float32 ``(C, H, W)`` in ``[0, 1]`` (uint8 / 255).
* ``Normalize(mean, std)``: ``(x - mean) / std`` per channel, returning a new tensor.
* ``ToPILImage()`` on a float ``(C, H, W)`` tensor: ``x.mul(255).byte()`` (truncation, as in
  torchvision), then an ``L``/``RGB``/``RGBA`` image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["Compose", "Lambda", "Normalize", "Resize", "ToPILImage", "ToTensor"]


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, lambd: Callable[[Any], Any]):
        if not callable(lambd):
            raise TypeError(f"argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)


def _output_size(width: int, height: int, size: int | Sequence[int]) -> tuple[int, int]:
    """(width, height) after ``Resize(size)``, as torchvision computes it."""
    if isinstance(size, int) or len(size) == 1:
        requested = size if isinstance(size, int) else int(size[0])
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = requested, int(requested * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    if len(size) != 2:
        raise ValueError(f"size must be an int or a (h, w) pair, got {size!r}")
    return int(size[1]), int(size[0])


class Resize:
    """Resize a PIL image (bilinear by default); see the module docstring for ``size``."""

    def __init__(self, size: int | Sequence[int], interpolation: int = Image.BILINEAR):
        self.size = size
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        if not isinstance(img, Image.Image):
            raise TypeError("this stand-in Resize only accepts PIL images")
        new = _output_size(img.width, img.height, self.size)
        if new == img.size:
            return img
        return img.resize(new, self.interpolation)


class ToTensor:
    """PIL image (or HWC uint8 array) to a float32 CHW tensor in [0, 1]."""

    def __call__(self, pic: Image.Image | np.ndarray) -> torch.Tensor:
        arr = np.array(pic, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
        if t.dtype == torch.uint8:
            return t.to(torch.float32).div(255)
        return t.to(torch.float32)


class Normalize:
    """``(tensor - mean) / std`` per channel of a (C, H, W) or (B, C, H, W) float tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = list(mean)
        self.std = list(std)
        self.inplace = inplace

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point():
            raise TypeError(f"input tensor should be a float tensor, got {tensor.dtype}")
        if not self.inplace:
            tensor = tensor.clone()
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)


class ToPILImage:
    """Float (C, H, W) tensor in [0, 1] (or uint8) to a PIL image; floats are truncated."""

    def __call__(self, pic: torch.Tensor) -> Image.Image:
        if pic.ndim == 2:
            pic = pic.unsqueeze(0)
        if pic.ndim != 3:
            raise ValueError(f"pic should be 2 or 3 dimensional, got {pic.ndim} dimensions")
        if pic.is_floating_point():
            pic = pic.mul(255).byte()
        arr = pic.detach().cpu().permute(1, 2, 0).numpy()
        channels = arr.shape[2]
        if arr.dtype != np.uint8 or channels not in (1, 3, 4):
            raise TypeError(f"unsupported image: {channels} channels of {arr.dtype}")
        # Pillow infers L / RGB / RGBA from the uint8 array's shape.
        return Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if channels == 1 else arr))
