"""The web studio's HTTP API and single page (FastAPI).

Build with :func:`create_app` (nothing is built at import time). The page (``/``) uses only the
documented API below; the OpenAPI description is served at ``/openapi.json`` and rendered,
without anything from the internet, at ``/api``.

==========================================  ====================================================
``GET /api/config``                         limits, setting defaults and choices, examples
``GET /api/examples``                       bundled example images
``POST /api/files``                         upload an image (multipart field ``file``)
``GET /api/files/{id}``, ``.../thumb.png``  an uploaded image, its thumbnail
``POST /api/jobs``                          queue a job: content, styles (+ weights), settings
``GET /api/jobs``                           jobs, newest first (queue and gallery)
``GET /api/jobs/{id}``                      one job
``GET /api/jobs/{id}/events``               Server-Sent Events: the job view on every update
``GET /api/events``                         Server-Sent Events: status changes of all jobs
``GET /api/jobs/{id}/preview.png``          latest preview (partial result while running)
``GET /api/jobs/{id}/result.png``           the result (PNG with the settings in its metadata)
``GET /api/jobs/{id}/settings.json``        settings, seed and inputs of the job
``POST /api/jobs/{id}/cancel``              cancel a queued or running job
``POST /api/jobs/{id}/rerun``               queue a copy (same inputs, settings and seed)
``POST /api/jobs/{id}/resume``              continue an unfinished job from its partial image
``DELETE /api/jobs/{id}``                   delete a finished job and its result
==========================================  ====================================================

Errors are JSON ``{"detail": ...}`` with a 4xx status: 404 unknown id, 413 upload too large
(bytes or pixels), 415 not a supported image, 422 invalid settings or undecodable image (the
engine's own validation message), 409 a state conflict (e.g. deleting a running job), 403 a
cross-origin write, 400 a request for a host name the server does not answer to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import ipaddress
import json
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field

from .. import __version__, examples
from ..choices import COLOR_MODES, DEVICES, INITS, OPTIMIZERS, POOLINGS, PRECISIONS
from ..errors import ImageError, SettingsError
from ..settings import Settings
from .jobs import EXAMPLE_PREFIX, JobManager
from .store import STATUSES, TERMINAL, FileRecord, Store, is_id, sanitize_name

__all__ = ["WebConfig", "create_app", "LOOPBACK_HOSTS", "is_loopback"]

log = logging.getLogger("impasto.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Formats accepted for upload (decoded by Pillow, never guessed from the name). Formats whose
# decoders run external programs (EPS: Ghostscript) or are rarely wanted are not on the list.
UPLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "PNG": (".png", "image/png"),
    "JPEG": (".jpg", "image/jpeg"),
    "MPO": (".jpg", "image/jpeg"),
    "WEBP": (".webp", "image/webp"),
    "TIFF": (".tif", "image/tiff"),
    "BMP": (".bmp", "image/bmp"),
    "GIF": (".gif", "image/gif"),
}
THUMB_SIDE = 256
MAX_STYLES = 8
SSE_KEEPALIVE_S = 15.0


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
        max_upload_bytes: largest accepted upload (the whole request body may exceed it by
            64 KiB of form overhead).
        max_pixels: largest accepted upload in pixels (checked on the header, before decoding).
        max_size: largest output long side a job may ask for.
        max_iterations: largest iterations (per scale) a job may ask for.
        preview_every: preview PNG every this many iterations (and on the first and last).
        allowed_hosts: Host header values answered (DNS-rebinding guard); ``None`` answers any.
            The default suits a server bound to loopback.
    """

    data_dir: Path
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_size: int = 4096
    max_iterations: int = 10_000
    preview_every: int = 5
    allowed_hosts: tuple[str, ...] | None = field(default=LOOPBACK_HOSTS)


# ------------------------------------------------------------------------------------------
# API models (they are the OpenAPI documentation too)


class ErrorBody(BaseModel):
    detail: Any = Field(description="a one-line message (or FastAPI's list for malformed JSON)")


