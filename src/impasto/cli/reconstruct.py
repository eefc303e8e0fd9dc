"""``impasto reconstruct``: what each VGG19 layer keeps (Gatys et al. 2016, Fig. 1).

``content IMAGE --layer relu4_2``: from white noise, match one layer's features only.
``style IMAGE --layers relu1_1,relu2_1,...``: texture synthesis from the Gram matrices only.
No TV term unless ``--tv-weight`` gives one (stylizing's default smoothing would hide what a
layer loses).
``--layers-sheet``: one reconstruction per layer (content) or per growing layer set (style),
side by side in one labelled image.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import SettingsError
from ..inputs import resolve_input
from ..layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, describe_layers
from ..settings import RECONSTRUCTION_TV_WEIGHT
from .common import (
    add_output_arguments,
    add_settings_arguments,
    check_output,
    file_kwargs,
    make_progress,
    refuse_overwriting_inputs,
)
from .common import strings as _strings
from .saving import settings_with_seed

__all__ = ["add_parser", "run"]

FIG1_CONTENT = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
FIG1_STYLE = DEFAULT_STYLE_LAYERS
# Settings a reconstruction decides itself: not offered as flags.
_FIXED = (
    "content_layers",
    "content_layer_weights",
    "style_layers",
    "style_layer_weights",
    "content_weight",
    "style_weight",
    "init",
    "preserve_colors",
    "color_match",
    "guide_propagation",
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "reconstruct",
        help="what each VGG19 layer keeps: content or style reconstructions",
        description="Reconstruct an image from one layer's features (content) or from Gram "
        "matrices of a set of layers (style / texture synthesis), starting from white noise. "
        "No TV smoothing unless --tv-weight gives a weight.",
    )
    p.add_argument("kind", choices=("content", "style"))
    p.add_argument("image", help="the image to reconstruct (path or example:NAME)")
    p.add_argument(
        "--layer",
        default=None,
        help=f"content: the layer to match (default {DEFAULT_CONTENT_LAYERS[0]})",
    )
    p.add_argument(
        "--layers",
        type=_strings,
        default=None,
        help="style: layers whose Gram matrices are matched (default relu1_1..relu5_1); with "
        "--layers-sheet for content: the layers to show (default conv1_2..conv5_2, as in Fig. 1)",
    )
    p.add_argument(
        "--layers-sheet",
        action="store_true",
        help="render one reconstruction per layer (content) or per growing set of layers (style: "
        "relu1_1; relu1_1+relu2_1; ...) side by side in one labelled image",
    )
    tv = (
        f"total-variation (smoothness) weight (default: {RECONSTRUCTION_TV_WEIGHT:g}: a "
        "reconstruction shows what the layers keep, unsmoothed)"
    )
    add_settings_arguments(p, skip=_FIXED, help_for={"tv_weight": tv})
    add_output_arguments(p, intermediates=False)
    # the settings these flags set, for messages (impasto.cli.named_as_flags)
    p.set_defaults(run=run, flag_for={"content_layers": "--layer", "style_layers": "--layers"})
    return p


def _check_layer_flags(args: argparse.Namespace) -> None:
    """Refuse a layer flag the reconstruction would not use (it was silently ignored)."""
    if args.layers is not None and not args.layers:
        raise SettingsError("--layers is empty; name layers such as relu1_1,relu2_1")
    if args.kind == "style" and args.layer is not None:
        raise SettingsError("--layer is for content reconstructions; a style one takes --layers")
    if args.kind == "content" and args.layers_sheet and args.layer is not None:
        raise SettingsError("--layers-sheet shows --layers (default conv1_2..conv5_2), not --layer")
    if args.kind == "content" and not args.layers_sheet and args.layers is not None:
        raise SettingsError(
            "a content reconstruction matches one --layer; --layers needs --layers-sheet"
        )


def run(args: argparse.Namespace) -> int:
    from ..api import reconstruct_content, reconstruct_style
    from ..image import save_image
    from ..sheet import contact_sheet

    check_output(args)
    if args.layers_sheet and args.bits == 16:
        raise SettingsError("--layers-sheet writes an 8-bit contact sheet; drop --bits 16")
    _check_layer_flags(args)
    settings = settings_with_seed(args)
    image = resolve_input(args.image)
    refuse_overwriting_inputs([("-o", args.output)], [image, settings.weights])
    if args.kind == "content":
        layer = args.layer or DEFAULT_CONTENT_LAYERS[0]
        runs = list(args.layers or FIG1_CONTENT) if args.layers_sheet else [layer]
        jobs = [
            (
                f"content from {lay}",
                lambda cb, lay=lay: reconstruct_content(image, lay, settings, callback=cb),
            )
            for lay in runs
        ]
    else:
        layers = tuple(args.layers or FIG1_STYLE)
        sets = [layers[: k + 1] for k in range(len(layers))] if args.layers_sheet else [layers]
        jobs = [
            (
                f"style from {describe_layers(s)}",
                lambda cb, s=s: reconstruct_style(image, s, settings, callback=cb),
            )
            for s in sets
        ]
    results = []
    for label, job in jobs:
        if args.verbose or (len(jobs) > 1 and not args.quiet):
            print(label, file=sys.stderr)
        with make_progress(args, None) as progress:
            results.append((job(progress), label))
    if len(results) == 1:
        results[0][0].save(args.output, **file_kwargs(args))
    else:
        from ..image import to_tensor

        sheet = contact_sheet([(r.to_pil(), label) for r, label in results])
        save_image(to_tensor(sheet), args.output, metadata=results[-1][0].metadata,
                   **{**file_kwargs(args), "bits": 8})  # fmt: skip
    if not args.quiet:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
