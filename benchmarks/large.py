"""Print-size benchmark (issue 11): memory and seconds per iteration of exact tiles.

Each measurement runs in its own process (its peak RSS is its own), through impasto's own
engine: a square crop of ``example:chelsea`` in the style of ``example:starry_night``, one
pyramid level (``pyramid_start=0``), the default settings otherwise.

CPU (default; a few minutes per measurement on a small shared machine)::

    python benchmarks/large.py                     # writes benchmarks/results/large.json
    python benchmarks/large.py --convs auto,direct # each measurement with both, in turn
    python benchmarks/large.py --convs winograd,direct,direct:auto --name large_zen5.json

With ``--convs`` every measurement runs once per convolution algorithm (``conv[:precision]``,
float32 unless a precision is named), one after the other in the same invocation, and the JSON
has their ratios to the first (``conv_ratios``); each row records whether Winograd ran
(``winograd``) and the load average as it started (``loadavg_1min_before``).

* ``overhead``: 2048 x 2048, untiled (``max_memory`` large) and with 1024 px tiles, two
  iterations each: tiled / untiled seconds per iteration.
* ``auto``: 4096 x 4096 and 8192 x 8192 with tiles chosen automatically (no tiling flag, the
  default budget: half the RAM). One iteration there takes 30 minutes to hours on two CPU
  cores, so by default this is a *probe*: the memory plan of the scale, every image-sized
  tensor the run holds allocated at full size (image, gradient, fall-back copy, photo, content
  targets, the optimiser's state at its full history), then one tile of each pass run on the
  real network at the planned crop size. It gives the peak RSS of that and the seconds per
  tile; seconds per iteration are extrapolated over the scale's tiles (time is linear in
  the pixels). ``--full`` runs real iterations instead (``--iterations``).

GPU (``--device cuda --out DIR``; about three minutes on one H200): untiled vs tiled seconds per
iteration and peak GPU memory at 2048, 4096 and 8192 (the crossover), and 16384 x 16384 tiled
with automatic tiles, a few iterations each, in one process (peak memory reset in between).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # benchmarks.baselines, when run as a script
    sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"
GPU_DEADLINE_S = 170.0

from benchmarks import report  # noqa: E402


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def inputs(side: int):
    """A square photo (the centre of chelsea) and the painting."""
    from PIL import Image

    from impasto.examples import path

    photo = Image.open(path("chelsea")).convert("RGB")
    w, h = photo.size
    s = min(w, h)
    photo = photo.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    return photo, str(path("starry_night"))


def settings(spec: dict):
    from impasto import Settings

    return Settings(
        size=spec["size"],
        iterations=spec.get("iterations", 2),
        pyramid_start=0,
        seed=0,
        device=spec.get("device", "cpu"),
        precision=spec.get("precision", "auto"),
        tile=spec.get("tile"),
        max_memory=spec.get("max_memory"),
        conv=spec.get("conv", "auto"),
    )


def winograd_used(spec: dict) -> bool:
    """Whether this measurement's network runs by Winograd (its ``conv`` resolved)."""
    import torch

    from impasto.devices import resolve_dtype
    from impasto.encoder.winograd import resolve_winograd

    device = torch.device(spec.get("device", "cpu"))
    cpu = device.type == "cpu"
    dtype = resolve_dtype(spec.get("precision", "auto"), device) if cpu else torch.bfloat16
    return resolve_winograd(spec.get("conv", "auto"), device, dtype)


class Clock:
    """Callback: times of each iteration and of each tile, and the notes."""

    def __init__(self, sync) -> None:
        self.sync = sync
        self.iterations: list[float] = []
        self.tiles: list[tuple[int, int, int, float]] = []
        self.notes: list[str] = []

    def __call__(self, it) -> None:
        self.sync()
        self.iterations.append(time.perf_counter())

    def on_tile(self, tick) -> None:
        self.tiles.append((tick.step, tick.phase, tick.tile, time.perf_counter()))

    def on_note(self, note) -> None:
        self.notes.append(note.text)


