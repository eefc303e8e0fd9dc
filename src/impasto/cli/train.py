"""``impasto train``: train a VGG network on your own labelled images, then use it for style
transfer.

    impasto train pack FOLDER OUT.lmdb
    impasto train run DATA -o RUN_DIR [--arch vgg11|vgg13|vgg16|vgg19] [--width F] [--size PX] ...
    impasto train export RUN_DIR_OR_CHECKPOINT OUT.pth|OUT.caffemodel

``torchrun --nproc-per-node N -m impasto train run ...`` trains data-parallel (only rank 0
writes and draws the progress bar). Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

__all__ = ["add_parser", "run"]

NAME = "train"


def _add_run(sub) -> None:
    from ..train.config import ARCHS, MIN_SIZE, SCHEDULES, TrainConfig

    d = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # the defaults' one home
    p = sub.add_parser(
        "run",
        help="train a VGG classifier on an image folder or LMDB",
        description=f"Train a VGG classifier (SGD, momentum {d['momentum']:g}, weight decay "
        f"{d['weight_decay']:g}) on DATA (an image folder with one sub-folder per class, or an "
        ".lmdb from `impasto train pack`). RUN_DIR receives checkpoint.pt (latest, atomic) and "
        "metrics.jsonl/.csv (one row per epoch). --batch-size is per process under torchrun.",
    )
    p.add_argument("data", metavar="DATA")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--arch", default=d["arch"], choices=ARCHS)
    p.add_argument(
        "--width", type=float, default=d["width"], help="channel multiplier (default %(default)s)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=d["size"],
        help=f"training size in px (default %(default)s, >= {MIN_SIZE})",
    )
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument(
        "--batch-size", type=int, default=d["batch_size"], help="per process (default %(default)s)"
    )
    p.add_argument("--lr", type=float, default=d["lr"], help="learning rate (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d["momentum"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"])
    p.add_argument(
        "--step-epochs",
        type=int,
        default=d["step_epochs"],
        help=f"step schedule: lr x{d['gamma']:g} every N epochs (default epochs/3)",
    )
    _add_run_rest(p, d)
    p.set_defaults(train_command=_run_train)


def _add_run_rest(p: argparse.ArgumentParser, d: dict) -> None:
    """``impasto train run``'s options from ``--init`` on; ``d``: TrainConfig's defaults."""
    from ..choices import DEVICES
    from ..train.config import INITS, PRECISIONS

    p.add_argument("--init", choices=INITS, default=d["init"])
    p.add_argument("--init-std", type=float, default=d["init_std"], help="std of --init gaussian")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument(
        "--val-fraction", type=float, default=d["val_fraction"], help="held-out share (%(default)s)"
    )
    p.add_argument(
        "--val-data",
        default=d["val_data"],
        metavar="DATA",
        help="a separate validation set instead",
    )
    p.add_argument("--crop", action="store_true", help="random crops (resize to 8/7, crop)")
    p.add_argument("--flip", action="store_true", help="random horizontal flips")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=d["checkpoint_every"],
        metavar="N",
        help="also checkpoint every N steps (default: each epoch only)",
    )
    p.add_argument("--workers", type=int, default=d["workers"], help="data loading processes")
    p.add_argument("--device", default=d["device"], choices=DEVICES)
    p.add_argument(
        "--precision",
        default=d["precision"],
        choices=PRECISIONS,
        help="auto: bf16 autocast only where it is fast",
    )
    p.add_argument(
        "--max-steps", type=int, default=d["max_steps"], help="stop (and checkpoint) after N steps"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR's checkpoint (exactly with the same flags; data, arch, width, size, "
        "batch, seed and validation split must be the checkpoint's; --epochs, --lr and the rest "
        "take the values given)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``impasto train`` and its ``pack``, ``run`` and ``export`` sub-commands."""
    p = sub.add_parser(
        NAME,
        help="train a VGG network on your own images (pack, run, export)",
        description="Train a VGG network as a classifier on labelled images, then use its "
        "convolutions for style transfer with --weights.",
    )
    inner = p.add_subparsers(dest="train_cmd", metavar="{pack,run,export}", required=True)
    pk = inner.add_parser(
        "pack",
        help="image folder -> LMDB",
        description="Pack FOLDER (one "
        "sub-folder per class) into an LMDB of encoded images and labels.",
    )
    pk.add_argument("folder", metavar="FOLDER")
    pk.add_argument("out", metavar="OUT.lmdb")
    pk.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pk.set_defaults(train_command=_run_pack)
    _add_run(inner)
    ex = inner.add_parser(
        "export",
        help="conv weights for --weights",
        description="Write the trained convolutions to OUT (.pth or .caffemodel, by extension).",
    )
    ex.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    ex.add_argument("out", metavar="OUT")
    ex.set_defaults(train_command=_run_export)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    return args.train_command(args)


