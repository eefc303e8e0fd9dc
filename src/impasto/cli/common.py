"""What every sub-command shares: flags generated from :class:`~impasto.settings.Settings`
(defaults and help from its fields, types from its annotations), output and progress flags,
and the checks that must pass before any work starts.

Nothing here imports torch, so ``impasto --help`` answers at once.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..settings import DEFAULT_QUALITY, Settings, field_help
from ..settings_text import flag_kind, flag_type, floats, memory_size, split, strings

__all__ = [
    "add_settings_arguments",
    "settings_from_args",
    "add_output_arguments",
    "add_file_arguments",
    "check_output",
    "takes_16_bits",
    "check_file_flags",
    "refuse_overwriting_inputs",
    "file_kwargs",
    "floats",
    "strings",
    "split",
    "memory_size",
    "make_progress",
    "QUIET_HELP",
]


#: -q on the commands that write one image (stylize, reconstruct, sweep, resume)
QUIET_HELP = "no progress bar and no closing 'wrote' line (warnings and errors still print)"


def takes_16_bits(suffix: str) -> bool:
    """Whether an output with this extension (``.png``) can be written with ``--bits 16``."""
    from ..image import HIGH_BIT_FORMATS, OUTPUT_FORMATS

    return OUTPUT_FORMATS.get(suffix.lower()) in HIGH_BIT_FORMATS


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    skip: Sequence[str] = (),
    help_for: Mapping[str, str] | None = None,
) -> None:
    """Add one ``--flag`` per :class:`Settings` field (default shown, help from the field;
    ``help_for``: whole help texts for a sub-command whose defaults differ). A field's help
    names the other settings as the library and the web do; here they read as their flags
    (:func:`_help_as_flags`)."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    group = parser.add_argument_group("engine settings")
    flags = {n: "--" + n.replace("_", "-") for n in field_help() if n not in skip}
    for name, (default, help_text) in field_help().items():
        if name in skip:
            continue
        help_text = _help_as_flags(help_text, flags)
        choices = flag_kind(hints[name])[1]
        convert = flag_type(name, hints[name])
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if default is not None:
            help_text += f" (default: {shown})"
        help_text = (help_for or {}).get(name, help_text)
        group.add_argument(
            flags[name],
            dest=name,
            type=convert,
            choices=choices,
            default=argparse.SUPPRESS,
            help=help_text,
        )


# a setting's name and a quoted value in a field's help: "fp32 with conv 'winograd'"
_SETTING_VALUE = re.compile(r"(?<![\w./\\-])([a-z][a-z0-9_]*) '([\w.-]+)'")


def _help_as_flags(text: str, flags: Mapping[str, str]) -> str:
    """A field's help in the words of the command line: every setting it names becomes its flag
    (``style_weight`` -> ``--style-weight``, as the CLI's messages read:
    :func:`impasto.cli.named_as_flags`), and a setting given a quoted value becomes the flag
    with that value (``conv 'winograd'`` -> ``--conv winograd``). A setting this command has no
    flag for keeps its name."""
    from . import named_as_flags

    def flag_value(m: re.Match[str]) -> str:
        flag = flags.get(m.group(1))
        return m.group() if flag is None else f"{flag} {m.group(2)}"

    return named_as_flags(_SETTING_VALUE.sub(flag_value, text), dict(flags))


def settings_from_args(args: argparse.Namespace, **fixed: Any) -> Settings:
    """:class:`Settings` from the flags given (others keep their defaults) plus ``fixed``."""
    given = {k: v for k, v in vars(args).items() if k in field_help()}
    return Settings(**{**given, **fixed})


def add_output_arguments(
    parser: argparse.ArgumentParser, *, intermediates: bool = True, bits: bool = True
) -> None:
    """``-o``, ``--bits``, ``--quality``, (``--save-every``, ``--keep-intermediates``),
    ``-q``/``-v``."""
    g = parser.add_argument_group("output and progress")
    g.add_argument("-o", "--output", required=True, help="output file: .png, .jpg, .tif or .webp")
    add_file_arguments(g, bits=bits)
    if intermediates:
        g.add_argument(
            "--save-every",
            type=int,
            default=0,
            metavar="N",
            help="write the current image to the output path every N iterations (an "
            "interrupted run then leaves its latest progress there)",
        )
        g.add_argument(
            "--keep-intermediates",
            action="store_true",
            help="with --save-every, also keep each intermediate as OUTPUT_STEM.iNNNNN.EXT",
        )
    v = g.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    v.add_argument(
        "-v", "--verbose", action="store_true", help="also log each scale and loss values"
    )


def add_file_arguments(g: Any, *, bits: bool = True) -> None:
    """``--bits``, ``--quality``, ``--dpi``: how the output file is written."""
    if bits:
        g.add_argument(
            "--bits", type=int, choices=(8, 16), default=8, help="bits per channel (16: PNG/TIFF)"
        )
    g.add_argument(
        "--quality",
        type=int,
        default=None,
        metavar="1-100",
        help=f"JPEG/WebP quality (default: {DEFAULT_QUALITY}; WebP 100 is lossless); PNG and "
        "TIFF are lossless and take none",
    )
    g.add_argument(
        "--dpi",
        type=float,
        default=None,
        metavar="N",
        help="print resolution recorded in the file, in pixels per inch (e.g. 300): a print "
        "dialog then sizes the image at width/N inches (default: none recorded)",
    )


