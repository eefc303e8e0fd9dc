"""Run a planned batch: skip what is done, run the rest on a backend, record every outcome.

The driver (this module) is the only writer of ``OUTDIR/manifest.jsonl``; workers write only
their output files. A job counts as done when its last ``done`` record names an output file that
still exists with the recorded SHA-256, so a re-run after a crash or ``kill -9`` runs exactly the
jobs that were in flight or not yet started.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SettingsError
from ..image import HIGH_BIT_FORMATS, OUTPUT_FORMATS, FileOptions, check_file_options
from . import manifest
from .jobs import Job
from .plan import assign_names
from .worker import failed_record

__all__ = ["BatchOptions", "BatchProgress", "BatchSummary", "run_batch", "BACKENDS"]

BACKENDS = ("local", "ray")
# Measured on the 2-core CPU (README, "Batch"): two 1-thread workers beat one 2-thread
# worker (160.5 s vs 171.9 s for 8 jobs at 256 px). More workers than 2 are not measured (each
# holds its own network), so larger CPUs get 2 workers sharing the cores.
DEFAULT_CPU_WORKERS = 2


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch.

    Attributes:
        backend: ``local`` or ``ray``.
        workers: worker processes / actors (None: one per GPU, else locally 2 workers (the
            measured winner on 2 cores; 1 for a single job), on Ray one per CPU slot).
        threads: torch threads per worker (None: the cores shared among the local workers;
            1 on Ray).
        address: Ray cluster address (``auto`` or ``HOST:PORT``); None starts a local Ray.
        extension: output format of names the batch makes (``.png``, ``.jpg``, ...).
        bits, quality, dpi: as for :meth:`impasto.api.Result.save`.
    """

    backend: str = "local"
    workers: int | None = None
    threads: int | None = None
    address: str | None = None
    extension: str = ".png"
    bits: int = 8
    quality: int | None = None
    dpi: float | None = None

    @property
    def file(self) -> FileOptions:
        """How each output file is written."""
        return FileOptions(self.bits, self.quality, self.dpi)


@dataclass(frozen=True)
class BatchProgress:
    """One event of a batch: ``skipped``, ``started``, ``done`` or ``failed`` of ``job``.

    The counts are the batch's totals after the event; ``eta`` is in seconds (None until a job
    has finished in this run).
    """

    event: str
    job: Job
    record: dict[str, Any] | None
    total: int
    done: int
    failed: int
    skipped: int
    running: int
    elapsed: float
    eta: float | None


@dataclass
class BatchSummary:
    """What a batch did. ``done`` counts jobs finished in this run; ``skipped`` earlier ones."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0
    not_run: int = 0
    elapsed: float = 0.0
    manifest: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every job is done (now or before)."""
        return self.failed == 0 and self.not_run == 0


class _Tracker:
    """Counts, the manifest appends and the progress events."""

    def __init__(self, summary: BatchSummary, callback, path: str, to_run: int) -> None:
        self.s, self.callback, self.path, self.to_run = summary, callback, path, to_run
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.ran = 0
        self.running: set[str] = set()

    def _emit(self, event: str, job: Job, record: dict[str, Any] | None) -> None:
        if self.callback is None:
            return
        now = time.perf_counter()
        eta = None
        if self.ran and self.first is not None:
            eta = (self.to_run - self.ran) * (now - self.first) / self.ran
        s = self.s
        self.callback(
            BatchProgress(
                event, job, record, s.total, s.done, s.failed, s.skipped, len(self.running),
                now - self.t0, eta,
            )
        )  # fmt: skip

    def skip(self, job: Job, record: dict[str, Any]) -> None:
        self.s.skipped += 1
        self._emit("skipped", job, record)

    def start(self, job: Job) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.running.add(job.id)
        self._emit("started", job, None)

    def finish(self, job: Job, record: dict[str, Any]) -> None:
        manifest.append(self.path, record)
        if job.id in self.running:
            self.running.discard(job.id)
            self.ran += 1
        if record.get("status") == "done":
            self.s.done += 1
        elif record.get("status") == "cancelled":
            pass  # counted in not_run: a re-run does it
        else:
            self.s.failed += 1
            self.s.failures.append(record)
        self._emit(record.get("status", "failed"), job, record)


