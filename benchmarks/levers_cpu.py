"""Quality against time for one lever at a time, at 256 px (`--size`) on the CPU: how this release's
defaults were chosen (README, "How the defaults were chosen").

Each config runs through the Python API with 2 torch threads; images are taken at marked
iterations of the last (full-size) scale and scored afterwards by ``evaluator.py``. Rows are
appended to ``benchmarks/results/levers_cpu.jsonl`` (``{"pair", "config", "i", "t", "content",
"style"}``; ``t``: seconds since the run started), or to the file ``--out`` names (a trial run).

    python benchmarks/levers_cpu.py chelsea_starry_night,astronaut_the_scream \\
        n10_noise_p128x150,n10_max_p128x100
    python benchmarks/levers_cpu.py coffee_te_fare default,ema90,tv10 --sheet levers.jpg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks import compare, report  # noqa: E402
from benchmarks.evaluator import PairScorer  # noqa: E402
from impasto import Settings, Stylizer  # noqa: E402
from impasto.image import save_image, to_pil, to_tensor  # noqa: E402
from impasto.sheet import contact_sheet  # noqa: E402

#: the defaults before TV 3 became one (max pooling, strength 10, noise, 100 @ 128 px, 80 at full
#: size, no TV): every lever below was measured against them, one changed at a time
_PRE_TV = dict(tv_weight=0.0)
_P150 = dict(_PRE_TV, pyramid_start=128, pyramid_iterations=150)
#: name -> Settings overrides (all: normalized loss scale, 256 px, seed 0)
CONFIGS: dict[str, dict] = {
    "n10_noise_p128x150": dict(**_P150, iterations=150, pooling="avg", style_weight=10.0),
    "n10_content_p128x150": dict(**_P150, iterations=150, pooling="avg", init="content"),
    "n30_noise_p128x100": dict(**_P150, iterations=100, pooling="avg", style_weight=30.0),
    "n10_max_p128x100": dict(**_P150, iterations=100, pooling="max", style_weight=10.0),
    "n30_max_p128x100": dict(**_P150, iterations=100, pooling="max", style_weight=30.0),
    "default": _PRE_TV,
    "ema90": dict(_PRE_TV, ema_decay=0.9),
    "adam": dict(_PRE_TV, optimizer="adam"),
    "adam_ema90": dict(_PRE_TV, optimizer="adam", ema_decay=0.9),
    "tv3": dict(tv_weight=3.0),  # the default since
    "tv10": dict(tv_weight=10.0),
    "style_scale0.7": dict(_PRE_TV, style_scale=0.7),
    "style_scale1.4": dict(_PRE_TV, style_scale=1.4),
    # the defaults with a shorter L-BFGS history: what the memory plan gives up at print sizes
    # for larger tiles (down to 10) and below 512 px tiles (against "tv3", the defaults)
    "hist10": dict(tv_weight=3.0, lbfgs_history=10),
    "hist5": dict(tv_weight=3.0, lbfgs_history=5),
}
MARKS = (25, 50, 75, 100, 125, 150)  # and the last iteration
OUT = ROOT / "results" / "levers_cpu.jsonl"


def run(pair: str, name: str, size: int = 256) -> tuple[list[dict], Image.Image]:
    """One config on one pair: the scores at the marked full-size iterations, and the final
    image."""
    photo, painting = compare.pair_paths(pair)
    snaps = {}

    settings = Settings(size=size, seed=0, device="cpu", loss_scale="normalized", **CONFIGS[name])

    def keep(it) -> None:
        if it.scale == it.n_scales - 1 and (it.i in MARKS or it.i == settings.iterations):
            snaps[it.i] = (it.elapsed, to_pil(it.image))

    Stylizer(settings).run(photo, painting, callback=keep)
    scorer = PairScorer(photo, painting)
    rows = [
        {"pair": pair, "config": name, "size": size, "i": i, "t": round(t, 1), **scorer.score(im)}
        for i, (t, im) in sorted(snaps.items())
    ]
    return rows, snaps[max(snaps)][1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("pairs", help="comma-separated pair names of benchmarks/compare.py")
    ap.add_argument("configs", help=f"comma-separated, from: {', '.join(CONFIGS)}")
    ap.add_argument("--sheet", type=Path, help="also a contact sheet: a row per pair")
    ap.add_argument(
        "--size", type=report.size_type, default=256, help="long side of the output (px)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help="the JSON-lines file the rows are appended to (default: the committed "
        "benchmarks/results/levers_cpu.jsonl; give another for a trial run)",
    )
    ap.add_argument(
        "--gram",
        choices=("eq6", "autograd"),
        default="eq6",
        help="the Gram matrices' gradient: eq. (6) in one product (impasto's) or autograd's two "
        "(the rows say which)",
    )
    args = ap.parse_args(argv)
    if args.gram == "autograd":
        from benchmarks.baselines import autograd_grams

        autograd_grams()
    pairs, names = args.pairs.split(","), args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS] + [p for p in pairs if p not in compare.PAIRS]
    if unknown:
        ap.error(f"unknown pair or config: {', '.join(unknown)}")
    cells = []
    for pair in pairs:
        for name in names:
            rows, image = run(pair, name, args.size)
            rows = [{**r, "gram": args.gram} for r in rows]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            for r in rows:
                print(r, flush=True)
            last = rows[-1]
            cells.append((image, f"{name}: {last['content']:.3f} / {last['style']:.3f}"))
    if args.sheet:
        save_image(to_tensor(contact_sheet(cells, columns=len(names))), args.sheet)


if __name__ == "__main__":
    report.main_guard(main)
