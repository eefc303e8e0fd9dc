"""Small defects a QA tester found: ``train pack`` printed an empty progress bar before its own
output (errors included)."""

from __future__ import annotations

from PIL import Image

from impasto.cli import main


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
    assert "pack: 100%" in err and "0image" not in err  # one bar, with its total from the start
    assert main(["train", "pack", str(tmp_path / "imgs"), str(tmp_path / "z.lmdb"), "-q"]) == 0
    assert capsys.readouterr().err == ""