def _execute(jobs: list[Job], outdir: str, o: BatchOptions, tracker: _Tracker, cancel) -> None:
    common = dict(file=o.file, on_start=tracker.start, on_finish=tracker.finish)
    common["should_stop"] = lambda: cancel is not None and cancel.is_set()
    if o.backend == "ray":
        from .ray_backend import run_ray

        use_gpu = any(j.settings.get("device") in ("auto", "cuda") for j in jobs)
        run_ray(jobs, outdir, address=o.address, workers=o.workers, threads=o.threads,
                use_gpu=use_gpu, **common)  # fmt: skip
        return
    from .local import gpu_count, run_local

    gpus = gpu_count() if any(j.settings.get("device") != "cpu" for j in jobs) else 0
    cores = os.cpu_count() or 1
    workers = o.workers or gpus or max(1, min(DEFAULT_CPU_WORKERS, cores, len(jobs)))
    threads = o.threads or (None if workers == 1 else max(1, cores // workers))
    run_local(jobs, outdir, workers=workers, threads=threads, cancel=cancel, **common)


def _check_options(o: BatchOptions) -> None:
    if o.backend not in BACKENDS:
        raise SettingsError(f"backend must be one of {', '.join(BACKENDS)}, got {o.backend!r}")
    for name in ("workers", "threads"):  # 0 and -1 passed, and torch refused -1 mid-batch
        value = getattr(o, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise SettingsError(f"{name} must be a whole number >= 1 or None, got {value!r}")
        if value is not None and value < 1:
            raise SettingsError(f"{name} must be >= 1 or None, got {value}")
    fmt = OUTPUT_FORMATS.get(o.extension.lower())
    if fmt is None:
        raise SettingsError(
            f"extension must be one of {', '.join(OUTPUT_FORMATS)}, got {o.extension!r}"
        )
    check_file_options(o.file)
    if o.bits == 16 and fmt not in HIGH_BIT_FORMATS:
        raise SettingsError(f"{fmt} cannot store 16 bits per channel; use .png or .tif")
    if o.backend == "ray":  # before the output folder is made: a refused batch leaves none
        from .ray_backend import check_ray

        check_ray(o.address)


def run_batch(
    jobs: Sequence[Job],
    outdir: str,
    options: BatchOptions | None = None,
    callback: Callable[[BatchProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> BatchSummary:
    """Run the jobs not yet done in ``outdir``; append every outcome to its manifest.

    ``callback`` gets a :class:`BatchProgress` per event. Once ``cancel`` is set no new job
    starts; a job running in this process (one local worker) stops mid-run and is recorded as
    ``"cancelled"``; jobs in worker processes or on Ray finish and are recorded; the cancelled
    and the unstarted ones are counted in ``not_run`` (a re-run does them).

    Raises:
        SettingsError: unknown backend, output options no file can take (see
            :class:`BatchOptions`), ``outdir`` unusable or in use by another batch.
    """
    o = options or BatchOptions()
    _check_options(o)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise SettingsError(f"{outdir} is a file; a batch writes a folder (-o)")
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise SettingsError(f"{outdir}: cannot create the output folder ({e.strerror})") from None
    t0 = time.perf_counter()
    with manifest.locked(outdir):
        path = os.path.join(outdir, manifest.MANIFEST)
        manifest.repair(path)
        manifest.clean_temps(outdir)
        done = manifest.done_records(manifest.read(path))
        done = {i: rec for i, rec in done.items() if manifest.is_done(rec, outdir)}
        taken = {os.path.basename(rec["output"]).lower(): i for i, rec in done.items()}
        named, duplicates = assign_names(list(jobs), o.extension, taken)
        summary = BatchSummary(len(named), duplicates=duplicates, manifest=path)
        todo = [j for j in named if j.error is None and j.id not in done]
        tracker = _Tracker(summary, callback, path, len(todo))
        to_run = {j.id for j in todo}
        for job in named:
            if job.error is not None:
                tracker.finish(job, failed_record(job, job.error))
            elif job.id not in to_run:
                tracker.skip(job, done[job.id])
        if todo:
            _execute(todo, outdir, o, tracker, cancel)
    summary.not_run = summary.total - summary.done - summary.failed - summary.skipped
    summary.elapsed = time.perf_counter() - t0
    return summary
