"""The GPU sweep's candidates (``benchmarks/gpu.py``), by name, on the CPU: the levers the
product's API cannot express (a different optimiser per scale, Adam's moments carried across
scales), each against the ``default`` candidate run by the same harness.

Each candidate runs through :func:`benchmarks.candidates.run_candidate` (one process, the
machine's threads, seed 0) and is scored by ``evaluator.py``. Writes
``benchmarks/results/candidates_cpu_<size>.json`` and prints a table.

    python benchmarks/candidates_cpu.py --pairs chelsea_starry_night,astronaut_the_scream \\
        --candidates "default,adam,adam carry,adam>lbfgs per scale"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks import compare, report  # noqa: E402
from benchmarks.candidates import run_candidate  # noqa: E402
from benchmarks.evaluator import PairScorer  # noqa: E402
from benchmarks.gpu import CANDIDATES  # noqa: E402
from impasto.image import to_pil  # noqa: E402

BY_NAME = {c.name: c for c in CANDIDATES}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pairs", default="chelsea_starry_night,astronaut_the_scream")
    p.add_argument("--candidates", default="default,adam,adam carry,adam>lbfgs per scale")
    p.add_argument("--size", type=report.size_type, default=256)
    p.add_argument("--out", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)
    pairs = [x for x in args.pairs.split(",") if x]
    names = [x for x in args.candidates.split(",") if x]
    unknown = [x for x in pairs if x not in compare.PAIRS] + [x for x in names if x not in BY_NAME]
    if unknown:
        p.error(f"unknown pair(s) or candidate(s): {', '.join(unknown)}")
    rows = []
    for pair in pairs:
        scorer = PairScorer(*compare.pair_paths(pair))
        for name in names:
            x, seconds = run_candidate(BY_NAME[name], *compare.pair_paths(pair), size=args.size)
            rows.append({"pair": pair, "candidate": name, "seconds": seconds,
                         **scorer.score(to_pil(x))})  # fmt: skip
            r = rows[-1]
            print(f"{pair:28s} {name:24s} {seconds:7.1f} s {r['content']:.3f} {r['style']:.4f}")
    result = {
        "machine": compare.machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "size": args.size,
        "candidates": {n: repr(BY_NAME[n]) for n in names},
        "runs": rows,
    }
    out = args.out / f"candidates_cpu_{args.size}.json"
    compare._write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    report.main_guard(main)
