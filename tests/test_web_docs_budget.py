"""What the web says of its settings: the /api page's descriptions name settings as the web
does (no CLI flags) and say what the web accepts of init and weights (the CLI's --help still
names flags); a job's memory note names the budget it really ran within."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")

from fastapi.testclient import TestClient  # noqa: E402

from impasto.cli import main  # noqa: E402
from impasto.settings import field_help  # noqa: E402
from tests._web_helpers import BASE, client, tiny_network  # noqa: E402, F401

CHROMIUM = Path("/usr/bin/chromium")


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


def _fulfil(c: TestClient):
    """A Playwright route handler that answers the page's requests from the test client."""

    def handle(route) -> None:
        url = urlsplit(route.request.url)
        r = c.get(url.path + (f"?{url.query}" if url.query else ""))
        route.fulfill(status=r.status_code, body=r.content, content_type=r.headers["content-type"])

    return handle


def _api_page_fields(c: TestClient) -> dict[str, str]:
    """Each field of the Settings schema on the /api page -> its text, as Chromium renders it."""
    if os.environ.get("IMPASTO_REQUIRE_BROWSER") != "1":
        pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
        if not CHROMIUM.exists():
            pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route("**/*", _fulfil(c))
            page.goto("http://impasto.test/api")
            settings = page.locator(
                "section.api-op", has=page.locator("h3", has_text=re.compile("^Settings$"))
            )
            settings.locator("li[data-field]").first.wait_for()
            fields = settings.locator("li[data-field]")
            texts = {li.get_attribute("data-field"): li.inner_text() for li in fields.all()}
        finally:
            browser.close()
    assert errors == []
    return texts


def test_the_api_page_says_what_the_web_accepts_of_init_and_weights(tmp_path):
    """/api documented init as 'noise, content, style ..., or a path to an image' and weights as
    'VGG19 weights file'; the web refuses a path and any weights (limits.check_server_rules)."""
    with client(tmp_path, run_jobs=False) as c:
        fields = _api_page_fields(c)
        refused = c.post(
            "/api/jobs",
            json={"content": "example:chelsea", "settings": {"size": 48, "weights": "w.pth"}},
        )
    assert refused.status_code == 422
    assert "on the web: noise, content or style" in fields["init"]
    assert "not settable on the web" in fields["weights"]
    assert "not settable on the web" in fields["weights_format"]
    assert "may only lower the server's" in fields["max_memory"]
    assert "on the web" not in fields["size"]  # only the fields the web limits
    assert not [k for k, text in fields.items() if "--" in text]
