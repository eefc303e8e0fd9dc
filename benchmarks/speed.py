"""Seconds per iteration, convolution throughput and peak memory of impasto's optimisation loop.

Each configuration runs in its own process (so its peak RSS is its own): a few warm-up
iterations, then timed ones, all through the public ``Stylizer`` API with a content and a style
image. Throughput is the analytic FLOP count of the convolutions actually run (forward up to the
deepest layer used plus backward to the input; no weight gradients), divided by the measured time,
and printed next to this machine's measured matrix-multiply peak in the same precision.

    python benchmarks/speed.py                 # the default table (256 and 512 px; 1024 px memory)
    python benchmarks/speed.py --quick         # 256 px only
    python benchmarks/speed.py --json out.json
    python benchmarks/speed.py --sizes 256,512,1024 --precisions fp32 --optimizers lbfgs \
        --convs direct,winograd --timed 6 --json benchmarks/results/speed_avx2.json
                                               # a CPU without AVX-512 BF16: the convolutions
                                               # side by side (``--conv``), with their ratio
    python benchmarks/speed.py --isa avx2 ...  # on an AVX-512 CPU, torch capped at AVX2's
                                               # kernels (benchmarks/isa.py): ratios only

With ``--convs``, GFLOP/s still counts the direct convolutions' FLOPs (Winograd's are fewer), so
the column compares throughput of the same work.

Writes ``benchmarks/results/speed.json`` by default.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # benchmarks.baselines, when run as a script
    sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"

from benchmarks import isa, report  # noqa: E402
from impasto.choices import CONV_ALGORITHMS, OPTIMIZERS  # noqa: E402


def conv_flops(width: int, height: int, last: str = "relu5_1") -> float:
    """FLOPs of one forward + backward-to-input pass of VGG19's convolutions up to ``last``."""
    from impasto.layers import BLOCKS

    stop_block, stop_conv = int(last[4]), int(last[6]) if last[:4] != "pool" else 99
    flops, cin, w, h = 0.0, 3, width, height
    for b, (n, cout) in enumerate(BLOCKS, start=1):
        for c in range(1, n + 1):
            if (b, c) > (stop_block, stop_conv):
                return 2 * flops
            flops += 2.0 * cin * cout * 9 * w * h
            cin = cout
        w, h = w // 2, h // 2
    return 2 * flops  # forward + grad-input (same FLOPs as the forward)


def matmul_peak(dtype_name: str, n: int = 2048, repeats: int = 10) -> float:
    """Measured GFLOP/s of an n x n x n matrix multiply in ``dtype``."""
    import torch

    dtype = getattr(torch, {"bf16": "bfloat16", "fp32": "float32"}[dtype_name])
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def in_thread(fn, *args) -> None:
    """``fn(*args)`` in a worker thread, as the web studio runs its jobs."""
    import threading

    worker = threading.Thread(target=fn, args=args)
    worker.start()
    worker.join()