class FileInfo(BaseModel):
    id: str = Field(description="file id: use it as an image reference in a job")
    name: str = Field(description="display name (the sanitised original file name)")
    width: int
    height: int
    bytes: int
    media_type: str
    url: str
    thumb_url: str


class ExampleInfo(BaseModel):
    ref: str = Field(description="image reference for a job, e.g. example:chelsea")
    name: str
    kind: str = Field(description="content or style")
    width: int
    height: int
    url: str
    thumb_url: str


class StyleRef(BaseModel):
    image: str = Field(max_length=80, description="a file id or example:NAME")
    weight: float = Field(1.0, gt=0, description="blend weight (normalised over the styles)")


class JobRequest(BaseModel):
    content: str | None = Field(
        None, max_length=80, description="the photo: a file id or example:NAME (null: texture)"
    )
    styles: list[StyleRef] = Field(default_factory=list, max_length=MAX_STYLES)
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="engine settings (Settings fields: size, iterations, content_weight (alpha), "
        "style_weight (beta), preserve_colors, seed, ...); missing ones take the defaults",
    )


class RerunRequest(BaseModel):
    settings: dict[str, Any] = Field(
        default_factory=dict, description='settings to change; {"seed": null} draws a new seed'
    )


class InputInfo(BaseModel):
    ref: str
    name: str | None = None
    thumb_url: str | None = None
    weight: float | None = None


class JobView(BaseModel):
    id: str
    status: str = Field(description=" | ".join(STATUSES))
    position: int | None = Field(description="place in the queue (1 = next) while queued")
    device: str
    origin: str = Field(description="new, rerun or resume")
    parent: str | None
    created: float
    started: float | None
    finished: float | None
    error: str | None
    step: int
    total_steps: int | None
    scale: int | None
    n_scales: int | None
    loss: float | None
    losses: dict[str, float | None]
    elapsed: float | None = Field(description="seconds")
    eta: float | None = Field(description="seconds left (estimate)")
    preview_version: int = Field(description="increases with every new preview image")
    preview_url: str | None
    result_url: str | None
    settings_url: str
    can_resume: bool
    settings: dict[str, Any]
    content: InputInfo | None
    styles: list[InputInfo]
    width: int | None = None
    height: int | None = None


class ConfigInfo(BaseModel):
    version: str
    limits: dict[str, int]
    preview_every: int
    defaults: dict[str, Any]
    choices: dict[str, list[str]]
    examples: list[ExampleInfo]


# ------------------------------------------------------------------------------------------
# ASGI guard: Host allow-list, same-origin writes, body size limit, security headers

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
]


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _Guard:
    def __init__(self, app, *, allowed_hosts: tuple[str, ...] | None, max_body: int) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.max_body = max_body

    async def _refuse(self, send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.allowed is not None and _host_name(host) not in self.allowed:
            await self._refuse(send, 400, f"host {host!r} not allowed (DNS rebinding guard)")
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
                await self._refuse(send, 403, "cross-origin requests may not change anything")
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._refuse(send, 413, f"request body over {self.max_body:,} bytes")
            return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, f"request body over {self.max_body:,} bytes")
            return message

        async def secured_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, limited_receive, secured_send)


# ------------------------------------------------------------------------------------------
# helpers