def run_measurement(spec: dict) -> dict:
    """Real iterations through :class:`impasto.Stylizer`."""
    import torch

    from impasto import Stylizer

    cuda = spec.get("device") == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = Clock(sync)
    photo, style = inputs(spec["size"])
    start = time.perf_counter()
    try:
        result = Stylizer(settings(spec)).run(photo, [style], callback=clock)
    except torch.OutOfMemoryError:
        return {**spec, "error": "out of memory"}
    except Exception as e:  # one measurement failing must not lose the others
        return {**spec, "error": f"{type(e).__name__}: {e}"[:300]}
    t = clock.iterations
    out = {
        **spec,
        "memory_plan": result.memory[-1],
        "notes": clock.notes,
        "first_iteration_s": t[0] - start,  # includes the targets
        "s_per_iteration": (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else None,
        "tiles": max((tk[2] for tk in clock.tiles), default=1),
        "winograd": winograd_used(spec),
    }
    if cuda:
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    else:
        out["peak_rss_bytes"] = peak_rss()
    return out


def _held_tensors(plan, mem) -> list:
    """Every image-sized tensor a run of this scale holds, at full size and touched."""
    import torch

    from impasto.layers import layer_stride

    w, h = plan.size
    c = plan.colors.channels
    vectors = 3 + 1  # image, gradient, fall-back copy; the photo at this size
    vectors += 2 * mem.history + 4 if mem.optimizer == "lbfgs" else 3
    held = [torch.full((1, c, h, w), 0.5) for _ in range(vectors)]
    for layer in plan.content_layers:
        s = layer_stride(layer)
        held.append(torch.full((1, 512, h // s, w // s), 0.5, dtype=plan.dtype))
    return held


def _tile_pass(encoder, layers, side: int, grad: bool) -> float:
    """Seconds of one pass of one tile's crop (``side`` px) through the network."""
    import torch

    x = torch.rand(1, 3, side, side, requires_grad=grad)
    t = time.perf_counter()
    with torch.set_grad_enabled(grad):
        feats = encoder(x, layers)
        if grad:
            outs = list(feats.values())
            torch.autograd.grad(outs, x, [torch.ones_like(f) for f in outs])
    return time.perf_counter() - t


def probe_measurement(spec: dict) -> dict:
    """The memory plan, full-size held tensors and one tile of each pass (CPU; see above)."""
    from impasto.allocator import keep_freed_memory
    from impasto.cache import RunCache
    from impasto.plan import make_plan
    from impasto.pyramid import memory_budget, scale_memory
    from impasto.tiles import tile_windows

    photo, style = inputs(spec["size"])
    cache = RunCache()
    plan = make_plan(settings(spec), photo, [style], None, cache)
    layers = tuple(dict.fromkeys([*plan.content_layers, *plan.style_layers]))
    encoder = cache.encoder(plan.settings, plan.device, plan.dtype, layers, winograd=plan.winograd)
    budget, source = memory_budget(plan)
    mem = scale_memory(plan, 0, encoder, budget)
    held = _held_tensors(plan, mem)
    w, h = plan.size
    tile = mem.tile or max(w, h)
    side = min(max(w, h), tile + 2 * mem.halo)
    with keep_freed_memory(plan.device.type):  # as a run does
        _tile_pass(encoder, layers, side, grad=True)  # warm-up: kernels chosen, pages touched
        t1 = _tile_pass(encoder, layers, side, grad=False)
        t2 = _tile_pass(encoder, layers, side, grad=True)
    windows = tile_windows((h, w), tile, mem.halo, 16)
    crop_px = sum(
        (min(h, win.bottom + mem.halo) - win.origin[0])
        * (min(w, win.right + mem.halo) - win.origin[1])
        for win in windows
    )
    del held
    return {
        **spec,
        "mode": "probe",
        "budget_bytes": budget,
        "budget_source": source,
        "memory_plan": {"tile": mem.tile, "halo": mem.halo, "optimizer": mem.optimizer,
                        "history": mem.history, "estimate_bytes": mem.estimate},
        "reason": mem.reason,
        "tiles": len(windows),
        "crop_side": side,
        "tile_pass1_s": t1,
        "tile_pass2_s": t2,
        "s_per_iteration_extrapolated": (
            (t1 + t2) / side**2 * crop_px if mem.tile else t2 / side**2 * w * h
        ),
        "peak_rss_bytes": peak_rss(),
        "winograd": plan.winograd,
    }  # fmt: skip


def child(spec: dict) -> dict:
    """Run one measurement in a fresh process; its JSON result, or the spec with ``error``: the
    line saying why the process failed (one string, as a measurement's own errors are)."""
    cmd = [sys.executable, __file__, "--one", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        why = report.last_line(out.stderr) or f"exit status {out.returncode}"
        return {**spec, "error": why[:300]}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {**spec, "error": f"no result: {report.last_line(out.stdout) or 'no output'}"}


def failed(rows: list[dict]) -> list[dict]:
    """The rows whose measurement failed (not those skipped for the time budget)."""
    return [r for r in rows if r.get("error") and not str(r["error"]).startswith("skipped")]


def gb(n) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB"


def sec(n) -> str:
    return "-" if n is None else f"{n:.1f} s"


def table(rows: list[dict]) -> str:
    lines = [f"{'run':<34} {'plan':<34} {'peak':>9} {'s/iteration':>14}"]
    for r in rows:
        plan = r.get("memory_plan") or {}
        what = f"tiles {plan.get('tile')}" if plan.get("tile") else "whole"
        what += f", {plan.get('optimizer')} {plan.get('history') or ''}".rstrip()
        peak = r.get("peak_rss_bytes") or r.get("peak_gpu_bytes")
        s = r.get("s_per_iteration") or r.get("s_per_iteration_extrapolated")
        mark = "*" if "s_per_iteration_extrapolated" in r else ""
        label = f"{r['size']} {r['label']}" + (f" ({variant_of(r)})" if r.get("conv") else "")
        what = str(r["error"]) if r.get("error") else what
        lines.append(f"{label:<34} {what:<34} {gb(peak):>9} {sec(s) + mark:>14}")
    return "\n".join(lines)


def full_run_hours(final: dict, whole_2048: dict | None) -> float | None:
    """A run with this release's default pyramid and iterations (``Settings``), from the
    measured top level and, for the coarse levels, the untiled 2048 px rate per pixel (levels
    above 2048 px counted at the top's rate)."""
    from impasto import Settings

    top = final.get("s_per_iteration") or final.get("s_per_iteration_extrapolated")
    if top is None or whole_2048 is None or whole_2048.get("s_per_iteration") is None:
        return None
    defaults = Settings(size=final["size"])
    rate_top = top / final["size"] ** 2
    rate_small = whole_2048["s_per_iteration"] / 2048**2
    total = defaults.iterations * top
    for side in defaults.sides[:-1]:
        total += defaults.pyramid_iterations * side**2 * (rate_small if side <= 2048 else rate_top)
    return total / 3600


def cpu_specs(args) -> list[dict]:
    """The CPU measurements, each once per ``--convs`` choice, one after the other."""
    specs = []
    if args.only in (None, "overhead"):
        for label, extra in (("untiled", {"max_memory": 10**13}), ("tiles 1024", {"tile": 1024})):
            specs.append({"size": 2048, "iterations": 2, "label": label, **extra})
    if args.only in (None, "auto"):
        how = {"iterations": args.iterations} if args.full else {"probe": True}
        for size in (4096, 8192):
            specs.append({"size": size, "label": "auto tiles", **how})
        for size, tile in getattr(args, "also_tiles", None) or []:
            specs.append({"size": size, "label": f"tiles {tile}", "tile": tile, **how})
    return [{**spec, **variant(v)} for spec in specs for v in args.convs]


def variant(text: str) -> dict:
    """``conv[:precision]`` (precision fp32 unless named): how one row's network runs."""
    conv, _, precision = text.partition(":")
    return {"conv": conv, "precision": precision or "fp32", "variant": text}


def variant_of(row: dict) -> str:
    return row.get("variant", row.get("conv"))


def cpu_main(args, on_row=None) -> dict:
    """Each CPU measurement in its own process, in turn; ``on_row(data)`` after each, with the
    rows so far (a long run cut short keeps what it measured)."""
    rows = []
    for spec in cpu_specs(args):
        load = os.getloadavg()[0]  # before the child starts: what else the machine was doing
        rows.append({**child(spec), "loadavg_1min_before": load})
        print(table(rows[-1:]), flush=True)
        if on_row is not None:
            on_row({"rows": rows, "conv_ratios": conv_ratios(rows, args.convs)})
    return {"rows": rows, "conv_ratios": conv_ratios(rows, args.convs)}


def conv_ratios(rows: list[dict], convs: list[str]) -> list[dict]:
    """Seconds per iteration of each later ``--convs`` choice over the first's, per run."""

    def rate(r):
        return r.get("s_per_iteration") or r.get("s_per_iteration_extrapolated")

    out = []
    for base in (r for r in rows if variant_of(r) == convs[0] and rate(r)):
        for r in rows:
            same = (r["size"], r["label"]) == (base["size"], base["label"])
            if same and variant_of(r) != convs[0] and rate(r):
                out.append(
                    {
                        "size": r["size"],
                        "label": r["label"],
                        "ratio": f"{variant_of(r)}/{convs[0]}",
                        "value": rate(r) / rate(base),
                    }
                )
    return out  # fmt: skip


def gpu_main(args, on_row=None) -> dict:
    """The GPU measurements in this process; ``on_row(data)`` after each, as on the CPU."""
    start, rows = time.perf_counter(), []
    plan = []
    for size, tile in ((2048, 1024), (4096, 2048)):
        plan += [(size, "untiled", {"max_memory": 10**13}), (size, f"tiles {tile}", {"tile": tile})]
    plan += [(16384, "auto tiles", {})]
    plan += [(8192, "untiled", {"max_memory": 10**13}), (8192, "tiles 2048", {"tile": 2048})]
    for size, label, extra in plan:
        if time.perf_counter() - start > GPU_DEADLINE_S:
            rows.append({"size": size, "label": label, "error": "skipped: time budget"})
            continue
        spec = {"size": size, "iterations": 2 if size > 8192 else 3, "device": "cuda"}
        rows.append(run_measurement({**spec, "label": label, **extra}))
        print(table(rows[-1:]), flush=True)
        if on_row is not None:  # partial results survive a timeout
            on_row({"rows": rows, "total_s": time.perf_counter() - start})
    return {"rows": rows, "total_s": time.perf_counter() - start}


def machine(device: str) -> dict:
    import torch

    from impasto.devices import cpu_name

    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _variant_arg(text: str) -> str:
    """An argparse check of one ``--convs`` value: ``conv[:precision]`` of impasto's choices."""
    from impasto.choices import CONV_ALGORITHMS, PRECISIONS

    conv, colon, precision = text.partition(":")
    if conv not in CONV_ALGORITHMS or (colon and precision not in PRECISIONS):
        raise argparse.ArgumentTypeError(
            f"not conv[:precision] with conv one of {', '.join(CONV_ALGORITHMS)} and precision "
            f"one of {', '.join(PRECISIONS)}"
        )
    return text


def _size_tile(text: str) -> tuple[int, int]:
    """An argparse check of one ``--also-tiles`` value: ``SIZE:TILE``."""
    size, _, tile = text.partition(":")
    try:
        pair = int(size), int(tile)
    except ValueError:
        raise argparse.ArgumentTypeError("not SIZE:TILE (two integers, e.g. 4096:720)") from None
    if min(pair) < report.MIN_SIZE:
        raise argparse.ArgumentTypeError(f"SIZE and TILE must be at least {report.MIN_SIZE}")
    return pair


def summarise(data: dict, args) -> dict:
    """``data`` (the rows so far) with what is derived from them: the 2048 px tiling overhead,
    the full runs' hours, the machine, the failures."""
    rows = data["rows"]
    base = args.convs[0] if args.device == "cpu" else None  # GPU rows name no conv
    first = [r for r in rows if variant_of(r) == base]
    whole = next((r for r in first if r["size"] == 2048 and r["label"] == "untiled"), None)
    tiled = next((r for r in first if r["size"] == 2048 and r["label"].startswith("tiles")), None)
    if whole and tiled and whole.get("s_per_iteration") and tiled.get("s_per_iteration"):
        data["overhead_2048"] = tiled["s_per_iteration"] / whole["s_per_iteration"]
    for r in rows:
        if r["size"] >= 4096 and "error" not in r:
            same = [w for w in rows if w["label"] == "untiled" and variant_of(w) == variant_of(r)]
            r["full_run_hours_extrapolated"] = full_run_hours(r, (same or [None])[0])
    data["failed"] = len(failed(rows))
    data["machine"] = machine(args.device)
    data["note"] = (
        "CPU figures: the machine's cores (see loadavg_1min_before: how busy it was as each "
        "measurement started); * = extrapolated from one tile of each pass (see the docstring)"
        if args.device == "cpu"
        else "one GPU"
    )
    return data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="folder for large.json / large_gpu.json (rewritten after each measurement)",
    )
    p.add_argument("--only", choices=("overhead", "auto"), help="CPU: one part only")
    p.add_argument("--full", action="store_true", help="CPU: real iterations at 4096 and 8192")
    p.add_argument("--iterations", type=report.at_least(1), default=2)
    p.add_argument(
        "--convs",
        type=report.comma_list(item=_variant_arg),
        default=["auto"],
        help="CPU: convolution algorithms (Settings.conv), each optionally with a precision "
        "(conv:precision, fp32 unless named), comma-separated, each measured in turn and "
        "compared with the first, e.g. auto,direct or winograd,direct,direct:auto (default: auto)",
    )
    p.add_argument(
        "--also-tiles",
        type=report.comma_list(item=_size_tile),
        help="CPU, with the automatic tiles: also SIZE:TILE forced tiles (e.g. an earlier plan's "
        "4096:720,8192:1344), measured the same way",
    )
    p.add_argument("--name", help="the JSON file's name (default large.json / large_gpu.json)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        spec = json.loads(args.one)
        if os.environ.get("IMPASTO_BENCH_GRAMS") == "autograd":
            from benchmarks.baselines import autograd_grams

            autograd_grams()
        out = probe_measurement(spec) if spec.get("probe") else run_measurement(spec)
        print(json.dumps(out))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
            raise report.BenchError(f"--device cuda: no CUDA device here ({why})")
    name = args.name or ("large.json" if args.device == "cpu" else "large_gpu.json")
    path = args.out / name

    partial = path.with_name(f"{path.stem}.partial.json")

    def save(data: dict) -> None:  # after every measurement: a run cut short keeps its rows,
        # beside the results file, which keeps the last complete run's
        report.write_json(partial, {**summarise(data, args), "complete": False}, quiet=True)

    data = gpu_main(args, save) if args.device == "cuda" else cpu_main(args, save)
    data = summarise(data, args)
    rows = data["rows"]
    print(table(rows))
    if "overhead_2048" in data:
        print(f"tiled / untiled s/iteration at 2048 px: {data['overhead_2048']:.2f}")
    for q in data.get("conv_ratios", []):
        print(f"{q['size']} {q['label']}: s/iteration {q['ratio']} = {q['value']:.2f}")
    report.write_json(path, {**data, "complete": True})
    partial.unlink(missing_ok=True)
    if data["failed"]:
        print(f"{data['failed']} of {len(rows)} measurements failed (their rows say why)")
        return 1
    return 0


if __name__ == "__main__":
    report.main_guard(main)
