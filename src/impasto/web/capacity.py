"""What this server's memory allows on each device: its budget, the largest size a job can run
within it, and the check that refuses a job that would not fit.

The budget on a device is ``max_memory`` (:attr:`WebConfig.max_memory`, ``impasto serve
--max-memory``) or, by default, what the device has: :func:`impasto.memory.device_budget`, the
engine's own choice. A job is checked on the device it names (``settings.device``,
:meth:`ServerMemory.on`), its final scale planned by :func:`impasto.pyramid.canvas_memory`, as
the engine will plan it: the whole image when it fits, else exact tiles, so sizes far above the
whole-image limit fit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from ..color_pipeline import ColorPipeline
from ..devices import resolve_device, resolve_dtype
from ..encoder.winograd import resolve_winograd
from ..errors import SettingsError
from ..memory import BASE_BYTES, MemoryPlan, device_budget, format_bytes
from ..pyramid import canvas_memory
from ..schedule import scales_of
from ..settings import MAX_SIZE, MIN_SIZE, Settings

__all__ = [
    "Capacity",
    "ServerMemory",
    "server_capacity",
    "job_budget",
    "plan_job_memory",
    "largest_size",
    "check_memory",
]


@dataclass(frozen=True)
class Capacity:
    """The server's memory budget on one device and what it allows.

    Attributes:
        budget: bytes a job may use.
        source: where the budget comes from (``max_memory`` or the device's memory).
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


def _dtype(settings: Settings, device: torch.device) -> torch.dtype:
    try:
        return resolve_dtype(settings.network_precision, device)
    except SettingsError:  # e.g. fp16 on a CPU: the engine reports it when the job runs
        return torch.float32


def _winograd(settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
    try:
        return resolve_winograd(settings.conv, device, dtype)
    except SettingsError:  # the engine reports it when the job runs
        return False


def job_budget(own: int | None, server: int) -> int:
    """The memory budget a job runs within: the server's, or the job's own ``max_memory`` when
    that is lower (a job may only lower its budget)."""
    return min(own or server, server)


def plan_job_memory(
    settings: Settings, size: tuple[int, int], budget: int, device: torch.device
) -> MemoryPlan:
    """The engine's memory plan (:func:`impasto.pyramid.canvas_memory`) for a ``(width,
    height)`` scale of a job with ``settings`` on ``device``, within the server's ``budget`` (or
    the job's own ``max_memory`` when lower).

    Raises:
        SettingsError: nothing fits the budget (one line).
    """
    s, dtype = settings, _dtype(settings, device)
    return canvas_memory(
        s,
        size,
        job_budget(s.max_memory, budget),
        dtype=dtype,
        winograd=_winograd(s, device, dtype),
        image_channels=ColorPipeline(s.preserve_colors, s.color_match).channels,
    )


def _fits(settings: Settings, side: int, budget: int, device: torch.device) -> bool:
    try:
        plan_job_memory(settings, (side, side), budget, device)
    except SettingsError:
        return False
    return True


def largest_size(settings: Settings, budget: int, device: torch.device) -> int:
    """The largest long side (px, at most :data:`~impasto.settings.MAX_SIZE`) of a square job with
    ``settings`` on ``device`` that fits ``budget``; 0 when not even
    :data:`~impasto.settings.MIN_SIZE` does (bisection: the need grows with the side)."""
    if not _fits(settings, MIN_SIZE, budget, device):
        return 0
    lo, hi = MIN_SIZE, MAX_SIZE
    if _fits(settings, hi, budget, device):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _fits(settings, mid, budget, device) else (lo, mid)
    return lo


def server_capacity(max_memory: int | None, max_size: int | None, device: torch.device) -> Capacity:
    """The capacity on ``device`` of a server with ``--max-memory`` (None: what the device has)
    and ``--max-size`` (None: no cap beyond memory).

    Raises:
        SettingsError: the budget leaves no room for any job.
    """
    budget, source = device_budget(max_memory, device)
    by_memory = largest_size(Settings(), budget, device)
    if by_memory < MIN_SIZE:  # the server started, and refused every job
        raise SettingsError(
            f"a memory budget of {format_bytes(budget)} ({source}) leaves no room for any job: "
            f"the process itself is counted as ~{format_bytes(BASE_BYTES)}"
        )
    cap = by_memory if max_size is None else min(max_size, by_memory)
    return Capacity(budget, source, device.type, by_memory, cap)


class ServerMemory:
    """The server's :class:`Capacity` on each device its jobs name, each worked out on first use
    and kept (a GPU's free memory is read once, not while the server's own jobs use it).

    Args:
        max_memory: ``--max-memory`` in bytes (None: what each device has).
        max_size: ``--max-size`` (None: no cap beyond memory).

    Raises:
        SettingsError: the default device's budget leaves no room for any job.
    """

    def __init__(self, max_memory: int | None, max_size: int | None) -> None:
        self.max_memory, self.max_size = max_memory, max_size
        self._caps: dict[str, Capacity] = {}
        self._lock = threading.Lock()
        self.default = self.on("auto")

    def on(self, device_name: str) -> Capacity:
        """The capacity on the device ``device_name`` (``auto``, ``cpu``, ...) resolves to.

        Raises:
            SettingsError: no such device here, or its budget leaves no room for any job.
        """
        device = resolve_device(device_name)
        with self._lock:
            if device.type not in self._caps:
                self._caps[device.type] = server_capacity(self.max_memory, self.max_size, device)
            return self._caps[device.type]


def final_size(settings: Settings, aspect: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of what a job optimises at full size (the image and its margin)."""
    return scales_of(settings, aspect)[-1].canvas


def check_memory(settings: Settings, aspect: tuple[int, int], cap: Capacity) -> MemoryPlan:
    """Refuse a job above the server's size limit or whose full-size scale does not fit the
    budget of ``cap``, the server's capacity on the job's device (:meth:`ServerMemory.on`);
    returns its memory plan.

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
        return plan_job_memory(settings, (w, h), cap.budget, torch.device(cap.device))
    except SettingsError:
        if job_budget(settings.max_memory, cap.budget) < cap.budget:  # the job's own budget
            raise  # names the setting to change: max_memory, or size (or tile) for this budget
        raise SettingsError(
            f"size: a {w}x{h} image with these settings does not fit this server's memory "
            f"budget ({budget}); the largest for the defaults is {cap.max_size} px"
        ) from None
