"""Running one batch of the studio: :func:`impasto.batch.run_batch` on the queue's worker thread.

The batch runs in the worker thread itself (the local backend with one worker: the network is
loaded once and each painting's targets are computed once for all the photos). Every
:class:`~impasto.batch.BatchProgress` event updates the batch's live state (the jobs running,
the ETA) and is published; the jobs' outcomes are in the batch's manifest, so a batch that runs
again (after a restart, or resumed after a cancel) skips its done jobs.

Cancelling (or stopping the server) stops the job running at its next iteration (recorded as
cancelled, nothing written) and starts no other; the jobs not done are left for a resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import ImpastoError
from ..settings import Settings
from .batches import BatchRecord, BatchStore
from .capacity import Capacity, job_budget
from .limits import resolve_image
from .runner import LiveJob, Notify
from .store import Store
from .views import input_view

__all__ = ["BatchRunner", "plan_jobs"]

log = logging.getLogger("impasto.web")


def _label(store: Store, ref: str) -> str:
    return (input_view(ref, store.get_file) or {}).get("name") or "image"


def plan_jobs(
    store: Store, contents: list[str], styles: list[str], settings: Settings, weights: str | None
) -> tuple[list[Any], list[dict[str, Any]]]:
    """The batch's jobs (every photo with every painting) and its plan for the views.

    Output names are ``<photo>__<painting>.png`` from the images' display names (a name shared
    by several jobs gets part of the job's id appended).

    Returns:
        ``(jobs for run_batch, [{"id", "content", "style", "name", "error"}, ...])``.
    """
    from ..batch import assign_names, cross_jobs
    from ..batch.jobs import StyleSpec, output_stem

    run_settings = settings.replace(weights=weights) if weights is not None else settings
    paths = {ref: str(resolve_image(store, ref)) for ref in [*contents, *styles]}
    jobs = cross_jobs([paths[c] for c in contents], [paths[s] for s in styles], run_settings)
    pairs = [(c, s) for c in contents for s in styles]
    origin: dict[str, tuple[str, str]] = {}
    for job, (c, s) in zip(jobs, pairs, strict=True):
        origin.setdefault(job.id, (c, s))
        if job.error is None:
            job.name = output_stem(_label(store, c), (StyleSpec(_label(store, s)),)) + ".png"
    named, _ = assign_names(jobs, ".png")
    plan = [
        {
            "id": j.id,
            "content": origin[j.id][0],
            "style": origin[j.id][1],
            "name": j.name,
            "error": j.error,
        }
        for j in named
    ]
    return named, plan


class BatchRunner:
    """Runs queued batches, one at a time per worker thread.

    Args:
        store: the studio's files (the batch's inputs).
        batches: the batches.
        notify: called with (batch id, status changed) after every change worth showing.
        lock: guards the live state shared with readers (the queue's lock).
        weights: the server's VGG19 weights file for every job (None: the engine's default).
        capacity: the server's memory on a device by its name (:meth:`ServerMemory.on
            <impasto.web.capacity.ServerMemory.on>`): every job runs within the budget of the
            batch's device (or within its own ``max_memory`` when lower), as single jobs do.
            None: the engine's default.
    """

    def __init__(
        self,
        store: Store,
        batches: BatchStore,
        notify: Notify,
        lock: Any,
        weights: str | None,
        capacity: Callable[[str], Capacity] | None = None,
    ) -> None:
        self.store = store
        self.batches = batches
        self.notify = notify
        self.lock = lock
        self.weights = weights
        self.capacity = capacity

    def _within_budget(self, jobs: list[Any], device: str) -> list[Any]:
        """The jobs with the server's budget on ``device`` as their ``max_memory`` (ids
        unchanged: the budget decides how a job is tiled, and exact tiles give the same
        picture)."""
        if self.capacity is None:
            return jobs
        budget = self.capacity(device).budget
        for job in jobs:
            own = job.settings.get("max_memory")
            job.settings = {**job.settings, "max_memory": job_budget(own, budget)}
        return jobs

    def plan(self, contents: list[str], styles: list[str], settings: Settings):
        """:func:`plan_jobs` with this server's weights."""
        return plan_jobs(self.store, contents, styles, settings, self.weights)

    def run(self, rec: BatchRecord, live: LiveJob, stopping: Callable[[], bool]) -> None:
        """Run batch ``rec`` (status ``queued``) until its end, a cancel or a stop."""
        from ..batch import BatchOptions, run_batch

        rec = self.batches.update(
            rec.id, status="running", started=time.time(), finished=None, error=None,
            runs=rec.runs + 1,
        )  # fmt: skip
        self.notify(rec.id, True)
        t0 = time.perf_counter()
        status, error = "failed", None
        try:
            jobs, plan = self.plan(rec.contents, rec.styles, Settings.from_dict(rec.settings))
            if plan != rec.plan:  # e.g. the server's weights changed: new job ids
                rec = self.batches.update(rec.id, plan=plan)
            summary = run_batch(
                self._within_budget(jobs, rec.device),
                str(self.batches.outdir(rec.id)),
                BatchOptions(workers=1),  # in this thread: one loaded network for all jobs
                callback=lambda p: self._on_event(rec.id, live, p),
                cancel=live.cancel,
            )
            status, error = _outcome(summary, stopping())
        except ImpastoError as exc:
            error = str(exc)
        except Exception as exc:  # keep the worker alive
            log.exception("batch %s failed", rec.id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        with self.lock:
            live.progress = {**live.progress, "running": [], "eta": None}
        self.batches.update(
            rec.id,
            status=status,
            finished=time.time(),
            error=error,
            elapsed=round(rec.elapsed + time.perf_counter() - t0, 3),
        )

    def _on_event(self, batch_id: str, live: LiveJob, p: Any) -> None:
        with self.lock:
            running = set(live.progress.get("running", ()))
            if p.event == "started":
                running.add(p.job.id)
            else:
                running.discard(p.job.id)
            live.version += 1
            live.progress = {
                "running": sorted(running),
                "eta": p.eta,
                "elapsed": p.elapsed,
                "version": live.version,
            }
        self.notify(batch_id, p.event in ("done", "failed"))


def _outcome(summary: Any, stopped: bool) -> tuple[str, str | None]:
    """(status, error) of a batch from its :class:`~impasto.batch.BatchSummary`."""
    if summary.not_run:
        left = f"{summary.not_run} of {summary.total} jobs not run"
        if stopped:
            return "interrupted", f"the server stopped while this batch was running ({left})"
        return "cancelled", f"cancelled ({left}; resume runs them)"
    if summary.failed:
        return "failed", f"{summary.failed} of {summary.total} jobs failed"
    return "done", None
