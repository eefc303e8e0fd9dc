"""``impasto sweep``: cells, shared work, the sheet, and the dial's effect in numbers."""

import json

import pytest
import torch
from PIL import Image

from impasto import examples
from impasto.cli import main
from impasto.errors import SettingsError
from impasto.image import fit_long_side, load_image, read_metadata, resize
from impasto.settings import Settings
from impasto.sweep import describe_settings, run_sweep, sweep_cells

BASE = Settings(size=40, iterations=8, seed=3, precision="fp32", init="content")


def _small(name: str, long_side: int) -> Image.Image:
    im = Image.open(examples.path(name)).convert("RGB")
    return im.resize(fit_long_side(im.size, long_side), Image.BICUBIC)


@pytest.fixture(scope="module")
def photo():
    return _small("chelsea", 60)


@pytest.fixture(scope="module")
def starry():
    return _small("starry_night", 60)


def test_ratio_cells():
    cells = sweep_cells(BASE.replace(content_weight=2.0), "ratio", [1e-4, 1e-2])
    assert [c for c, _ in cells] == ["alpha/beta 1e-04", "alpha/beta 0.01"]
    assert [s.style_weight for _, s in cells] == pytest.approx([2e4, 2e2])
    assert {s.seed for _, s in cells} == {3}
    for scale, want in (("paper", [1e-4, 1e-3, 1e-2, 1e-1]), ("normalized", [1, 0.3, 0.1, 0.03])):
        default = sweep_cells(BASE.replace(loss_scale=scale), "ratio")
        assert [s.content_weight / s.style_weight for _, s in default] == pytest.approx(want)
    assert [c for c, _ in sweep_cells(BASE, "ratio", [0.3])] == ["alpha/beta 0.3"]
    assert sweep_cells(BASE, "ratio", "1e-3,1e-1")[1][1].style_weight == pytest.approx(10.0)
    with pytest.raises(SettingsError, match="content weight"):
        sweep_cells(BASE.replace(content_weight=0.0), "ratio")


def test_layer_and_option_cells():
    cells = sweep_cells(BASE.replace(style_layer_weights=(1, 1, 1, 1, 1)), "style-layers")
    assert [s.style_layers for _, s in cells] == [
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")[: k + 1] for k in range(5)
    ]
    assert all(s.style_layer_weights is None for _, s in cells)
    assert cells[0][0] == "relu1_1" and cells[-1][0] == "relu1_1..relu5_1"
    custom = sweep_cells(BASE, "style-layers", "relu2_1;relu3_1,relu5_1")
    assert [s.style_layers for _, s in custom] == [("relu2_1",), ("relu3_1", "relu5_1")]
    modes = sweep_cells(BASE, "preserve-colors", "none,luminance,swap")
    assert [s.preserve_colors for _, s in modes] == ["none", "luminance", "swap"]
    assert modes[1][0] == "preserve-colors luminance"
    scales = sweep_cells(BASE, "style_scale", "0.5,2")
    assert [s.style_scale for _, s in scales] == [0.5, 2.0]
    assert sweep_cells(BASE, "learning-rate", "none,0.5")[0][1].learning_rate is None
    assert sweep_cells(Settings(), "ratio")[0][1].seed is not None  # one seed drawn for all
    with pytest.raises(SettingsError, match="cannot sweep over"):
        sweep_cells(BASE, "colour", "1,2")
    with pytest.raises(SettingsError, match="^values: a sweep over pooling needs them"):
        sweep_cells(BASE, "pooling")
    with pytest.raises(SettingsError, match="bad value"):
        sweep_cells(BASE, "style-scale", "big")
    with pytest.raises(SettingsError):  # invalid setting values are refused by Settings
        sweep_cells(BASE, "pooling", "max,median")
    # found by a user: values read as the flag reads them (--max-memory 2G), an empty ratio
    # list is not the default one, and a set that is not a run of the defaults is no range
    budgets = sweep_cells(BASE, "max-memory", "2G,1500M")
    assert [s.max_memory for _, s in budgets] == [2 * 10**9, 15 * 10**8]
    assert [c for c, _ in budgets] == ["max-memory 2.0 GB", "max-memory 1.5 GB"]
    with pytest.raises(SettingsError, match="^values: none given"):
        sweep_cells(BASE, "ratio", ",,,")
    with pytest.raises(SettingsError, match="^values: for a ratio sweep, expected comma-separated"):
        sweep_cells(BASE, "ratio", "abc")  # was an internal error (argparse's own type)
    assert [c for c, _ in sweep_cells(BASE, "tile", "none,64")] == ["tile none", "tile 64"]
    odd = sweep_cells(BASE, "style-layers", "relu3_1,relu1_1;relu1_1,relu3_1")
    assert [c for c, _ in odd] == ["relu3_1,relu1_1", "relu1_1,relu3_1"]


