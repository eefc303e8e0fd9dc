"""The loss-scale decision on the CPU (no GPU was lent): impasto's paper-scale default against
the normalized scale at two strengths, on the 12 pairs of benchmarks/compare.py, scored by
benchmarks/evaluator.py. Small and short on purpose (128 px, 150 iterations, one scale), so it
runs on a 2-core machine in minutes; writes benchmarks/results/balance_cpu.json.

    python benchmarks/balance_cpu.py [--size 128] [--iterations 150] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks import isa, report  # noqa: E402

CONFIGS = {
    "paper beta 1e3 (old default)": {"loss_scale": "paper"},
    "normalized s10": {"loss_scale": "normalized", "style_weight": 10.0},
    "normalized s30": {"loss_scale": "normalized", "style_weight": 30.0},
}


def _one(job: tuple[str, str, dict, int, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from benchmarks import compare, evaluator
    from impasto import Settings, Stylizer

    pair, name, overrides, size, iterations = job
    photo, painting = compare.pair_paths(pair)
    s = Settings(
        size=size, iterations=iterations, pyramid_start=0, seed=0, precision="fp32",
        device="cpu", **overrides,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = Stylizer(s).run(photo, painting)
    secs = time.perf_counter() - t0
    scores = evaluator.evaluate(result.to_pil(), photo, painting)
    return {"pair": pair, "config": name, "seconds": round(secs, 2), **scores}


def main(argv: list[str] | None = None) -> None:
    from benchmarks import compare

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=report.size_type, default=128)
    ap.add_argument("--iterations", type=report.at_least(1), default=150)
    ap.add_argument("--workers", type=report.at_least(1), default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "balance_cpu.json"))
    args = ap.parse_args(argv)
    jobs = [
        (pair, name, cfg, args.size, args.iterations)
        for pair in compare.PAIRS
        for name, cfg in CONFIGS.items()
    ]
    t0 = time.perf_counter()
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for row in pool.map(_one, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)  # a cut-short run keeps what it measured
    summary = {}
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        summary[name] = {
            "median_content": round(median(r["content"] for r in mine), 4),
            "median_style": round(median(r["style"] for r in mine), 4),
            "style_spread": round(max(r["style"] for r in mine) / min(r["style"] for r in mine), 2),
        }
        print(f"{name:30s} {summary[name]}")
    out = {
        "machine": {**isa.machine(None), "load_average": isa.load_average()},
        "workers": args.workers, "threads_per_worker": 1,
        "size": args.size, "iterations": args.iterations, "wall_s": round(time.perf_counter() - t0),
        "summary": summary, "rows": rows,
    }  # fmt: skip
    report.write_json(Path(args.out), out)


if __name__ == "__main__":
    report.main_guard(main)
