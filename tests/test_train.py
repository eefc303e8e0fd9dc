"""impasto train end to end on a tiny synthetic image set: pack -> run -> resume -> export ->
the exported weights drive a stylisation."""

import argparse
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.cli import main
from impasto.errors import ImpastoError, SettingsError
from impasto.train import TrainConfig, lr_at, train
from impasto.train.data import DataError, open_source
from impasto.train.store import read_checkpoint

TINY = ["--arch", "vgg11", "--width", "0.0625", "--size", "16", "--batch-size", "4", "-q"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """2 classes x 8 images of 20 px (dark and light noise) + one broken file."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir()
        for i in range(8):
            a = (rng.random((20, 20, 3)) * 120 + c * 120).astype(np.uint8)
            Image.fromarray(a).save(root / f"class{c}" / f"{i}.png")
    (root / "class0" / "broken.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def packed(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmdb") / "data.lmdb"
    assert main(["train", "pack", str(folder), str(out)]) == 0
    return out


def _weights_equal(a, b):
    sa, sb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pack_skips_unreadable_images(packed, capsys):
    src = open_source(packed)
    assert len(src) == 16 and src.classes == ["class0", "class1"]
    assert src.labels.count(0) == 8


def test_pack_reports_skipped(folder, tmp_path, capsys):
    assert main(["train", "pack", str(folder), str(tmp_path / "x.lmdb")]) == 0
    out = capsys.readouterr()
    assert "skipped 1 unreadable (class0/broken.png" in out.out
    assert "pack: 100%" in out.err  # the progress bar, fed by pack_folder's progress
    assert main(["train", "pack", str(folder), str(tmp_path / "y.lmdb"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_pack_folder_reports_progress_over_every_image(folder, tmp_path):
    from impasto.train import pack_folder

    seen = []
    res = pack_folder(folder, tmp_path / "p.lmdb", progress=lambda done, total: seen.append(done))
    total = res.count + res.skipped
    assert res.skipped == 1 and seen == list(range(1, total + 1))  # skipped ones counted too


def test_run_resume_export_and_stylise(packed, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "run", str(packed), "-o", str(a), "--epochs", "2", *TINY]) == 0
    rows = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["val_accuracy"] <= 1 for r in rows)
    assert (a / "metrics.csv").read_text().startswith("epoch,train_loss")
    # Interrupted mid-epoch 2 (4 steps per epoch), then resumed: the same weights and metrics.
    run_b = ["train", "run", str(packed), "-o", str(b), "--epochs", "2", *TINY]
    assert main([*run_b, "--max-steps", "5"]) == 0
    assert read_checkpoint(b)["step_in_epoch"] == 1
    assert main([*run_b, "--resume"]) == 0
    assert _weights_equal(a / "checkpoint.pt", b / "checkpoint.pt")
    rows_b = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(rows, rows_b, strict=True):
        assert ra["train_loss"] == rb["train_loss"] and ra["val_accuracy"] == rb["val_accuracy"]
    _export_and_stylise(a, tmp_path)


def _export_and_stylise(run_dir, tmp_path):
    from impasto import Settings, Stylizer
    from impasto.encoder import load_encoder
    from impasto.examples import path

    pth, caffe = tmp_path / "mine.pth", tmp_path / "mine.caffemodel"
    assert main(["train", "export", str(run_dir), str(pth)]) == 0
    assert main(["train", "export", str(run_dir / "checkpoint.pt"), str(caffe)]) == 0
    x = torch.rand(1, 3, 32, 32)
    layers = ["relu1_1", "relu3_2", "relu5_1"]
    e1, e2 = load_encoder("max", weights=pth), load_encoder("max", weights=caffe)
    assert e1.arch.label == e2.arch.label == "VGG11"
    assert not e1.spec.bgr and e2.spec.bgr  # the training normalisation travelled with each
    f1, f2 = e1(x, layers), e2(x, layers)
    for k in layers:
        torch.testing.assert_close(f1[k], f2[k], rtol=1e-4, atol=1e-5)
    for weights in (pth, caffe):
        s = Settings(
            weights=str(weights), size=32, iterations=2, pyramid_start=0, seed=1,
            device="cpu", precision="fp32",
        )  # fmt: skip
        out = Stylizer(s).run(str(path("chelsea")), [str(path("starry_night"))]).image
        assert out.shape[1] == 3 and max(out.shape[-2:]) == 32 and torch.isfinite(out).all()


def test_folder_training_skips_broken_images_and_reports(folder, tmp_path):
    cfg = TrainConfig(
        data=str(folder), out_dir=str(tmp_path), arch="vgg11", width=1 / 16, size=16,
        epochs=1, batch_size=8, val_fraction=0.2,
    )  # fmt: skip
    seen = []
    res = train(cfg, seen.append)
    assert res.finished and res.metrics[0]["skipped"] == 1
    assert res.metrics[0]["skipped_names"] == ["class0/broken.png"]
    assert seen[-1].phase == "epoch" and seen[0].images_per_s > 0
    # the epoch event carries the epoch's loss and accuracy (it carried NaN: sums already reset)
    row = res.metrics[0]
    assert (seen[-1].loss, seen[-1].accuracy) == (row["train_loss"], row["train_accuracy"])
    assert all(math.isfinite(p.loss) for p in seen)


def test_training_keeps_freed_memory_while_it_runs_only(folder, tmp_path):
    """As a style run does (impasto.allocator), on the CPU with glibc; given back at the end."""
    from impasto import allocator

    if not allocator.keeps_freed_memory("cpu"):
        pytest.skip("glibc only")
    cfg = TrainConfig(
        data=str(folder), out_dir=str(tmp_path), arch="vgg11", width=1 / 16, size=16,
        epochs=1, batch_size=8, val_fraction=0.2, device="cpu",
    )  # fmt: skip
    runs = []
    train(cfg, lambda progress: runs.append(allocator._runs))
    assert runs and set(runs) == {1} and allocator._runs == 0


def test_resume_with_other_settings_is_refused(packed, tmp_path):
    base = ["train", "run", str(packed), "-o", str(tmp_path), "--epochs", "1", *TINY]
    assert main([*base, "--max-steps", "1"]) == 0
    with pytest.raises(SettingsError, match="--resume with other size"):
        train(
            TrainConfig(
                data=str(packed),
                out_dir=str(tmp_path),
                arch="vgg11",
                width=0.0625,
                size=32,
                batch_size=4,
                resume=True,
            )  # fmt: skip
        )
    assert main([*base, "--size", "32", "--resume"]) == 2  # the CLI: one line, exit 2


def test_a_run_is_not_overwritten_nor_written_where_it_cannot_be(packed, tmp_path, capsys):
    """A second run into a run folder replaced it without a word; -o naming a file, and an
    export into a missing folder, were internal errors."""
    base = ["train", "run", str(packed), "--epochs", "1", *TINY, "--max-steps", "1"]
    assert main([*base, "-o", str(tmp_path / "run")]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "run")]) == 2
    assert "already holds a run; --resume continues it" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    (tmp_path / "x.png").write_bytes(b"")
    assert main([*base, "-o", str(tmp_path / "x.png")]) == 2
    assert "is a file" in capsys.readouterr().err
    gone = tmp_path / "gone" / "w.pth"
    assert main(["train", "export", str(tmp_path / "run"), str(gone)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "internal error" not in err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--lr", "-1"], "lr must be > 0"),  # was torch's ValueError, an internal error
        (["--lr", "nan"], "lr must be > 0"),  # trained to NaN without a word
        (["--momentum", "2"], "momentum must be in [0, 1)"),
        (["--weight-decay", "-1"], "weight_decay must be >= 0"),
        (["--init", "gaussian", "--init-std", "0"], "init_std must be > 0"),
        (["--workers", "-1"], "workers must be >= 0"),
        (["--step-epochs", "-2"], "step_epochs must be >= 0"),
        (["--checkpoint-every", "-1"], "checkpoint_every must be >= 0"),
        (["--max-steps", "0"], "max_steps must be >= 1"),
        (["--size", "1"], "size must be >= 16"),
        (["--val-fraction", "1"], "val_fraction must be in [0, 1)"),
    ],
)
def test_numbers_it_cannot_train_with_are_one_line_before_any_work(
    packed, tmp_path, capsys, flags, words
):
    out = tmp_path / "run"
    argv = ["train", "run", str(packed), "-o", str(out), "--epochs", "1", *TINY, *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("impasto: error: ") and words in err and "\n" not in err, err
    assert not out.exists()


def test_lr_schedules():
    cfg = TrainConfig(data="", out_dir="", epochs=6, lr=0.01)
    assert lr_at(cfg, 0, 0, 10) == 0.01 and lr_at(cfg, 2, 5, 10) == pytest.approx(1e-3)
    assert lr_at(cfg, 5, 0, 10) == pytest.approx(1e-4)
    cos = TrainConfig(data="", out_dir="", epochs=2, lr=0.01, schedule="cosine")
    assert lr_at(cos, 0, 0, 10) == 0.01 and lr_at(cos, 1, 0, 10) == pytest.approx(0.005)


def test_bad_data_and_export_errors(tmp_path, folder):
    (tmp_path / "one" / "only").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "only" / "a.png")
    with pytest.raises(DataError, match="need 2"):
        open_source(tmp_path / "one")
    with pytest.raises(DataError, match="no such data"):
        open_source(tmp_path / "missing")
    assert main(["train", "export", str(tmp_path), str(tmp_path / "w.pth")]) == 2
    with pytest.raises(ImpastoError, match="no such checkpoint"):
        from impasto.train import export

        export(tmp_path, tmp_path / "w.pth")


def test_module_protocol_with_own_subparsers(packed, tmp_path):
    from impasto.cli import train as train_cli

    sub = argparse.ArgumentParser().add_subparsers()
    train_cli.add_parser(sub)
    parser = sub.choices["train"]
    args = parser.parse_args(["export", str(tmp_path / "none"), str(tmp_path / "w.onnx")])
    with pytest.raises(SettingsError, match="format by extension"):
        args.run(args)


def test_lmdb_training_with_loader_processes(packed, tmp_path):
    """Data loader processes read the LMDB the main process has open (regression: a forked
    worker inherited the open environment and LMDB refused to open it again)."""
    cfg = TrainConfig(
        data=str(packed), out_dir=str(tmp_path), arch="vgg11", width=1 / 16, size=16,
        epochs=1, batch_size=8, val_fraction=0.2, workers=1,
    )  # fmt: skip
    res = train(cfg, None)
    assert res.finished and 0.0 <= res.metrics[-1]["val_accuracy"] <= 1.0


def test_what_a_user_found_in_pack_and_run(folder, packed, tmp_path, capsys, monkeypatch):
    """Non-UTF-8 file names and a missing output folder were internal errors in pack, and an
    empty pack 'succeeded'; --val-fraction 0 crashed on the epoch line; --max-steps told the
    user to resume, which stopped at once again; a resume with the data spelled ./data.lmdb
    was refused as other data."""
    odd = tmp_path / "odd"
    for c in ("a", "b\udce9"):  # a folder name that is not UTF-8 (surrogate-escaped bytes)
        (odd / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (200 * (c == "a"), 0, 99)).save(odd / c / f"{i}.png")
    Image.new("RGB", (20, 20)).save(odd / "a" / "x\udcff.png")
    assert main(["train", "pack", str(odd), str(tmp_path / "odd.lmdb")]) == 0
    assert open_source(tmp_path / "odd.lmdb").classes == ["a", "b\udce9"]
    assert main(["train", "pack", str(odd), str(tmp_path / "no" / "x.lmdb")]) == 2
    (tmp_path / "junk" / "a").mkdir(parents=True)
    (tmp_path / "junk" / "b").mkdir()
    (tmp_path / "junk" / "a" / "x.png").write_bytes(b"no")
    (tmp_path / "junk" / "b" / "y.png").write_bytes(b"no")
    assert main(["train", "pack", str(tmp_path / "junk"), str(tmp_path / "j.lmdb")]) == 2
    err = capsys.readouterr().err
    assert "folder " in err and "does not exist" in err and "no readable image to pack" in err
    base = ["train", "run", str(packed), *TINY[:-1], "--epochs", "2"]
    assert main([*base, "-o", str(tmp_path / "v0"), "--val-fraction", "0"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: train loss" in out and "no validation set" in out
    assert main([*base, "-o", str(tmp_path / "ms"), "--max-steps", "1"]) == 0
    assert "stopped at --max-steps 1 (continue with --resume and a larger --max-steps" in (
        capsys.readouterr().out
    )
    monkeypatch.chdir(packed.parent)
    again = ["train", "run", f"./{packed.name}", *TINY, "--epochs", "2", "--resume"]
    assert main([*again, "-o", str(tmp_path / "ms"), "--max-steps", "2"]) == 0


def test_run_options_take_train_config_defaults_and_choices():
    """`impasto train run` repeats no default or choice: they are TrainConfig's and the
    constants', and the CLI's docstring names every architecture."""
    import dataclasses

    from impasto.choices import DEVICES
    from impasto.cli import train as train_cli
    from impasto.encoder.arch import VGG_BLOCKS
    from impasto.train import config

    sub = argparse.ArgumentParser().add_subparsers()
    train_cli.add_parser(sub)
    inner = sub.choices["train"]._actions
    run = next(a for a in inner if isinstance(a, argparse._SubParsersAction)).choices["run"]
    actions = {a.dest: a for a in run._actions}
    for f in dataclasses.fields(TrainConfig):
        if f.name in actions and f.name != "data":
            assert actions[f.name].default == f.default, f.name
    choices = {"arch": config.ARCHS, "init": config.INITS, "schedule": config.SCHEDULES}
    choices |= {"device": DEVICES, "precision": config.PRECISIONS}
    assert {k: tuple(actions[k].choices) for k in choices} == choices
    assert config.ARCHS == tuple(VGG_BLOCKS)
    assert f"--arch {'|'.join(config.ARCHS)}" in train_cli.__doc__
    assert f">= {config.MIN_SIZE})" in actions["size"].help


def test_config_loads_no_torch_and_export_stays_the_function():
    """impasto.train imports its heavy modules on first use (the CLI builds its parser from
    impasto.train.config without torch); the export function's module has another name
    (export_weights), so loading it first cannot leave impasto.train.export a module."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from impasto.train.config import TrainConfig\n"
        "print('torch' in sys.modules)\n"
        "import impasto.train.export_weights\n"
        "from impasto.train import export, train\n"
        "print(callable(export) and export.__module__.endswith('export_weights'), train.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "train"]


def test_the_packages_list_their_lazy_exports():
    """dir() and tab completion showed impasto.train's imports, not what it exports."""
    import impasto
    import impasto.train

    assert {"export", "train", "pack_folder", "TrainConfig"} <= set(dir(impasto.train))
    assert {"Note", "TileTick", "Iterate", "stylize"} <= set(dir(impasto))
    assert impasto.Note.__module__ == "impasto.progress"
