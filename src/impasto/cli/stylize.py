"""``impasto stylize`` (the default: ``impasto PHOTO PAINTING ... -o OUT``): paint a photograph
in the style of one or more paintings, with optional regions (``--region``, ``--labels``) and
coarse/fine mixing (``--style-layers-of``)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import SettingsError
from ..inputs import resolve_input
from ..settings import DEFAULT_FEATHER, DEFAULT_LABEL_TOLERANCE, DEFAULT_STYLE_WEIGHT
from .common import (
    add_output_arguments,
    add_settings_arguments,
    check_output,
    file_kwargs,
    floats,
    make_progress,
    refuse_overwriting_inputs,
    split,
    strings,
)
from .resume import add_checkpoint_arguments, checkpoint_options, say_where_saved

__all__ = ["add_parser", "prepare", "run", "parse_region", "parse_label_style", "EPILOG"]

NONE_WORDS = ("none", "-", "")

_BETA, _BETA_PAPER = DEFAULT_STYLE_WEIGHT["normalized"], DEFAULT_STYLE_WEIGHT["paper"]
EPILOG = f"""\
The dial: beta/alpha (--style-weight / --content-weight). By default each loss term is
relative to its target (--loss-scale normalized), so beta (alpha 1) is a style strength that
means the same on every photo, painting and size: the default, {_BETA:g}, paints clearly while
the photo's objects stay recognisable; 30 paints more strongly, 3 keeps more of the photo;
below ~1 little style remains, above ~100 the photo dissolves into texture. --loss-scale paper
takes the paper's raw eqs. (1)-(7), where the default beta is {_BETA_PAPER:g} (alpha/beta 1e-3,
Gatys et al. Fig. 3) and one beta paints one pair strongly and another barely.
`impasto sweep --over ratio` shows the range on your images.

Inputs may be paths or bundled examples: example:chelsea, example:coffee, example:rocket,
example:starry_night, example:great_wave, example:the_scream, example:composition_viii."""


def _style_and_weight(text: str) -> tuple[str | None, float]:
    """``STYLE[:WEIGHT]`` -> (style or None, weight). ``example:NAME`` styles keep their colon."""
    style, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            weight = float(tail)
            style = head
        except ValueError:
            if _readable(head.strip()) and not _readable(text.strip()):  # a mistyped weight
                raise SettingsError(
                    f"the weight in {text!r} is not a number: STYLE:WEIGHT, as in "
                    "example:great_wave:0.5"
                ) from None
    if not style.strip():  # "MASK=" (an empty shell variable) became an unstyled region
        raise SettingsError(f"no style after '=' in {text!r}: give STYLE, or 'none' to leave it")
    if style.strip().lower() in NONE_WORDS:
        if weight != 1.0:  # it weighs a style loss the region does not have
            raise SettingsError(f"a weight on an unstyled region has no effect: {text!r}")
        return None, weight
    return style, weight


def parse_region(text: str, feather: float = DEFAULT_FEATHER):
    """``MASK=STYLE[:WEIGHT]`` (or ``MASK=none``) -> :class:`impasto.regions.Region` (the CLI's
    ``--region``).

    Style paths may be ``example:NAME``; ``:WEIGHT`` is recognised only when it is a number.
    """
    mask, sep, rest = _split_at_mask(text)
    if not sep or not mask.strip():
        raise SettingsError(f"--region expects MASK=STYLE[:WEIGHT] or MASK=none, got {text!r}")
    from ..regions import Region

    style, weight = _style_and_weight(rest.strip())
    return Region(_resolve(mask.strip()), _resolve(style), weight=weight, feather=feather)


def parse_label_style(text: str) -> tuple[str, str | None, float]:
    """``COLOUR=STYLE[:WEIGHT]`` (or ``COLOUR=none``) -> (colour, style or None, weight)."""
    colour, sep, rest = text.partition("=")
    if not sep or not colour.strip():
        raise SettingsError(
            f"--label-style expects COLOUR=STYLE[:WEIGHT] or COLOUR=none, got {text!r}"
        )
    from ..regions import parse_color  # torch: imported only when the option is used

    parse_color(colour)  # fail early on typos
    style, weight = _style_and_weight(rest.strip())
    return colour.strip(), _resolve(style), weight


def _readable(text: str) -> bool:
    """Whether ``text`` names an input: a bundled example or an existing file."""
    try:
        return os.path.isfile(resolve_input(text))
    except SettingsError:  # an unknown example
        return False


def _split_at_mask(text: str) -> tuple[str, str, str]:
    """``MASK=STYLE`` split at the first ``=`` after which the mask is an existing file (a mask
    named ``a=b.png`` was read as mask ``a``), else at the first ``=``."""
    for k, char in enumerate(text):
        if char == "=" and os.path.isfile(text[:k].strip()):
            return text[:k], "=", text[k + 1 :]
    return text.partition("=")


def _resolve(text: str | None) -> str | None:
    if text is None:
        return None
    return resolve_input(text)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "stylize",
        help="paint a photograph in the style of paintings (the default sub-command)",
        description="Paint a photograph in the style of a painting by optimising the image "
        "through VGG19 (Gatys et al.).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content", help="the photograph (path or example:NAME)")
    p.add_argument(
        "styles",
        nargs="*",
        default=[],  # optional with --region/--labels (argparse named it as required when absent)
        metavar="style",
        help="one or more paintings (blended); with --region/--labels they paint what no region "
        "covers, and may be omitted",
    )
    p.add_argument(
        "--style-blend",
        type=floats,
        default=None,
        metavar="W1,W2,...",
        help="blend weight per style image (normalised to sum to 1; default: equal)",
    )
    p.add_argument(
        "--style-scales",
        type=floats,
        default=None,
        metavar="S1,S2,...",
        help="style scale per style image (overrides --style-scale for that image)",
    )
    add_control_arguments(p)
    add_settings_arguments(p)
    add_output_arguments(p)
    add_checkpoint_arguments(p)
    # a painting's own layers (StyleInput.layers) come from --style-layers-of
    p.set_defaults(run=run, flag_for={"layers": "--style-layers-of"})
    return p


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Spatial control (regions) and coarse/fine mixing (Gatys et al. 2017, sections 4-5)."""
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
        "--labels", metavar="LABELS", help="a colour-coded label image: one region per colour"
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
        "--style-layers-of",
        action="append",
        default=[],
        metavar="N=LAYERS",
        help="coarse/fine mixing: style image N (1-based) gives targets only for LAYERS, e.g. "
        "--style-layers-of 1=relu1_1,relu2_1 --style-layers-of 2=relu3_1,relu4_1,relu5_1 "
        "(fine texture from the first, coarse structure from the second); repeatable",
    )


