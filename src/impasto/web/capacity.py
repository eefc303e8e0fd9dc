"""What this server's memory allows: its budget, the largest size a job can run within it, and
the check that refuses a job that would not fit.

The budget is ``--max-memory`` (:attr:`WebConfig.max_memory`) or, by default, what the machine
has (:func:`impasto.memory.available_memory` for the server's default device). A job's final
scale is planned with :func:`impasto.memory.plan_memory`, as the engine will plan it: the whole
image when it fits, else exact tiles, so sizes far above the whole-image limit fit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import SettingsError
from ..memory import BASE_BYTES, MemoryPlan, available_memory, format_bytes, plan_memory
from ..schedule import scales_of
from ..settings import MAX_SIZE, MIN_SIZE, Settings
from ..tiles import alignment, required_halo

__all__ = [
    "Capacity",
    "server_capacity",
    "job_budget",
    "plan_job_memory",
    "largest_size",
    "check_memory",
]


@dataclass(frozen=True)
class Capacity:
    """The server's memory budget and what it allows.

    Attributes:
        budget: bytes a job may use.
        source: where the budget comes from (``--max-memory`` or the machine).
        device: the device type the budget is for (``cpu``, ``cuda``, ``mps``).
        memory_max_size: the largest long side a default job (square) runs within the budget.
        max_size: the largest size offered and accepted: ``memory_max_size``, capped by
            ``--max-size`` when given.
    """

    budget: int
    source: str
    device: str
    memory_max_size: int
    max_size: int


@functools.lru_cache(maxsize=4)
def _device(name: str):
    from ..devices import resolve_device

    return resolve_device(name)


def _dtype(settings: Settings, device):
    import torch

    from ..devices import resolve_dtype

    try:
        return resolve_dtype(settings.precision, device)
    except SettingsError:  # e.g. fp16 on a CPU: the engine reports it when the job runs
        return torch.float32


def _winograd(settings: Settings, device, dtype) -> bool:
    from ..encoder.winograd import resolve_winograd

    try:
        return resolve_winograd(settings.conv, device, dtype)
    except SettingsError:  # the engine reports it when the job runs
        return False


def job_budget(own: int | None, server: int) -> int:
    """The memory budget a job runs within: the server's, or the job's own ``max_memory`` when
    that is lower (a job may only lower its budget)."""
    return min(own or server, server)


def plan_job_memory(
    settings: Settings, size: tuple[int, int], budget: int, device_name: str = "auto"
) -> MemoryPlan:
    """The engine's memory plan for a ``(width, height)`` scale of a job with ``settings``.

    Raises:
        SettingsError: nothing fits ``budget`` (one line).
    """
    s, (w, h) = settings, size
    device = _device(device_name)
    layers = tuple(dict.fromkeys([*s.content_layers, *s.style_layers]))
    forced = s.tile if s.tile and max(w, h) > s.tile else None
    dtype = _dtype(s, device)
    return plan_memory(
        (h, w),
        layers=layers,
        content_layers=s.content_layers,
        pooling=s.pooling,
        dtype=dtype,
        winograd=_winograd(s, device, dtype),
        optimizer=s.optimizer,
        history=s.lbfgs_history,
        budget=job_budget(s.max_memory, budget),
        halo=required_halo(layers),
        align=alignment(layers),
        image_channels=1 if s.preserve_colors == "luminance" else 3,
        tile=forced,
    )


def _fits(settings: Settings, side: int, budget: int, device_name: str) -> bool:
    try:
        plan_job_memory(settings, (side, side), budget, device_name)
    except SettingsError:
        return False
    return True


def largest_size(settings: Settings, budget: int, device_name: str = "auto") -> int:
    """The largest long side (px, at most :data:`~impasto.settings.MAX_SIZE`) of a square job with
    ``settings`` that fits ``budget``; 0 when not even :data:`~impasto.settings.MIN_SIZE` does
    (bisection: the need grows with the side)."""
    if not _fits(settings, MIN_SIZE, budget, device_name):
        return 0
    lo, hi = MIN_SIZE, MAX_SIZE
    if _fits(settings, hi, budget, device_name):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _fits(settings, mid, budget, device_name) else (lo, mid)
    return lo


def server_capacity(max_memory: int | None, max_size: int | None) -> Capacity:
    """The capacity of a server with ``--max-memory`` (None: what the machine has) and
    ``--max-size`` (None: no cap beyond memory)."""
    device = _device("auto")
    if max_memory:
        budget, source = max_memory, "--max-memory"
    else:
        budget, source = available_memory(device)
    by_memory = largest_size(Settings(), budget)
    if by_memory < MIN_SIZE:  # the server started, and refused every job
        raise SettingsError(
            f"a memory budget of {format_bytes(budget)} ({source}) leaves no room for any job: "
            f"the process itself is counted as ~{format_bytes(BASE_BYTES)}"
        )
    cap = by_memory if max_size is None else min(max_size, by_memory)
    return Capacity(budget, source, device.type, by_memory, cap)


def final_size(settings: Settings, aspect: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of what a job optimises at full size (the image and its margin)."""
    return scales_of(settings, aspect)[-1].canvas


def check_memory(settings: Settings, aspect: tuple[int, int], cap: Capacity) -> MemoryPlan:
    """Refuse a job above the server's size limit or whose full-size scale does not fit the
    budget; returns its memory plan.

    Raises:
        SettingsError: one line naming the limit.
    """
    budget = format_bytes(cap.budget)
    if settings.size > cap.max_size:
        raise SettingsError(
            f"size: at most {cap.max_size} px on this server (memory budget {budget}); "
            f"got {settings.size}"
        )
    w, h = final_size(settings, aspect)
    try:
        return plan_job_memory(settings, (w, h), cap.budget)
    except SettingsError as exc:
        if job_budget(settings.max_memory, cap.budget) < cap.budget:  # the job's own budget
            text = str(exc).replace("--max-memory", "max_memory")
            raise SettingsError(f"max_memory: {text}") from None
        raise SettingsError(
            f"size: a {w}x{h} image with these settings does not fit this server's memory "
            f"budget ({budget}); the largest for the defaults is {cap.max_size} px"
        ) from None
