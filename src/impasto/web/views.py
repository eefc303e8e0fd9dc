"""Pure JSON views: what the API returns and the events carry, built from plain records.

Nothing here reads the store or the queue: callers pass what a view needs (the job record, its
live progress, its queue position, a lookup of file records), so the shape of every answer can be
tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..settings import resolve_weights
from .limits import example_path
from .store import FileRecord, JobRecord

__all__ = [
    "Live",
    "finite",
    "input_view",
    "job_view",
    "file_view",
    "job_settings_view",
    "batch_view",
]

FileLookup = Callable[[str], "FileRecord | None"]
UNFINISHED = ("interrupted", "cancelled", "failed")


@dataclass(frozen=True)
class Live:
    """A snapshot of a running job's in-memory state.

    Attributes:
        progress: the latest progress (step, total_steps, scale, loss, losses, elapsed, eta;
            the last tile of a tiled scale, the engine's notes).
        version: increases with every new preview image.
        has_preview: whether a preview PNG is held in memory.
    """

    progress: dict[str, Any]
    version: int
    has_preview: bool


def finite(x: Any) -> float | None:
    """``x`` as a float, or None when it is not a finite number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def input_view(ref: str | None, files: FileLookup) -> dict[str, Any] | None:
    """``{ref, name, thumb_url}`` of an image reference (an example or an uploaded file)."""
    if ref is None:
        return None
    example = example_path(ref)
    if example is not None:
        thumb = f"/api/examples/{example.stem}/thumb.png"
        return {"ref": ref, "name": example.stem.replace("_", " "), "thumb_url": thumb}
    rec = files(ref)
    name = rec.display_name if rec is not None else None
    thumb = f"/api/files/{ref}/thumb.png" if rec is not None else None
    return {"ref": ref, "name": name, "thumb_url": thumb}


def file_view(rec: FileRecord) -> dict[str, Any]:
    """The API's description of an uploaded file."""
    return {
        "id": rec.id,
        "name": rec.display_name or rec.name,
        "width": rec.width or 0,
        "height": rec.height or 0,
        "bytes": rec.bytes,
        "media_type": rec.media_type,
        "url": f"/api/files/{rec.id}",
        "thumb_url": f"/api/files/{rec.id}/thumb.png",
    }


def job_settings_view(job: JobRecord, files: FileLookup) -> dict[str, Any]:
    """The job's settings as they ran: the weights in use where the job left them to the
    defaults (stored as ``None``, so a re-run changing the loss scale takes that scale's), and a
    resumed job's ``init`` naming its start image."""
    settings = resolve_weights(job.settings)
    if job.init_file:
        rec = files(job.init_file)
        settings["init"] = (rec.display_name if rec is not None else None) or "partial.png"
    return settings


def _tile_view(tile: Any) -> dict[str, int] | None:
    if not isinstance(tile, dict):
        return None
    try:
        return {k: int(tile[k]) for k in ("step", "phase", "tile", "tiles")}
    except (KeyError, TypeError, ValueError):
        return None


def _notes_view(notes: Any) -> list[dict[str, Any]]:
    if not isinstance(notes, list):
        return []
    return [
        {
            "kind": str(n.get("kind", "")),
            "text": str(n.get("text", "")),
            "warning": bool(n.get("warning")),
        }
        for n in notes
        if isinstance(n, dict)
    ]


def _progress_fields(progress: dict[str, Any], running: bool) -> dict[str, Any]:
    return {
        "tile": _tile_view(progress.get("tile")) if running else None,
        "notes": _notes_view(progress.get("notes")),
        "step": int(progress.get("step", 0)),
        "total_steps": progress.get("total_steps"),
        "scale": progress.get("scale"),
        "n_scales": progress.get("n_scales"),
        "loss": finite(progress.get("loss")),
        "losses": {k: finite(v) for k, v in (progress.get("losses") or {}).items()},
        "elapsed": finite(progress.get("elapsed")),
        "eta": finite(progress.get("eta")) if running else None,  # a stopped job's was stale
    }


def _urls(job: JobRecord, version: int, has_preview: bool) -> dict[str, Any]:
    base = f"/api/jobs/{job.id}"
    partial = job.partial_file is not None and job.status in UNFINISHED
    return {
        "preview_version": version,
        "preview_url": f"{base}/preview.png?v={version}" if has_preview else None,
        "result_url": f"{base}/result.png" if job.result_file else None,
        "partial_url": f"{base}/partial.png" if partial else None,
        "settings_url": f"{base}/settings.json",
    }


def job_view(
    job: JobRecord,
    *,
    live: Live | None,
    position: int | None,
    files: FileLookup,
    estimate: float | None = None,
    resumed: bool = False,
) -> dict[str, Any]:
    """The JSON view of a job (see :class:`impasto.web.models.JobView`); ``resumed``: another
    job already continues it (it can be resumed once)."""
    progress = live.progress if live is not None else job.progress
    version = live.version if live is not None else int(job.progress.get("version", 0))
    has_preview = (live is not None and live.has_preview) or bool(
        job.result_file or job.partial_file
    )
    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "position": position,
        "device": job.device,
        "origin": job.origin,
        "parent": job.parent,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "error": job.error,
        **_progress_fields(progress, job.status == "running"),
        "estimate": estimate,
        **_urls(job, version, has_preview),
        "can_resume": job.status in UNFINISHED and job.partial_file is not None and not resumed,
        "settings": job_settings_view(job, files),
        "content": input_view(job.content, files),
        "styles": [
            {**(input_view(s["image"], files) or {}), "weight": s["weight"]} for s in job.styles
        ],
    }
    result = files(job.result_file) if job.result_file else None
    if result is not None:
        view["width"], view["height"] = result.width, result.height
    return view