def _layer_sets(args: argparse.Namespace, n: int) -> list[tuple[str, ...] | None]:
    sets: list[tuple[str, ...] | None] = [None] * n
    if args.style_layers_of and not n:
        raise SettingsError("--style-layers-of names a painting by its number; none is given")
    for text in args.style_layers_of:
        index, sep, layers = text.partition("=")
        try:
            i = int(index) - 1
        except ValueError:
            i = -1
        if not sep or not 0 <= i < n or not split(layers):
            raise SettingsError(
                f"--style-layers-of expects N=LAYER,LAYER,... with N from 1 to {n}, got {text!r}"
            )
        if sets[i] is not None:  # the last one won without a word
            raise SettingsError(f"--style-layers-of gives style image {i + 1} twice")
        sets[i] = strings(layers)
    return sets


def regions_from_args(args: argparse.Namespace) -> list:
    """The regions of ``--region`` and ``--labels``."""
    from ..regions import regions_from_labels

    if args.feather < 0:
        raise SettingsError("--feather must be >= 0")
    regions = [parse_region(text, feather=args.feather) for text in args.region]
    if not 0 <= args.label_tolerance <= 1:  # NaN fails too; it said "matches no pixel"
        tolerance = args.label_tolerance
        raise SettingsError(f"--label-tolerance must be between 0 and 1, got {tolerance}")
    if args.label_style and not args.labels:
        raise SettingsError("--label-style needs --labels LABELS_IMAGE")
    if args.labels:
        if not args.label_style:
            raise SettingsError("--labels needs at least one --label-style COLOUR=STYLE")
        parsed = [parse_label_style(text) for text in args.label_style]
        _refuse_repeated_colours(parsed)
        regions += regions_from_labels(
            resolve_input(args.labels),
            [(colour, style) for colour, style, _ in parsed],
            weights={colour: w for colour, _, w in parsed},
            tolerance=args.label_tolerance,
            feather=args.feather,
        )
    return regions


