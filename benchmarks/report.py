"""What the benchmark scripts share: where a result goes (one JSON file, written whole or not at
all), how a bad flag or a failed run is told (one line, as impasto's own commands do), and the
argparse types of their common flags."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from impasto.settings import MIN_SIZE  # the smallest output long side impasto accepts


class BenchError(Exception):
    """A failure a script explains in its message: told without the exception's type name."""


def write_json(path: Path, result: dict, *, quiet: bool = False) -> None:
    """``result`` as indented JSON at ``path`` (folders made), through a temporary file, so a
    run cut short leaves the previous results in place; says where it wrote (unless ``quiet``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    if not quiet:
        print(f"wrote {path}")


# --------------------------------------------------------------------------- one-line errors

# a line that says nothing of what went wrong: blank, a traceback's frame, source or carets,
# pydantic's link, the traceback's own header
_NOISE = re.compile(r"^(\s|Traceback \(most recent call last\)|For further information visit)")
# a script's own one-line error (main_guard's, in a child process): the message after it
_PREFIX = re.compile(r"^[\w.-]+\.py: error: ")
# an exception's dotted module path before its name: ``impasto.errors.SettingsError: ...``
_MODULE = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b)")


def last_line(text: str | bytes | None) -> str:
    """The last line of ``text`` that says what went wrong (a child's stderr, its traceback or a
    log): frames, carets and links skipped, a script's ``X.py: error:`` prefix and an exception's
    module path taken off; ``""`` when there is none."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for line in reversed((text or "").splitlines()):
        if line.strip() and not _NOISE.match(line):
            return _MODULE.sub("", _PREFIX.sub("", line.strip()))
    return ""


def error_line(exc: BaseException) -> str:
    """One line saying what ``exc`` was: its message (a multi-line one -- a headline ending in
    ``:`` over a child's output -- as its headline and the output's last meaningful line), with
    the exception's type name unless the message explains itself (impasto's and these scripts'
    own errors)."""
    import subprocess

    if isinstance(exc, subprocess.CalledProcessError):
        cmd = exc.cmd if isinstance(exc.cmd, str) else " ".join(map(str, exc.cmd[:4]))
        why = last_line(exc.stderr) or last_line(exc.output) or f"exit status {exc.returncode}"
        return f"{cmd} ... failed: {why}"
    text = str(exc) if not isinstance(exc, SystemExit) else str(exc.code)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    message = last_line(text) or (lines[0] if lines else "")
    if len(lines) > 1 and lines[0].rstrip().endswith(":") and lines[0].strip() != message:
        message = f"{lines[0].strip()} {message}"
    plain = (BenchError, SystemExit)
    try:
        from impasto.errors import ImpastoError

        plain += (ImpastoError,)
    except ImportError:  # pragma: no cover - impasto is installed wherever these run
        pass
    if isinstance(exc, plain) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def main_guard(main: Callable[..., int | None], *args) -> NoReturn:
    """Run a script's ``main(*args)`` and exit with its code. Any exception -- and a
    ``SystemExit`` with a message -- becomes one line on stderr, ``SCRIPT: error: ...``, and exit
    status 2 (``BENCH_DEBUG=1``: the traceback instead); Ctrl-C is ``SCRIPT: interrupted``, 130.
    argparse's own errors and exits pass through as they are."""
    name = Path(main.__code__.co_filename).name
    try:
        code = main(*args)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise
        _fail(name, e)
    except Exception as e:
        _fail(name, e)
    sys.exit(code or 0)


def _fail(name: str, exc: BaseException) -> NoReturn:
    if os.environ.get("BENCH_DEBUG"):
        traceback.print_exception(exc)
    else:
        print(f"{name}: error: {error_line(exc)}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------- argparse types


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        return value

    return parse


#: an output size (long side, px): at least impasto's smallest
size_type = at_least(MIN_SIZE)


def comma_list(
    choices: Iterable[str] | None = None, item: Callable[[str], object] = str
) -> Callable[[str], list]:
    """An argparse type: a comma-separated list, each value passed through ``item`` (an int, a
    size...) and, given ``choices``, one of them; an empty list is refused."""
    allowed = tuple(choices) if choices is not None else None

    def parse(text: str) -> list:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("an empty list")
        if allowed is not None:
            bad = [v for v in values if v not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"invalid choice(s) {', '.join(map(repr, bad))} (choose from "
                    f"{', '.join(allowed)})"
                )
        out = []
        for v in values:
            try:
                out.append(item(v))
            except argparse.ArgumentTypeError as e:  # named, unless the message names it
                raise argparse.ArgumentTypeError(str(e) if v in str(e) else f"{v!r}: {e}") from None
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid value {v!r}") from None
        return out

    return parse
