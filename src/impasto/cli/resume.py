"""``impasto resume CHECKPOINT [-o OUT]``: continue a run saved with ``--checkpoint`` exactly
where it stopped (the result is the one the uninterrupted run would have written).

Also the checkpoint flags of ``impasto stylize`` (``--checkpoint``, ``--checkpoint-every``,
``--resume``): a checkpoint written from the command line records the command (its options,
the seed in use and the working directory), so that ``impasto resume`` needs nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SettingsError
from .common import QUIET_HELP, takes_16_bits

__all__ = [
    "DEFAULT_EVERY_MINUTES",
    "add_checkpoint_arguments",
    "add_parser",
    "checkpoint_options",
    "run",
    "say_where_saved",
]

DEFAULT_EVERY_MINUTES = 5.0
# Not recorded: how this process was started, or what resuming replaces.
_NOT_RECORDED = ("run", "resume", "command")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--checkpoint-every``, ``--resume``."""
    g = parser.add_argument_group("long runs")
    g.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="save the run's state to PATH (atomically: a crash never leaves half a file) every "
        "--checkpoint-every minutes, on Ctrl-C and on cancel; continue it with "
        "`impasto resume PATH`",
    )
    g.add_argument(
        "--checkpoint-every",
        type=float,
        default=None,
        metavar="MINUTES",
        help=f"minutes between checkpoints (default: {DEFAULT_EVERY_MINUTES:g}; 0: only on "
        "Ctrl-C and cancel)",
    )
    g.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue the run saved in CHECKPOINT exactly (same inputs and settings; its seed "
        "is used when --seed is not given)",
    )


def _recorded(args: argparse.Namespace, seed: int) -> str:
    """The command line as data (JSON), with the seed in use."""
    kept = {k: v for k, v in vars(args).items() if k not in _NOT_RECORDED}
    kept["seed"] = seed
    return json.dumps({"command": "stylize", "cwd": os.getcwd(), "args": kept})


def checkpoint_options(args: argparse.Namespace, settings) -> tuple[Any, Any, Any]:
    """``(settings, autosave or None, checkpoint to resume or None)`` from the flags; with
    ``--resume`` and no ``--seed``, the checkpoint's seed."""
    from ..checkpoint import Autosave, load_checkpoint

    ckpt = None
    if getattr(args, "resume", None):
        ckpt = load_checkpoint(args.resume)
        if "seed" not in vars(args):
            settings = settings.replace(seed=ckpt.seed)
    autosave = None
    every = getattr(args, "checkpoint_every", None)
    if getattr(args, "checkpoint", None) == "":  # it turned checkpointing off without a word
        raise SettingsError("--checkpoint needs a file path, got an empty one")
    if not getattr(args, "checkpoint", None):
        if every is not None:
            raise SettingsError("--checkpoint-every needs --checkpoint PATH")
        return settings, autosave, ckpt
    every = DEFAULT_EVERY_MINUTES if every is None else every
    if every < 0:
        raise SettingsError("--checkpoint-every must be >= 0 minutes")
    if Path(args.checkpoint).resolve() == Path(args.output).resolve():
        raise SettingsError("--checkpoint must be another file than the output (-o)")
    autosave = Autosave(args.checkpoint, every * 60, meta=_recorded(args, settings.seed))
    return settings, autosave, ckpt


def say_where_saved(autosave) -> None:
    """After Ctrl-C or cancel: where the state is and how to continue."""
    if autosave is not None and autosave.path.is_file():
        print(
            f"impasto: state saved in {autosave.path}; continue with "
            f"`impasto resume {autosave.path}`",
            file=sys.stderr,
        )


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "resume",
        help="continue a run saved with --checkpoint",
        description="Continue a run saved with `impasto stylize ... --checkpoint PATH` exactly "
        "where it stopped: same inputs (checked by their SHA-256), settings and seed; the result "
        "is the one the uninterrupted run would have written.",
    )
    p.add_argument("checkpoint", help="the checkpoint file")
    p.add_argument("-o", "--output", help="output file (default: the run's own output path)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    v.add_argument("-v", "--verbose", action="store_true", help="also log each scale and losses")
    p.set_defaults(run=run)
    return p


def _command(path: str) -> dict[str, Any]:
    """The command line recorded in a checkpoint (loaded on the CPU, then dropped), with the
    settings the run had in place of the ones the command line left to their defaults: a default
    that changed since (or a setting added since) must not change or refuse the resumed run."""
    from ..checkpoint import load_checkpoint
    from ..settings import resolve_weights

    ckpt = load_checkpoint(path)
    caller = ckpt.extra.get("caller")
    try:
        info = json.loads(caller) if isinstance(caller, str) else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("command") != "stylize":
        raise CheckpointError(
            f"{path} was not written by `impasto stylize --checkpoint`; resume it from Python "
            "with Stylizer.run(..., resume=PATH)"
        )
    recorded = resolve_weights(ckpt.settings)
    recorded.pop("max_memory", None)  # the budget may differ on resume; the flag's value stays
    info["args"] = {**info["args"], **recorded}
    return info


def run(args: argparse.Namespace) -> int:
    from .stylize import run as stylize

    info = _command(args.checkpoint)
    ns = argparse.Namespace(**info["args"])
    ns.resume = str(Path(args.checkpoint).resolve())
    # keep saving to the file being resumed (absolute: the run goes on in its own folder), not
    # to where the checkpoint was first written: a moved checkpoint lost the new progress
    ns.checkpoint = ns.resume
    if args.output:
        ns.output = str(Path(args.output).resolve())
    from ..image import LOSSY_FORMATS, OUTPUT_FORMATS

    suffix = Path(ns.output).suffix.lower()
    if OUTPUT_FORMATS.get(suffix) not in LOSSY_FORMATS:
        ns.quality = None  # recorded as 95 before --quality was refused for lossless outputs
    if getattr(ns, "bits", 8) == 16 and not takes_16_bits(suffix):
        raise SettingsError(
            f"the run writes 16 bits per channel (--bits 16); -o needs a .png or .tif, not {suffix}"
        )
    if args.quiet or args.verbose:
        ns.quiet, ns.verbose = args.quiet, args.verbose
    if not Path(info["cwd"]).is_dir():
        raise CheckpointError(
            f"the run was started in {info['cwd']}, which no longer exists; run the original "
            "command again with --resume instead"
        )
    here = os.getcwd()
    os.chdir(info["cwd"])  # the recorded paths are relative to it
    try:
        return stylize(ns)
    finally:
        os.chdir(here)
