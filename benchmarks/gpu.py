"""The one prepared GPU run of issue 10: roofline, peers and impasto candidates on 12 pairs.

Run on a CUDA machine (``bash benchmarks/gpu_run.sh``, which installs the carried wheels and
calls this with ``--out $OUT``). Phases, each timed with ``torch.cuda.synchronize`` and written to
``<out>/gpu.json`` as soon as it ends (so a run cut short still reports what it did):

1. **roofline** (solo): 500 L-BFGS iterations at 512 px, bf16, chelsea x starry night, with
   (a) the product's loop (``impasto.optimise.optimise``), (b) the same algorithm without host
   syncs (:class:`benchmarks.fastloop.StaticLBFGS`, eager), (c) that loop captured in a CUDA
   graph per scale (:func:`benchmarks.fastloop.minimise_graphed`). Target: <= 1.5 s.
2. **timed peers** (solo): pastiche and neural-style at their defaults on the first pair at
   256 px, pastiche on it at 512 px: the time references.
3. **quality sweep**: every other peer job (12 pairs at 256 px, 3 at 512 px) runs in a pool of
   ``--peer-workers`` processes in the background while the impasto candidates run on the 12
   pairs at 256 px in this process; times measured in this phase are marked ``contended``.
4. **timed impasto** (solo): the product's default (``impasto.Stylizer``, whatever the defaults
   are on that day) and the two best candidates on all 12 pairs at 256 px, and on the 3 pairs at
   512 px; one CLI run per size gives the process wall time (interpreter start included) to set
   beside the peers' process wall times.
5. every image scored (``evaluator.py`` on the GPU), side-by-side sheets, the summary.

``--budget-s`` (default 400) bounds the whole run: the candidate sweep stops early, dropping the
lowest-priority candidates, when it would leave less than the solo phase needs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from benchmarks import compare, report  # noqa: E402
from benchmarks.candidates import Candidate, run_candidate, sync  # noqa: E402
from benchmarks.evaluator import PairScorer  # noqa: E402

ROOF_PAIR = "chelsea_starry_night"
#: the first ALL_PAIRS_CANDIDATES candidates run on every pair, the levers on the first LEVER_PAIRS
ALL_PAIRS_CANDIDATES, LEVER_PAIRS = 4, 6

#: The sweep, in priority order (the budget drops from the end): the product's defaults with one
#: lever changed each (:class:`Candidate`'s defaults are the product's).
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "previous default (paper b1e3, avg pool, 300@1/2+200)",
        loss_scale="paper",
        pooling="avg",
        pyramid=((0.5, 300), (1.0, 200)),
    ),
    Candidate("default"),
    Candidate("strength 30", style_weight=30.0),
    Candidate("strength 3", style_weight=3.0),
    Candidate("ema .9", ema=0.9),
    Candidate("adam", optimizers=("adam",)),
    Candidate("adam ema .9", optimizers=("adam",), ema=0.9),
    Candidate("adam carry", optimizers=("adam",), carry_adam=True),
    # Adam on the coarse scales, L-BFGS at full size (at 256 px the pyramid has two scales)
    Candidate("adam>lbfgs per scale", optimizers=("adam",), final_optimizer="lbfgs"),
    Candidate("margin 4", margin=4),
    Candidate("tv 0", tv_weight=0.0),
    Candidate("tv 10", tv_weight=10.0),
    Candidate("style scale 0.75", style_scale=0.75),
    Candidate("style scale 1.5", style_scale=1.5),
    Candidate("content init", init="content"),
    Candidate("avg pool", pooling="avg"),
    Candidate("full size only, 300", pyramid=((1.0, 300),)),
)


class Report:
    """The JSON report, rewritten after every phase."""

    def __init__(self, path: Path, budget_s: float) -> None:
        self.path, self.t0, self.budget = path, time.perf_counter(), budget_s
        self.data: dict = {"machine": compare.machine(), "phases": {}, "errors": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()

    def save(self) -> None:
        self.data["elapsed_s"] = self.elapsed()
        compare._write_json(self.path, self.data)

    def error(self, where: str) -> None:
        msg = f"{where}: {traceback.format_exc(limit=4)}"
        print(msg, file=sys.stderr, flush=True)
        self.data["errors"].append(msg)
        self.save()


# --------------------------------------------------------------------------- 1. roofline


def roofline(size: int, iterations: int, device: str) -> dict:
    """Seconds for ``iterations`` L-BFGS iterations at ``size`` px: product loop, sync-free
    eager, and CUDA graph (the graph only on CUDA)."""
    from benchmarks.fastloop import minimise_graphed, minimise_static
    from impasto import balance
    from impasto.devices import resolve_dtype
    from impasto.encoder import load_encoder
    from impasto.image import fit_long_side, load_image, resize
    from impasto.layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
    from impasto.objective import Objective, compute_targets

    dev = torch.device(device)
    dtype = resolve_dtype("auto", dev)
    enc = load_encoder("avg", device=dev, dtype=dtype, last="relu5_1")
    c_path, s_path = compare.pair_paths(ROOF_PAIR)
    photo, painting = load_image(c_path).rgb, load_image(s_path).rgb
    wh = fit_long_side((photo.shape[-1], photo.shape[-2]), size)
    c = resize(photo, wh).to(dev)
    s = resize(painting, fit_long_side((painting.shape[-1], painting.shape[-2]), size)).to(dev)
    cl = dict.fromkeys(DEFAULT_CONTENT_LAYERS, 1.0)
    sl = dict.fromkeys(DEFAULT_STYLE_LAYERS, 0.2)
    targets = compute_targets(enc, c, tuple(cl), [s], tuple(sl))
    cw, sw = balance.layer_weights(targets, "paper", cl, sl)
    objective = Objective(enc, targets, 1.0, 1e3, cw, sw)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randn((1, 3, wh[1], wh[0]), generator=g) * 0.2 + 0.5).clamp(0, 1).to(dev)
    out: dict = {"size": list(wh), "iterations": iterations, "dtype": str(dtype)}

    def timed(name, fn):
        sync(dev)
        t = time.perf_counter()
        img = fn()
        sync(dev)
        out[name] = {"s": time.perf_counter() - t, "loss": float(objective(img)[0])}
        print(f"roofline {name}: {out[name]['s']:.2f} s", flush=True)

    from impasto.optimise import optimise

    timed(
        "product_loop",
        lambda: optimise(
            x0, objective, iterations=iterations, optimizer="lbfgs", lr=1.0, history_size=20
        ),
    )
    timed(
        "product_loop_with_report",
        lambda: optimise(
            x0,
            objective,
            iterations=iterations,
            optimizer="lbfgs",
            lr=1.0,
            history_size=20,
            on_step=lambda i, img, parts, total: [float(v) for v in parts.values()],
        ),
    )
    timed("static_lbfgs_eager", lambda: minimise_static(x0, objective, iterations))
    if dev.type == "cuda":
        timed("static_lbfgs_cuda_graph", lambda: minimise_graphed(x0, objective, iterations))
        timed("static_lbfgs_cuda_graph_again", lambda: minimise_graphed(x0, objective, iterations))
    return out


# --------------------------------------------------------------------------- helpers


def _save_small(img, path: Path) -> None:
    """A JPEG copy for the sheets (small enough to bring back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, quality=88)


