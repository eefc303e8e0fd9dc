"""What the web says of its settings: the /api page's descriptions name settings as the web
does (no CLI flags) and say what the web accepts of init and weights (the CLI's --help still
names flags); a job's memory note names the budget it really ran within."""

from __future__ import annotations

import contextlib
import io

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")


from impasto.cli import main  # noqa: E402
from impasto.settings import field_help  # noqa: E402
from tests._web_helpers import BASE, client, tiny_network  # noqa: E402, F401


def _help(monkeypatch, *argv: str) -> str:
    """A command's --help on one line per option (argparse wraps long words at hyphens)."""
    monkeypatch.setenv("COLUMNS", "10000")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


def test_settings_descriptions_name_settings_not_flags(tmp_path):
    """/openapi.json's settings (the /api page's data) said '--style-weight', '--max-memory',
    '--conv winograd' and '--weights': flags, which the web has none of."""
    with client(tmp_path, run_jobs=False) as c:
        spec = c.get("/openapi.json").json()
    props = spec["components"]["schemas"]["Settings"]["properties"]
    flagged = {k: v["description"] for k, v in props.items() if "--" in v.get("description", "")}
    assert flagged == {}
    assert "so style_weight is a style strength" in props["loss_scale"]["description"]
    assert "chosen from max_memory" in props["tile"]["description"]
    assert "fp32 with conv 'winograd'" in props["precision"]["description"]
    assert not [k for k, (_, text) in field_help().items() if "--" in text]


def test_the_cli_help_names_the_flags_of_the_settings_a_help_names(monkeypatch):
    """The CLI's help comes from the same descriptions, rewritten into its words."""
    text = _help(monkeypatch, "stylize")
    assert "so --style-weight is a style strength" in text
    assert "chosen from --max-memory when the whole image does not fit" in text
    assert "fp32 with --conv winograd)" in text
    assert "format of the weights file" in text
    assert "style_weight" not in text and "max_memory" not in text
    # reconstruct has no --style-weight: the setting keeps its name there
    text = _help(monkeypatch, "reconstruct")
    assert "--style-weight" not in text and "chosen from --max-memory" in text
