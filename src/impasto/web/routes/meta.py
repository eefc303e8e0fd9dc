"""The page, the API reference page, configuration and the bundled examples."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from ... import examples
from ...choices import (
    COLOR_MODES,
    CONV_ALGORITHMS,
    INITS,
    LOSS_SCALES,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
)
from ...settings import DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, Settings
from ...version import __version__
from ..deps import ConfigDep, StudioDep
from ..encode import thumbnail_png
from ..limits import example_names, header_size
from ..models import MAX_STYLES, ConfigInfo, ExampleInfo

__all__ = ["router", "STATIC_DIR", "available_devices"]

router = APIRouter()
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
PNG = {200: {"content": {"image/png": {}}}}


@functools.lru_cache(maxsize=1)
def available_devices() -> tuple[str, ...]:
    """The device choices this server can run: auto, cpu and the accelerators present."""
    import torch

    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return tuple(found)


@functools.lru_cache(maxsize=16)
def _example_thumb(name: str) -> bytes:
    return thumbnail_png(examples.path(name))


@functools.lru_cache(maxsize=1)
def _examples_info() -> tuple[dict[str, Any], ...]:
    items = []
    for stem, (_, kind) in example_names().items():
        w, h = header_size(examples.path(stem))
        url = f"/api/examples/{stem}"
        items.append(
            {
                "ref": f"example:{stem}",
                "name": stem.replace("_", " "),
                "kind": kind,
                "width": w,
                "height": h,
                "url": url,
                "thumb_url": f"{url}/thumb.png",
            }
        )
    return tuple(items)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api", include_in_schema=False)
def api_reference() -> FileResponse:
    return FileResponse(STATIC_DIR / "api.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/config", response_model=ConfigInfo, tags=["info"])
def get_config(config: ConfigDep, studio: StudioDep) -> dict[str, Any]:
    """Limits, the memory budget and the largest size it allows, the engine's setting defaults
    and choices (devices: those this server has), and the bundled examples."""
    cap, defaults = studio.capacity, Settings()
    return {
        "version": __version__,
        "limits": {
            "max_upload_bytes": config.max_upload_bytes,
            "max_pixels": config.max_pixels,
            "max_size": cap.max_size,
            "max_memory": cap.budget,
            "max_iterations": config.max_iterations,
            "max_work": config.max_work,
            "max_styles": MAX_STYLES,
        },
        "memory": {
            "budget": cap.budget,
            "source": cap.source,
            "device": cap.device,
            "max_size": cap.memory_max_size,
            "max_size_cap": config.max_size,
        },
        "preview_every": config.preview_every,
        "defaults": defaults.resolved(),  # the weights in use, for the form's fields
        "style_weight_defaults": DEFAULT_STYLE_WEIGHT,
        "tv_weight_defaults": DEFAULT_TV_WEIGHT,
        "choices": {
            "loss_scale": list(LOSS_SCALES),
            "preserve_colors": list(COLOR_MODES),
            "init": list(INITS),
            "optimizer": list(OPTIMIZERS),
            "pooling": list(POOLINGS),
            "device": list(available_devices()),
            "precision": list(PRECISIONS),
            "conv": list(CONV_ALGORITHMS),
        },
        "examples": list(_examples_info()),
    }


@router.get("/api/examples", response_model=list[ExampleInfo], tags=["files"])
def list_examples() -> list[dict[str, Any]]:
    """The bundled example images (use ``ref`` as an image reference in a job)."""
    return list(_examples_info())


def _example(name: str) -> str:
    if name not in example_names():
        raise HTTPException(404, "no such example")
    return name


@router.get(
    "/api/examples/{name}",
    tags=["files"],
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
)
def get_example(name: str) -> FileResponse:
    """A bundled example image."""
    return FileResponse(examples.path(_example(name)))


@router.get(
    "/api/examples/{name}/thumb.png", tags=["files"], response_class=Response, responses=PNG
)
def get_example_thumb(name: str) -> Response:
    """A small PNG of a bundled example image."""
    return Response(_example_thumb(_example(name)), media_type="image/png")
