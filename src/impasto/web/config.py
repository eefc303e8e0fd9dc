"""The web studio's configuration: limits, data directory and the host names it answers to."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WebConfig", "LOOPBACK_HOSTS", "is_loopback"]

# Host header names a loopback-bound server answers to (IPv6 literals keep their brackets, as
# Starlette's TrustedHostMiddleware compares them).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebConfig:
    """Server configuration.

    Attributes:
        data_dir: where jobs (SQLite) and images (files) persist.
        max_upload_bytes: largest accepted upload in bytes (25 MiB; ``impasto serve
            --max-upload-mb`` counts MiB; the whole request body may exceed it by 64 KiB of form
            overhead).
        max_pixels: largest accepted upload in pixels (checked on the header, before decoding).
        max_size: largest output long side a job may ask for, an explicit cap; None (the
            default): what the memory budget allows (:mod:`impasto.web.capacity`), which caps
            it anyway.
        max_iterations: largest number of iterations of a job, summed over its pyramid scales.
        max_work: largest work of a job in megapixel-iterations: the sum over its scales of
            iterations x pixels (a 512 x 384 image for 200 iterations is 39).
        preview_every: preview PNG every this many iterations (and on the first and last).
        allowed_hosts: Host header values answered (DNS-rebinding guard); ``None`` answers any.
            The default suits a server bound to loopback.
        run_jobs: start the workers with the app; False keeps every job queued (API tests).
        weights: VGG19 weights file every job uses (the server operator's choice; clients cannot
            choose one); None: the engine's default weights.
        max_memory: memory budget in bytes of every job (its tiles and optimiser state are
            planned within it); None: what the machine has
            (:func:`impasto.memory.available_memory`).
    """

    data_dir: Path
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_size: int | None = None
    max_iterations: int = 10_000
    max_work: float = 20_000.0
    preview_every: int = 5
    allowed_hosts: tuple[str, ...] | None = field(default=LOOPBACK_HOSTS)
    run_jobs: bool = True
    weights: str | None = None
    max_memory: int | None = None
