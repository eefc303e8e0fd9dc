"""Regenerate the README's main example and its reconstruction sheets into ``docs/img/``.

    python docs/make_readme_figures.py            # hero + reconstructions
    python docs/make_readme_figures.py hero       # only the main example

* ``hero.jpg``: photo | painting | the result of the README's main command (impasto's defaults,
  512 px), side by side. The timing of that command is printed.
* ``recon_content.jpg`` / ``recon_style.jpg``: ``impasto reconstruct ... --layers-sheet``, as in
  Gatys et al. 2016, Fig. 1.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from impasto import examples
from impasto.cli import main
from impasto.sheet import contact_sheet

IMG = Path(__file__).resolve().parent / "img"


def run(*argv: str) -> float:
    print("$ impasto " + " ".join(shlex.quote(a) for a in argv), flush=True)
    t = time.perf_counter()
    if main(list(argv)) != 0:
        raise SystemExit(f"impasto {' '.join(argv)} failed")
    dt = time.perf_counter() - t
    print(f"  {dt:.1f} s", flush=True)
    return dt


def _thumb(img: Image.Image, height: int) -> Image.Image:
    return img.convert("RGB").resize(
        (round(img.width * height / img.height), height), Image.LANCZOS
    )


def hero() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "chelsea_starry_night.png"
        dt = run("example:chelsea", "example:starry_night", "-o", str(out), "-q")
        h = 300
        sheet = contact_sheet(
            [
                (_thumb(Image.open(examples.path("chelsea")), h), "photo (Chelsea, CC0)"),
                (
                    _thumb(Image.open(examples.path("starry_night")), h),
                    "The Starry Night (van Gogh)",
                ),
                (_thumb(Image.open(out), h), f"impasto defaults, 512 px ({dt:.0f} s, 2-core CPU)"),
            ]
        )
        sheet.save(IMG / "hero.jpg", quality=88, optimize=True)


def reconstructions() -> None:
    common = ["--size", "160", "--iterations", "300", "--seed", "0", "-q"]
    run(
        "reconstruct",
        "content",
        "example:chelsea",
        "--layers-sheet",
        "-o",
        str(IMG / "recon_content.jpg"),
        *common,
    )
    run(
        "reconstruct",
        "style",
        "example:starry_night",
        "--layers-sheet",
        "-o",
        str(IMG / "recon_style.jpg"),
        *common,
    )


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:]) or {"hero", "reconstructions"}
    if "hero" in wanted:
        hero()
    if "reconstructions" in wanted:
        reconstructions()