def test_title_states_the_fixed_settings():
    s = BASE.replace(preserve_colors="luminance", style_weight=1e4)
    title = describe_settings(s, "ratio")
    assert "40 px" in title and "8 it lbfgs" in title and "seed 3" in title
    assert "preserve-colors luminance" in title and "alpha/beta" not in title
    title = describe_settings(s, "style-layers")
    assert "alpha/beta 1e-04" in title and "relu" not in title
    assert "preserve-colors" not in describe_settings(s, "preserve-colors")
    # the swept value is each cell's, never the title's (size and iterations were shown)
    assert describe_settings(s, "size").startswith("8 it lbfgs, init")
    assert "it lbfgs" not in describe_settings(s, "iterations")
    assert "lbfgs" not in describe_settings(s, "optimizer")
    assert "seed" not in describe_settings(s, "seed") and "init" not in describe_settings(s, "init")


def test_ratio_sweep_shares_targets_and_trades_content_for_style(photo, starry):
    # TV off: a third term (on by default) that pulls the content-heavy cell off the photo too
    out = run_sweep(photo, starry, BASE.replace(tv_weight=0), "ratio", [1e-2, 1.0, 10.0])
    # content features and style Grams: each computed once, reused by the two other cells
    assert out.stats["targets_computed"] == 2 and out.stats["targets_reused"] == 4
    assert out.stats["encoders_built"] == 1 and out.stats["images_loaded"] == 2
    content = None
    dist = []
    for _, r in out.cells:
        if content is None:
            content = resize(load_image(photo).rgb, (r.image.shape[-1], r.image.shape[-2]))
        dist.append(float((r.image - content).abs().mean()))
        assert r.seed == 3
    # lower alpha/beta = more style = further from the photo (which is the start image here)
    assert dist[0] > dist[1] > dist[2]
    assert dist[0] > 4 * dist[2]
    cell_w = out.cells[0][1].image.shape[-1]
    assert out.sheet.width >= 3 * cell_w and out.sheet.height > out.cells[0][1].image.shape[-2]
    assert out.title.startswith("<image> + <image>: 40 px")


