"""impasto candidates: in-process runs built from the engine's pieces, with the levers of issue 10.

A :class:`Candidate` names one setting of every lever the issue asks to measure: loss scale
(``paper`` raw alpha/beta, or ``normalized`` relative errors, :mod:`impasto.balance`) and style
strength, start image, pooling, the pyramid (fractions of the output's long side and iterations at
each), the optimiser per scale (L-BFGS or Adam), Adam state carried across scales, an exponential
moving average (EMA) of the iterate (style-transfer-pytorch's iterate averaging), total variation,
and the painting's scale relative to the output.

The loop is the product's (:class:`impasto.optimise.Descent`: torch's L-BFGS with one evaluation
per iteration, the objective divided by its first value, or Adam with clamping; iterate
averaging); the pyramid is written here so that the levers the product does not have (Adam state
across scales, an optimiser per scale, the margin) can be tried without touching it. Timing is
wall time with the device synchronised at both ends; nothing in the loop syncs with the host
except L-BFGS's own checks (and the product loop's finiteness check).

    cand = Candidate("strength 30", style_weight=30.0)   # the product's defaults but one
    image, seconds = run_candidate(cand, "photo.jpg", "painting.jpg", size=256, device="cuda")
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from impasto import balance  # noqa: E402
from impasto.devices import resolve_device, resolve_dtype  # noqa: E402
from impasto.encoder import load_encoder  # noqa: E402
from impasto.image import crop_edges, fit_long_side, load_image, pad_edges, resize  # noqa: E402
from impasto.layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS  # noqa: E402
from impasto.objective import Objective, compute_targets  # noqa: E402
from impasto.optimise import Descent  # noqa: E402
from impasto.pyramid import carry  # noqa: E402
from impasto.schedule import Scale, scales_of  # noqa: E402
from impasto.settings import Settings  # noqa: E402

__all__ = ["Candidate", "run_candidate", "sync", "NOISE_MEAN", "NOISE_STD"]

NOISE_MEAN, NOISE_STD = 0.5, 0.2  # as impasto.api's noise start

_DEFAULTS = Settings()


@dataclass(frozen=True)
class Candidate:
    """One impasto configuration (see the module docstring for each lever); every default is
    the product's (:class:`impasto.Settings`)."""

    name: str
    loss_scale: str = _DEFAULTS.loss_scale
    content_weight: float = _DEFAULTS.content_weight
    style_weight: float | None = None  # default: the loss scale's (Settings.beta)
    init: str = _DEFAULTS.init  # "content" or "noise"
    pooling: str = _DEFAULTS.pooling
    #: (fraction of the output's long side, iterations) per scale, coarse to fine; None: the
    #: product's schedule at the run's size
    pyramid: tuple[tuple[float, int], ...] | None = None
    iterations_factor: float = 1.0  # every scale's iterations times this (smoke tests: < 1)
    optimizers: tuple[str, ...] = (_DEFAULTS.optimizer,)  # per scale; the last entry repeats
    final_optimizer: str | None = None  # the full-size scale's, whatever the pyramid's depth
    lr: float | None = None  # default: 1 for L-BFGS, 0.02 for Adam
    history: int = _DEFAULTS.lbfgs_history
    ema: float = _DEFAULTS.ema_decay  # decay of the iterate average (0: off)
    carry_adam: bool = False  # Adam moments resized to the next scale
    tv_weight: float | None = None  # default: the loss scale's (Settings.tv)
    style_scale: float = _DEFAULTS.style_scale
    precision: str = _DEFAULTS.precision
    #: the product's margin (Settings.margin): pixels of canvas on every side at every scale
    #: (the photo mirrored into it), cropped at the end
    margin: int = _DEFAULTS.margin

    def replace(self, **changes) -> Candidate:
        return dataclasses.replace(self, **changes)

    def optimizer_at(self, k: int, scales: int) -> str:
        """The optimiser of scale ``k`` of ``scales``."""
        if self.final_optimizer is not None and k == scales - 1:
            return self.final_optimizer
        return self.optimizers[min(k, len(self.optimizers) - 1)]

    def schedule(self, size: int) -> tuple[tuple[float, int], ...]:
        """(fraction of the long side, iterations) per scale for an output of ``size`` px."""
        if self.pyramid is None:
            scales = scales_of(Settings(size=size), (size, size))
            pyramid = tuple((sc.size[0] / size, sc.iterations) for sc in scales)
        else:
            pyramid = self.pyramid
        return tuple((fr, max(1, round(n * self.iterations_factor))) for fr, n in pyramid)

    @property
    def beta(self) -> float:
        """The style weight in use."""
        return Settings(loss_scale=self.loss_scale, style_weight=self.style_weight).beta

    @property
    def tv(self) -> float:
        """The total-variation weight in use (normalized: per pixel value; paper: raw)."""
        return Settings(loss_scale=self.loss_scale, tv_weight=self.tv_weight).tv


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA) so wall times include its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_ENCODERS: dict = {}


