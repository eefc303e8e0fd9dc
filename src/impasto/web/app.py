"""The web studio's app factory: :func:`create_app` wires the studio, middleware and routers.

The page (``/``) uses only the documented API; the OpenAPI description is served at
``/openapi.json`` and rendered, without anything from the internet, at ``/api``.

==========================================  ====================================================
``GET /api/config``                         limits, setting defaults and choices, examples
``GET /api/examples``                       bundled example images
``POST /api/files``                         upload an image (multipart field ``file``)
``GET /api/files/{id}``, ``.../thumb.png``  an uploaded image, its thumbnail
``POST /api/jobs``                          queue a job: content, styles (+ weights), settings
``POST /api/estimate``                      check a job without queueing it; its time estimate
``GET /api/jobs``                           jobs, newest first (queue and gallery)
``GET /api/jobs/{id}``                      one job
``GET /api/jobs/{id}/events``               Server-Sent Events: the job view on every update
``GET /api/events``                         Server-Sent Events: status changes of all jobs
``GET /api/jobs/{id}/preview.png``          latest preview (partial result while running)
``GET /api/jobs/{id}/result.png``           the result (PNG with the settings in its metadata)
``GET /api/jobs/{id}/partial.png``          the last image of an unfinished job
``GET /api/jobs/{id}/settings.json``        settings, seed and inputs of the job
``POST /api/jobs/{id}/cancel``              cancel a queued or running job
``POST /api/jobs/{id}/rerun``               queue a copy (same inputs, settings and seed)
``POST /api/jobs/{id}/resume``              continue an unfinished job from its partial image
``DELETE /api/jobs/{id}``                   delete a finished job and its result
``POST /api/batches``                       queue a batch (photos x paintings) as one entry
``GET /api/batches``, ``.../{id}``          batches (newest first), one batch with its jobs
``GET /api/batches/{id}/events``            Server-Sent Events: the batch view as jobs end
``POST /api/batches/{id}/cancel``           cancel a queued batch, stop a running one
``POST /api/batches/{id}/resume``           run an unfinished batch again (done jobs skipped)
``GET /api/batches/{id}/results.zip``       the done jobs' images and their manifest
``GET .../{id}/jobs/{job}/result.png``     one job's result of a batch
``DELETE /api/batches/{id}``                delete a finished batch and its results
==========================================  ====================================================

Errors are JSON ``{"detail": ...}`` with a 4xx status: 404 unknown id, 413 upload too large
(bytes or pixels), 415 not a supported image, 422 invalid settings (pydantic's list naming the
setting, or one line for a server limit, an unknown image or an upload of several files), 409
a state conflict (e.g. deleting a running job), 403 a cross-origin write; 507 when the data
directory cannot be written (made read-only, or the disk full, while the server runs); 400
(plain text, Starlette's ``TrustedHostMiddleware``) a request for a host name the server does
not answer to.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import ImageError, SettingsError
from ..version import __version__
from .config import LOOPBACK_HOSTS, WebConfig, is_loopback
from .guard import Guard
from .lock import DataDirLock
from .models import ErrorBody
from .routes import ROUTERS
from .routes.meta import STATIC_DIR
from .studio import Studio
from .uploads import UploadError

__all__ = ["WebConfig", "create_app", "LOOPBACK_HOSTS", "is_loopback"]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    studio: Studio = app.state.studio
    studio.start()
    try:
        yield
    finally:
        await asyncio.to_thread(studio.stop)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity spelled as a string: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain_msg(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error whose message is our own (a Settings check raising ValueError)
    without pydantic's "Value error, " in front of it."""
    msg = error.get("msg")
    if isinstance(msg, str) and msg.startswith(_PYDANTIC_PREFIX):
        return {**error, "msg": msg[len(_PYDANTIC_PREFIX) :]}
    return error


_PYDANTIC_PREFIX = "Value error, "


def _add_error_handlers(app: FastAPI) -> None:
    async def unprocessable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    async def not_stored(request: Request, exc: Exception) -> JSONResponse:
        # e.g. the data directory made read-only, or the disk full, while the server runs
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return JSONResponse({"detail": f"the server cannot store data: {why}"}, status_code=507)

    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and a NaN or 1e999 there made it a bare 500
        errors = [_plain_msg(e) for e in jsonable_encoder(exc.errors())]
        return JSONResponse({"detail": _finite(errors)}, status_code=422)

    async def refused_upload(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(OSError, not_stored)
    app.add_exception_handler(sqlite3.Error, not_stored)
    app.add_exception_handler(SettingsError, unprocessable)
    app.add_exception_handler(ImageError, unprocessable)
    app.add_exception_handler(UploadError, refused_upload)


def create_app(config: WebConfig, lock: DataDirLock | None = None) -> FastAPI:
    """Build the web studio for ``config``.

    The data directory's lock is taken first (``lock``, already held by ``impasto serve``, or
    a new one), then the store is opened. The workers start with the app's lifespan, after the
    restart policy marks jobs left running by a crash ``interrupted``; stopping the app ends
    the event streams, interrupts running jobs and releases the lock.

    Raises:
        impasto.web.lock.DataDirError: the directory is another server's, or unusable.
    """
    lock = (lock or DataDirLock(config.data_dir)).acquire()
    app = FastAPI(
        title="impasto studio",
        version=__version__,
        description="Local web studio for neural style transfer (Gatys et al.). Upload images, "
        "queue jobs, follow their progress over Server-Sent Events, download results.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        responses={
            400: {"model": ErrorBody, "description": "a body that is not UTF-8 JSON or a form"},
            422: {"model": ErrorBody, "description": "invalid request"},
            507: {"model": ErrorBody, "description": "the data directory cannot be written"},
        },
    )
    app.state.config = config
    app.state.studio = Studio(config, lock)
    app.add_middleware(Guard, max_upload=config.max_upload_bytes)
    if config.allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))
    _add_error_handlers(app)
    for router in ROUTERS:
        for route in router.routes:  # document the 404 of every route that takes an id or name
            if isinstance(route, APIRoute) and "{" in route.path:
                route.responses.setdefault(404, {"model": ErrorBody, "description": "unknown id"})
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
