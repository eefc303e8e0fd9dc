"""The command line, driven in-process: options end to end, bad input, interruption."""

import json
import os

import pytest
from PIL import Image

from impasto import callbacks
from impasto.cli import main
from impasto.image import read_metadata

FAST = ["--size", "40", "--iterations", "2", "--seed", "0", "-q"]


def run(*args):
    return main([str(a) for a in args])


def one_line_error(capsys, code, rc, pattern):
    err = capsys.readouterr().err
    assert rc == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), err
    assert pattern in lines[0]
    assert "Traceback" not in err


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    assert all(cmd in top for cmd in ("stylize", "reconstruct", "sweep", "serve"))
    with pytest.raises(SystemExit) as e:
        main(["stylize", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--size",
        "--iterations",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--content-layers",
        "--style-layers",
        "--style-layer-weights",
        "--pooling",
        "--init",
        "--optimizer",
        "--learning-rate",
        "--seed",
        "--device",
        "--style-scale",
        "--style-blend",
        "--style-scales",
        "--save-every",
        "--quiet",
        "--verbose",
        "--pyramid-start",
        "--precision",
        "--weights",
        "alpha/beta",
    ):
        assert flag in out, flag


def test_help_explains_the_dial_with_todays_defaults(capsys):
    """The epilog's dial names each loss scale's default beta as Settings has it (it once kept
    the paper scale's 1e3 after the default became the normalized scale's 10)."""
    from impasto.settings import DEFAULT_STYLE_WEIGHT, Settings

    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert Settings().loss_scale == "normalized" and Settings().beta == 10
    assert f"the default, {DEFAULT_STYLE_WEIGHT['normalized']:g}, paints" in out
    assert f"the default beta is {DEFAULT_STYLE_WEIGHT['paper']:g} (alpha/beta 1e-3" in out


def test_stylize_end_to_end_with_metadata(tmp_path, content_path, style_path):
    out = tmp_path / "out.png"
    assert run(content_path, style_path, "-o", out, *FAST) == 0
    img = Image.open(out)
    assert img.size == (40, 27) and img.mode == "RGB"
    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["settings"]["iterations"] == 2 and meta["seed"] == 0


@pytest.mark.parametrize(
    "extra",
    [
        ["--pooling", "max"],
        ["--optimizer", "adam", "--learning-rate", "0.05"],
        ["--init", "content"],
        ["--init", "style"],
        ["--tv-weight", "10"],
        ["--content-layers", "relu3_2,relu4_2", "--content-layer-weights", "0.5,0.5"],
        ["--style-layers", "relu1_1,relu2_1", "--style-layer-weights", "1,2"],
        ["--content-weight", "1", "--style-weight", "1e4"],
        ["--style-scale", "0.5"],
        ["--device", "cpu", "--precision", "bf16"],
        ["--pyramid-start", "24", "--pyramid-iterations", "1"],
        ["--preserve-colors", "swap"],
        ["--lbfgs-history", "3"],
        ["--pyramid-start", "16", "--pyramid-iterations", "1", "--pyramid-factor", "1.5"],
        ["-v"],
    ],
)
def test_options_run_end_to_end(tmp_path, content_path, style_path, extra, capsys):
    out = tmp_path / "out.png"
    base = [a for a in FAST if a != "-q"] if "-v" in extra else FAST
    assert run(content_path, style_path, "-o", out, *base, *extra) == 0, capsys.readouterr().err
    assert Image.open(out).size == (40, 27)


def test_several_styles_with_blend_and_scales(tmp_path, content_path, style_path):
    out = tmp_path / "out.jpg"
    rc = run(
        content_path,
        style_path,
        "example:great_wave",
        "-o",
        out,
        *FAST,
        "--style-blend",
        "0.7,0.3",
        "--style-scales",
        "1,0.5",
    )
    assert rc == 0
    meta = json.loads(read_metadata(out)["impasto"])
    assert [s["weight"] for s in meta["inputs"]["styles"]] == [0.7, 0.3]


def test_output_formats_and_16_bit(tmp_path, content_path, style_path):
    for name in ("o.tif", "o.webp", "o.jpeg"):
        assert run(content_path, style_path, "-o", tmp_path / name, *FAST) == 0
    assert run(content_path, style_path, "-o", tmp_path / "o16.png", *FAST, "--bits", "16") == 0
    assert Image.open(tmp_path / "o16.png").info is not None


def test_quality_and_dpi_reach_the_final_and_intermediate_files(tmp_path, content_path, style_path):
    out = tmp_path / "out.jpg"
    flags = ["--quality", "60", "--dpi", "300", "--save-every", "1", "--keep-intermediates"]
    assert run(content_path, style_path, "-o", out, *FAST, *flags) == 0
    for path in (out, tmp_path / "out.i00001.jpg"):
        with Image.open(path) as im:
            assert im.info["dpi"] == (300, 300) and im.getexif()[282] == 300
    high = tmp_path / "high.jpg"
    assert run(content_path, style_path, "-o", high, *FAST, "--quality", "100") == 0
    assert high.stat().st_size > out.stat().st_size  # the quality was applied
    sheet = tmp_path / "sheet.png"
    argv = ["reconstruct", "content", content_path, "--layers-sheet", "--layers"]
    argv += ["relu1_1,relu2_1", "--dpi", "150", "-o", sheet, "--size", "40", "--iterations", "2"]
    assert run(*argv, "-q") == 0
    with Image.open(sheet) as im:
        assert im.info["dpi"] == pytest.approx((150, 150), abs=0.013)  # whole px per metre


def test_save_every_keeps_intermediates(tmp_path, content_path, style_path):
    out = tmp_path / "out.png"
    rc = run(
        content_path,
        style_path,
        "-o",
        out,
        "--size",
        "40",
        "--iterations",
        "4",
        "-q",
        "--save-every",
        "2",
        "--keep-intermediates",
    )
    assert rc == 0
    assert (tmp_path / "out.i00002.png").exists()
    assert not (tmp_path / "out.i00004.png").exists()  # the last step is the final output


def test_interrupt_leaves_the_latest_image_and_no_partial_file(
    tmp_path, content_path, style_path, monkeypatch, capsys
):
    real = callbacks.ProgressBar.__call__

    def interrupt_at_3(self, it):
        real(self, it)
        if it.step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.ProgressBar, "__call__", interrupt_at_3)
    out = tmp_path / "out.png"
    rc = run(
        content_path,
        style_path,
        "-o",
        out,
        "--size",
        "40",
        "--iterations",
        "10",
        "-q",
        "--save-every",
        "2",
    )
    assert rc == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # an intermediate, nothing else
    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["partial"] is True and meta["step"] == 3  # where it stopped (was: step 2)
    Image.open(out).load()