def _encoder(pooling: str, device: torch.device, dtype: torch.dtype):
    key = (pooling, str(device), dtype)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_encoder(pooling, device=device, dtype=dtype, last="relu5_1")
    return _ENCODERS[key]


def _adam_state_for(state: dict, x: torch.Tensor) -> dict:
    """Adam's moments from the previous scale, resized to ``x``'s."""
    wh = (x.shape[-1], x.shape[-2])
    return {
        "step": state["step"].clone(),
        "exp_avg": resize(state["exp_avg"], wh),
        "exp_avg_sq": resize(state["exp_avg_sq"], wh).clamp_(min=0),
    }


def _minimise(x0, objective, iterations, optimizer, lr, history, ema, adam_state, graph=False):
    """The product's loop (:class:`impasto.optimise.Descent`, iterate averaging included) plus
    Adam's state carried from the previous scale.

    ``graph``: plain L-BFGS on CUDA runs :func:`benchmarks.fastloop.minimise_graphed` instead
    (the same iterates, captured in a CUDA graph).

    Returns ``(image, adam_state)``: the EMA when ``ema`` > 0, else the last iterate, clamped.
    """
    if graph and optimizer == "lbfgs" and ema == 0 and x0.device.type == "cuda":
        from benchmarks.fastloop import minimise_graphed

        return minimise_graphed(x0, objective, iterations, history, lr), None
    d = Descent(x0, objective, optimizer=optimizer, lr=lr, history_size=history, ema_decay=ema)
    if adam_state is not None and optimizer == "adam":
        d.opt.state[d.x] = _adam_state_for(adam_state, d.x)
    for _ in range(iterations):
        d.step()
    state = d.opt.state.get(d.x) if optimizer == "adam" else None
    return d.result(), state


def _style_at(rgb: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """The painting with its long side ``scale`` x the output's (as impasto.api does)."""
    sw, sh = rgb.shape[-1], rgb.shape[-2]
    side = max(16, round(max(size) * scale))
    return resize(rgb, fit_long_side((sw, sh), side))


def run_candidate(
    cand: Candidate,
    content: str | Path,
    style: str | Path,
    *,
    size: int,
    device: str = "auto",
    seed: int = 0,
    graph: bool = False,
) -> tuple[torch.Tensor, float]:
    """Run ``cand`` on one pair. Returns ``((1, 3, H, W) CPU image in [0, 1], wall seconds)``.

    The time covers everything after decoding the two files: resizing, targets at every scale,
    the optimisation, with the device synchronised at the start and the end. ``graph``: plain
    L-BFGS scales run in a CUDA graph (:mod:`benchmarks.fastloop`) on CUDA.
    """
    dev = resolve_device(device)
    dtype = resolve_dtype(cand.precision, dev)
    enc = _encoder(cand.pooling, dev, dtype)
    photo, painting = load_image(content).rgb, load_image(style).rgb
    c_layers = {k: 1.0 / len(DEFAULT_CONTENT_LAYERS) for k in DEFAULT_CONTENT_LAYERS}
    s_layers = {k: 1.0 / len(DEFAULT_STYLE_LAYERS) for k in DEFAULT_STYLE_LAYERS}
    final = fit_long_side((photo.shape[-1], photo.shape[-2]), size)
    sync(dev)
    t0 = time.perf_counter()
    x, adam_state, prev = None, None, None
    pyramid = cand.schedule(size)
    for k, (frac, iterations) in enumerate(pyramid):
        wh = final if k == len(pyramid) - 1 else fit_long_side(final, round(size * frac))
        scale = Scale(wh, iterations, cand.margin)
        c_s = pad_edges(resize(photo, wh), cand.margin).to(dev)
        st = _style_at(painting, cand.style_scale, wh).to(dev)
        targets = compute_targets(enc, c_s, tuple(c_layers), [st], tuple(s_layers))
        cw, sw = balance.layer_weights(targets, cand.loss_scale, c_layers, s_layers)
        alpha = cand.content_weight * balance.content_area_factor(cand.loss_scale, final, wh)
        tv = cand.tv * balance.tv_factor(cand.loss_scale, scale.canvas)
        objective = Objective(enc, targets, alpha, cand.beta, cw, sw, tv)
        if x is None:
            if cand.init == "noise":
                g = torch.Generator().manual_seed(seed)
                shape = (1, 3, wh[1], wh[0])
                x = (torch.randn(shape, generator=g) * NOISE_STD + NOISE_MEAN).clamp(0, 1)
                x = pad_edges(x, cand.margin)
            else:
                x = c_s.detach().cpu()
            x = x.to(dev)
        else:
            x = carry(x, prev, scale)
        prev = scale
        opt = cand.optimizer_at(k, len(pyramid))
        lr = cand.lr or Settings(optimizer=opt).lr
        moments = adam_state if (cand.carry_adam and opt == "adam") else None
        x, adam_state = _minimise(
            x, objective, iterations, opt, lr, cand.history, cand.ema, moments, graph
        )
    sync(dev)
    x = crop_edges(x, cand.margin)
    return x.float().cpu(), time.perf_counter() - t0
