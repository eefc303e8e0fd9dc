"""Server-Sent Events: one job's progress, or status changes of all jobs.

Every stream ends when the studio stops (:meth:`impasto.web.events.EventBus.close`), so an open
browser tab never holds a shutting-down server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ..deps import JobDep, StudioDep
from ..events import StreamClosed, Subscription
from ..store import TERMINAL

__all__ = ["router", "KEEPALIVE_S"]

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0
DOC = {
    200: {
        "description": "text/event-stream; each `data:` line is a JSON job view "
        "(as GET /api/jobs/{id})",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def sse(event: dict[str, Any]) -> str:
    """One Server-Sent Event carrying ``event`` as JSON."""
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n"


def _response(gen: AsyncIterator[str]) -> StreamingResponse:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(gen, media_type="text/event-stream", headers=headers)


async def _follow(sub: Subscription, first: str, until_terminal: bool) -> AsyncIterator[str]:
    yield first
    while True:
        event = await sub.get(KEEPALIVE_S)
        if event is None:
            yield ": keep-alive\n\n"
            continue
        yield sse(event)
        if until_terminal and (event["status"] in TERMINAL or event["status"] == "deleted"):
            return


async def _stream(studio, sub: Subscription, first: str, until_terminal: bool):
    try:
        async for chunk in _follow(sub, first, until_terminal):
            yield chunk
    except StreamClosed:
        return
    finally:
        studio.bus.unsubscribe(sub)


@router.get("/api/jobs/{job_id}/events", response_class=StreamingResponse, responses=DOC)
async def job_events(job: JobDep, studio: StudioDep) -> StreamingResponse:
    """Server-Sent Events of one job: its current view at once, then a new view on every
    progress update (throttled to 10/s; a new preview image raises ``preview_version``).
    The stream ends after the job's final status, or when the server stops."""
    sub = studio.bus.subscribe(job.id)
    view = studio.view(studio.store.get_job(job.id) or job)
    first = "retry: 2000\n" + sse(view)
    if view["status"] in TERMINAL:
        studio.bus.unsubscribe(sub)

        async def once() -> AsyncIterator[str]:
            yield first

        return _response(once())
    return _response(_stream(studio, sub, first, True))


@router.get("/api/events", response_class=StreamingResponse, responses=DOC)
async def all_events(studio: StudioDep) -> StreamingResponse:
    """Server-Sent Events of all jobs: a job view whenever a job is queued, starts, ends or
    moves in the queue (``{"id", "status": "deleted"}`` when one is deleted). A comment line is
    sent every 15 s; the stream ends only when the server stops."""
    sub = studio.bus.subscribe(None)
    return _response(_stream(studio, sub, "retry: 2000\n: connected\n\n", False))
