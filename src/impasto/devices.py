"""Resolve the user's device and precision choices (``auto`` included) once, at the API boundary.

Nothing below the API picks a device: modules receive ``torch.device`` and ``torch.dtype``.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from .choices import DEVICES, PRECISIONS
from .errors import SettingsError

__all__ = [
    "resolve_device",
    "resolve_dtype",
    "cpu_has_fast_bf16",
    "available_devices",
    "cpu_name",
]


def _mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> tuple[str, ...]:
    """The device choices that work on this machine (``auto`` and ``cpu`` always do)."""
    have = {"auto": True, "cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps()}
    return tuple(d for d in DEVICES if have[d])


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if present, else MPS if present, else CPU. Asking for an absent
    accelerator is a :class:`SettingsError`."""
    cuda, mps = torch.cuda.is_available(), _mps()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise SettingsError("device 'cuda' requested but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise SettingsError("device 'mps' requested but Apple MPS is not available")
    if name not in DEVICES:
        raise SettingsError(f"unknown device {name!r}; use {', '.join(DEVICES)}")
    return torch.device(name)


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for reports such as the benchmarks'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        caps = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        return False
    if caps not in ("AVX512", "AVX512_BF16", "AMX"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # non-Linux: trust oneDNN's capability report only for AMX
        return caps == "AMX"
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The network's arithmetic dtype for ``precision`` on ``device``.

    ``auto``: bf16 on CUDA GPUs that support it and on CPUs with native bf16; fp16 on MPS;
    float32 elsewhere. Losses, Gram matrices and the image itself always stay float32.
    """
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in table:
        if precision == "fp16" and device.type == "cpu":
            raise SettingsError("fp16 is not supported on the CPU; use bf16 or fp32")
        return table[precision]
    if precision != "auto":
        raise SettingsError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
