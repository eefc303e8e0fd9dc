"""What the web says of its settings: the /api page's descriptions name settings as the web
does (no CLI flags) and say what the web accepts of init and weights (the CLI's --help still
names flags); a job's memory note names the budget it really ran within."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")

from fastapi.testclient import TestClient  # noqa: E402

from impasto.cli import main  # noqa: E402
from impasto.memory import format_bytes  # noqa: E402
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


def _run_job(c: TestClient, max_memory: int | None) -> dict:
    settings = {"size": 96, "iterations": 2, "pyramid_start": 0, "device": "cpu", "seed": 3}
    body = {
        "content": "example:chelsea",
        "styles": [{"image": "example:starry_night", "weight": 1.0}],
        "settings": {**settings, "max_memory": max_memory},
    }
    r = c.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 60
    while (job := c.get(f"/api/jobs/{r.json()['id']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.03)
    assert job["status"] == "done", job["error"]
    (note,) = [n["text"] for n in job["notes"] if n["text"].startswith("memory budget")]
    return {"job": job, "note": note}


def test_a_max_memory_above_the_servers_budget_is_not_credited_to_the_job(tmp_path):
    """A job's max_memory above the server's budget gives way to it (a job may only lower its
    budget), yet its note read 'memory budget 12.6 GB (max_memory)': the server's budget,
    credited to the job's setting."""
    huge = 10**14
    with client(tmp_path) as c:
        cfg = c.get("/api/config").json()["memory"]
        budget, source = format_bytes(cfg["budget"]), cfg["source"]
        above = _run_job(c, huge)["note"]
        assert above == (
            f"memory budget {budget} (the server's: {source}; the job's max_memory "
            f"{format_bytes(huge)} is above it)"
        )
        at = _run_job(c, cfg["budget"])["note"]
        assert at == f"memory budget {budget} (the server's: {source})"
        # a lower one is the job's own
        lower = _run_job(c, cfg["budget"] // 2)
        assert lower["note"] == f"memory budget {format_bytes(cfg['budget'] // 2)} (max_memory)"
        assert lower["job"]["settings"]["max_memory"] == cfg["budget"] // 2


def test_a_budget_of_terabytes_reads_in_tb():
    """A max_memory of 10**14 read '100000.0 GB' in the note."""
    assert format_bytes(10**14) == "100.0 TB"
    assert format_bytes(1.5e12) == "1.5 TB" and format_bytes(12.6e9) == "12.6 GB"
    assert format_bytes(10**12 + 1, up=True, digits=3) == "1.0001 TB"
