"""The ``impasto`` command: argparse sub-commands -> :class:`~impasto.settings.Settings` -> the
API; every error a user can cause -> one line and a non-zero exit code, never a traceback.

Sub-commands live in one module each (``add_parser(sub)`` + ``run(args)``); ``stylize`` is the
default, so ``impasto PHOTO PAINTING -o OUT`` works as it reads. Nothing imported here loads
torch: ``impasto --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from ..errors import Cancelled, ImpastoError, SettingsError
from ..version import __version__

__all__ = [
    "main", "parse", "build_parser", "flags_of", "named_as_flags", "SUBCOMMANDS", "UsageError"
]  # fmt: skip

SUBCOMMANDS: tuple[str, ...] = (
    "stylize", "reconstruct", "sweep", "serve", "batch", "train", "resume"
)  # fmt: skip
DEFAULT = "stylize"
_TOP_LEVEL = ("-h", "--help", "--version")


class UsageError(SettingsError):
    """A command line argparse could not parse."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) raised as :class:`UsageError`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    """The ``impasto`` parser with every sub-command."""
    p = Parser(
        prog="impasto",
        description="Paint a photograph in the style of a painting by optimising the image "
        "through VGG19 (Gatys et al.). Without a sub-command, `impasto PHOTO PAINTING... -o OUT` "
        "runs `impasto stylize`.",
        epilog="Run `impasto COMMAND --help` for each command's options.",
    )
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return p


def _argv_with_command(argv: list[str]) -> list[str]:
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in _TOP_LEVEL:
        return [DEFAULT, *argv]
    return argv


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line (the default sub-command filled in); a mistake raises
    :class:`UsageError` with one line. A sub-command's positionals may come between its options
    (``impasto stylize photo.jpg --size 256 painting.jpg``): where plain parsing leaves words
    over, argparse's intermixed parsing takes a second look. It is only offered to a parser
    without sub-commands of its own, so it runs on the sub-parser; the plain pass comes first
    because its messages name every missing argument (the intermixed one names options first)."""
    argv = _argv_with_command(list(argv))
    parser = build_parser()
    try:
        return parser.parse_args(argv)
    except UsageError as e:
        _hint_dash_value(e, argv)
        sub = _subparser(parser, argv[0]) if argv else None
        if sub is None or not str(e).startswith("unrecognized arguments"):
            raise
    args = sub.parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


_MISSING_VALUE = re.compile(r"argument (\S+?)(?:/\S+)?: expected one argument")


def _hint_dash_value(error: UsageError, argv: list[str]) -> None:
    """argparse reads a value that starts with a minus sign but is not one plain number
    (``--style-blend -1,2``) as an option and says the flag has no value; the error then says
    how to write it. A word after the dash (``--init -o``) is an option, left as argparse put it."""
    match = _MISSING_VALUE.match(str(error))
    if match is None:
        return
    for flag, value in zip(argv, argv[1:]):
        if flag in match.group(1).split("/") and re.match(r"-[\d.]", value):
            raise UsageError(
                f"argument {flag}: {value!r} starts with '-', so it was read as an option; "
                f"write {flag}={value}"
            ) from None


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The sub-command parser called ``name`` when intermixed parsing can serve it, else None
    (an unknown name, or a sub-command with sub-commands of its own, as ``train``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(name)
            nested = sub is not None and any(
                isinstance(a, argparse._SubParsersAction) for a in sub._actions
            )
            return None if sub is None or nested else sub
    return None


def _import_torch() -> None:
    """Import torch with Ctrl-C (and SIGTERM, which takes its path) held back: a
    KeyboardInterrupt raised inside torch's own imports can be swallowed there or leave it
    half-initialised (a RecursionError later), so the signals are blocked for the import and
    delivered, as a plain KeyboardInterrupt, right after it."""
    mask = getattr(signal, "pthread_sigmask", None)  # absent on Windows: nothing held back
    held = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if mask else None
    try:
        import torch  # noqa: F401
    finally:
        if mask:
            mask(signal.SIG_SETMASK, held)


def _run(argv: list[str]) -> int:
    args = parse(argv)
    if getattr(args, "run", None) is None:
        build_parser().print_help(sys.stderr)
        return 2
    _import_torch()
    try:
        return args.run(args)
    except ImpastoError as e:
        if not isinstance(e, UsageError) and e.args:  # argparse's messages name flags already
            e.args = (named_as_flags(str(e), flags_of(args)),)
        raise


# a snake_case word on its own: not part of a path or a file name (style_weight.png)
_IDENTIFIER = re.compile(r"(?<![\w./\\-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w./\\-])")


def flags_of(args: argparse.Namespace) -> dict[str, str]:
    """Setting name -> the flag that sets it, for the sub-command ``args`` came from (its own
    ``flag_for`` first: ``reconstruct`` sets ``content_layers`` with ``--layer``). A resumed
    run's settings are those of the command it resumes, ``stylize``'s flags."""
    command = getattr(args, "command", None) or DEFAULT
    sub = _subparser(build_parser(), DEFAULT if command == "resume" else command)
    flags = {
        a.dest: max(a.option_strings, key=len)
        for a in (sub._actions if sub is not None else [])
        if a.option_strings and a.dest != "help"
    }
    return {**flags, **getattr(args, "flag_for", {})}


def named_as_flags(message: str, flags: dict[str, str]) -> str:
    """A setting's message in the words of the command line: the setting that heads it
    (``pyramid_factor: ...``) and any other ``snake_case`` setting named in it (``set
    style_weight 0``) become their flags (``--pyramid-factor``, ``--style-weight``); the
    library and the web keep the settings' own names."""
    head, sep, rest = message.partition(": ")
    if sep and head in flags:
        message = f"{flags[head]}: {rest}"
    return _IDENTIFIER.sub(lambda m: flags.get(m.group(), m.group()), message)


TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[list[bool]]:
    """SIGTERM (``kill``, ``timeout``, a scheduler's end of job) takes Ctrl-C's path: whatever
    a Ctrl-C saves (a checkpoint, the state) is saved; before, the process ended at once and a
    run with ``--checkpoint-every 0`` lost everything. It raises KeyboardInterrupt itself, also
    where SIGINT is ignored (a job a script started with ``&``, which ``kill`` could not stop);
    the optimiser holds it, as it holds Ctrl-C, while its state is being updated. Yields a flag
    set when SIGTERM came. Only in the main thread (a no-op elsewhere); the previous handler is
    put back."""
    fired: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield fired
        return

    def handle(signum: int, frame: object) -> None:
        fired.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield fired
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``impasto`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _sigterm_as_ctrl_c() as terminated:
        try:
            return _run(argv)
        except Cancelled:
            print("impasto: cancelled", file=sys.stderr)
            return Cancelled.exit_code
        except KeyboardInterrupt:
            how = "terminated" if terminated else "interrupted"
            print(
                f"\nimpasto: {how}; every file written is complete, none half-written",
                file=sys.stderr,
            )
            return TERMINATED if terminated else 130
        except ImpastoError as e:
            print(f"impasto: error: {e}", file=sys.stderr)
            return e.exit_code
        except MemoryError:
            print("impasto: error: out of memory; try a smaller --size", file=sys.stderr)
            return 1
        except Exception as e:  # the last line of defence: no traceback reaches a user
            return _internal_error(e)


def _internal_error(e: Exception) -> int:
    if os.environ.get("IMPASTO_DEBUG"):
        raise e  # the traceback stays the original's
    print(
        f"impasto: internal error: {type(e).__name__}: {e} "
        "(set IMPASTO_DEBUG=1 for the traceback, and please report it)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
