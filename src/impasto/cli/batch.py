"""``impasto batch``: many photos x many paintings into one folder, resumable.

    impasto batch --contents photos/ --styles 'paintings/*.jpg' -o out/ --size 512
    impasto batch jobs.jsonl -o out/ --backend ray --address auto

Prints one overall progress bar (``-v`` adds a line per job, ``-q`` hides the bar) and a summary;
exits 0 when every job is done, 1 when some failed (listed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import SettingsError
from .common import (
    add_file_arguments,
    add_settings_arguments,
    check_file_flags,
    file_kwargs,
    settings_from_args,
    takes_16_bits,
)

__all__ = ["add_parser", "run", "main"]

NAME = "batch"
FORMATS = ("png", "jpg", "tif", "webp")
DESCRIPTION = (
    "Run many jobs into OUTDIR: every photo of --contents with every painting of --styles "
    "(folders, globs, files or example:NAME), or one job per line of JOBS.jsonl "
    '({"content": PATH, "styles": [PATH or {"image": PATH, "weight": W, "scale": S}], '
    '"settings": {...}, "output": NAME}). Outputs are OUTDIR/<content>__<style>.<format>, '
    "outcomes are appended to OUTDIR/manifest.jsonl, and a re-run skips the jobs already done. "
    "Without --seed each job's seed comes from its id (so re-runs repeat it)."
)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("jobs", nargs="?", metavar="JOBS.jsonl", help="a jobs file (one JSON a line)")
    p.add_argument("--contents", nargs="+", action="extend", default=[], metavar="DIR_OR_GLOB")
    p.add_argument("--styles", nargs="+", action="extend", default=[], metavar="DIR_OR_GLOB")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--format", choices=FORMATS, default="png", help="output format (default png)")
    add_file_arguments(p)
    g = p.add_argument_group("where jobs run")
    g.add_argument("--backend", choices=("local", "ray"), default="local")
    g.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="Ray cluster to join (default: start a local Ray for this batch)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (Ray actors); default: one per GPU, else 2 on the CPU locally "
        "(measured fastest on 2 cores) and one per CPU slot on Ray",
    )
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: the cores shared among the workers; 1 on Ray)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per finished job")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``impasto batch`` on an ``add_subparsers()`` object."""
    p = sub.add_parser(
        NAME, help="many photos x many paintings, resumable", description=DESCRIPTION
    )
    _add_arguments(p)
    add_settings_arguments(p)
    p.set_defaults(run=run)
    return p


def _check(args: argparse.Namespace) -> None:
    if args.jobs and (args.contents or args.styles):
        raise SettingsError("give either JOBS.jsonl or --contents/--styles, not both")
    if not args.jobs and not (args.contents and args.styles):
        raise SettingsError("give JOBS.jsonl, or both --contents and --styles")
    for name in ("workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SettingsError(f"--{name} must be >= 1")
    from ..image import OUTPUT_FORMATS

    if args.bits == 16 and not takes_16_bits("." + args.format):
        raise SettingsError("--bits 16 needs --format png or tif")

    check_file_flags(args, OUTPUT_FORMATS["." + args.format])
    if args.address and args.backend != "ray":
        raise SettingsError("--address needs --backend ray")


class _Progress:
    """The batch's one bar (tqdm, on stderr) and, with ``-v``, a line per job."""

    def __init__(self, enabled: bool, verbose: bool) -> None:
        self.enabled, self.verbose, self.bar = enabled, verbose, None

    def __call__(self, e) -> None:
        if self.enabled and self.bar is None:
            from tqdm import tqdm

            fmt = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
            self.bar = tqdm(total=e.total, desc="batch", bar_format=fmt, file=sys.stderr)
        if e.event != "started" and self.bar is not None:
            self.bar.update(1)
        if self.bar is not None:
            eta = "" if e.eta is None else f", eta {_duration(e.eta)}"
            self.bar.set_postfix_str(
                f"done {e.done + e.skipped}, failed {e.failed}, running {e.running}{eta}"
            )
        if self.verbose and e.event != "started":
            self._line(e)

    def _line(self, e) -> None:
        name = e.job.name or _inputs(e.job.describe())
        rec = e.record or {}
        if e.event == "done":
            text = f"done     {name}  {rec.get('elapsed_s', 0):.1f} s  seed {rec.get('seed')}"
        elif e.event == "skipped":
            text = f"skipped  {name}  (done before)"
        else:
            text = f"failed   {name}: {rec.get('error')}"
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _plan(args: argparse.Namespace, settings):
    from ..batch import cross_jobs, expand_inputs, jsonl_jobs

    if args.jobs:
        return jsonl_jobs(args.jobs, settings)
    contents = expand_inputs(args.contents, "contents")
    styles = expand_inputs(args.styles, "styles")
    return cross_jobs(contents, styles, settings)


def _inputs(rec: dict) -> str:
    """A job without an output name (its inputs could not be read) by its inputs' names, or
    by its line (``jobs.jsonl:5``) when the line itself could not be read."""
    if not rec.get("content") and not rec.get("styles") and rec.get("source"):
        return str(rec["source"])
    styles = " + ".join(os.path.basename(s.get("path", "?")) for s in rec.get("styles") or [])
    return f"{os.path.basename(rec.get('content') or '?')} x {styles or 'no style'}"


def _summary(summary) -> None:
    parts = [f"{summary.done} done"]
    if summary.skipped:
        parts.append(f"{summary.skipped} done before")
    parts.append(f"{summary.failed} failed")
    if summary.not_run:
        parts.append(f"{summary.not_run} not run")
    if summary.duplicates:  # the same input bytes and settings under other names
        parts.append(f"{summary.duplicates} repeated (same images and settings as another job)")
    print(
        f"impasto batch: {summary.total} job{'s' * (summary.total != 1)}: {', '.join(parts)} in "
        f"{_duration(summary.elapsed)}; manifest {summary.manifest}",
        file=sys.stderr,
    )
    for rec in summary.failures:
        name = rec.get("output") or _inputs(rec)
        print(f"  failed: {name}: {rec.get('error')}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Plan, run and summarise the batch; 0 when every job is done, else 1."""
    from ..batch import BatchOptions, run_batch

    _check(args)
    settings = settings_from_args(args)
    jobs = _plan(args, settings)
    options = BatchOptions(
        backend=args.backend,
        workers=args.workers,
        threads=args.threads,
        address=args.address,
        extension="." + args.format,
        **file_kwargs(args),
    )
    progress = _Progress(enabled=not args.quiet, verbose=args.verbose)
    try:
        summary = run_batch(jobs, args.output, options, callback=progress)
    finally:
        progress.close()
    _summary(summary)
    return 0 if summary.ok else 1


def main(argv: Sequence[str]) -> int:
    """``impasto batch ...`` for the dispatcher that calls ``module.main(argv)``."""
    parser = argparse.ArgumentParser(prog="impasto")
    add_parser(parser.add_subparsers())
    args = parser.parse_args([NAME, *argv])
    return args.run(args)