def check_file_flags(args: argparse.Namespace, fmt: str) -> None:
    """Refuse file flags the output format ``fmt`` (a Pillow name) cannot use, and values no
    file takes (:func:`~impasto.image.check_file_options`'s ranges, named as flags)."""
    from ..image import LOSSY_FORMATS, FileOptions, check_file_options

    if args.quality is not None and fmt not in LOSSY_FORMATS:
        raise SettingsError(f"--quality applies to .jpg and .webp outputs; {fmt} is lossless")
    try:
        check_file_options(FileOptions(**file_kwargs(args)))
    except SettingsError as e:  # "quality must be ..." -> "--quality must be ..."
        raise SettingsError(f"--{e}") from None


def refuse_overwriting_inputs(outputs: Sequence[tuple[str, Any]], inputs: Sequence[Any]) -> None:
    """Refuse an output flag (``(flag, path)``; None: not given) that names one of the run's
    input files (paths; other inputs, such as tensors, are skipped): writing it would destroy
    the input (a photo replaced by the result, or by a checkpoint that no resume can use)."""
    read = {Path(p).resolve() for p in inputs if isinstance(p, (str, Path)) and p}
    for flag, path in outputs:
        if path and Path(path).resolve() in read:
            raise SettingsError(
                f"{flag} {path} is one of this run's inputs; writing there would destroy it"
            )


def file_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``bits``, ``quality`` (None: not given) and ``dpi`` for
    :func:`~impasto.image.save_image` from the flags."""
    return {
        "bits": getattr(args, "bits", 8),
        "quality": args.quality,
        "dpi": getattr(args, "dpi", None),
    }


def check_output(args: argparse.Namespace) -> None:
    """Refuse bad output options before any work: path, format x bit depth, quality, dpi,
    saves."""
    from ..image import check_output_path

    fmt = check_output_path(args.output)
    suffix = Path(args.output).suffix.lower()
    if getattr(args, "bits", 8) == 16 and not takes_16_bits(suffix):
        raise SettingsError(f"--bits 16 needs a .png or .tif output, not {suffix}")
    check_file_flags(args, fmt)
    if getattr(args, "save_every", 0) < 0:
        raise SettingsError("--save-every must be >= 0")
    if getattr(args, "keep_intermediates", False) and not args.save_every:
        raise SettingsError("--keep-intermediates needs --save-every N")


@functools.cache
def _bar_class() -> type:
    """:class:`~impasto.callbacks.ProgressBar` that also shows the tiles of an iteration and
    prints the run's notes (warnings always, the rest with ``-v``), each in the words of the
    command line (``named``: the settings it names as their flags). Built on first use, so that
    importing this module does not import torch."""
    from ..callbacks import ProgressBar

    class RunProgressBar(ProgressBar):
        named: Callable[[str], str] = staticmethod(str)

        def _open(self):
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=1000,
                    file=self.file,
                    dynamic_ncols=True,
                    bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
                )
            return self.bar

        def on_tile(self, tick) -> None:
            if not self.enabled:
                return
            bar = self._open()
            w, h = tick.size
            bar.set_description_str(
                f"{w}x{h} it {tick.step}/{tick.total_steps} pass {tick.phase}/2 "
                f"tile {tick.tile}/{tick.tiles}",
                refresh=False,
            )
            bar.update(round(1000 * tick.progress) - bar.n)

        def on_note(self, note) -> None:
            if not (note.warning or self.verbose):
                return
            text = f"impasto: {'warning: ' if note.warning else ''}{self.named(note.text)}"
            if self.bar is not None:
                self.bar.write(text, file=self.file or sys.stderr)
            else:
                print(text, file=self.file or sys.stderr)

    return RunProgressBar


def make_progress(args: argparse.Namespace, save: Callable[[Any], None] | None = None):
    """The CLI's callback: tqdm bar (tiles too), periodic saves, notes (naming flags, as the
    errors do: ``memory budget 2.0 GB (--max-memory)``), verbose logging."""
    bar = _bar_class()(
        enabled=not args.quiet,
        verbose=args.verbose,
        save_every=getattr(args, "save_every", 0),
        save=save,
    )
    bar.named = _flag_namer(args)
    return bar


def _flag_namer(args: argparse.Namespace) -> Callable[[str], str]:
    """A note's text with the settings it names as the flags of ``args``'s command
    (:func:`impasto.cli.named_as_flags`), the default command's where ``args`` names none (a
    resumed run's recorded command line); the flags are looked up on the first note."""
    flags: dict[str, str] = {}

    def named(text: str) -> str:
        from . import flags_of, named_as_flags

        if not flags:
            flags.update(flags_of(args))
        return named_as_flags(text, flags)

    return named
