"""The shape of the code, checked: short functions, a light command line, one version."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import impasto

SRC = Path(impasto.__file__).parent
MAX_LINES = 60


def _long_functions() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - node.lineno + 1
            # An exception needs a one-line comment saying why, just above the function.
            excused = first >= 2 and lines[first - 2].strip().startswith("# long:")
            if length > MAX_LINES and not excused:
                out.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_is_longer_than_60_lines():
    assert _long_functions() == []


def test_help_answers_without_importing_torch():
    code = (
        "import sys\n"
        "from impasto.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "for name in ('stylize', 'reconstruct', 'sweep'):\n"
        "    try:\n"
        "        main([name, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_version_has_one_home():
    from importlib.metadata import version

    from impasto.version import __version__

    assert impasto.__version__ == __version__ == version("impasto")


def test_the_wheel_carries_the_page_the_examples_and_the_type_marker(tmp_path):
    """An editable install reads the source tree, so a file the package data leaves out (the
    web page, a bundled image, ``py.typed``) would be missed by every other test."""
    pytest.importorskip("setuptools")
    root, tree = Path(__file__).resolve().parents[1], tmp_path / "tree"
    for name in ("pyproject.toml", "README.md"):  # a copy: the build leaves the checkout alone
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tree / name)
    shutil.copytree(SRC, tree / "src" / "impasto", ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-q", "-w", str(tmp_path), str(tree)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("impasto-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = {p.name for p in (SRC / "web" / "static").iterdir()}
    assert {f"impasto/web/static/{n}" for n in static} <= names
    images = {p.name for p in (SRC / "examples").iterdir() if p.suffix in (".jpg", ".png")}
    assert len(images) >= 7 and {f"impasto/examples/{n}" for n in images} <= names
    assert {"impasto/py.typed", "impasto/examples/CREDITS.md"} <= names
    modules = {str(p.relative_to(SRC.parent)) for p in SRC.rglob("*.py")}
    assert modules <= names  # every module, new ones included
