"""The README's examples work as written: taken from README.md itself, so one that stops
working (a renamed flag or argument, a changed return type) fails here.

* The *Python API* block runs, only smaller: its file names are made real in a temporary folder
  from the bundled examples, and every ``size=N`` becomes a tiny single-scale run.
* Every concrete ``impasto ...`` command line in the README's shell blocks parses with today's
  command line (lines with placeholders such as ``IMAGE`` or ``[options]`` are synopses).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from PIL import Image

from impasto import examples
from impasto.cli import parse

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


def shell_blocks() -> list[str]:
    """The README's ``sh`` (or unlabelled) code blocks, continuation lines joined."""
    blocks, current = [], None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if current is None:
                current = (line[3:].strip(), [])
            else:
                if current[0] in ("", "sh", "bash"):
                    blocks.append("\n".join(current[1]).replace("\\\n", " "))
                current = None
        elif current is not None:
            current[1].append(line)
    return blocks


def readme_commands() -> list[str]:
    """Each ``impasto`` command line of the shell blocks (after ``&&``, comments dropped)."""
    out = []
    for block in shell_blocks():
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if " && impasto " in line:
                line = "impasto " + line.split(" && impasto ", 1)[1]
            if line.startswith("impasto "):
                out.append(line)
    return out


def is_synopsis(command: str) -> bool:
    words = shlex.split(command)
    return any(t in command for t in ("[", "...", "|")) or any(
        re.fullmatch(r"[A-Z][A-Z_0-9]+", w) for w in words
    )


def test_every_command_line_in_the_readme_parses():
    commands = [c for c in readme_commands() if not is_synopsis(c)]
    assert len(commands) >= 12 and any(c.startswith("impasto train run") for c in commands)
    for command in commands:
        try:
            args = parse(shlex.split(command)[1:])
        except SystemExit as e:  # argparse's own exit: only --help / --version end well
            raise AssertionError(f"README: {command!r} exits {e.code}") from None
        assert getattr(args, "run", None) is not None, command
