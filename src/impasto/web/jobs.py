"""The job queue: one worker thread per device runs jobs one at a time, in submission order.

A job's run is :meth:`impasto.api.Stylizer.run` with a callback that keeps the latest progress,
encodes a preview PNG every ``preview_every`` iterations (and on the first and last), writes a
partial image to disk at most every ``partial_every_s`` seconds (what a resume starts from) and
publishes events. Events are full job views (plain JSON-ready dicts, see
:meth:`JobManager.view`); they reach asyncio subscribers (the SSE endpoints) through
``loop.call_soon_threadsafe``, so engine work never runs on the event loop and the event loop
never blocks on the engine.

Cancelling sets the job's :class:`threading.Event` (the engine raises
:class:`impasto.errors.Cancelled` before its next iteration); a queued job is simply taken off
the queue. Stopping the manager cancels running jobs and marks them ``interrupted``; queued jobs
stay queued in the store and run after the next start.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import examples
from ..choices import INITS
from ..errors import Cancelled, ImpastoError, SettingsError
from ..settings import Settings, StyleInput
from .store import ACTIVE, JobRecord, Store

__all__ = ["JobManager", "Subscription", "resolve_image", "resume_settings", "EXAMPLE_PREFIX"]

log = logging.getLogger("impasto.web")

EXAMPLE_PREFIX = "example:"


def resolve_image(store: Store, ref: Any, kinds: tuple[str, ...] = ("upload",)) -> Path:
    """The path of an image reference: the id of a stored file of one of ``kinds`` (uploads
    by default), or ``example:NAME`` for a bundled example.

    Raises:
        SettingsError: the reference names no stored file and no bundled example.
    """
    if isinstance(ref, str) and ref.startswith(EXAMPLE_PREFIX):
        name = ref[len(EXAMPLE_PREFIX) :]
        if name in {Path(n).stem for n in (*examples.CONTENT, *examples.STYLES)}:
            return examples.path(name)
    else:
        rec = store.get_file(ref)
        if rec is not None and rec.kind in kinds:
            path = store.path_of(rec)
            if path.is_file():
                return path
    shown = ref if isinstance(ref, str) and len(ref) <= 60 else type(ref).__name__
    raise SettingsError(f"unknown image {shown!r}: upload it first or pick a bundled example")


def resume_settings(settings: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
    """Settings of a job that continues an unfinished one from its partial image.

    The partial image becomes the start image (passed separately); the pyramid is switched off
    (the partial already holds the coarse structure) and only the full-size iterations not yet
    done are planned (at least one).
    """
    out = dict(settings)
    iterations = int(settings.get("iterations", 0))
    total = int(progress.get("total_steps") or iterations)
    step = int(progress.get("step") or 0)
    coarse = max(0, total - iterations)
    done_at_full = max(0, step - coarse)
    out.update(iterations=max(1, iterations - done_at_full), pyramid_start=0, init="noise")
    return out


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _png(image: torch.Tensor) -> bytes:
    from ..image import to_pil

    buf = io.BytesIO()
    to_pil(image.detach().float().cpu().clamp(0, 1)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class Subscription:
    """An asyncio queue of job events, filled from any thread.

    Only the newest ``maxsize`` events are kept: every event is a full view, so a slow reader
    loses intermediate progress but never the latest state.
    """

    def __init__(self, job_id: str | None, loop: asyncio.AbstractEventLoop, maxsize: int = 64):
        self.job_id = job_id
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize)

    def push(self, event: dict[str, Any]) -> None:
        """Queue an event (thread-safe; dropped if the loop is gone)."""
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:
            pass

    def _put(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


@dataclass
class _Live:
    """In-memory state of a running job."""

    cancel: threading.Event = field(default_factory=threading.Event)
    progress: dict[str, Any] = field(default_factory=dict)
    png: bytes | None = None
    version: int = 0
    image: torch.Tensor | None = None
    last_publish: float = 0.0
    last_partial: float = 0.0
    last_db: float = 0.0


class JobManager:
    """Queue, workers and live state of the web studio's jobs.

    Args:
        store: where jobs and files persist.
        preview_every: encode a preview PNG every this many iterations (and on the first and
            the last).
        partial_every_s: write the partial image to disk at most this often (seconds).
        max_size: largest accepted output long side (px).
        max_iterations: largest accepted iterations (per scale).
    """

    def __init__(
        self,
        store: Store,
        *,
        preview_every: int = 5,
        partial_every_s: float = 2.0,
        max_size: int = 4096,
        max_iterations: int = 10_000,
    ) -> None:
        if preview_every < 1:
            raise ValueError("preview_every must be >= 1")
        self.store = store
        self.preview_every = preview_every
        self.partial_every_s = partial_every_s
        self.max_size = max_size
        self.max_iterations = max_iterations
        self._cond = threading.Condition(threading.RLock())
        self._queues: dict[str, list[str]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._live: dict[str, _Live] = {}
        self._subs: dict[str | None, set[Subscription]] = {}
        self._stopping = False
        self._started = False

    # ----------------------------------------------------------------------------------------
    # lifecycle

    def start(self) -> None:
        """Apply the restart policy and start working on the queued jobs."""
        with self._cond:
            self._stopping = False
            self._started = True
            for job in self.store.recover():
                self._enqueue(job)

    def stop(self, timeout: float = 60.0) -> None:
        """Cancel running jobs (they become ``interrupted``) and stop the workers."""
        with self._cond:
            self._stopping = True
            for live in self._live.values():
                live.cancel.set()
            self._cond.notify_all()
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._workers = {k: t for k, t in self._workers.items() if t.is_alive()}
            self._queues.clear()
            self._started = False

    def _enqueue(self, job: JobRecord) -> None:
        with self._cond:
            self._queues.setdefault(job.device, []).append(job.id)
            worker = self._workers.get(job.device)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(
                    target=self._work,
                    args=(job.device,),
                    name=f"impasto-{job.device}",
                    daemon=True,
                )
                self._workers[job.device] = worker
                worker.start()
            self._cond.notify_all()

    def _work(self, device: str) -> None:
        while True:
            with self._cond:
                queue = self._queues.setdefault(device, [])
                while not queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job_id = queue.pop(0)
            try:
                self._run(job_id)
            except Exception:  # pragma: no cover - last resort; _run records its own errors
                log.exception("worker error on job %s", job_id)
            self._publish_positions(device)

    # ----------------------------------------------------------------------------------------
    # submitting

    def check_settings(self, data: Any) -> Settings:
        """Validate settings sent by a client: the engine's own rules plus the web limits.

        Paths are refused (``init`` must be a built-in start, ``weights`` unset): a client never
        names a file on the server.

        Raises:
            SettingsError: with a one-line message.
        """
        if not isinstance(data, dict):
            raise SettingsError("settings must be a JSON object")
        settings = Settings.from_dict(data)
        if settings.init not in INITS:
            raise SettingsError(f"init must be one of {', '.join(INITS)}")
        if settings.weights is not None or settings.weights_format != "auto":
            raise SettingsError("weights cannot be chosen through the web app")
        if settings.size > self.max_size:
            raise SettingsError(f"size must be at most {self.max_size} px on this server")
        if max(settings.iterations, settings.pyramid_iterations) > self.max_iterations:
            raise SettingsError(f"iterations must be at most {self.max_iterations} on this server")
        return settings

    def submit(
        self,
        *,
        content: str | None,
        styles: list[dict[str, Any]],
        settings: dict[str, Any],
        init_file: str | None = None,
        parent: str | None = None,
        origin: str = "new",
    ) -> JobRecord:
        """Validate and queue a job.

        Args:
            content: image reference of the photo, or None.
            styles: ``[{"image": ref, "weight": w}, ...]``.
            settings: a dict for :meth:`Settings.from_dict`; a missing seed is drawn now, so a
                re-run reproduces the result.
            init_file: file id of a start image (resume).

        Raises:
            SettingsError: bad settings, unknown image, unavailable device, nothing to do.
        """
        from ..devices import resolve_device

        s = self.check_settings(settings)
        if s.seed is None:
            s = s.replace(seed=random.SystemRandom().randrange(2**31))
        device = resolve_device(s.device).type
        if content is None and not styles:
            raise SettingsError("nothing to do: give a content image, a style image, or both")
        if content is not None:
            resolve_image(self.store, content)
        clean_styles = []
        for st in styles:
            StyleInput(None, weight=float(st.get("weight", 1.0)))  # validates the weight
            resolve_image(self.store, st.get("image"))
            clean_styles.append({"image": st["image"], "weight": float(st.get("weight", 1.0))})
        if init_file is not None:
            resolve_image(self.store, init_file, kinds=("partial",))
        job = self.store.create_job(
            device=device,
            settings=s.to_dict(),
            content=content,
            styles=clean_styles,
            init_file=init_file,
            parent=parent,
            origin=origin,
        )
        if self._started:
            self._enqueue(job)
        self._publish(job.id, status_change=True)
        return job

    def rerun(self, job_id: str, overrides: dict[str, Any] | None = None) -> JobRecord:
        """A new job with the same inputs and settings (seed included) as ``job_id``;
        ``overrides`` replace some settings (``{"seed": None}`` draws a new seed)."""
        job = self._get(job_id)
        settings = {**job.settings, **(overrides or {})}
        return self.submit(
            content=job.content,
            styles=job.styles,
            settings=settings,
            init_file=job.init_file,
            parent=job.id,
            origin="rerun",
        )

    def resume(self, job_id: str, overrides: dict[str, Any] | None = None) -> JobRecord:
        """Continue an unfinished job from its partial image (see :func:`resume_settings`);
        ``overrides`` replace some settings (e.g. ``{"iterations": 50}``).

        Raises:
            SettingsError: the job is active or done, or has no partial image.
        """
        job = self._get(job_id)
        if job.status in ACTIVE or job.status == "done":
            raise SettingsError(f"job is {job.status}; only unfinished jobs can be resumed")
        if not job.partial_file or self.store.get_file(job.partial_file) is None:
            raise SettingsError("this job has no partial image to resume from; re-run it")
        return self.submit(
            content=job.content,
            styles=job.styles,
            settings={**resume_settings(job.settings, job.progress), **(overrides or {})},
            init_file=job.partial_file,
            parent=job.id,
            origin="resume",
        )

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (a finished one is returned unchanged)."""
        job = self._get(job_id)
        with self._cond:
            queue = self._queues.get(job.device, [])
            if job_id in queue:
                queue.remove(job_id)
                job = self.store.update_job(job_id, status="cancelled", finished=time.time())
                self._publish(job_id, status_change=True)
                self._publish_positions(job.device)
                return job
            live = self._live.get(job_id)
            if live is not None:
                live.cancel.set()
            elif job.status == "queued":  # not started and not queued here (stopped manager)
                job = self.store.update_job(job_id, status="cancelled", finished=time.time())
                self._publish(job_id, status_change=True)
        return job

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its result files.

        Raises:
            SettingsError: the job is queued or running (cancel it first).
        """
        job = self._get(job_id)
        if job.status in ACTIVE:
            raise SettingsError("cancel the job before deleting it")
        self.store.delete_job(job_id)
        self._publish_deleted(job_id)

    def _get(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    # ----------------------------------------------------------------------------------------
    # views and events

    def position(self, job: JobRecord) -> int | None:
        """1-based place in its device's queue (1 = next), or None when not waiting."""
        with self._cond:
            queue = self._queues.get(job.device, [])
            return queue.index(job.id) + 1 if job.id in queue else None

    def preview(self, job_id: str) -> bytes | None:
        """The latest in-memory preview PNG of a running job, or None."""
        with self._cond:
            live = self._live.get(job_id)
            return live.png if live is not None else None

    def _input(self, ref: str | None) -> dict[str, Any] | None:
        if ref is None:
            return None
        if ref.startswith(EXAMPLE_PREFIX):
            name = ref[len(EXAMPLE_PREFIX) :]
            return {
                "ref": ref,
                "name": name.replace("_", " "),
                "thumb_url": f"/api/examples/{name}/thumb.png",
            }
        rec = self.store.get_file(ref)
        name = rec.display_name if rec is not None else None
        thumb = f"/api/files/{ref}/thumb.png" if rec is not None else None
        return {"ref": ref, "name": name, "thumb_url": thumb}

    def view(self, job: JobRecord) -> dict[str, Any]:
        """The JSON view of a job that the API returns and the events carry."""
        with self._cond:
            live = self._live.get(job.id)
            progress = dict(live.progress) if live is not None else dict(job.progress)
            version = live.version if live is not None else int(job.progress.get("version", 0))
            has_preview = live is not None and live.png is not None
        has_preview = has_preview or bool(job.result_file or job.partial_file)
        base = f"/api/jobs/{job.id}"
        view: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "position": self.position(job),
            "device": job.device,
            "origin": job.origin,
            "parent": job.parent,
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "error": job.error,
            "step": int(progress.get("step", 0)),
            "total_steps": progress.get("total_steps"),
            "scale": progress.get("scale"),
            "n_scales": progress.get("n_scales"),
            "loss": _finite(progress.get("loss")),
            "losses": {k: _finite(v) for k, v in (progress.get("losses") or {}).items()},
            "elapsed": _finite(progress.get("elapsed")),
            "eta": _finite(progress.get("eta")),
            "preview_version": version,
            "preview_url": f"{base}/preview.png?v={version}" if has_preview else None,
            "result_url": f"{base}/result.png" if job.result_file else None,
            "settings_url": f"{base}/settings.json",
            "can_resume": job.status in ("interrupted", "cancelled", "failed")
            and job.partial_file is not None,
            "settings": job.settings,
            "content": self._input(job.content),
            "styles": [
                {**(self._input(s["image"]) or {}), "weight": s["weight"]} for s in job.styles
            ],
        }
        if job.result_file:
            rec = self.store.get_file(job.result_file)
            if rec is not None:
                view["width"], view["height"] = rec.width, rec.height
        return view

    def subscribe(self, job_id: str | None) -> Subscription:
        """Events of one job (every progress update), or with None of all jobs (status and
        queue-position changes only). Call from the event loop's thread."""
        sub = Subscription(job_id, asyncio.get_running_loop())
        with self._cond:
            self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._cond:
            self._subs.get(sub.job_id, set()).discard(sub)

    def _publish(self, job_id: str, *, status_change: bool) -> None:
        job = self.store.get_job(job_id)
        if job is None:
            return
        event = self.view(job)
        with self._cond:
            subs = list(self._subs.get(job_id, ()))
            if status_change:
                subs += list(self._subs.get(None, ()))
        for sub in subs:
            sub.push(event)

    def _publish_deleted(self, job_id: str) -> None:
        event = {"id": job_id, "status": "deleted"}
        with self._cond:
            subs = list(self._subs.get(job_id, ())) + list(self._subs.get(None, ()))
        for sub in subs:
            sub.push(event)

    def _publish_positions(self, device: str) -> None:
        with self._cond:
            waiting = list(self._queues.get(device, []))
        for job_id in waiting:
            self._publish(job_id, status_change=True)

    # ----------------------------------------------------------------------------------------
    # running

    def _run(self, job_id: str) -> None:
        from ..api import Stylizer

        job = self.store.get_job(job_id)
        if job is None or job.status != "queued":
            return
        live = _Live()
        with self._cond:
            if self._stopping:
                return
            self._live[job_id] = live
        job = self.store.update_job(
            job_id, status="running", started=time.time(), finished=None, error=None
        )
        self._publish(job_id, status_change=True)
        self._publish_positions(job.device)
        partial_id, partial_path = self.store.reserve(".png")
        status, error, result_file = "failed", None, None
        try:
            settings = Settings.from_dict(job.settings)
            if job.init_file:
                init = resolve_image(self.store, job.init_file, kinds=("partial",))
                settings = settings.replace(init=str(init))
            content = resolve_image(self.store, job.content) if job.content else None
            styles = [
                StyleInput(resolve_image(self.store, s["image"]), weight=s["weight"])
                for s in job.styles
            ]

            def callback(it) -> None:
                self._on_iterate(job, live, it, partial_id, partial_path)

            result = Stylizer(settings).run(content, styles, callback=callback, cancel=live.cancel)
            result.inputs = {
                "content": (self._input(job.content) or {}).get("name"),
                "styles": [
                    {"name": (self._input(s["image"]) or {}).get("name"), "weight": s["weight"]}
                    for s in job.styles
                ],
            }
            if job.init_file:  # no server path in the metadata: name the partial instead
                start = self.store.get_file(job.init_file)
                result.settings = settings.replace(init=start.display_name or "partial.png")
            result_id, result_path = self.store.reserve(".png")
            result.save(result_path)
            self.store.add_file(
                result_id,
                result_path,
                kind="result",
                media_type="image/png",
                display_name=f"impasto-{job_id[:8]}.png",
                width=int(result.image.shape[-1]),
                height=int(result.image.shape[-2]),
            )
            status, result_file = "done", result_id
            with self._cond:
                live.version += 1
                live.png = None
                live.progress.update(version=live.version, eta=0.0, elapsed=result.elapsed)
        except Cancelled:
            if self._stopping:
                status, error = "interrupted", "the server stopped while this job was running"
            else:
                status = "cancelled"
        except ImpastoError as exc:
            error = str(exc)
        except Exception as exc:  # engine bug or out of memory: keep the worker alive
            log.exception("job %s failed", job_id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        if status != "done" and live.image is not None:
            try:
                self._save_partial(
                    job,
                    live,
                    settings_dict=job.settings,
                    partial_id=partial_id,
                    partial_path=partial_path,
                )
            except Exception:  # pragma: no cover - the job's outcome matters more
                log.exception("could not save the partial image of job %s", job_id)
        with self._cond:
            progress = dict(live.progress)
            progress["version"] = live.version
            self._live.pop(job_id, None)
        self.store.update_job(
            job_id,
            status=status,
            finished=time.time(),
            error=error,
            progress=progress,
            result_file=result_file,
        )
        self._publish(job_id, status_change=True)

    def _on_iterate(self, job, live: _Live, it, partial_id, partial_path) -> None:
        now = time.monotonic()
        first_or_due = it.step == 1 or it.step % self.preview_every == 0 or it.is_last
        png = _png(it.image) if first_or_due else None
        with self._cond:
            live.image = it.image
            live.progress = {
                "step": it.step,
                "total_steps": it.total_steps,
                "scale": it.scale,
                "n_scales": it.n_scales,
                "size": list(it.size),
                "loss": _finite(it.loss),
                "losses": {k: _finite(v) for k, v in it.losses.items()},
                "elapsed": _finite(it.elapsed),
                "eta": _finite(it.eta),
                "version": live.version,
            }
            if png is not None:
                live.png = png
                live.version += 1
                live.progress["version"] = live.version
        if png is not None and now - live.last_partial >= self.partial_every_s:
            live.last_partial = now
            self._save_partial(job, live, job.settings, partial_id, partial_path)
        if png is not None and now - live.last_db >= 1.0:
            live.last_db = now
            self.store.update_job(job.id, progress=live.progress)
        if png is not None or now - live.last_publish >= 0.1 or it.is_last:
            live.last_publish = now
            self._publish(job.id, status_change=False)

    def _save_partial(self, job, live: _Live, settings_dict, partial_id, partial_path) -> None:
        from ..image import save_image

        image = live.image
        if image is None:
            return
        step = live.progress.get("step", 0)
        meta = {"impasto": json.dumps({"settings": settings_dict, "partial": True, "step": step})}
        save_image(image.detach().float().cpu().clamp(0, 1), partial_path, metadata=meta)
        w, h = int(image.shape[-1]), int(image.shape[-2])
        self.store.add_file(
            partial_id,
            partial_path,
            kind="partial",
            media_type="image/png",
            display_name=f"impasto-{job.id[:8]}-partial.png",
            width=w,
            height=h,
        )
        self.store.update_job(job.id, partial_file=partial_id, progress=live.progress)