def test_style_layers_sweep_through_the_cli(tmp_path, photo, starry, capsys):
    photo.save(tmp_path / "p.png")
    starry.save(tmp_path / "s.png")
    out = tmp_path / "sheet.png"
    rc = main(
        [
            "sweep",
            str(tmp_path / "p.png"),
            str(tmp_path / "s.png"),
            "--over",
            "style-layers",
            "--values",
            "relu1_1;relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
            "--size",
            "40",
            "--iterations",
            "4",
            "--init",
            "content",
            "--seed",
            "5",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "targets computed 2x, reused 2x" in err  # content and style parts, once each
    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["sweep"] == {"over": "style-layers", "cells": ["relu1_1", "relu1_1..relu5_1"]}
    assert meta["settings"]["seed"] == 5
    sheet = load_image(out).rgb
    assert sheet.shape[-1] >= 2 * 40
    rc = main(
        ["sweep", str(tmp_path / "p.png"), str(tmp_path / "s.png"), "--over", "x", "-o", str(out)]
    )
    assert rc == 2 and "cannot sweep over" in capsys.readouterr().err


def test_cells_differ_and_reuse_changes_nothing(photo, starry):
    from impasto.api import Stylizer

    out = run_sweep(
        photo, starry, BASE.replace(iterations=4), "style-layers", [("relu1_1",), ("relu3_1",)]
    )
    a, b = (r.image for _, r in out.cells)
    assert not torch.allclose(a, b, atol=1e-3)
    alone = Stylizer(BASE.replace(iterations=4, style_layers=("relu3_1",))).run(photo, starry)
    assert torch.allclose(alone.image, b, atol=1e-5)


@pytest.mark.parametrize(
    ("over", "values", "words"),
    [
        ("size", [40, 48, 20], r"^size: 20 gives a 20x13 px image .* \(cell size 20\)$"),
        ("init", ["noise", "missing.png"], r"^init: 'missing.png' .* \(cell init missing.png\)"),
        ("weights", [None, "missing.pth"], r"\(cell weights missing.pth\)$"),
    ],
)
def test_every_cell_is_checked_before_the_first_one_runs(photo, starry, over, values, words):
    """A value only its own cell could refuse was found after the cells before it had run."""
    painted = []
    with pytest.raises(Exception, match=words) as info:
        run_sweep(photo, starry, BASE, over, values, progress=lambda i, c: painted.append(i))
    assert painted == [], "a cell ran before the sweep was refused"
    assert info.type.__module__ == "impasto.errors"


def test_a_cancelled_sweep_stops_with_cancelled(photo, starry):
    """``cancel`` reaches each cell's run: set, the sweep ends with Cancelled and no sheet."""
    import threading

    from impasto.errors import Cancelled

    cancel = threading.Event()
    started = []

    def progress(i, caption):
        started.append(i)
        cancel.set()  # the first cell is stopped at its first step

    with pytest.raises(Cancelled):
        run_sweep(photo, starry, BASE, "ratio", [1.0, 10.0], progress=progress, cancel=cancel)
    assert started == [0]


def test_the_cli_sweep_prints_notes_as_stylize_does(tmp_path, photo, starry, capsys):
    """A user found sweep's notes unlike stylize's: the enlarged-painting warning came bare
    (no 'impasto: warning:'), and -v printed no memory plan, so a tiled sweep looked untiled."""
    photo.save(tmp_path / "p.png")
    starry.save(tmp_path / "s.png")  # 60 px: enlarged at any style scale for a 40 px output
    out = tmp_path / "sheet.png"
    argv = ["sweep", str(tmp_path / "p.png"), str(tmp_path / "s.png"), "--over", "style-scale",
            "--values", "1,2", "--size", "40", "--iterations", "1", "--pyramid-start", "0",
            "-o", str(out)]  # fmt: skip
    assert main([*argv, "-q"]) == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "is enlarged" in ln]
    assert warnings and all(ln.startswith("impasto: warning: painting") for ln in warnings)
    assert main([*argv, "-v", "--tile", "32"]) == 0
    err = capsys.readouterr().err
    assert err.count("impasto: memory budget") == 2  # one per cell, as stylize -v prints
    assert "tiles of 32 px" in err


def test_the_cli_sweep_names_flags_in_a_cells_refusal(tmp_path, capsys):
    """A cell's refusal was prefixed 'cell size 20: size: ...', so the command line's rewrite
    (it names the setting that heads a message as its flag) missed it."""
    out = tmp_path / "s.png"
    argv = ["sweep", "example:chelsea", "example:starry_night", "-o", str(out), "-q"]
    assert main([*argv, "--over", "size", "--values", "40,20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("impasto: error: --size: 20 gives a") and err.endswith("(cell size 20)")
    assert main([*argv, "--over", "pooling"]) == 2
    assert "impasto: error: --values: a sweep over pooling needs them" in capsys.readouterr().err
    assert not out.exists()
