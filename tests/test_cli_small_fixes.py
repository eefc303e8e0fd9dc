"""Small defects a QA tester found: ``train pack`` printed an empty progress bar before its own
output (errors included); ``batch --backend ray`` without Ray left an empty OUTDIR behind."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from impasto.cli import main
from tests._batch_helpers import make_inputs


def test_pack_prints_no_bar_before_the_first_image(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "pack", str(tmp_path / "empty"), str(tmp_path / "x.lmdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("impasto: error: ") and err.count("\n") == 1 and "pack:" not in err
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (20, 20), (i, 99, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    assert main(["train", "pack", str(tmp_path / "imgs"), str(tmp_path / "y.lmdb")]) == 0
    err = capsys.readouterr().err
    # one bar, with its total from the start: never a bar without one ('pack: 0image'); a rate
    # such as 1632.50image/s also holds '0image', so the bar's own words are checked
    assert "pack: 100%" in err and "pack: 0image" not in err and "/4 [" in err
    assert main(["train", "pack", str(tmp_path / "imgs"), str(tmp_path / "z.lmdb"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_batch_ray_without_ray_makes_no_outdir(tmp_path):
    """Ray is hidden in a child process (``sys.modules['ray'] = None``): the test does not
    depend on whether this environment has Ray."""
    photos, paintings = make_inputs(tmp_path, 1, 1)
    out = tmp_path / "out"
    argv = ["batch", "--contents", str(photos), "--styles", str(paintings), "-o", str(out)]
    code = (
        "import sys; sys.modules['ray'] = None; from impasto.cli import main; "
        f"raise SystemExit(main({[*argv, '--backend', 'ray']!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "impasto: error: the Ray backend needs Ray: pip install 'impasto[ray]'\n"
    assert not out.exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--workers", "0"],
        ["--threads", "0"],
        ["--address", "auto"],
        ["--format", "bmp"],
        ["--format", "jpg", "--bits", "16"],
        ["--quality", "50"],
        ["--contents", "nothing*.png"],
        ["JOBS"],
        ["--backend", "ray", "--address", "127.0.0.1:1"],  # no cluster there (or no Ray here)
    ],
)
def test_batch_refusals_make_no_outdir(tmp_path, flags, capsys):
    photos, paintings = make_inputs(tmp_path, 1, 1)
    out = tmp_path / "out"
    if flags == ["JOBS"]:  # a jobs file that does not exist
        argv = ["batch", str(tmp_path / "missing.jsonl"), "-o", str(out)]
    else:
        argv = ["batch", "--styles", str(paintings), "-o", str(out), *flags]
        argv += [] if "--contents" in flags else ["--contents", str(photos)]
    try:
        assert main(argv) == 2
    except SystemExit as e:  # argparse's refusal (--format bmp)
        assert e.code == 2
    assert "error: " in capsys.readouterr().err
    assert not out.exists()
