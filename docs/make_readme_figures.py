"""Regenerate the README's main example and its reconstruction sheets into ``docs/img/``.

    python docs/make_readme_figures.py            # hero + reconstructions
    python docs/make_readme_figures.py hero       # only the main example
    python docs/make_readme_figures.py hero --from OUT.png --seconds 333   # an existing result
                                                  # of the main command, timed elsewhere

* ``hero.jpg``: photo | painting | the result of the README's main command (impasto's defaults,
  512 px), side by side. The timing of that command is printed.
* ``recon_content.jpg`` / ``recon_style.jpg``: ``impasto reconstruct ... --layers-sheet``, as in
  Gatys et al. 2016, Fig. 1.
"""

from __future__ import annotations

import argparse
import shlex
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


def hero(done: tuple[Path, float] | None = None) -> None:
    """The hero sheet; ``done``: (result, seconds) of the main command run elsewhere (e.g. on a
    fresh clone, timed by the shell) instead of running it here."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "chelsea_starry_night.png"
        if done is None:
            dt = run("example:chelsea", "example:starry_night", "-o", str(out), "-q")
        else:
            out, dt = done
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", help="hero and/or reconstructions (default: both)")
    ap.add_argument("--from", dest="result", type=Path, help="the main command's result")
    ap.add_argument("--seconds", type=float, help="how long that command took")
    args = ap.parse_args()
    if set(args.parts) - {"hero", "reconstructions"}:
        ap.error(f"parts are hero and reconstructions, not {' '.join(args.parts)}")
    if (args.result is None) != (args.seconds is None):
        ap.error("--from and --seconds go together")
    IMG.mkdir(parents=True, exist_ok=True)
    wanted = set(args.parts) or {"hero", "reconstructions"}
    if "hero" in wanted:
        hero(None if args.result is None else (args.result, args.seconds))
    if "reconstructions" in wanted:
        reconstructions()