def _run_pack(args: argparse.Namespace) -> int:
    from ..train import pack_folder

    bar = None  # made at the first image: made before, an empty bar was printed even on errors

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="pack", unit="image", file=sys.stderr, disable=args.quiet)
        bar.update(done - bar.n)

    try:
        res = pack_folder(args.folder, args.out, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    msg = f"packed {res.count} images in {len(res.classes)} classes into {args.out}"
    if res.skipped:
        msg += f"; skipped {res.skipped} unreadable ({', '.join(res.skipped_names)} ...)"
    print(msg)
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from ..train import export

    res = export(args.source, args.out)
    print(f"wrote {res.arch.label} convolutions to {res.path} (use --weights {res.path})")
    return 0


class _Bar:
    """A tqdm bar: loss, accuracy, images/s; ETA from the loop's own estimate."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None or p.phase == "epoch" or self.bar.total != p.steps:
            if self.bar is not None:
                self.bar.close()
            if p.phase == "epoch":
                m = p.metrics
                tqdm.write(
                    f"epoch {m['epoch']}: train loss {m['train_loss']:.4f}, {_accuracy(m)}, "
                    f"{m['images_per_s']:.1f} images/s"
                )
                self.bar = None
                return
            self.bar = tqdm(total=p.steps, desc=f"epoch {p.epoch + 1}/{p.epochs}", file=sys.stderr)
            self.bar.n = p.step - 1
        self.bar.update(p.step - self.bar.n)
        eta = f"{int(p.eta_s // 60)}:{int(p.eta_s % 60):02d}"
        self.bar.set_postfix_str(
            f"loss {p.loss:.3f} acc {p.accuracy:.3f} {p.images_per_s:.1f} img/s ETA {eta}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_train(args: argparse.Namespace) -> int:
    import os

    from ..train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data,
        out_dir=args.output,
        arch=args.arch,
        width=args.width,
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        step_epochs=args.step_epochs,
        init=args.init,
        init_std=args.init_std,
        seed=args.seed,
        val_fraction=args.val_fraction,
        val_data=args.val_data,
        crop=args.crop,
        flip=args.flip,
        checkpoint_every=args.checkpoint_every,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        max_steps=args.max_steps,
        resume=args.resume,
    )
    main = os.environ.get("RANK", "0") == "0"
    bar = _Bar(args.quiet or not main)
    try:
        res = train(cfg, bar)
    finally:
        bar.close()
    if main and not args.quiet:
        last = res.metrics[-1] if res.metrics else {}
        # --max-steps counts from the run's start: a resume with the same value stops at once
        state = "done" if res.finished else (
            f"stopped at --max-steps {args.max_steps} (continue with --resume and a larger "
            "--max-steps, or without it)"
        )  # fmt: skip
        print(f"{state}: {len(res.metrics)} epochs, {_accuracy(last)}; {res.checkpoint}")
    return 0


def _accuracy(metrics: dict) -> str:
    """``val accuracy 0.9123``; with no validation set (``--val-fraction 0``) its value is None
    and formatting it was an internal error."""
    value = metrics.get("val_accuracy")
    return "no validation set" if value is None else f"val accuracy {value:.4f}"