def run_one(cfg: dict) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    from impasto import Settings, Stylizer, examples
    from impasto.errors import Cancelled

    warmup, timed = cfg["warmup"], cfg["timed"]
    if cfg.get("gram") == "autograd":  # the Gram's gradient as autograd takes it: two products
        from benchmarks.baselines import autograd_grams

        autograd_grams()
    if cfg.get("where") == "shared-heap-thread":  # as `impasto serve` starts, before any thread
        from impasto.allocator import share_main_heap

        share_main_heap()
    if cfg.get("allocator") == "system":  # the C library's own behaviour, for comparison
        from contextlib import nullcontext

        from impasto import api

        api.keep_freed_memory = lambda device_type: nullcontext(False)
    settings = Settings(
        size=cfg["size"],
        iterations=warmup + timed,
        optimizer=cfg["optimizer"],
        precision=cfg["precision"],
        conv=cfg.get("conv", "auto"),
        pyramid_start=0,  # one scale: time iterations at exactly this size
        seed=0,
        init="content",
        device=cfg.get("device", "cpu"),
    )
    marks: dict[int, float] = {}

    def mark(it):
        marks[it.step] = time.perf_counter()
        if cfg.get("stop_after") and it.step >= cfg["stop_after"]:
            raise Cancelled("enough")

    def stylize(out: list) -> None:
        try:
            r = Stylizer(settings).run(
                examples.path("chelsea"), examples.path("starry_night"), callback=mark
            )
            out.append(tuple(reversed(r.image.shape[-2:])))
        except Cancelled:
            pass

    t0 = time.perf_counter()
    done: list = []
    in_thread(stylize, done) if cfg.get("where", "main") != "main" else stylize(done)
    size = done[0] if done else None
    if torch.cuda.is_available() and settings.device != "cpu":
        torch.cuda.synchronize()
    per_it = (marks[warmup + timed] - marks[warmup]) / timed if timed else float("nan")
    if size is None:
        from impasto.image import fit_long_side, load_image

        size = fit_long_side(load_image(examples.path("chelsea")).size, cfg["size"])
    gflop = conv_flops(*size) / 1e9
    return {
        **cfg,
        "width": size[0],
        "height": size[1],
        "s_per_it": per_it,
        "total_s": time.perf_counter() - t0,
        "gflop_per_it": gflop,
        "gflops": gflop / per_it if per_it == per_it else float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# What a row was run with: a ratio pairs rows that agree on all of these but the one it compares.
SETTINGS = ("size", "optimizer", "precision", "conv", "allocator", "gram", "where")


def ratios(rows: list[dict], key: str, new: str, old: str) -> list[dict]:
    """Seconds per iteration of the rows whose ``key`` is ``new`` over those where it is
    ``old``, per configuration that ran both (rows alike in every other setting)."""
    same = [f for f in SETTINGS if f != key]
    out = []
    for n in (r for r in rows if r.get(key) == new):
        for o in (r for r in rows if r.get(key) == old):
            if all(o.get(f) == n.get(f) for f in same):
                out.append({**{f: n.get(f) for f in same}, "ratio": n["s_per_it"] / o["s_per_it"]})
    return out


def conv_ratios(rows: list[dict]) -> list[dict]:
    """Seconds per iteration by Winograd over direct, per configuration that ran both."""
    return ratios(rows, "conv", "winograd", "direct")


def where_ratios(rows: list[dict]) -> list[dict]:
    """Seconds per iteration in a worker thread, then in one sharing the main heap, over the
    main thread, per configuration that ran both."""
    return [
        {**r, "where": f"{where}/main"}
        for where in ("thread", "shared-heap-thread")
        for r in ratios(rows, "where", where, "main")
    ]


def gram_ratios(rows: list[dict]) -> list[dict]:
    """Seconds per iteration with the Gram gradient in one product (impasto's) over autograd's
    two (``benchmarks.baselines``), per configuration that ran both."""
    return ratios(rows, "gram", "eq6", "autograd")


def allocator_ratios(rows: list[dict]) -> list[dict]:
    """Seconds per iteration keeping freed memory (the default) over the C library's own
    behaviour, per configuration that ran both."""
    return ratios(rows, "allocator", "keep", "system")


def describe(cfg: dict) -> str:
    """A configuration in a few words: ``512 px lbfgs fp32 conv auto``, then its levers."""
    levers = "".join(f" {k} {cfg[k]}" for k in ("allocator", "gram", "where") if k in cfg)
    return (
        f"{cfg['size']} px {cfg['optimizer']} {cfg['precision']} conv {cfg.get('conv', 'auto')}"
        + levers
    )


def run_isolated(cfg: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:  # the headline, then the child's output (report.error_line)
        raise report.BenchError(f"{describe(cfg)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


#: the values of each comma-separated choice flag (the Settings' own, where the flag is one)
PRECISIONS = ("fp32", "bf16")  # the ones with a matrix-multiply peak to compare with
ALLOCATORS = ("keep", "system")
WHERE = ("main", "thread", "shared-heap-thread")
GRAMS = ("eq6", "autograd")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="256 px only, fewer iterations")
    p.add_argument("--json", type=Path, default=RESULTS / "speed.json")
    p.add_argument(
        "--sizes",
        type=report.comma_list(item=report.size_type),
        default=None,
        help=f"comma-separated long sides, each at least {report.MIN_SIZE} px (the photo's "
        "short side must reach 16 px too; default 256,512)",
    )
    for flag, choices, default in (
        ("--precisions", PRECISIONS, "fp32,bf16"),
        ("--optimizers", OPTIMIZERS, "lbfgs,adam"),
        ("--convs", CONV_ALGORITHMS, "auto"),  # impasto's --conv choices
    ):
        p.add_argument(
            flag,
            type=report.comma_list(choices),
            default=default,
            help=f"comma-separated, of {', '.join(choices)}",
        )
    p.add_argument(
        "--timed",
        type=report.at_least(1),
        default=None,
        help="timed iterations per configuration",
    )
    p.add_argument(
        "--allocators",
        type=report.comma_list(ALLOCATORS),
        default="keep",
        help="comma-separated: keep (freed memory kept during a run, impasto's default on "
        "glibc) and/or system (the C library's own behaviour)",
    )
    p.add_argument(
        "--where",
        type=report.comma_list(WHERE),
        default="main",
        help="comma-separated: where the run runs: main (the main thread, as the command line), "
        "thread (a worker thread), shared-heap-thread (a worker thread of a process whose "
        "threads share the main heap, as impasto serve's)",
    )
    p.add_argument(
        "--grams",
        type=report.comma_list(GRAMS),
        default="eq6",
        help="comma-separated: the Gram matrices' gradient as eq. (6) has it, one product (eq6, "
        "impasto's) and/or as autograd takes it through the product, two (autograd)",
    )
    p.add_argument(
        "--isa",
        choices=sorted(isa.CAPS),
        help="cap torch's CPU kernels at this instruction set (benchmarks/isa.py): the code "
        "paths of a CPU without AVX-512 on one with it; compare rows as ratios",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    isa.cap(args.isa)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0

    import torch

    isa.check(args.isa)  # before any work: a CPU without the ISA asked for stops here
    load = isa.load_average()  # what else the machine was doing as the benchmark started
    sizes = args.sizes or ([256] if args.quick else [256, 512])
    timed = args.timed or (5 if args.quick else 10)
    precisions = args.precisions
    configs = [
        {"size": s, "optimizer": o, "precision": pr, "conv": c, "warmup": 3, "timed": timed}
        for s in sizes
        for o in args.optimizers
        for pr in precisions
        for c in args.convs
    ]
    if args.allocators != ["keep"]:
        configs = [{**c, "allocator": a} for c in configs for a in args.allocators]
    if args.grams != ["eq6"]:
        configs = [{**c, "gram": g} for c in configs for g in args.grams]
    if args.where != ["main"]:
        configs = [{**c, "where": w} for c in configs for w in args.where]
    if not args.quick and not args.sizes:  # memory (and speed) at print-ish size
        configs += [
            {"size": 1024, "optimizer": "lbfgs", "precision": pr, "warmup": 2, "timed": 3}
            for pr in ("fp32", "bf16")
        ]
    peaks = {pr: matmul_peak(pr) for pr in precisions}
    rows = []
    print(
        "matmul peak: "
        + ", ".join(f"{pr} {v:.0f} GFLOP/s" for pr, v in peaks.items())
        + f" ({torch.get_num_threads()} threads)"
    )
    print(
        f"{'size':>9} {'optim':>6} {'prec':>5} {'conv':>8} {'s/it':>7} {'GFLOP/s':>8} "
        f"{'% peak':>7} {'RSS MB':>7}"
    )
    for cfg in configs:
        row = run_isolated(cfg)
        row["peak_fraction"] = row["gflops"] / peaks[row["precision"]]
        rows.append(row)
        print(
            f"{row['width']:>4}x{row['height']:<4} {row['optimizer']:>6} {row['precision']:>5} "
            f"{row.get('conv', 'auto'):>8} {row['s_per_it']:7.3f} {row['gflops']:8.0f} "
            f"{100 * row['peak_fraction']:6.0f}% "
            f"{row['peak_rss_mb']:7.0f} {row.get('allocator', '')} {row.get('where', '')} "
            f"{row.get('gram', '')}",
            flush=True,
        )
    by_conv, kept = conv_ratios(rows), allocator_ratios(rows)
    by_gram, by_where = gram_ratios(rows), where_ratios(rows)
    for label, found in (("winograd / direct", by_conv), ("keep / system", kept),
                         ("eq6 / autograd", by_gram), (None, by_where)):  # fmt: skip
        for r in found:
            name = f"{r['size']} px {r['optimizer']} {r['precision']}"
            name += "".join(f" {r[f]}" for f in ("conv", "allocator", "gram") if r.get(f))
            print(f"{name}: {label or r['where']} {r['ratio']:.2f}")
    result = {
        "machine": {**isa.machine(args.isa), "load_average_before": load},
        "matmul_peak_gflops": peaks,
        "rows": rows,
        "winograd_over_direct": by_conv,
        "keep_over_system": kept,
        "where_over_main": by_where,
        "gram_eq6_over_autograd": by_gram,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    report.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    report.main_guard(main)