def _score(scorers: dict, pair: str, image) -> dict:
    if pair not in scorers:
        scorers[pair] = PairScorer(*compare.pair_paths(pair), device=scorers["_device"])
    return scorers[pair].score(image)


def _peer_job(tool, pair, size, device, cache, iterations):
    return compare.peer_result(tool, pair, size, device=device, cache=cache, iterations=iterations)


def impasto_default(pair: str, size: int, device: str, overrides: dict | None = None):
    """The product's defaults through its API, timed in process. Returns (PIL image, s)."""
    from impasto import Settings, Stylizer

    c, s = compare.pair_paths(pair)
    dev = torch.device("cuda" if device.startswith("cuda") else device)
    sync(dev)
    t = time.perf_counter()
    settings = Settings(size=size, seed=0, device=device, **(overrides or {}))
    result = Stylizer(settings).run(str(c), [str(s)])
    sync(dev)
    return result.to_pil(), time.perf_counter() - t


# --------------------------------------------------------------------------- phases


def run_candidates(
    rep,
    cands,
    pairs,
    size,
    device,
    scorers,
    img_dir,
    *,
    reserve_s,
    tag,
    graph=False,
    lever_pairs=None,
):
    """Each candidate on every pair (the levers, after the first ALL_PAIRS_CANDIDATES, on
    ``lever_pairs`` only when given); returns ``{candidate: {pair: result}}``."""
    from impasto.image import to_pil

    results: dict = {}
    for cand in cands:
        if rep.left() < reserve_s:
            print(f"budget: skipping {cand.name} and later candidates", flush=True)
            rep.data.setdefault("skipped", []).append(f"{tag}: {cand.name}")
            continue
        per: dict = {}
        k = cands.index(cand)
        for pair in pairs if (lever_pairs is None or k < ALL_PAIRS_CANDIDATES) else lever_pairs:
            try:
                x, secs = run_candidate(
                    cand, *compare.pair_paths(pair), size=size, device=device, graph=graph
                )
            except Exception:
                rep.error(f"{cand.name} on {pair}")
                continue
            im = to_pil(x)
            per[pair] = {
                "s": secs,
                "graph": graph,
                "border": border(x),
                **_score(scorers, pair, im),
            }
            _save_small(im, img_dir / f"{pair}_{size}_{_slug(cand.name)}.jpg")
        results[cand.name] = per
        _print_candidate(cand.name, per)
    return results


