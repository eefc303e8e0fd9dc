"""3x3 convolutions by Winograd's minimal filtering (NNPACK, inside the torch CPU wheel), forward
and backward to the input.

oneDNN's direct fp32 convolutions are what torch runs on a CPU, and on CPUs without AVX-512 they
are the whole cost of an iteration. NNPACK computes the same 3x3, stride 1, padding 1 convolution
with Winograd's F(6x6, 3x3) transform, 2.25x fewer multiplications, and torch ships it but only
calls it for batches of 16 or more. Here it runs for a batch of one, and its backward to the
input is the same kind of convolution (the gradient through a 3x3 convolution is the 3x3
convolution of the gradient with the kernels flipped and their channels swapped), so both passes
of every large layer use it. On an AVX2-only AMD EPYC, 2 threads, VGG19 to relu5_1, an iteration
takes 0.63x the time at 512 px and 0.70x at 1024 px, and the same at 256 px
(``benchmarks/speed.py --convs direct,winograd``); the default 128 -> 512 px run, 0.81x. The
results differ from oneDNN's by about 1e-6 relative per layer.

Where it does not pay, a layer takes torch's own convolution (forward and backward): feature maps
below :data:`MIN_PIXELS` or work below :data:`MIN_WORK` (NNPACK transforms the kernels on every
call and runs on its own thread pool, which small convolutions do not amortise), weights that
need a gradient (training), anything but float32 on the CPU, and a torch thread count other than
the one NNPACK's pool was created with (once, on first use: oversubscribed cores cost more than
Winograd gains).

Memory: NNPACK keeps one workspace per thread for the life of the process, as large as the
largest convolution it ran needed (:func:`workspace_bytes`); :mod:`impasto.memory` counts it.
"""

from __future__ import annotations

import threading

import torch

from ..choices import CONV_ALGORITHMS
from ..errors import SettingsError

__all__ = ["MIN_PIXELS", "MIN_WORK", "available", "conv3x3", "resolve_winograd", "workspace_bytes"]

#: Feature maps smaller than this (H x W) take the direct convolution: measured crossover for
#: 256-512 channels between 32x21 (oneDNN faster) and 64x42 (NNPACK faster).
MIN_PIXELS = 2048
#: ... and so do convolutions with less work than this (H x W x C_in x C_out): in the network,
#: switching between torch's thread pool and NNPACK's costs about what smaller ones gain
#: (VGG19 at 256x170 px: no gain either way; at 384x256, 0.76x the time with this threshold,
#: 0.86x with twice it; measured on 2 threads).
MIN_WORK = 150_000_000
#: NNPACK's F(6x6, 3x3) works on 8x8 input tiles, each giving 6x6 outputs.
TILE_IN, TILE_OUT = 8, 6

_lock = threading.Lock()
_state: dict[str, int | bool | None] = {"available": None, "threads": None}


def available() -> bool:
    """True when this torch has NNPACK and it runs on this CPU (it needs AVX2 on x86)."""
    with _lock:
        if _state["available"] is None:
            _state["available"] = bool(torch._nnpack_available())  # also initialises NNPACK
        return bool(_state["available"])


def resolve_winograd(choice: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the encoder runs by Winograd for the user's ``conv`` choice.

    ``auto``: on the CPU in float32 where NNPACK runs and the CPU lacks AVX-512 (the kind of CPU
    it was measured faster on; with AVX-512, oneDNN's kernels were as fast: the first command in
    fp32 on Zen 5, 104 s by Winograd, 102 s direct); ``direct``: never;
    ``winograd``: always, and an error where it cannot run."""
    if choice not in CONV_ALGORITHMS:
        raise SettingsError(f"conv must be one of {', '.join(CONV_ALGORITHMS)}, got {choice!r}")
    fits = device.type == "cpu" and dtype == torch.float32
    if choice == "winograd":
        if not (fits and available()):
            raise SettingsError(_cannot_run(device, dtype))
        return True
    if choice == "direct" or not fits:
        return False
    return torch.backends.cpu.get_cpu_capability() == "AVX2" and available()


def _cannot_run(device: torch.device, dtype: torch.dtype) -> str:
    """Why ``conv='winograd'`` cannot run here, headed by the setting to change (``conv`` or
    ``precision``; the CLI names its flag)."""
    if device.type != "cpu":
        return f"conv: 'winograd' runs on the CPU only, and this run is on {device.type}"
    if dtype != torch.float32:
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
        return (
            f"precision: {name} cannot run 'winograd' convolutions (fp32 only); give fp32 or "
            "auto"
        )
    return (
        "conv: 'winograd' needs a torch with NNPACK on a CPU it supports (AVX2 on x86), which "
        "this one lacks"
    )


def workspace_bytes(c_in: int, c_out: int, pixels: float) -> float:
    """About what NNPACK's workspace needs for one convolution over ``pixels`` (H x W): the
    transformed input and output tiles in float32 (measured: 611 MB for 64 -> 64 channels at
    1024x682; this gives 635 MB). The backward pass, ``c_out -> c_in``, needs the same."""
    return (c_in + c_out) * 4 * pixels * TILE_IN**2 / TILE_OUT**2


def _threads_match() -> bool:
    with _lock:
        if _state["threads"] is None:
            _state["threads"] = torch.get_num_threads()
        return _state["threads"] == torch.get_num_threads()


def _winograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1])


def _pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    pixels = x.shape[-2] * x.shape[-1]
    work = pixels * weight.shape[0] * weight.shape[1]
    return pixels >= MIN_PIXELS and work >= MIN_WORK and _threads_match()


class _Conv3x3(torch.autograd.Function):
    """A 3x3, stride 1, padding 1 convolution by NNPACK, forward and backward to the input (the
    weights need no gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return _winograd(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        flipped = weight.flip(2, 3).transpose(0, 1).contiguous()
        return _winograd(grad, flipped, None), None, None


def conv3x3(x: torch.Tensor, conv: torch.nn.Conv2d, winograd: bool) -> torch.Tensor:
    """``conv(x)`` for a 3x3, stride 1, padding 1 convolution; by Winograd where ``winograd`` is
    true and it pays (see the module docstring), else oneDNN's direct convolution."""
    w = conv.weight
    fits = x.dtype == torch.float32 and x.device.type == "cpu" and not w.requires_grad
    if winograd and fits and available() and _pays(x, w):
        return _Conv3x3.apply(x, w, conv.bias)
    return conv(x)  # torch's own backward: faster than a direct convolution of the gradient
