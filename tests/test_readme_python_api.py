"""The README's *Python API* example runs as written, only smaller.

The block is taken from README.md itself, so an example that stops working (a renamed argument,
a changed return type) fails here. Its file names are made real in a temporary folder from the
bundled examples, and every ``size=N`` becomes a tiny single-scale run.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from impasto import examples

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = "size=48, iterations=2, pyramid_start=0"
FILES = {
    "photo.jpg": "chelsea",
    "painting.jpg": "starry_night",
    "starry.jpg": "starry_night",
    "wave.jpg": "great_wave",
}


def python_api_block() -> str:
    """The first ``python`` code block after the README's *Python API* heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_python_api_example_runs(tmp_path, monkeypatch, capsys):
    code = python_api_block()
    assert "impasto.stylize(" in code and "Stylizer(settings).run(" in code
    for name, example in FILES.items():
        assert name in code, f"the example no longer uses {name}: update FILES"
        with Image.open(examples.path(example)) as im:
            im.convert("RGB").save(tmp_path / name)
    small = re.sub(r"size=\d+", TINY, code)
    assert small.count(TINY) == code.count("size="), "every run made tiny"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(small, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    with Image.open(tmp_path / "out.png") as out:
        assert out.size[0] == 48 or out.size[1] == 48
    steps = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert steps and all(s.isdigit() for s in steps)  # the callback printed each iteration
    assert tuple(namespace["result"].image.shape[:2]) == (1, 3)
