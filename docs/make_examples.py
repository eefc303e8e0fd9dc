"""Regenerate the README's example images of the artist's controls into ``docs/img/``.

Run from anywhere (the package must be installed)::

    python docs/make_examples.py                 # all examples
    python docs/make_examples.py colors regions  # only some
    OMP_NUM_THREADS=1 python docs/make_examples.py   # on a busy shared CPU

Every stylised image is made by the ``impasto`` command line (called in-process; each command is
printed as it runs, so the README can quote it). Sizes and iterations are kept small (192 px,
50 L-BFGS iterations from the photo) so that the whole set takes a few CPU minutes; the output
is JPEG at quality 85.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from impasto import examples
from impasto.cli import main
from impasto.sheet import contact_sheet

ROOT = Path(__file__).resolve().parent.parent
IMG = Path("docs/img")  # relative to ROOT, so the printed commands can be quoted as they are
QUALITY = 85


def run(*args: object, common: list[str]) -> None:
    argv = [str(a) for a in args] + common
    print("$ impasto " + " ".join(shlex.quote(a) for a in argv), flush=True)
    t0 = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"impasto exited with {rc}")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def thumb(path: Path | str, height: int) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGBA") if "A" in im.getbands() else im.convert("RGB")
        return im.resize((round(im.width * height / im.height), height), Image.LANCZOS)


def save_sheet(items, name: str, title: str | None = None) -> None:
    sheet = contact_sheet(items, title=title)
    sheet.save(IMG / name, quality=QUALITY, optimize=True)
    print(f"  -> {IMG / name} ({(IMG / name).stat().st_size // 1024} KB)", flush=True)


def checkerboard(size: tuple[int, int], cell: int = 8) -> Image.Image:
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    board = np.where(((x // cell) + (y // cell)) % 2 == 0, 205, 250).astype(np.uint8)
    return Image.fromarray(board).convert("RGB")


def over_checkerboard(img: Image.Image) -> Image.Image:
    base = checkerboard(img.size).convert("RGBA")
    return Image.alpha_composite(base, img.convert("RGBA")).convert("RGB")


# ------------------------------------------------------------------------------------------


def colors(common, tmp, size):
    run(
        "sweep",
        "example:chelsea",
        "example:starry_night",
        "--over",
        "preserve-colors",
        "--values",
        "none,luminance,histogram,histogram-reverse,swap",
        "--columns",
        "5",
        "--quality",
        QUALITY,
        "-o",
        IMG / "colors.jpg",
        common=common,
    )


def regions(common, tmp, size):
    content = examples.path("chelsea")
    w, h = Image.open(content).size
    labels = Image.new("RGB", (w, h), "#0000ff")
    draw = ImageDraw.Draw(labels)
    draw.rectangle([0, 0, w // 3, h], fill="#ff0000")
    draw.ellipse([w * 0.30, h * 0.08, w * 0.78, h * 0.98], fill="#00ff00")
    labels_path = IMG / "regions_labels.png"
    labels.resize((w // 2, h // 2), Image.NEAREST).save(labels_path, optimize=True)
    out = tmp / "regions.png"
    run(
        "example:chelsea",
        "--labels",
        labels_path,
        "--label-style",
        "#ff0000=example:starry_night",
        "--label-style",
        "#0000ff=example:great_wave",
        "--label-style",
        "#00ff00=none",
        "--feather",
        "0.02",
        "-o",
        out,
        common=common,
    )
    height = Image.open(out).height
    save_sheet(
        [
            (thumb(labels_path, height), "label image"),
            (thumb(examples.path("starry_night"), height), "red: starry night"),
            (thumb(examples.path("great_wave"), height), "blue: great wave"),
            (thumb(out, height), "result (green: none)"),
        ],
        "regions.jpg",
    )


def blend(common, tmp, size):
    out = tmp / "blend.png"
    run(
        "example:chelsea",
        "example:starry_night",
        "example:the_scream",
        "--style-blend",
        "1,1",
        "-o",
        out,
        common=common,
    )
    height = Image.open(out).height
    save_sheet(
        [
            (thumb(examples.path("starry_night"), height), "style 1"),
            (thumb(examples.path("the_scream"), height), "style 2"),
            (thumb(out, height), "blend 1:1"),
        ],
        "blend.jpg",
    )


def scale(common, tmp, size):
    run(
        "sweep",
        "example:chelsea",
        "example:starry_night",
        "--over",
        "style-scale",
        "--values",
        "0.5,1,2",
        "--quality",
        QUALITY,
        "-o",
        IMG / "scale.jpg",
        common=common,
    )
    a, b = tmp / "fine_starry.png", tmp / "fine_wave.png"
    fine, coarse = "relu1_1,relu2_1", "relu3_1,relu4_1,relu5_1"
    for out, first, second in (
        (a, "example:starry_night", "example:great_wave"),
        (b, "example:great_wave", "example:starry_night"),
    ):
        run(
            "example:chelsea",
            first,
            second,
            "--style-layers-of",
            f"1={fine}",
            "--style-layers-of",
            f"2={coarse}",
            "-o",
            out,
            common=common,
        )
    height = Image.open(a).height
    save_sheet(
        [
            (thumb(examples.path("starry_night"), height), "starry night"),
            (thumb(examples.path("great_wave"), height), "great wave"),
            (thumb(a, height), "fine starry, coarse wave"),
            (thumb(b, height), "fine wave, coarse starry"),
        ],
        "coarse_fine.jpg",
    )


def fidelity(common, tmp, size):
    src = Image.open(examples.path("chelsea")).convert("RGB")
    w, h = src.size
    y, x = np.mgrid[0:h, 0:w]
    r = np.sqrt(((x - w / 2) / (w * 0.48)) ** 2 + ((y - h / 2) / (h * 0.48)) ** 2)
    alpha = (np.clip((1.0 - r) / 0.25, 0, 1) * 255).round().astype(np.uint8)
    rgba = np.dstack([np.asarray(src), alpha])
    content = tmp / "chelsea_rgba.png"
    Image.fromarray(rgba, "RGBA").save(content)
    out = tmp / "alpha.png"
    run(content, "example:starry_night", "-o", out, common=common)
    height = Image.open(out).height
    save_sheet(
        [
            (over_checkerboard(thumb(content, height)), "input with alpha"),
            (over_checkerboard(thumb(out, height)), "output: alpha kept"),
        ],
        "alpha.jpg",
    )


def sweeps(common, tmp, size):
    for over, name in (("ratio", "sweep_ratio.jpg"), ("style-layers", "sweep_layers.jpg")):
        run(
            "sweep",
            "example:chelsea",
            "example:starry_night",
            "--over",
            over,
            "--columns",
            "5",
            "--quality",
            QUALITY,
            "-o",
            IMG / name,
            common=common,
        )


EXAMPLES = {
    "colors": colors,
    "regions": regions,
    "blend": blend,
    "scale": scale,
    "fidelity": fidelity,
    "sweeps": sweeps,
}


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("only", nargs="*", help=f"examples to make: {', '.join(EXAMPLES)}")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--iterations", type=int, default=50)
    args = p.parse_args(argv)
    os.chdir(ROOT)
    unknown = sorted(set(args.only) - set(EXAMPLES))
    if unknown:
        p.error(f"unknown example(s) {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}")
    IMG.mkdir(parents=True, exist_ok=True)
    common = [
        "--size",
        str(args.size),
        "--iterations",
        str(args.iterations),
        "--init",
        "content",
        "--seed",
        "0",
        "-q",
    ]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or EXAMPLES:
            print(f"# {name}", flush=True)
            EXAMPLES[name](common, Path(tmp), args.size)
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
