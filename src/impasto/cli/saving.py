"""Intermediate saves of the CLI (``--save-every``) and the seed they record."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..version import __version__
from .common import file_kwargs, settings_from_args

__all__ = ["settings_with_seed", "intermediate_saver"]


def settings_with_seed(args: argparse.Namespace, **fixed: Any) -> Settings:
    """The run's settings with the seed drawn now when none is given, so that intermediate
    files and the final one record the same seed."""
    settings = settings_from_args(args, **fixed)
    if settings.seed is None:
        settings = settings.replace(seed=random.SystemRandom().randrange(2**31))
    return settings


def _name(source: Any) -> str:
    return Path(str(getattr(source, "image", source))).name


def intermediate_saver(args: argparse.Namespace, settings: Settings, content: Any, styles: list):
    """A callback writing the current image (and, with ``--keep-intermediates``, a numbered
    copy) with metadata that says it is partial and names seed, settings and inputs."""
    from ..image import save_image

    out = Path(args.output)
    info = {
        "partial": True,
        "version": __version__,
        "seed": settings.seed,
        "settings": settings.resolved(),  # the weights in use, as the final file records
        "inputs": {"content": _name(content), "styles": [_name(s) for s in styles]},
    }

    def save(it) -> None:
        meta = {"impasto": json.dumps({**info, "step": it.step}, sort_keys=True)}
        img = it.image.detach().float().cpu().clamp(0, 1)
        save_image(img, out, metadata=meta, **file_kwargs(args))
        if args.keep_intermediates:
            numbered = out.with_name(f"{out.stem}.i{it.step:05d}{out.suffix}")
            save_image(img, numbered, metadata=meta, **file_kwargs(args))

    return save
