"""The local backend: jobs run in this process (one worker) or in a pool of worker processes.

Each worker process loads the network once (one :class:`~impasto.batch.worker.Worker`) and runs
one job at a time; the driver keeps exactly one job in flight per worker, so a crash loses only
those. With CUDA there is one worker per GPU. Ctrl-C is the driver's alone: worker processes
ignore SIGINT, and the driver ends them at once (their running jobs are not recorded, so a re-run
of the batch does them; every finished job is already in the manifest).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..image import FileOptions
from .jobs import Job
from .worker import Worker, failed_record

__all__ = ["run_local", "gpu_count"]

OnStart = Callable[[Job], None]
OnFinish = Callable[[Job, dict[str, Any]], None]

_WORKER: Worker | None = None
MAX_POOL_RESTARTS = 3


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _init(threads: int | None, counter: Any, gpus: int) -> None:
    global _WORKER
    # a terminal's Ctrl-C reaches the whole process group: the driver decides (_stop_workers);
    # a worker interrupted mid-job or mid-reply could leave the pool waiting on it for ever
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER = Worker(threads, index % gpus if gpus else None)


def _run(job: Job, outdir: str, file: FileOptions) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.run(job, outdir, file)


def _in_process(jobs, outdir, threads, file, on_start, on_finish, stop, cancel) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        worker = Worker(threads)
        for job in jobs:
            if stop():
                return
            on_start(job)
            on_finish(job, worker.run(job, outdir, file, cancel=cancel))
    finally:
        torch.set_num_threads(before)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's worker processes now (Ctrl-C), rather than wait for their jobs."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _pool_pass(pending: list[Job], workers, threads, gpus, args, on_start, on_finish, stop):
    """Run jobs from ``pending`` (consumed from the end) in one pool; False if the pool broke."""
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("i", 0)
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init, initargs=(threads, counter, gpus)
    ) as pool:
        try:
            return _fill(pool, pending, workers, args, on_start, on_finish, stop)
        except KeyboardInterrupt:
            _stop_workers(pool)
            raise


def _fill(pool, pending: list[Job], workers, args, on_start, on_finish, stop) -> bool:
    """Keep one job in flight per worker until none is left; False if the pool broke."""
    inflight: dict[Future, Job] = {}
    while (pending and not stop()) or inflight:
        while pending and len(inflight) < workers and not stop():
            job = pending.pop()
            on_start(job)
            try:
                inflight[pool.submit(_run, job, *args)] = job
            except BrokenProcessPool:
                pending.append(job)
                break
        done, _ = wait(inflight, return_when=FIRST_COMPLETED)
        broken = False
        for fut in done:
            job = inflight.pop(fut)
            try:
                record = fut.result()
            except BrokenProcessPool:
                broken = True
                record = failed_record(job, "worker process died (killed or out of memory)")
            on_finish(job, record)
        if broken:
            for job in inflight.values():
                on_finish(job, failed_record(job, "worker process died (pool broken)"))
            return False
    return True


def run_local(
    jobs: Sequence[Job],
    outdir: str,
    *,
    workers: int,
    threads: int | None,
    file: FileOptions,
    on_start: OnStart,
    on_finish: OnFinish,
    should_stop: Callable[[], bool] = lambda: False,
    cancel: Any = None,
) -> None:
    """Run ``jobs`` with ``workers`` workers of ``threads`` torch threads each; once
    ``should_stop()`` is true no new job starts. With one worker (in this process) ``cancel``
    (a ``threading.Event``) also stops the running job; worker processes finish theirs."""
    stop = should_stop
    if workers <= 1:
        _in_process(jobs, outdir, threads, file, on_start, on_finish, stop, cancel)
        return
    pending = list(reversed(jobs))
    gpus = gpu_count()
    args = (outdir, file)
    for _ in range(MAX_POOL_RESTARTS + 1):
        if _pool_pass(pending, workers, threads, gpus, args, on_start, on_finish, stop) or stop():
            return
    for job in reversed(pending):
        on_start(job)
        on_finish(job, failed_record(job, "worker processes keep dying; job not run"))
