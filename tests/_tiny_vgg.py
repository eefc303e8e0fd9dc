"""A VGG19-shaped encoder with few channels and random weights, for tests that need the network's
structure (layers, strides, receptive fields) but not its trained weights: it runs in
milliseconds. Built through the public constructors; the architecture comes from the shapes."""

from __future__ import annotations

import torch

from impasto.encoder import VGGEncoder, WeightSpec
from impasto.encoder.arch import VGG_BLOCKS, arch_from_blocks

SPEC = WeightSpec(bgr=False, scale=1.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def tiny_state_dict(
    width: float = 1 / 32, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """He-initialised VGG19 convolutions with ``width`` x the usual channels (2 ... 16)."""
    arch = arch_from_blocks(VGG_BLOCKS["vgg19"], width)
    g = torch.Generator().manual_seed(seed)
    sd, in_ch = {}, 3
    for name, out_ch in zip(arch.conv_names, arch.channels):
        std = (2.0 / (9 * in_ch)) ** 0.5
        sd[f"{name}.weight"] = (torch.randn(out_ch, in_ch, 3, 3, generator=g) * std).to(dtype)
        sd[f"{name}.bias"] = (torch.rand(out_ch, generator=g) * 0.1).to(dtype)
        in_ch = out_ch
    return sd


def tiny_encoder(
    pooling: str = "avg",
    dtype: torch.dtype = torch.float32,
    last: str | None = "relu5_1",
    seed: int = 0,
) -> VGGEncoder:
    """A frozen tiny VGG19 encoder in ``dtype`` (float64 for exactness checks)."""
    return VGGEncoder(tiny_state_dict(seed=seed), SPEC, pooling, last=last).to(dtype)


STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu2_1", "relu4_2")


def tiny_objective(
    size: tuple[int, int],
    *,
    pooling: str = "avg",
    dtype: torch.dtype = torch.float32,
    propagation: str = "area",
    tv_weight: float = 1.0,
    seed: int = 0,
):
    """An objective with everything the engine can ask of it: content at two layers, two blended
    paintings (the second covering only some layers), a soft region with its own painting, per
    layer weights and TV. Returns ``(objective, encoder)``."""
    from impasto.objective import Objective, RegionInput, compute_targets

    enc = tiny_encoder(pooling, dtype, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    h, w = size

    def img(hh: int, ww: int) -> torch.Tensor:
        return torch.rand(1, 3, hh, ww, generator=g).to(dtype)

    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    guide = ((xx + 0.5 * yy - 0.6) * 4).clamp(0, 1)[None, None].to(dtype)
    targets = compute_targets(
        enc,
        img(h, w),
        CONTENT_LAYERS,
        [img(96, 80), img(64, 112)],
        STYLE_LAYERS,
        [0.3, 0.7],
        style_layer_sets=[None, ("relu1_1", "relu3_1", "relu5_1")],
        regions=[RegionInput(guide, [img(80, 80)], weight=2.0)],
        propagation=propagation,
    )
    objective = Objective(
        enc,
        targets,
        content_weight=1e-2,
        style_weight=1e4,
        content_layer_weights={"relu2_1": 0.25, "relu4_2": 0.75},
        style_layer_weights=dict(zip(STYLE_LAYERS, (0.1, 0.3, 0.2, 0.25, 0.15))),
        tv_weight=tv_weight,
    )
    return objective, enc
