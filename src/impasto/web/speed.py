"""Time estimates from the engine's measured speed on this machine.

Work is counted in megapixel-iterations (the sum over a job's scales of iterations x pixels,
:func:`impasto.web.limits.job_work`). Each finished job of at least ``min_work`` updates a
running seconds-per-unit figure per device (exponential smoothing), persisted as JSON in the data
directory; until a device has one, a conservative default is used.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ..atomic import atomic_file

__all__ = ["SpeedMeter", "DEFAULT_SECONDS_PER_WORK", "START_SECONDS"]

# Seconds per megapixel-iteration before anything is measured: above the README's measurements
# (fp32 on a 2-core CPU: 5-7 s), so a first estimate errs long.
DEFAULT_SECONDS_PER_WORK = {"cpu": 8.0, "mps": 2.0, "cuda": 0.3}
# Start-up of a job (network, image decoding, targets) added to every estimate.
START_SECONDS = 3.0


class SpeedMeter:
    """Seconds per megapixel-iteration per device, learnt from finished jobs.

    Args:
        path: JSON file that keeps the figures across restarts (None: memory only).
        min_work: jobs smaller than this (megapixel-iterations) teach nothing (start-up
            dominates them).
        smoothing: weight of the newest job in the running figure.
    """

    def __init__(self, path: Path | None, *, min_work: float = 2.0, smoothing: float = 0.3):
        self.path = path
        self.min_work = min_work
        self.smoothing = smoothing
        self._lock = threading.Lock()
        self._rates: dict[str, dict[str, float]] = self._read()

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text()) if self.path is not None else {}
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            k: v
            for k, v in data.items()
            if isinstance(v, dict) and isinstance(v.get("seconds_per_work"), (int, float))
        }

    def _write(self) -> None:
        if self.path is None:
            return
        with atomic_file(self.path, "w") as fh:
            json.dump(self._rates, fh)

    def seconds_per_work(self, device: str) -> tuple[float, bool]:
        """(seconds per megapixel-iteration, whether it was measured here) for ``device``."""
        with self._lock:
            entry = self._rates.get(device)
        if entry is not None:
            return float(entry["seconds_per_work"]), True
        return DEFAULT_SECONDS_PER_WORK.get(device, DEFAULT_SECONDS_PER_WORK["cpu"]), False

    def estimate(self, device: str, work: float, jobs: int = 1) -> float:
        """Seconds ``jobs`` jobs of ``work`` megapixel-iterations in all should take on
        ``device`` (each job starts up once)."""
        return START_SECONDS * jobs + self.seconds_per_work(device)[0] * work

    def described(self, device: str, work: float, jobs: int = 1) -> dict[str, object]:
        """An estimate as the API gives it (``EstimateInfo``, ``BatchEstimateInfo``): seconds,
        work, device, and whether the speed was measured on this server."""
        measured = self.seconds_per_work(device)[1]
        seconds = self.estimate(device, work, jobs)
        return {"seconds": seconds, "work": work, "device": device, "measured": measured}

    def record(self, device: str, work: float, seconds: float) -> None:
        """Learn from a finished job that did ``work`` in ``seconds``."""
        if work < self.min_work or not seconds > 0:
            return
        rate = seconds / work
        with self._lock:
            entry = self._rates.get(device)
            if entry is None:
                entry = {"seconds_per_work": rate, "jobs": 0}
            else:
                old = float(entry["seconds_per_work"])
                entry["seconds_per_work"] = (1 - self.smoothing) * old + self.smoothing * rate
            entry["jobs"] = int(entry.get("jobs", 0)) + 1
            self._rates[device] = entry
            try:
                self._write()
            except OSError:  # an estimate is not worth failing a job for
                pass