def _batch_job_view(
    batch_id: str,
    item: dict[str, Any],
    record: dict[str, Any] | None,
    running: bool,
    files: FileLookup,
) -> dict[str, Any]:
    if running:
        status = "running"
    elif record is not None and record.get("status") in ("done", "failed"):
        status = record["status"]
    else:
        status = "failed" if item.get("error") else "pending"
    done = status == "done"
    return {
        "id": item["id"],
        "name": item.get("name") or None,
        "status": status,
        "error": ((record or {}).get("error") or item.get("error")) if status == "failed" else None,
        "content": input_view(item["content"], files),
        "style": input_view(item["style"], files),
        "seed": (record or {}).get("seed"),
        "elapsed": finite((record or {}).get("elapsed_s")) if status != "running" else None,
        "result_url": f"/api/batches/{batch_id}/jobs/{item['id']}/result.png" if done else None,
    }


def batch_view(
    batch: Any,
    *,
    live: Live | None,
    position: int | None,
    records: dict[str, dict[str, Any]],
    files: FileLookup,
) -> dict[str, Any]:
    """The JSON view of a batch (see :class:`impasto.web.models.BatchView`).

    Args:
        batch: a :class:`impasto.web.batches.BatchRecord`.
        live: the running batch's live state (its ``progress`` names the running jobs).
        position: its place in the queue while queued.
        records: the last manifest record of each of its jobs.
        files: a lookup of file records.
    """
    progress = live.progress if live is not None else {}
    running = set(progress.get("running", ()))
    jobs = [
        _batch_job_view(batch.id, item, records.get(item["id"]), item["id"] in running, files)
        for item in batch.plan
    ]
    counts = {k: sum(j["status"] == k for j in jobs) for k in ("done", "failed", "running")}
    base = f"/api/batches/{batch.id}"
    return {
        "id": batch.id,
        "kind": "batch",
        "status": batch.status,
        "position": position,
        "device": batch.device,
        "created": batch.created,
        "started": batch.started,
        "finished": batch.finished,
        "error": batch.error,
        "total": len(jobs),
        **counts,
        "pending": len(jobs) - sum(counts.values()),
        "elapsed": finite(batch.elapsed + float(progress.get("elapsed") or 0.0)),
        "eta": finite(progress.get("eta")) if batch.status == "running" else None,
        "runs": batch.runs,
        "settings": resolve_weights(batch.settings),  # the weights in use, as for a job
        "contents": [input_view(ref, files) for ref in batch.contents],
        "styles": [input_view(ref, files) for ref in batch.styles],
        "jobs": jobs,
        "zip_url": f"{base}/results.zip" if counts["done"] else None,
        "events_url": f"{base}/events",
    }
