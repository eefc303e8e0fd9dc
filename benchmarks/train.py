"""Training and Caffe-file benchmarks for ``impasto train`` (prints a table, writes
benchmarks/results/train.json).

    python benchmarks/train.py                  # CPU: images/s, 1 vs 2 DDP processes, caffemodel
    python benchmarks/train.py --device cuda    # the same images/s table on a GPU (fp32 and bf16)
    python benchmarks/train.py --allocators system,keep  # images/s with and without freed memory
                                                         # kept (impasto train keeps it), ratios
    python benchmarks/train.py --fashion-mnist 5 --out benchmarks/results/train_fmnist.json \
        --fm-figure docs/img/fmnist_vs_imagenet.jpg

Images/s are whole SGD steps (forward, backward, update) on random tensors of the given size, so
they measure the network, not decoding. The DDP row trains on a synthetic image folder through
``impasto.train.train`` launched by torchrun (gloo). The caffemodel row writes a synthetic VGG19
caffemodel with the real file's layer sizes (548 MB; fully connected layers included) to /tmp,
loads its convolutions in a fresh process, reports time and extra RSS, and deletes it.
Fashion-MNIST needs Debian's ``dataset-fashion-mnist`` package (its four ``.gz`` files in
/usr/share/datasets/fashion-mnist), or the same files in the folder ``--fm-dir`` names.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from impasto.devices import cpu_name

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # benchmarks.report, when run as a script
    sys.path.insert(0, str(ROOT.parent))
FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = tuple(
    f"{split}-{kind}-idx{n}-ubyte.gz"
    for split in ("train", "t10k")
    for kind, n in (("images", 3), ("labels", 1))
)

from benchmarks import report  # noqa: E402


def images_per_s(
    arch: str, size: int, batch: int, steps: int, device: str, bf16: bool, allocator: str = "keep"
) -> float:
    """Whole SGD steps per second; ``allocator`` "keep": freed memory kept in the process as
    ``impasto train`` does (``impasto.allocator``), "system": the C library's own behaviour."""
    from impasto.allocator import keep_freed_memory
    from impasto.train.model import build_model

    kept = keep_freed_memory(torch.device(device).type) if allocator == "keep" else nullcontext()
    model = build_model(arch, 1.0, 10).to(device)
    with kept:
        return _images_per_s(model, size, batch, steps, device, bf16)