def _refuse_repeated_colours(parsed: list) -> None:
    """A colour given twice (red and #ff0000) was reported as matching no pixel."""
    from ..regions import parse_color

    seen: dict[tuple, str] = {}
    for colour, _, _ in parsed:
        rgb = tuple(round(255 * c) for c in parse_color(colour))
        if rgb in seen:
            raise SettingsError(
                f"--label-style gives the colour of {seen[rgb]} again as {colour}: one style per "
                "colour"
            )
        seen[rgb] = colour


def styles_from_args(args: argparse.Namespace) -> list:
    """The :class:`~impasto.settings.StyleInput` of each positional painting."""
    from ..settings import StyleInput

    n = len(args.styles)
    for opt, values in (("--style-blend", args.style_blend), ("--style-scales", args.style_scales)):
        if values is not None and len(values) != n:
            raise SettingsError(
                f"{opt} takes one value per painting given ({n}); got {len(values)}"
            )
        if values is not None and not all(0 < v < float("inf") for v in values):
            raise SettingsError(f"{opt} values must be positive numbers, got {list(values)}")
    layer_sets = _layer_sets(args, n)
    return [
        StyleInput(
            resolve_input(path),
            weight=args.style_blend[i] if args.style_blend else 1.0,
            scale=args.style_scales[i] if args.style_scales else None,
            layers=layer_sets[i],
        )
        for i, path in enumerate(args.styles)
    ]


def _check_region_flags(args: argparse.Namespace, settings, regions: list) -> None:
    """Flags that shape regions, given without any region, did nothing without a word."""
    from ..settings import Settings

    if regions:
        return
    given = [
        flag
        for flag, used in (
            ("--feather", args.feather != DEFAULT_FEATHER),
            ("--label-tolerance", args.label_tolerance != DEFAULT_LABEL_TOLERANCE),
            ("--guide-propagation", settings.guide_propagation != Settings().guide_propagation),
        )
        if used
    ]
    if given:
        raise SettingsError(f"{given[0]} applies to --region or --labels, and none is given")


def _check_color_match(settings) -> None:
    """A colour map chosen for a mode that maps no colours was silently ignored (the default
    passes: ``impasto resume`` replays every recorded setting)."""
    from ..settings import Settings

    mapped = settings.preserve_colors.startswith("histogram")
    if not mapped and settings.color_match != Settings().color_match:
        raise SettingsError(
            "--color-match applies to --preserve-colors histogram or histogram-reverse"
        )


def prepare(args: argparse.Namespace) -> tuple:
    """Everything checkable before the run starts: output options, settings, styles, regions.

    Returns ``(settings, content, styles, regions)``; raises a one-line
    :class:`~impasto.errors.ImpastoError` otherwise.
    """
    from .saving import settings_with_seed

    check_output(args)
    settings = settings_with_seed(args)
    _check_color_match(settings)
    styles = styles_from_args(args)
    regions = regions_from_args(args)
    if not styles and not regions:
        raise SettingsError("give at least one style image, --region or --labels")
    if not styles and all(r.style is None for r in regions):  # ran and painted nothing
        raise SettingsError("every region is 'none' and there is no style image: nothing to paint")
    _check_region_flags(args, settings, regions)
    content = resolve_input(args.content)
    inputs = [content, *(s.image for s in styles), settings.init, settings.weights]
    for r in regions:
        inputs += [r.mask, r.style.image if r.style is not None else None]
    if args.labels:
        inputs.append(resolve_input(args.labels))
    outputs = [("-o", args.output), ("--checkpoint", getattr(args, "checkpoint", None))]
    refuse_overwriting_inputs(outputs, inputs)
    return settings, content, styles, regions


def run(args: argparse.Namespace) -> int:
    from ..api import Stylizer
    from ..errors import Cancelled
    from .saving import intermediate_saver

    settings, content, styles, regions = prepare(args)
    settings, autosave, ckpt = checkpoint_options(args, settings)
    save = intermediate_saver(args, settings, content, styles) if args.save_every else None
    progress = make_progress(args, save)
    try:
        with progress:
            result = Stylizer(settings).run(
                content, styles, regions=regions, callback=progress, checkpoint=autosave,
                resume=ckpt,
            )  # fmt: skip
    except (KeyboardInterrupt, Cancelled):
        progress.save_latest()  # --save-every: the output shows where the run stopped
        say_where_saved(autosave)
        raise
    result.save(args.output, **file_kwargs(args))
    if not args.quiet:
        print(f"wrote {args.output} ({result.elapsed:.1f} s, seed {result.seed})", file=sys.stderr)
    return 0