def test_interrupt_without_saving_writes_nothing(tmp_path, content_path, style_path, monkeypatch):
    def interrupt(self, it):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.ProgressBar, "__call__", interrupt)
    assert run(content_path, style_path, "-o", tmp_path / "o.png", *FAST) == 130
    assert os.listdir(tmp_path) == []


def test_bad_inputs_one_line_exit_2(tmp_path, content_path, style_path, capsys):
    out = tmp_path / "o.png"
    one_line_error(capsys, 2, run(tmp_path / "nope.jpg", style_path, "-o", out), "no such file")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    one_line_error(capsys, 2, run(text, style_path, "-o", out), "notes.png")
    half = tmp_path / "half.jpg"
    data = (content_path.parent / "rocket.jpg").read_bytes()
    half.write_bytes(data[: len(data) // 2])
    one_line_error(capsys, 2, run(content_path, half, "-o", out, *FAST), "half.jpg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    one_line_error(capsys, 2, run(empty, style_path, "-o", out), "empty.png")
    one_line_error(capsys, 2, run(content_path, style_path, "-o", tmp_path / "o.bmpx"), ".bmpx")
    one_line_error(capsys, 2, run(content_path, style_path, "-o", tmp_path / "no" / "o.png"), "")
    one_line_error(
        capsys,
        2,
        run(content_path, style_path, "-o", out, "--style-layers", "relu1_1,relu9_9"),
        "pool5 (got 'relu1_1,relu9_9')",  # as typed, not a tuple's repr
    )
    one_line_error(capsys, 2, run(content_path, style_path, "-o", out, "--size", "2"), "size")
    one_line_error(
        capsys, 2, run(content_path, style_path, "-o", out, "--style-blend", "1,2"), "--style-blend"
    )
    one_line_error(
        capsys,
        2,
        run(content_path, style_path, "-o", out, "--device", "cuda")
        if not __import__("torch").cuda.is_available()
        else 2,
        "cuda",
    )
    one_line_error(  # it was silently ignored
        capsys, 2, run(content_path, style_path, "-o", out, "--color-match", "pca"), "--color-match"
    )
    one_line_error(  # the names as typed, not the files' names
        capsys, 2, run("example:nope", style_path, "-o", out), "available: example:chelsea, "
    )
    assert not out.exists()


def test_decompression_bomb_rejected(tmp_path, style_path, capsys):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (6000, 5000)).save(bomb, optimize=False)  # 30 MP
    args = ("-o", tmp_path / "o.png", *FAST)
    rc = run(bomb, style_path, "--max-input-pixels", 20_000_000, *args)
    one_line_error(capsys, 2, rc, "bomb")


def test_reconstruct_commands(tmp_path, content_path, style_path):
    assert (
        run(
            "reconstruct",
            "content",
            content_path,
            "--layer",
            "relu2_1",
            "-o",
            tmp_path / "c.png",
            *FAST,
        )
        == 0
    )
    assert Image.open(tmp_path / "c.png").size == (40, 27)
    assert (
        run(
            "reconstruct",
            "style",
            style_path,
            "--layers",
            "relu1_1,relu2_1",
            "-o",
            tmp_path / "s.png",
            *FAST,
        )
        == 0
    )
    assert (
        run(
            "reconstruct",
            "style",
            style_path,
            "--layers",
            "relu1_1,relu2_1",
            "--layers-sheet",
            "-o",
            tmp_path / "sheet.png",
            *FAST,
        )
        == 0
    )
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 2 * 40
    assert (
        run(
            "reconstruct",
            "content",
            content_path,
            "--layers-sheet",
            "--layers",
            "conv1_2,conv2_2",
            "-o",
            tmp_path / "csheet.png",
            *FAST,
        )
        == 0
    )


def test_reconstruct_bad_layer(tmp_path, content_path, capsys):
    rc = run("reconstruct", "content", content_path, "--layer", "fc7", "-o", tmp_path / "c.png")
    one_line_error(capsys, 2, rc, "valid names")


def test_reconstruct_refuses_layer_flags_it_would_not_use(tmp_path, content_path, capsys):
    """They were silently ignored: content with --layers (no sheet) painted relu4_2, style with
    --layer painted all five layers, an empty --layers fell back to the defaults."""
    out = tmp_path / "c.png"
    for kind, flags, words in (
        ("content", ["--layers", "relu1_1"], "--layers needs --layers-sheet"),
        ("style", ["--layer", "relu2_1"], "--layer is for content"),
        ("style", ["--layers", ""], "--layers is empty"),
        ("content", ["--layers-sheet", "--layer", "relu2_1"], "not --layer"),
    ):
        rc = run("reconstruct", kind, content_path, *flags, "-o", out)
        one_line_error(capsys, 2, rc, words)
    assert not out.exists()


def test_weights_by_path_and_format(tmp_path, content_path, style_path, capsys):
    import torch

    from impasto.encoder import load_state_dict
    from impasto.encoder.weights import _TV_INDEX

    sd, _ = load_state_dict()
    features = {}
    for layer, i in _TV_INDEX.items():
        features[f"features.{i}.weight"] = sd[f"{layer}.weight"]
        features[f"features.{i}.bias"] = sd[f"{layer}.bias"]
    weights = tmp_path / "my_vgg.pth"
    torch.save(features, weights)
    out = tmp_path / "out.png"
    rc = run(
        content_path,
        style_path,
        "-o",
        out,
        *FAST,
        "--weights",
        weights,
        "--weights-format",
        "caffe",
    )
    assert rc == 0, capsys.readouterr().err
    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["settings"]["weights_format"] == "caffe"
    one_line_error(
        capsys,
        2,
        run(content_path, style_path, "-o", out, "--weights", tmp_path / "missing.pth"),
        "missing.pth",
    )


def test_reconstruct_help_gives_its_own_tv_default(capsys):
    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "smoothness) weight (default: 0: a reconstruction shows" in out
    assert "3 with loss scale normalized" not in out  # the stylizer's default is not shown