def border(x: torch.Tensor, edge: int = 2, inner: int = 6) -> dict:
    """Issue 9: per side, the mean RGB of the outer ``edge`` px minus that of the next
    ``inner`` px (a rim shows as a large difference on some sides)."""
    x = x[0].float()

    def diff(a, b):
        return [round(float(v), 4) for v in a.mean((1, 2)) - b.mean((1, 2))]

    e, i = edge, edge + inner
    return {
        "top": diff(x[:, :e], x[:, e:i]),
        "bottom": diff(x[:, -e:], x[:, -i:-e]),
        "left": diff(x[:, :, :e], x[:, :, e:i]),
        "right": diff(x[:, :, -e:], x[:, :, -i:-e]),
    }


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")[:60]


def _print_candidate(name: str, per: dict) -> None:
    if not per:
        return
    c = sorted(v["content"] for v in per.values())[len(per) // 2]
    s = sorted(v["style"] for v in per.values())[len(per) // 2]
    t = sum(v["s"] for v in per.values()) / len(per)
    print(f"{name:<40} median content {c:.3f} style {s:.3f} mean {t:.2f} s", flush=True)


def wins(per: dict, peers: dict, tool: str = "pastiche") -> int:
    """On how many pairs a candidate is at least as good as ``tool`` on both numbers."""
    n = 0
    for pair, r in per.items():
        p = peers.get((tool, pair))
        if (
            p
            and r["content"] <= compare.TOLERANCE * p["content"]
            and (r["style"] <= compare.TOLERANCE * p["style"])
        ):
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=400.0)
    p.add_argument("--size", type=report.size_type, default=256)
    p.add_argument("--confirm-size", type=report.size_type, default=512)
    p.add_argument("--pairs", default=",".join(compare.PAIRS))
    p.add_argument("--confirm-pairs", default=",".join(compare.CONFIRM_PAIRS))
    p.add_argument("--roof-size", type=report.size_type, default=512)
    p.add_argument("--roof-iterations", type=report.at_least(1), default=500)
    p.add_argument("--peer-iterations", type=int, default=None, help="default: the peers' own")
    p.add_argument("--peer-workers", type=report.at_least(1), default=4)
    p.add_argument("--candidates", type=int, default=len(CANDIDATES), help="first N of the list")
    p.add_argument("--scale-iterations", type=float, default=1.0, help="smoke tests: < 1")
    p.add_argument("--work", type=Path, default=Path("/tmp/impasto_gpu_work"))
    p.add_argument(
        "--cli-extra",
        default="",
        help="extra impasto CLI arguments, one string (smoke tests); one option alone needs "
        "'=', as in --cli-extra=--quiet",
    )
    p.add_argument(
        "--default-overrides",
        type=json.loads,
        default=None,
        help='JSON settings for the "default" runs (smoke tests: \'{"iterations": 2}\')',
    )
    args = p.parse_args(argv)
    # The evaluator is fp32: keep cuDNN from running its convolutions in TF32 (impasto's own
    # runs are bf16 under --precision auto, and the peers run in their own processes).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    pairs = args.pairs.split(",")
    confirm = [x for x in args.confirm_pairs.split(",") if x]
    cands = [_scaled(c, args.scale_iterations) for c in CANDIDATES[: args.candidates]]
    rep = Report(args.out / "gpu.json", args.budget_s)
    img_dir = args.out / "images"
    cache = args.work / "peer_cache"
    scorers: dict = {"_device": args.device}
    print(json.dumps(rep.data["machine"]), flush=True)

    # 1. roofline
    try:
        rep.data["phases"]["roofline"] = roofline(args.roof_size, args.roof_iterations, args.device)
    except Exception:
        rep.error("roofline")
    roof = rep.data["phases"].get("roofline", {})
    graph = "static_lbfgs_cuda_graph_again" in roof and (
        roof["static_lbfgs_cuda_graph_again"]["loss"] <= 1.1 * roof["static_lbfgs_eager"]["loss"]
    )
    rep.data["candidates_use_cuda_graph"] = graph
    rep.save()

    # 2. timed peers (solo)
    peers: dict = {}
    timed_jobs = [
        ("pastiche", pairs[0], args.size),
        ("neural-style", pairs[0], args.size),
        ("pastiche", pairs[0], args.confirm_size),
    ]
    for tool, pair, size in timed_jobs:
        try:
            r = _peer_job(tool, pair, size, args.device, cache, args.peer_iterations)
            peers[(tool, pair, size)] = {**r, "solo": True}
            print(
                f"{tool} {pair} {size}px solo: {r['wall_s']:.1f} s (loop {r['loop_s']})", flush=True
            )
        except Exception:
            rep.error(f"peer {tool} {pair} {size}")
    rep.data["phases"]["timed_peers"] = [v for v in peers.values()]
    rep.save()

    # 3. the sweep, with the remaining peers in the background
    jobs = [(t, pr, args.size) for pr in pairs for t in ("pastiche", "neural-style")]
    jobs += [(t, pr, args.confirm_size) for pr in confirm for t in ("pastiche", "neural-style")]
    jobs = [j for j in jobs if j not in peers]
    pool = cf.ThreadPoolExecutor(max_workers=args.peer_workers)
    futures = {
        pool.submit(_peer_job, t, pr, sz, args.device, cache, args.peer_iterations): (t, pr, sz)
        for t, pr, sz in jobs
    }
    sweep = run_candidates(
        rep,
        cands,
        pairs,
        args.size,
        args.device,
        scorers,
        img_dir,
        reserve_s=150,
        tag="sweep",
        graph=graph,
        lever_pairs=pairs[:LEVER_PAIRS],
    )
    rep.data["phases"]["sweep_contended"] = sweep
    rep.save()
    done, pending = cf.wait(futures, timeout=max(5.0, rep.left() - 100))
    for fut in done:
        key = futures[fut]
        try:
            peers[key] = {**fut.result(), "solo": False}
        except Exception:
            rep.error(f"peer {key}")
    rep.data["peer_jobs_unfinished"] = [list(futures[f]) for f in pending]
    pool.shutdown(wait=False, cancel_futures=True)
    for key, r in peers.items():
        tool, pair, size = key
        r.update(_score(scorers, pair, r["output"]))
        _save_small(_open(r["output"]), img_dir / f"{pair}_{size}_{_slug(tool)}.jpg")
    rep.data["phases"]["peers"] = list(peers.values())
    rep.save()

    # 4. timed impasto (solo): product default + the two best candidates
    p256 = {(t, pr): v for (t, pr, sz), v in peers.items() if sz == args.size}
    ranked = sorted(sweep, key=lambda n: (-wins(sweep[n], p256), _median_ratio(sweep[n], p256)))
    best = [c for c in cands if c.name in ranked[:2]]
    rep.data["ranking"] = [
        {
            "candidate": n,
            "wins_vs_pastiche": wins(sweep[n], p256),
            "wins_vs_neural_style": wins(sweep[n], p256, "neural-style"),
        }
        for n in ranked
    ]
    solo: dict = {"default": {}}
    for size, prs in ((args.size, pairs), (args.confirm_size, confirm)):
        for pair in prs:
            if rep.left() < 20:
                break
            try:
                im, secs = impasto_default(pair, size, args.device, args.default_overrides)
                solo["default"][f"{pair}@{size}"] = {"s": secs, **_score(scorers, pair, im)}
                _save_small(im, img_dir / f"{pair}_{size}_impasto_default.jpg")
            except Exception:
                rep.error(f"default {pair} {size}")
        reserve = 25 if size == args.size else 10
        solo[f"best@{size}"] = run_candidates(
            rep,
            best,
            prs,
            size,
            args.device,
            scorers,
            img_dir,
            reserve_s=reserve,
            tag=f"best@{size}",
            graph=graph,
        )
        rep.data["phases"]["solo"] = solo
        rep.save()
    try:
        for size in (args.size, args.confirm_size):
            r = compare.impasto_cli(
                pairs[0],
                size,
                args.work / f"cli_{size}",
                device=args.device,
                extra=tuple(args.cli_extra.split()),
            )
            solo[f"cli@{size}"] = {"wall_s": r["wall_s"], **_score(scorers, pairs[0], r["output"])}
    except Exception:
        rep.error("cli")
    rep.data["phases"]["solo"] = solo
    rep.save()

    # 5. sheets
    try:
        _sheets(rep, peers, solo, best, pairs[:4], args, img_dir)
    except Exception:
        rep.error("sheets")
    rep.save()
    print(f"done in {rep.elapsed():.0f} s; wrote {rep.path}", flush=True)
    return 0


def _open(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def _median_ratio(per: dict, peers: dict) -> float:
    r = [
        max(
            v["content"] / peers[("pastiche", k)]["content"],
            v["style"] / peers[("pastiche", k)]["style"],
        )
        for k, v in per.items()
        if ("pastiche", k) in peers
    ]
    return sorted(r)[len(r) // 2] if r else float("inf")


def _scaled(c: Candidate, f: float) -> Candidate:
    if f == 1.0:
        return c
    return c.replace(iterations_factor=f)


def _sheets(rep, peers, solo, best, pairs, args, img_dir) -> None:
    """photo | painting | impasto default | best candidate | pastiche | neural-style."""
    for pair in pairs:
        entries = []
        d = solo["default"].get(f"{pair}@{args.size}")
        if d:
            entries.append(
                (
                    "impasto default",
                    {
                        **d,
                        "wall_s": d["s"],
                        "output": img_dir / f"{pair}_{args.size}_impasto_default.jpg",
                    },
                )
            )
        for c in best[:1]:
            r = solo.get(f"best@{args.size}", {}).get(c.name, {}).get(pair)
            if r:
                out = img_dir / f"{pair}_{args.size}_{_slug(c.name)}.jpg"
                entries.append((c.name[:28], {**r, "wall_s": r["s"], "output": out}))
        for tool in ("pastiche", "neural-style"):
            r = peers.get((tool, pair, args.size))
            if r and "content" in r:
                entries.append(
                    (tool, {**r, "output": img_dir / f"{pair}_{args.size}_{_slug(tool)}.jpg"})
                )
        compare.side_by_side(pair, entries, args.out / "sheets" / f"{pair}_{args.size}.png", 192)
    shutil.rmtree(args.work / "cli_256", ignore_errors=True)


if __name__ == "__main__":
    report.main_guard(main)
