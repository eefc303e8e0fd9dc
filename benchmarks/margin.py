"""The margin (``--margin``) on the evaluator and at the edges: each pair with and without it.

Runs impasto's defaults with each margin through the Python API (seed 0, one process, the
machine's threads), then scores every result with ``evaluator.py`` twice (the whole image, and
with ``--crop`` pixels taken off every side, which leaves the edges out of the score) and
measures the rim: per side, the distance between the mean colour of the outer ``--band`` pixels
and that of the next 2 x ``--band`` pixels, averaged over the four sides (the photo's own value is
given for reference). Writes ``benchmarks/results/margin_<size>.json``, prints a table, and with
``--sheet`` a zoom on two corners of each result.

    python benchmarks/margin.py --pairs chelsea_starry_night,coffee_great_wave --margins 0,4 \\
        --sheet docs/img/margin_rim.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks import compare, report  # noqa: E402
from benchmarks.evaluator import PairScorer  # noqa: E402
from impasto import Settings, Stylizer  # noqa: E402
from impasto.image import fit_long_side, load_image, resize, to_tensor  # noqa: E402
from impasto.sheet import contact_sheet  # noqa: E402

PAIRS = ("chelsea_starry_night", "coffee_great_wave", "astronaut_the_scream")
WORK = ROOT / "_work" / "margin"


def rim(image: torch.Tensor, band: int) -> float:
    """Mean over the four sides of |mean colour of the outer ``band`` px - of the next 2 band|."""
    x = image[0]
    b = band
    sides = [
        (x[:, :b], x[:, b : 3 * b]),
        (x[:, -b:], x[:, -3 * b : -b]),
        (x[:, :, :b], x[:, :, b : 3 * b]),
        (x[:, :, -b:], x[:, :, -3 * b : -b]),
    ]
    return sum(float((o.mean((1, 2)) - i.mean((1, 2))).norm()) for o, i in sides) / 4


def crop(img: Image.Image, k: int) -> Image.Image:
    return img.crop((k, k, img.width - k, img.height - k))


def run(pair: str, margin: int, size: int, args) -> dict:
    """One pair with one margin: time, scores (whole and cropped), rim."""
    photo, painting = compare.pair_paths(pair)
    t = time.perf_counter()
    result = Stylizer(Settings(size=size, margin=margin, seed=0)).run(photo, painting)
    seconds = time.perf_counter() - t
    out = WORK / pair / f"m{margin}_{size}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    result.save(out)
    scorer = PairScorer(photo, painting)
    img = Image.open(out).convert("RGB")
    whole, inner = scorer.score(img), scorer.score(crop(img, args.crop))
    return {
        "pair": pair,
        "margin": margin,
        "size": size,
        "seconds": seconds,
        "content": whole["content"],
        "style": whole["style"],
        "content_cropped": inner["content"],
        "style_cropped": inner["style"],
        "rim": rim(to_tensor(img), args.band),
        "output": str(out),
    }


def photo_rim(pair: str, size: int, band: int) -> float:
    """The rim measure of the photo itself at the output size (what the content has there)."""
    rgb = load_image(compare.pair_paths(pair)[0]).rgb
    return rim(resize(rgb, fit_long_side((rgb.shape[-1], rgb.shape[-2]), size)), band)


def corner_sheet(rows: list[dict], path: Path, side: int = 48, zoom: int = 4) -> None:
    """Top-left and bottom-right ``side`` px of every result, enlarged ``zoom`` times."""
    items = []
    for r in rows:
        img = Image.open(r["output"]).convert("RGB")
        w, h = img.size
        for name, box in (("top left", (0, 0)), ("bottom right", (w - side, h - side))):
            part = img.crop((*box, box[0] + side, box[1] + side))
            label = f"{r['pair']} margin {r['margin']}, {name}"
            items.append((part.resize((side * zoom, side * zoom), Image.NEAREST), label))
    cols = 2 * len({r["margin"] for r in rows})
    contact_sheet(items, columns=cols).save(path, quality=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", default=",".join(PAIRS))
    p.add_argument(
        "--margins",
        type=report.comma_list(item=report.at_least(0)),
        default="0,4",
        help="comma-separated margins (px)",
    )
    p.add_argument("--size", type=report.size_type, default=256)
    p.add_argument("--crop", type=report.at_least(0), default=6, help="px left out on every side")
    p.add_argument(
        "--band", type=report.at_least(1), default=2, help="width of the rim measure's band (px)"
    )
    p.add_argument("--sheet", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)
    pairs = [x for x in args.pairs.split(",") if x]
    unknown = [x for x in pairs if x not in compare.PAIRS]
    if unknown:
        p.error(f"unknown pair(s): {', '.join(unknown)}")
    margins = args.margins
    rows = [run(pair, m, args.size, args) for pair in pairs for m in margins]
    result = {
        "machine": compare.machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"size": args.size, "crop": args.crop, "band": args.band},
        "photo_rim": {pair: photo_rim(pair, args.size, args.band) for pair in pairs},
        "runs": rows,
    }
    out = args.out / f"margin_{args.size}.json"
    compare._write_json(out, result)
    print(f"{'pair':28s} margin  seconds  content  style  content/cropped  style/cropped  rim")
    for r in rows:
        print(
            f"{r['pair']:28s} {r['margin']:6d} {r['seconds']:8.1f} {r['content']:8.3f} "
            f"{r['style']:6.4f} {r['content_cropped']:16.3f} {r['style_cropped']:14.4f} "
            f"{r['rim']:.4f}"
        )
    if args.sheet:
        corner_sheet(rows, args.sheet)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    report.main_guard(main)