def _error(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def _thumbnail_png(source: Path | Any, side: int = THUMB_SIDE) -> bytes:
    """A PNG no larger than ``side`` of a path or an already decoded ``LoadedImage``."""
    from ..image import LoadedImage, fit_long_side, load_image, resize, to_pil

    img = source if isinstance(source, LoadedImage) else load_image(source)
    rgb = img.rgb
    if max(img.size) > side:
        rgb = resize(rgb, fit_long_side(img.size, side))
    buf = io.BytesIO()
    to_pil(rgb).save(buf, format="PNG")
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def _example_thumb(name: str) -> bytes:
    return _thumbnail_png(examples.path(name))


def _example_names() -> dict[str, tuple[str, str]]:
    """stem -> (file name, kind)."""
    out = {Path(n).stem: (n, "content") for n in examples.CONTENT}
    out.update({Path(n).stem: (n, "style") for n in examples.STYLES})
    return out


@functools.lru_cache(maxsize=1)
def _examples_info() -> tuple[dict[str, Any], ...]:
    items = []
    for stem, (_, kind) in _example_names().items():
        with Image.open(examples.path(stem)) as im:
            w, h = im.size
        items.append(
            {
                "ref": f"{EXAMPLE_PREFIX}{stem}",
                "name": stem.replace("_", " "),
                "kind": kind,
                "width": w,
                "height": h,
                "url": f"/api/examples/{stem}",
                "thumb_url": f"/api/examples/{stem}/thumb.png",
            }
        )
    return tuple(items)


def _file_info(rec: FileRecord) -> dict[str, Any]:
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


def ingest_upload(store: Store, src: Path, filename: str | None, max_pixels: int) -> FileRecord:
    """Check that ``src`` is a real image within the limits and store it with a thumbnail.

    The format comes from decoding (never from the name or the client's content type); the whole
    image is decoded once (:func:`impasto.image.load_image`), so truncated or corrupt files are
    refused here rather than when a job starts.

    Raises:
        HTTPException: 415 not a supported image, 413 too many pixels, 422 undecodable.
    """
    from ..image import load_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()  # registers every plugin (MPO included) before the format filter
            formats = [f for f in UPLOAD_FORMATS if f in Image.OPEN]
            with Image.open(src, formats=formats) as im:
                fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as exc:
        raise _error(413, "image has too many pixels") from exc
    except (Image.UnidentifiedImageError, OSError, ValueError) as exc:
        names = ", ".join(dict.fromkeys(f if f != "MPO" else "JPEG" for f in UPLOAD_FORMATS))
        raise _error(415, f"not a supported image (accepted: {names})") from exc
    if w * h > max_pixels:
        raise _error(413, f"image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    try:
        loaded = load_image(src, max_pixels=max_pixels)
        thumb_png = _thumbnail_png(loaded)
    except ImageError as exc:
        message = str(exc).replace(str(src), "upload")
        raise _error(422, message) from exc
    ext, media_type = UPLOAD_FORMATS[fmt]
    thumb_id, thumb_path = store.reserve(".png")
    thumb_path.write_bytes(thumb_png)
    store.add_file(thumb_id, thumb_path, kind="thumb", media_type="image/png")
    file_id, path = store.reserve(ext)
    os.replace(src, path)
    width, height = loaded.size
    return store.add_file(
        file_id,
        path,
        kind="upload",
        media_type=media_type,
        display_name=sanitize_name(filename),
        width=width,
        height=height,
        thumb=thumb_id,
    )


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n"


# ------------------------------------------------------------------------------------------
# the app


def create_app(config: WebConfig) -> FastAPI:
    """Build the web studio for ``config``.

    The store is opened here; the job workers start with the app's lifespan (so a test client
    or uvicorn running the app starts them, and stopping the app marks running jobs
    ``interrupted``).
    """
    store = Store(config.data_dir)
    manager = JobManager(
        store,
        preview_every=config.preview_every,
        max_size=config.max_size,
        max_iterations=config.max_iterations,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        try:
            yield
        finally:
            await asyncio.to_thread(manager.stop)

    app = FastAPI(
        title="impasto studio",
        version=__version__,
        description="Local web studio for neural style transfer (Gatys et al.). Upload images, "
        "queue jobs, follow their progress over Server-Sent Events, download results.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        responses={422: {"model": ErrorBody, "description": "invalid request"}},
    )
    app.state.config = config
    app.state.store = store
    app.state.manager = manager
    app.add_middleware(
        _Guard,
        allowed_hosts=config.allowed_hosts,
        max_body=config.max_upload_bytes + 64 * 1024,
    )

    @app.exception_handler(SettingsError)
    async def settings_error(request: Request, exc: SettingsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def job_or_404(job_id: str):
        job = store.get_job(job_id)
        if job is None:
            raise _error(404, "no such job")
        return job

    # -------------------------------------------------------------------------------- page

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api", include_in_schema=False)
    def api_reference() -> FileResponse:
        return FileResponse(STATIC_DIR / "api.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # -------------------------------------------------------------------------------- info

    @app.get("/api/config", response_model=ConfigInfo, tags=["info"])
    def get_config() -> dict[str, Any]:
        """Limits, the engine's setting defaults and choices, and the bundled examples."""
        return {
            "version": __version__,
            "limits": {
                "max_upload_bytes": config.max_upload_bytes,
                "max_pixels": config.max_pixels,
                "max_size": config.max_size,
                "max_iterations": config.max_iterations,
                "max_styles": MAX_STYLES,
            },
            "preview_every": config.preview_every,
            "defaults": Settings().to_dict(),
            "choices": {
                "preserve_colors": list(COLOR_MODES),
                "init": list(INITS),
                "optimizer": list(OPTIMIZERS),
                "pooling": list(POOLINGS),
                "device": list(DEVICES),
                "precision": list(PRECISIONS),
            },
            "examples": list(_examples_info()),
        }

    @app.get("/api/examples", response_model=list[ExampleInfo], tags=["files"])
    def list_examples() -> list[dict[str, Any]]:
        """The bundled example images (use ``ref`` as an image reference in a job)."""
        return list(_examples_info())

    @app.get(
        "/api/examples/{name}",
        tags=["files"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
    )
    def get_example(name: str) -> FileResponse:
        """A bundled example image."""
        if name not in _example_names():
            raise _error(404, "no such example")
        return FileResponse(examples.path(name))

    @app.get(
        "/api/examples/{name}/thumb.png",
        tags=["files"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def get_example_thumb(name: str) -> Response:
        """A small PNG of a bundled example image."""
        if name not in _example_names():
            raise _error(404, "no such example")
        return Response(_example_thumb(name), media_type="image/png")

    # -------------------------------------------------------------------------------- files

    @app.post(
        "/api/files",
        status_code=201,
        response_model=FileInfo,
        tags=["files"],
        responses={
            413: {"model": ErrorBody, "description": "too many bytes or pixels"},
            415: {"model": ErrorBody, "description": "not a supported image"},
        },
    )
    def upload_file(
        file: Annotated[UploadFile, File(description="an image file")],
    ) -> dict[str, Any]:
        """Upload an image. It is decoded and checked (format, pixel count, integrity) and stored
        under a generated id; the original file name is kept only as a display name."""
        tmp = store.tmp_path()
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := file.file.read(1 << 20):
                    size += len(chunk)
                    if size > config.max_upload_bytes:
                        raise _error(
                            413, f"file is over the {config.max_upload_bytes:,}-byte upload limit"
                        )
                    out.write(chunk)
            if size == 0:
                raise _error(415, "empty file")
            rec = ingest_upload(store, tmp, file.filename, config.max_pixels)
        finally:
            tmp.unlink(missing_ok=True)
        return _file_info(rec)

    def stored_file(file_id: str, kinds: tuple[str, ...]) -> tuple[FileRecord, Path]:
        rec = store.get_file(file_id)
        if rec is None or rec.kind not in kinds:
            raise _error(404, "no such file")
        path = store.path_of(rec)
        if not path.is_file():
            raise _error(404, "file missing from the data directory")
        return rec, path

    @app.get("/api/files/{file_id}", tags=["files"], response_class=FileResponse)
    def get_file(file_id: str) -> FileResponse:
        """An uploaded image, as uploaded."""
        rec, path = stored_file(file_id, ("upload",))
        return FileResponse(path, media_type=rec.media_type)

    @app.get(
        "/api/files/{file_id}/thumb.png",
        tags=["files"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}},
    )
    def get_file_thumb(file_id: str) -> FileResponse:
        """A small PNG of an uploaded image."""
        rec, _ = stored_file(file_id, ("upload",))
        if not rec.thumb:
            raise _error(404, "no thumbnail")
        _, thumb = stored_file(rec.thumb, ("thumb",))
        return FileResponse(thumb, media_type="image/png")

    # -------------------------------------------------------------------------------- jobs

    @app.post("/api/jobs", status_code=201, response_model=JobView, tags=["jobs"])
    def create_job(req: JobRequest) -> dict[str, Any]:
        """Queue a job. Settings are the engine's (validated by it; errors are 422 with its
        message). Paths are not accepted: images are file ids or bundled examples."""
        job = manager.submit(
            content=req.content,
            styles=[s.model_dump() for s in req.styles],
            settings=req.settings,
        )
        return manager.view(job)

    @app.get("/api/jobs", response_model=list[JobView], tags=["jobs"])
    def list_jobs(
        status: Annotated[
            list[str] | None, Query(description="only jobs with these statuses")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """Jobs, newest first."""
        if status:
            bad = sorted(set(status) - set(STATUSES))
            if bad:
                raise _error(422, f"unknown status {bad[0]!r}; use {', '.join(STATUSES)}")
        jobs = store.list_jobs(tuple(status) if status else None, limit=limit)
        return [manager.view(j) for j in jobs]

    @app.get("/api/jobs/{job_id}", response_model=JobView, tags=["jobs"])
    def get_job(job_id: str) -> dict[str, Any]:
        """One job."""
        return manager.view(job_or_404(job_id))

    @app.delete(
        "/api/jobs/{job_id}",
        status_code=204,
        tags=["jobs"],
        responses={409: {"model": ErrorBody, "description": "the job is queued or running"}},
    )
    def delete_job(job_id: str) -> Response:
        """Delete a finished job with its result (uploaded inputs stay)."""
        job = job_or_404(job_id)
        if job.status not in TERMINAL:
            raise _error(409, "cancel the job before deleting it")
        manager.delete(job_id)
        return Response(status_code=204)

    @app.post("/api/jobs/{job_id}/cancel", response_model=JobView, tags=["jobs"])
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel a queued job now, or ask a running one to stop (it becomes ``cancelled``
        after its current iteration; follow the events)."""
        job_or_404(job_id)
        return manager.view(manager.cancel(job_id))

    @app.post("/api/jobs/{job_id}/rerun", status_code=201, response_model=JobView, tags=["jobs"])
    def rerun_job(job_id: str, req: RerunRequest | None = None) -> dict[str, Any]:
        """Queue a new job with the same inputs and settings (seed included), optionally
        changing some settings."""
        job_or_404(job_id)
        return manager.view(manager.rerun(job_id, req.settings if req else None))

    @app.post(
        "/api/jobs/{job_id}/resume",
        status_code=201,
        response_model=JobView,
        tags=["jobs"],
        responses={409: {"model": ErrorBody, "description": "nothing to resume"}},
    )
    def resume_job(job_id: str, req: RerunRequest | None = None) -> dict[str, Any]:
        """Queue a new job that continues an interrupted, cancelled or failed one from its last
        partial image: by default the remaining full-size iterations, without the pyramid
        (``settings`` may change that, e.g. ``{"iterations": 50}``)."""
        job = job_or_404(job_id)
        if not (job.status in ("interrupted", "cancelled", "failed") and job.partial_file):
            raise _error(409, f"job is {job.status} and has nothing to resume; re-run it instead")
        return manager.view(manager.resume(job_id, req.settings if req else None))

    def image_file(file_id: str | None, missing: str) -> Path:
        rec = store.get_file(file_id) if file_id else None
        path = store.path_of(rec) if rec is not None else None
        if path is None or not path.is_file():
            raise _error(404, missing)
        return path

    @app.get(
        "/api/jobs/{job_id}/preview.png",
        tags=["jobs"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def get_preview(job_id: str) -> Response:
        """The latest image of a job: the live preview while it runs, then the result (or the
        last partial image of an unfinished job). The ``v`` query parameter is ignored (it lets
        clients bust caches with the preview version)."""
        job = job_or_404(job_id)
        headers = {"Cache-Control": "no-store"}
        png = manager.preview(job_id)
        if png is not None:
            return Response(png, media_type="image/png", headers=headers)
        path = image_file(job.result_file or job.partial_file, "no preview yet")
        return FileResponse(path, media_type="image/png", headers=headers)

    @app.get(
        "/api/jobs/{job_id}/result.png",
        tags=["jobs"],
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}},
    )
    def get_result(job_id: str, download: bool = False) -> FileResponse:
        """The result PNG (its text metadata holds the settings and seed). With
        ``download=true`` it is sent as an attachment."""
        job = job_or_404(job_id)
        path = image_file(job.result_file, "no result: the job is not done")
        name = f"impasto-{job_id[:8]}.png"
        return FileResponse(
            path,
            media_type="image/png",
            filename=name if download else None,
            content_disposition_type="attachment" if download else "inline",
        )

    @app.get("/api/jobs/{job_id}/settings.json", tags=["jobs"])
    def get_settings(job_id: str, download: bool = False) -> JSONResponse:
        """The job's settings (``Settings.to_dict()``, seed included), inputs and outcome.
        ``settings`` can be passed back to ``POST /api/jobs`` or to ``Settings.from_dict``."""
        job = job_or_404(job_id)
        view = manager.view(job)
        body = {
            "impasto": __version__,
            "job": job.id,
            "status": job.status,
            "settings": job.settings,
            "inputs": {"content": view["content"], "styles": view["styles"]},
            "resumed_from_partial": job.init_file is not None,
            "elapsed_s": view["elapsed"],
        }
        headers = {}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="impasto-{job_id[:8]}.json"'
        return JSONResponse(body, headers=headers)

    # -------------------------------------------------------------------------------- events

    sse_doc = {
        200: {
            "description": "text/event-stream; each `data:` line is a JSON job view "
            "(as GET /api/jobs/{id})",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }

    def sse_response(gen: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            gen,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/api/jobs/{job_id}/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses=sse_doc,
    )
    async def job_events(job_id: str) -> StreamingResponse:
        """Server-Sent Events of one job: its current view at once, then a new view on every
        progress update (throttled to 10/s; a new preview image raises ``preview_version``).
        The stream ends after the job's final status."""
        if not is_id(job_id) or store.get_job(job_id) is None:
            raise _error(404, "no such job")
        sub = manager.subscribe(job_id)

        async def stream() -> AsyncIterator[str]:
            try:
                job = store.get_job(job_id)
                if job is None:
                    return
                view = manager.view(job)
                yield "retry: 2000\n" + _sse(view)
                if view["status"] in TERMINAL:
                    return
                while True:
                    event = await sub.get(SSE_KEEPALIVE_S)
                    if event is None:
                        yield ": keep-alive\n\n"
                        continue
                    yield _sse(event)
                    if event["status"] in TERMINAL or event["status"] == "deleted":
                        return
            finally:
                manager.unsubscribe(sub)

        return sse_response(stream())

    @app.get("/api/events", tags=["events"], response_class=StreamingResponse, responses=sse_doc)
    async def all_events() -> StreamingResponse:
        """Server-Sent Events of all jobs: a job view whenever a job is queued, starts, ends
        or moves in the queue (``{"id", "status": "deleted"}`` when one is deleted). Never ends;
        a comment line is sent every 15 s."""
        sub = manager.subscribe(None)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n: connected\n\n"
                while True:
                    event = await sub.get(SSE_KEEPALIVE_S)
                    yield ": keep-alive\n\n" if event is None else _sse(event)
            finally:
                manager.unsubscribe(sub)

        return sse_response(stream())

    for route in app.routes:  # document the 404 of every route that takes an id or a name
        if isinstance(route, APIRoute) and "{" in route.path:
            route.responses.setdefault(404, {"model": ErrorBody, "description": "unknown id"})
    app.state.started_at = time.time()
    return app
