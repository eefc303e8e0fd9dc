"""``impasto sweep``: one labelled contact sheet over one dial (the library side, cells and
sheet, is :mod:`impasto.sweep`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SettingsError
from ..inputs import resolve_input
from ..settings import StyleInput
from ..sweep import SweepResult, run_sweep
from .common import (
    QUIET_HELP,
    add_file_arguments,
    add_settings_arguments,
    check_output,
    file_kwargs,
    make_progress,
    refuse_overwriting_inputs,
    settings_from_args,
)
from .common import floats as _floats

__all__ = ["add_parser", "run"]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="one labelled contact sheet over one dial (alpha/beta, layers, any setting)",
        description="Render one labelled contact sheet over one dial: alpha/beta ratios,\n"
        "style-layer sets, or any engine option. Every cell shares the seed and all other\n"
        "settings; targets are computed once and reused where possible.",
        epilog="examples:\n"
        "  impasto sweep example:chelsea example:starry_night --over ratio -o ratio.png\n"
        "  impasto sweep photo.jpg painting.jpg --over style-layers --size 256 -o layers.png\n"
        "  impasto sweep photo.jpg painting.jpg --over preserve-colors "
        "--values none,luminance,histogram,swap -o colours.png\n"
        "  impasto sweep photo.jpg painting.jpg --over style-scale --values 0.5,1,2 -o s.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content", help="the photograph (path or example:NAME)")
    p.add_argument("styles", nargs="+", metavar="style", help="one or more paintings (blended)")
    p.add_argument(
        "--over",
        required=True,
        metavar="DIAL",
        help="ratio (alpha/beta), style-layers (cumulative layer sets), or any engine option "
        "below (e.g. style-scale, preserve-colors, pooling, init)",
    )
    p.add_argument(
        "--values",
        default=None,
        metavar="V1,V2,...",
        help="the values; layer sets and other list values are separated by ';' "
        "(default for ratio: 1,0.3,0.1,0.03 with --loss-scale normalized, 1e-4,1e-3,1e-2,1e-1 "
        "with paper; for style-layers: relu1_1 up to all --style-layers)",
    )
    p.add_argument(
        "--style-blend",
        type=_floats,
        default=None,
        metavar="W1,W2,...",
        help="blend weight per style image (normalised; default: equal)",
    )
    p.add_argument("--columns", type=int, default=None, help="images per row (default: up to 6)")
    add_settings_arguments(p)
    g = p.add_argument_group("output and progress")
    g.add_argument("-o", "--output", required=True, help="the sheet: .png, .jpg, .tif or .webp")
    add_file_arguments(g, bits=False)
    v = g.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    v.add_argument("-v", "--verbose", action="store_true", help="also log losses")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..image import save_image, to_tensor

    check_output(args)
    settings = settings_from_args(args)
    if args.style_blend is not None and len(args.style_blend) != len(args.styles):
        raise SettingsError(
            f"--style-blend takes one value per painting given ({len(args.styles)}); got "
            f"{len(args.style_blend)}"
        )
    if args.columns is not None and args.columns < 1:
        raise SettingsError("--columns must be >= 1")
    styles = [
        StyleInput(resolve_input(path), weight=args.style_blend[i] if args.style_blend else 1.0)
        for i, path in enumerate(args.styles)
    ]
    content = resolve_input(args.content)
    inputs = [content, *(s.image for s in styles), settings.weights, settings.init]
    refuse_overwriting_inputs([("-o", args.output)], inputs)
    bars: list[Any] = []

    def progress(i: int, caption: str):
        for bar in bars:
            bar.__exit__(None, None, None)
        bars.clear()
        if not args.quiet:
            print(f"[{i + 1}] {caption}", file=sys.stderr)
        bars.append(make_progress(args).__enter__())  # notes and tiles as stylize prints them
        return bars[-1]

    try:
        out = run_sweep(
            content,
            styles,
            settings,
            args.over,
            args.values,
            columns=args.columns,
            progress=progress,
        )
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    meta = _sheet_metadata(out, args.over)
    save_image(to_tensor(out.sheet), args.output, metadata=meta, **file_kwargs(args))
    if not args.quiet:
        stats = out.stats
        print(
            f"wrote {args.output} ({len(out.cells)} cells; targets computed "
            f"{stats['targets_computed']}x, reused {stats['targets_reused']}x)",
            file=sys.stderr,
        )
    return 0


def _sheet_metadata(out: SweepResult, over: str) -> dict[str, str]:
    first = out.cells[0][1]
    info = {
        "sweep": {"over": over, "cells": [c for c, _ in out.cells]},
        "inputs": first.inputs,
        "settings": {**first.settings.resolved(), "seed": first.seed},
    }
    return {"impasto": json.dumps(info, sort_keys=True), "Software": first.metadata["Software"]}
