"""Guide maths for spatial control (Gatys et al. 2017, section 4): resizing, feathering, the
background guide, and carrying a guide down to each VGG layer's resolution.

Pure tensor functions; guides are ``(N, 1, H, W)`` float tensors in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .choices import PROPAGATIONS
from .errors import ImageError, SettingsError
from .layers import LAYER_NAMES, check_layers, deepest, layer_stride

__all__ = ["resize_guide", "feather_guide", "background_guide", "propagate_guide"]



def resize_guide(guide: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(1, 1, H, W)`` guide to ``size = (w, h)`` (antialiased bilinear, clipped)."""
    w, h = size
    if tuple(guide.shape[-2:]) == (h, w):
        return guide
    out = F.interpolate(guide, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0.0, 1.0)


def feather_guide(guide: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a ``(N, 1, H, W)`` guide with standard deviation ``sigma`` pixels.

    Separable, kernel radius ``ceil(3 sigma)``, edge pixels replicated; ``sigma < 0.3`` returns
    the guide unchanged. Linear, so guides that sum to 1 still do.
    """
    if sigma < 0.3:
        return guide
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=guide.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(guide.dtype)
    out = F.pad(guide, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, k.view(1, 1, -1, 1)).clamp(0.0, 1.0)


def background_guide(guides: Sequence[torch.Tensor]) -> torch.Tensor:
    """What no region covers: ``clip(1 - sum_r T_r, 0, 1)``."""
    total = torch.stack(list(guides)).sum(dim=0)
    return (1.0 - total).clamp(0.0, 1.0)


def propagate_guide(
    guide: torch.Tensor, layers: Sequence[str], method: str = "area"
) -> dict[str, torch.Tensor]:
    """Carry a ``(N, 1, H, W)`` guide at the input's size down to each layer's feature size.

    Args:
        guide: the guide at the image's size.
        layers: VGG19 layer names.
        method: ``"area"``: average over each layer's stride (2x2 average pooling per pooling
            layer, positions dropped by VGG's floor pooling dropped here too). ``"inside"``:
            erode with the receptive field (3x3 min-filter per convolution, 2x2 min-pooling per
            pooling layer), so a position counts as inside only if all of its receptive field is
            (Gatys et al. 2017, section 4).

    Returns:
        ``{layer: (N, 1, H // stride, W // stride)}``.
    """
    layers = tuple(layers)
    check_layers(layers)
    if method not in PROPAGATIONS:
        raise SettingsError(f"guide propagation must be one of {', '.join(PROPAGATIONS)}")
    out: dict[str, torch.Tensor] = {}
    if not layers:
        return out
    h, w = guide.shape[-2:]
    if method == "area":
        for name in layers:
            s = layer_stride(name)
            hl, wl = h // s, w // s
            if hl < 1 or wl < 1:
                raise ImageError(f"guide of {w}x{h} px is too small for layer {name}")
            g = guide[..., : hl * s, : wl * s]
            out[name] = F.avg_pool2d(g, s) if s > 1 else g
        return out
    wanted = set(layers)
    g = guide
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest(layers)) + 1]:
        if name.startswith("conv"):
            g = -F.max_pool2d(-g, 3, stride=1, padding=1)
        elif name.startswith("pool"):
            g = -F.max_pool2d(-g, 2, stride=2)
        if name in wanted:
            out[name] = g
    return out