def _images_per_s(model, size: int, batch: int, steps: int, device: str, bf16: bool) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def _folder(root: Path, n: int = 64, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n // 2):
            a = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            Image.fromarray(a).save(root / f"c{c}" / f"{i}.png")
    return root


def ddp_worker(args) -> None:
    """Run under torchrun: train ``--max-steps`` steps; rank 0 writes images/s to ``args.out``."""
    from impasto.train import TrainConfig, train

    seen = []
    cfg = TrainConfig(
        data=args.data, out_dir=args.run_dir, arch="vgg11", width=0.5, size=32, epochs=1,
        batch_size=args.batch, val_fraction=0, max_steps=args.steps, workers=0,
    )  # fmt: skip
    train(cfg, seen.append)
    if os.environ.get("RANK", "0") == "0":
        Path(args.out).write_text(json.dumps({"images_per_s": seen[-1].images_per_s}))


def ddp_rows(global_batch: int = 16, steps: int = 6) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _folder(Path(tmp) / "data", n=global_batch * (steps + 1))
        for procs in (1, 2):
            out = Path(tmp) / f"r{procs}.json"
            cmd = [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(procs), __file__, "--ddp-worker", "--data", str(data),
                "--run-dir", str(Path(tmp) / f"run{procs}"), "--out", str(out),
                "--batch", str(global_batch // procs), "--steps", str(steps),
            ]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // procs))}
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            ips = json.loads(out.read_text())["images_per_s"]
            rows.append({"what": f"DDP {procs} proc (gloo), VGG11 w1/2 32px, global batch "
                         f"{global_batch}", "images_per_s": round(ips, 2)})  # fmt: skip
    return rows


def _synthetic_vgg19_caffemodel(path: Path) -> int:
    from impasto.encoder.arch import VGG_BLOCKS, arch_from_blocks
    from impasto.encoder.caffe_write import write_caffemodel

    a = arch_from_blocks(VGG_BLOCKS["vgg19"])
    convs, in_ch = {}, 3
    for name, ch in zip(a.conv_names, a.channels):
        convs[name] = (np.full((ch, in_ch, 3, 3), 0.01, np.float32), np.zeros(ch, np.float32))
        in_ch = ch
    fc = [
        ("fc6", "InnerProduct", [np.zeros((4096, 25088), np.float32), np.zeros(4096, np.float32)]),
        ("fc7", "InnerProduct", [np.zeros((4096, 4096), np.float32), np.zeros(4096, np.float32)]),
        ("fc8", "InnerProduct", [np.zeros((1000, 4096), np.float32), np.zeros(1000, np.float32)]),
    ]
    write_caffemodel(path, convs, layout="layers", legacy_shape=True,
                     name="VGG_ILSVRC_19_layers", extra=fc)  # fmt: skip
    return path.stat().st_size


_LOAD = """
import resource, sys, time
import torch
from impasto.encoder.weights import load_state_dict
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
before, peak0 = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
sd, spec = load_state_dict(sys.argv[1])
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(dt, rss() - before, peak - max(before, peak0), len(sd))
"""


def caffemodel_row() -> dict:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "VGG_ILSVRC_19_layers.caffemodel"
        size = _synthetic_vgg19_caffemodel(path)
        out = subprocess.run([sys.executable, "-c", _LOAD, str(path)], check=True,
                             capture_output=True, text=True).stdout.split()  # fmt: skip
    dt, rss, peak, n = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    return {"what": "caffemodel conv load (synthetic VGG19 file)", "file_mb": round(size / 2**20),
            "seconds": round(dt, 3), "extra_rss_mb_after": round(rss / 2**20),
            "extra_peak_rss_mb": round(peak / 2**20), "tensors": n}  # fmt: skip


def _idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_lmdb(out: Path, split: str, source: Path = FMNIST) -> Path:
    """Fashion-MNIST (Debian package) -> an LMDB of PNGs (grey, so 3 equal channels on decode)."""
    from PIL import Image

    from impasto.train.pack import write_lmdb

    prefix = "train" if split == "train" else "t10k"
    images = _idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = _idx(source / f"{prefix}-labels-idx1-ubyte.gz")
    classes = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
               "bag", "boot"]  # fmt: skip

    def items():
        for i, (img, lab) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            yield int(lab), f"{split}/{i}", buf.getvalue()

    write_lmdb(out, classes, items(), map_size=1 << 30)
    return out


def check_fashion_mnist(source: Path) -> None:
    """Refuse, in one line, a folder without Fashion-MNIST's four files."""
    missing = [f for f in FMNIST_FILES if not (source / f).is_file()]
    if not missing:
        return
    if source == FMNIST:
        raise report.BenchError(
            f"Fashion-MNIST not found ({source} has no {', '.join(missing)}): install Debian's "
            "dataset-fashion-mnist package (apt install dataset-fashion-mnist), or give --fm-dir "
            "a folder with its four .gz files"
        )
    raise report.BenchError(
        f"Fashion-MNIST not found: --fm-dir {source} has no {', '.join(missing)} (the four .gz "
        "files of Debian's dataset-fashion-mnist package)"
    )


def progress_line(p) -> str | None:
    """The line printed for a training progress event, or None: every 100th step's running loss,
    and each finished epoch's row (the event comes after the epoch's running sums are reset, so
    its ``loss`` is NaN: the row has the epoch's numbers)."""
    if p.phase == "epoch" and p.metrics:
        m = p.metrics
        val = m.get("val_accuracy")
        return (
            f"epoch {m['epoch']}/{p.epochs}: train loss {_num(m.get('train_loss'))}, "
            f"accuracy {_num(m.get('train_accuracy'))}, val accuracy {_num(val)}"
        )
    if p.phase == "step" and p.step % 100 == 0:
        return f"epoch {p.epoch + 1}/{p.epochs} step {p.step}/{p.steps}: loss {_num(p.loss)}"
    return None


def _num(v) -> str:
    return "-" if v is None or v != v else f"{v:.3f}"


def fashion_mnist(
    epochs: int, width: float, size: int, workdir: Path, source: Path = FMNIST, workers: int = 1
) -> dict:
    from impasto.train import TrainConfig, train

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tr, te = workdir / "fmnist_train.lmdb", workdir / "fmnist_test.lmdb"
    if not (tr / "data.mdb").exists():
        check_fashion_mnist(source)
        fashion_mnist_lmdb(tr, "train", source)
        fashion_mnist_lmdb(te, "test", source)
    pack_s = time.perf_counter() - t0
    cfg = TrainConfig(
        data=str(tr), val_data=str(te), out_dir=str(workdir / "run"), arch="vgg11", width=width,
        size=size, epochs=epochs, batch_size=64, schedule="cosine", flip=True, workers=workers,
        resume=(workdir / "run" / "checkpoint.pt").exists(),
    )  # fmt: skip
    t1 = time.perf_counter()

    def show(p) -> None:
        line = progress_line(p)
        if line:
            print(line, flush=True)

    res = train(cfg, show)
    return {
        "what": f"Fashion-MNIST VGG11 width {width} {size}px {epochs} epochs",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name(),
        "test_accuracy": res.metrics[-1]["val_accuracy"],
        "epochs": res.metrics,
        "train_seconds": round(time.perf_counter() - t1),
        "pack_seconds": round(pack_s),
    }


def fashion_mnist_figure(run_dir: Path, out: Path, size: int = 160, iterations: int = 120) -> None:
    """The README's figure: chelsea x The Starry Night with the ImageNet VGG19 and with the
    network trained in ``run_dir`` (exported to .pth), same settings and seed, side by side."""
    from PIL import Image

    from impasto import Settings, Stylizer
    from impasto.examples import path
    from impasto.sheet import contact_sheet
    from impasto.train import export

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "fm.pth"
        export(run_dir, weights)
        base = Settings(size=size, iterations=iterations, pyramid_start=0, seed=1, device="cpu")
        photo, painting = path("chelsea"), path("starry_night")
        results = [
            Stylizer(s).run(photo, painting).to_pil()
            for s in (base, base.replace(weights=str(weights)))
        ]
    w, h = results[0].size
    photo_im = Image.open(photo).convert("RGB").resize((w, h), Image.LANCZOS)
    sheet = contact_sheet(
        [(photo_im, "photo"), (results[0], "ImageNet VGG19"), (results[1], "Fashion-MNIST VGG11")]
    )
    tmp_out = out.with_name(f".{out.name}.tmp.jpg")
    sheet.save(tmp_out, quality=90)
    os.replace(tmp_out, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", default=str(ROOT / "results" / "train.json"))
    ap.add_argument(
        "--fashion-mnist",
        type=report.at_least(1),
        metavar="EPOCHS",
        help="train a VGG11 on Fashion-MNIST for EPOCHS epochs instead of the throughput table",
    )
    ap.add_argument("--fm-width", type=float, default=0.5, help="the VGG11's width (0 to 1]")
    ap.add_argument("--fm-size", type=report.size_type, default=32, help="training size (px)")
    ap.add_argument("--workdir", default="/tmp/impasto_fmnist")
    ap.add_argument(
        "--fm-dir",
        default=str(FMNIST),
        help="the Fashion-MNIST .gz files (default: where Debian's dataset-fashion-mnist "
        "package puts them)",
    )
    ap.add_argument(
        "--fm-workers", type=report.at_least(0), default=1, help="data loader processes"
    )
    ap.add_argument(
        "--fm-figure",
        metavar="OUT.jpg",
        help="the style-transfer figure from the network in --workdir/run (after training, "
        "when --fashion-mnist is given too)",
    )
    ap.add_argument(
        "--allocators",
        type=report.comma_list(("keep", "system")),
        default="keep",
        help="images/s rows with freed memory kept in the process (keep, as impasto train does) "
        "and/or the C library's own behaviour (system), e.g. system,keep (default: keep)",
    )
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    for a in ("--data", "--run-dir"):
        ap.add_argument(a, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        return print(images_per_s(*json.loads(args.one)))
    if args.ddp_worker:
        return ddp_worker(args)
    if not 0 < args.fm_width <= 1:
        ap.error(f"argument --fm-width: must be in (0, 1] (got {args.fm_width})")
    if args.device == "cuda" and not torch.cuda.is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
        raise report.BenchError(f"--device cuda: no CUDA device here ({why})")
    workdir = Path(args.workdir)
    if args.fashion_mnist and not (workdir / "fmnist_train.lmdb" / "data.mdb").exists():
        check_fashion_mnist(Path(args.fm_dir))  # before anything runs
    if args.fm_figure and not args.fashion_mnist and not (workdir / "run").is_dir():
        ap.error(
            f"--fm-figure: no trained network in {workdir / 'run'} (train with --fashion-mnist)"
        )
    machine = cpu_name() if args.device == "cpu" else torch.cuda.get_device_name()
    result = {"machine": machine, "cpus": os.cpu_count(), "torch": torch.__version__, "rows": []}
    if args.fashion_mnist:
        row = fashion_mnist(
            args.fashion_mnist,
            args.fm_width,
            args.fm_size,
            Path(args.workdir),
            Path(args.fm_dir),
            args.fm_workers,
        )
        result["rows"].append(row)
    if args.fm_figure:
        fashion_mnist_figure(Path(args.workdir) / "run", Path(args.fm_figure))
        if not args.fashion_mnist:
            return None
    if not args.fashion_mnist:
        result["rows"] += throughput_rows(args.device, args.allocators)
        result["allocator_ratios"] = allocator_ratios(result["rows"])
        if args.device == "cpu":
            result["rows"] += ddp_rows()
            result["rows"].append(caffemodel_row())
    for row in result["rows"] + result.get("allocator_ratios", []):
        print(" | ".join(f"{k}: {v}" for k, v in row.items() if k != "epochs"))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"({machine}; {os.cpu_count()} CPUs) -> {args.out}")


def throughput_rows(device: str, allocators: list[str]) -> list[dict]:
    rows = []
    modes = [False] if device == "cpu" else [False, True]
    for arch in ("vgg11", "vgg19"):
        for size, batch, steps in ((32, 16, 10), (224, 2, 4), (224, 8, 3)) if device == "cpu" else (
            (32, 256, 10), (224, 64, 10)
        ):  # fmt: skip
            for bf16, allocator in ((b, a) for b in modes for a in allocators):
                spec = [arch, size, batch, steps, device, bf16, allocator]
                ips = isolated(spec) if device == "cpu" else images_per_s(*spec)
                what = f"{arch} {size}px batch {batch} {'bf16' if bf16 else 'fp32'} {device}"
                row = {"what": what, "images_per_s": round(ips, 2)}
                rows.append(row if allocators == ["keep"] else {**row, "allocator": allocator})
    return rows


def isolated(spec: list) -> float:
    """images_per_s(*spec) in a fresh process: on the CPU the heap an earlier row left behind
    slowed the next one (VGG19 224 px batch 2 without kept memory: 2.9 images/s after other
    rows, 3.4 alone)."""
    cmd = [sys.executable, __file__, "--one", json.dumps(spec)]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def allocator_ratios(rows: list[dict]) -> list[dict]:
    """Time per image keeping freed memory (what ``impasto train`` does) over the C library's
    own behaviour, per configuration that ran both."""
    ips = {(r["what"], r.get("allocator")): r["images_per_s"] for r in rows}
    return [
        {"what": what, "time_keep_over_system": round(ips[what, "system"] / ips[what, "keep"], 3)}
        for what, allocator in ips
        if allocator == "keep" and (what, "system") in ips
    ]


if __name__ == "__main__":
    report.main_guard(main)
