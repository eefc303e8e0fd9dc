"""The Ray backend (``pip install 'impasto[ray]'``): one actor per CPU slot or GPU.

Each actor is a :class:`~impasto.batch.worker.Worker` (the network stays loaded between jobs).
The driver keeps one job in flight per actor; a task whose actor dies is retried on the restarted
actor (``max_task_retries``), and fails with its reason when retries run out. Workers read the
inputs and write the outputs by path, so on a cluster the inputs and OUTDIR must be on a
filesystem every node sees at the same path; the driver alone writes the manifest.

With no ``address`` the command starts a private local Ray (``ray.init(num_cpus=...,
include_dashboard=False)``) and stops it at the end; with ``address`` (``auto`` or
``HOST:PORT``) it joins that cluster and only disconnects.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SettingsError
from ..image import FileOptions
from .jobs import Job
from .worker import Worker, failed_record

__all__ = ["run_ray", "check_ray"]

TASK_RETRIES = 2
ACTOR_RESTARTS = 4


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SettingsError("the Ray backend needs Ray: pip install 'impasto[ray]'") from None
    return ray


def check_ray(address: str | None) -> None:
    """Refuse a Ray batch that cannot start: Ray not installed, or nothing answering at the
    cluster's ``HOST:PORT`` (see :func:`_reachable`)."""
    _import_ray()
    if address:
        _reachable(address)


def _connect(ray, address: str | None, workers: int | None, threads: int) -> bool:
    """Start or join Ray; True when this call did (and so must shut it down)."""
    if ray.is_initialized():
        return False
    try:
        if address:
            _reachable(address)
            ray.init(address=address, log_to_driver=False)
        else:  # room for one actor at least: with fewer CPUs than --threads none was placed
            cpus = max((workers or 0) * threads or os.cpu_count() or 1, threads)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except ConnectionError as e:
        raise SettingsError(f"cannot reach the Ray cluster at {address}: {e}") from None
    return True


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` where nothing answers: Ray retried for minutes, printing its own
    warnings, and the batch hung. (``auto`` is Ray's to find: it fails at once.)"""
    host, sep, port = address.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise SettingsError(f"cannot reach the Ray cluster at {address}: {why}") from None


def _actors(ray, workers: int | None, threads: int, use_gpu: bool) -> list:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if use_gpu else 0
    if not gpus and threads > resources.get("CPU", 0):  # such an actor is never placed: a hang
        raise SettingsError(
            f"--threads {threads} is more than the {resources.get('CPU', 0):g} CPUs of the Ray "
            "cluster: no worker could start"
        )
    count = workers or (gpus if gpus else max(1, int(resources.get("CPU", 1)) // threads))
    actor_class = ray.remote(Worker).options(
        num_cpus=threads if not gpus else 1,
        num_gpus=1 if gpus else 0,
        max_restarts=ACTOR_RESTARTS,
        max_task_retries=TASK_RETRIES,
    )
    return [actor_class.remote(threads) for _ in range(count)]


def _dispatch(ray, actors, jobs, args, on_start, on_finish, stop) -> None:
    pending = list(reversed(jobs))
    idle = list(actors)
    inflight: dict[Any, tuple[Job, Any]] = {}
    while (pending and not stop()) or inflight:
        while idle and pending and not stop():
            actor, job = idle.pop(), pending.pop()
            on_start(job)
            inflight[actor.run.remote(job, *args)] = (job, actor)
        if not inflight and stop():
            return
        if not inflight:  # every actor is gone
            for job in reversed(pending):
                on_start(job)
                on_finish(job, failed_record(job, "no Ray workers left"))
            return
        ready, _ = ray.wait(list(inflight), num_returns=1)
        job, actor = inflight.pop(ready[0])
        try:
            record = ray.get(ready[0])
            idle.append(actor)
        except ray.exceptions.RayActorError as e:
            record = failed_record(job, f"Ray worker died after {TASK_RETRIES} retries: {e}")
        except ray.exceptions.RayError as e:
            idle.append(actor)
            record = failed_record(job, f"Ray task failed: {type(e).__name__}")
        on_finish(job, record)


def run_ray(
    jobs: Sequence[Job],
    outdir: str,
    *,
    address: str | None,
    workers: int | None,
    threads: int | None,
    file: FileOptions,
    use_gpu: bool,
    on_start: Callable[[Job], None],
    on_finish: Callable[[Job, dict[str, Any]], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run ``jobs`` on Ray actors (see the module docstring); once ``should_stop()`` is true no
    new job starts."""
    ray = _import_ray()
    threads = threads or 1
    started = _connect(ray, address, workers, threads)
    actors: list = []
    try:
        actors = _actors(ray, workers, threads, use_gpu)
        args = (os.path.abspath(outdir), file)
        _dispatch(ray, actors, jobs, args, on_start, on_finish, should_stop)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
