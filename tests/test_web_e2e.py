"""End-to-end test of the web studio in a real browser.

Runs ``python -m impasto serve`` on a free loopback port with a temporary data directory and
drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's sync API: upload a photo and
a painting, start a tiny job, see the live preview change, download the result.

With ``IMPASTO_SCREENSHOT=1`` it also runs a larger job on the bundled examples and writes
``docs/web-screenshot.png`` (the README's screenshot); CI leaves the tree untouched.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impasto import examples

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "web-screenshot.png"

if os.environ.get("IMPASTO_REQUIRE_BROWSER") == "1":  # set by .ci/run: never skip in CI
    import playwright.sync_api  # noqa: F401  (an ImportError fails the run)

    assert CHROMIUM.exists(), "IMPASTO_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (.ci/install_browser.sh)"
)
pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("uvicorn", reason="the web extra is not installed")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    weights = []
    if os.environ.get("IMPASTO_SCREENSHOT") != "1":  # a tiny random network: fast, not pretty
        from impasto.encoder.weights import save_weights
        from tests._tiny_vgg import SPEC, tiny_state_dict

        save_weights(tmp_path / "tiny.pth", tiny_state_dict(), SPEC)
        weights = ["--weights", str(tmp_path / "tiny.pth")]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "impasto",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--preview-every",
            "1",
            "--log-level",
            "warning",
            *weights,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # tiny jobs on a shared 2-core machine: one thread, no spinning against the others
        env={**os.environ, "OMP_NUM_THREADS": "1"} if weights else None,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/config", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"server did not start:\n{log.read().decode(errors='replace')}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def images(tmp_path):
    """A small photo-like gradient with a disc, and a stripy 'painting'."""
    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    photo = np.stack([x, y, 1 - x], -1)
    photo[((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.06] = (0.9, 0.8, 0.1)
    rng = np.random.default_rng(0)
    paint = np.stack([np.sin(20 * x + 3 * y), np.cos(15 * y), rng.random((h, w))], -1) * 0.5 + 0.5
    paths = []
    for name, arr in (("photo.png", photo), ("painting.jpg", paint)):
        p = tmp_path / name
        Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def _watch_preview(page) -> None:
    """Record every src the preview <img> gets (set before the job starts)."""
    page.evaluate(
        """() => {
            window.previewSrcs = [];
            const img = document.getElementById('preview');
            new MutationObserver(() => window.previewSrcs.push(img.getAttribute('src')))
                .observe(img, {attributes: true, attributeFilter: ['src']});
        }"""
    )


def _run_job(page, size: int | str, iterations: int | str, seed: int, timeout_ms: int) -> None:
    page.fill("#size", str(size))
    page.fill("#iterations", str(iterations))
    page.fill("#seed", str(seed))
    _watch_preview(page)
    before = page.evaluate("state.watching")
    page.click("#start")
    page.wait_for_function("(before) => state.watching && state.watching !== before", arg=before)
    sync_api.expect(page.locator("#job-status")).to_have_text("done", timeout=timeout_ms)


def test_upload_start_preview_download(server, images, tmp_path):
    photo, painting = images
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server)
            expect(page.locator("#content-examples .chip")).to_have_count(len(examples.CONTENT))

            page.set_input_files("#content-file", str(photo))
            expect(page.locator("#content-thumb")).to_be_visible()
            expect(page.locator("#content-name")).to_have_text("photo.png")
            page.set_input_files("#style-file", str(painting))
            expect(page.locator("#style-list li")).to_have_count(1)
            expect(page.locator("#estimate")).to_contain_text("on cpu")  # before Start
            page.fill("#content_weight", "0")
            page.fill("#style_weight", "0")
            page.click("#start")
            expect(page.locator("#form-error")).to_contain_text("both 0")  # refused at submit
            page.fill("#content_weight", "1")
            expect(page.locator("#form-error")).to_have_text("")  # a stale error is cleared
            page.fill("#style_weight", "1000")
            expect(page.locator("#offline")).to_be_hidden()

            # typed with an exponent: the page read 1.2e1 as 1 (parseInt) and 4.8e1 as 4
            _run_job(page, size="4.8e1", iterations="1.2e1", seed=7, timeout_ms=90_000)

            srcs = page.evaluate("window.previewSrcs")
            previews = [s for s in srcs if s and "/preview.png?v=" in s]
            assert len(set(previews)) >= 2, srcs  # the live preview changed while it ran
            expect(page.locator("#bar")).to_have_attribute("style", "width: 100%;")
            assert page.evaluate("document.getElementById('preview').naturalWidth") == 48
            assert page.locator("#stat-step").inner_text() == "12 / 12"
            expect(page.locator("#gallery .card")).to_have_count(1)

            with page.expect_download() as info:
                page.click("#download")
            download = info.value
            assert download.suggested_filename.endswith(".png")
            saved = tmp_path / "result.png"
            download.save_as(saved)
            with Image.open(saved) as im:
                assert im.format == "PNG"
                assert im.size == (48, 36)  # the photo's 4:3 aspect at long side 48
                assert '"seed": 7' in im.text["impasto"]
            assert errors == []

            if os.environ.get("IMPASTO_SCREENSHOT") == "1":
                page.click('#content-examples .chip[data-ref="example:chelsea"]')
                page.click("#style-list .link")  # drop the stripes
                page.click('#style-examples .chip[data-ref="example:starry_night"]')
                page.fill("#style_weight", "10")  # the default strength (1000 above: tiny net)
                _run_job(page, size=320, iterations=60, seed=1, timeout_ms=600_000)
                expect(page.locator("#queue li")).to_have_count(0)
                expect(page.locator("#gallery .card")).to_have_count(2)
                page.wait_for_timeout(300)  # let the gallery thumbnails load
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
                # 256 colours keep the README's screenshot small (~0.4 MB instead of ~1.1 MB)
                shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(SCREENSHOT, optimize=True)
        finally:
            browser.close()


def _api(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read() or b"null")


def _until(base: str, job_id: str, cond, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while not cond(job := _api(base, "GET", f"/api/jobs/{job_id}")):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


@contextlib.contextmanager
def browser_page(url: str):
    """A headless Chromium page on ``url`` and the list of its JavaScript errors."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


def test_edit_on_a_resumed_job_loads_a_startable_form(server):
    """'edit' on a resumed job put its start image (the parent's partial PNG) into the Init
    select, which has no such option: blank, and the page said 'Not startable'. It now loads
    the parent's settings, as the user chose them."""
    body = {
        "content": "example:chelsea",
        "styles": [{"image": "example:starry_night", "weight": 1.0}],
        "settings": {"size": 48, "iterations": 5000, "seed": 3, "device": "cpu"},
    }
    job = _api(server, "POST", "/api/jobs", body)
    _until(server, job["id"], lambda j: j["step"] >= 2)
    _api(server, "POST", f"/api/jobs/{job['id']}/cancel")
    _until(server, job["id"], lambda j: j["status"] == "cancelled")
    resumed = _api(server, "POST", f"/api/jobs/{job['id']}/resume", {"settings": {"iterations": 3}})
    _until(server, resumed["id"], lambda j: j["status"] == "done")
    assert resumed["settings"]["init"].endswith("-partial.png")
    expect = sync_api.expect
    with browser_page(server) as (page, errors):
        card = page.locator(f'#gallery .card[data-id="{resumed["id"]}"]')
        card.get_by_role("button", name="edit").click()
        expect(page.locator("#iterations")).to_have_value("5000")  # the parent's
        assert page.locator("#init").input_value() == "noise"
        expect(page.locator("#estimate")).to_contain_text("About")  # startable
        assert errors == []


def test_a_running_batch_is_an_entry_of_the_queue(server):
    """The Queue panel said 'Nothing waiting.' while a batch ran (the README calls a batch one
    entry of the queue); a job a cancel leaves pending showed its partial time."""
    body = {  # 2 jobs of 5000 iterations: about 20 s each with the tiny network
        "contents": ["example:chelsea", "example:coffee"],
        "styles": ["example:starry_night"],
        "settings": {"size": 48, "iterations": 5000, "seed": 3, "device": "cpu"},
    }
    batch = _api(server, "POST", "/api/batches", body)
    expect = sync_api.expect
    with browser_page(server) as (page, errors):
        entry = page.locator("#queue li.batch-entry")
        # the server answers slowly while the batch's job holds the GIL on a 2-core machine
        expect(entry).to_have_count(1, timeout=30_000)
        expect(entry).to_contain_text("batch: 2 photo(s) × 1 painting(s)")
        expect(page.locator("#queue-empty")).to_be_hidden()
        _api(server, "POST", f"/api/batches/{batch['id']}/cancel")
        deadline = time.monotonic() + 60
        while _api(server, "GET", f"/api/batches/{batch['id']}")["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        page.reload()
        expect(page.locator("#queue li.batch-entry")).to_have_count(0)
        expect(page.locator("#queue-empty")).to_be_visible()
        card = page.locator(f'#batches .batch[data-id="{batch["id"]}"]')
        for row in card.locator("tr").all():
            if "pending" in row.inner_text():
                assert row.locator("td").nth(2).inner_text() == ""

        # every result link was a bare "png" (no name of its own, opened in a new tab): each
        # names its job as the gallery does and downloads under the job's file name
        tiny = {**body, "settings": {**body["settings"], "iterations": 2}}
        done = _api(server, "POST", "/api/batches", tiny)
        deadline = time.monotonic() + 60
        while (view := _api(server, "GET", f"/api/batches/{done['id']}"))["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        names = {j["content"]["name"]: j["name"] for j in view["jobs"]}
        assert set(names) == {"chelsea", "coffee"}
        page.reload()
        card = page.locator(f'#batches .batch[data-id="{done["id"]}"]')
        for photo, name in names.items():
            link = card.get_by_role("link", name=f"png of {photo} × starry night", exact=True)
            expect(link).to_have_attribute("download", name)
            with page.expect_download() as info:
                link.click()
            assert info.value.suggested_filename == name
        zip_name = "download zip of batch of 2 photo(s) × 1 painting(s)"
        expect(card.get_by_role("link", name=zip_name, exact=True)).to_have_count(1)
        assert errors == []


def test_a_server_that_does_not_answer_is_said_in_words_and_forgotten_once_back(server):
    """With the server away, Start said the browser's 'Failed to fetch', and that error stayed
    on the form after the server came back."""
    expect = sync_api.expect
    with browser_page(server) as (page, errors):
        page.click("#content-examples .chip >> nth=0")
        page.click("#style-examples .chip >> nth=0")
        expect(page.locator("#estimate")).to_contain_text("About")
        page.context.set_offline(True)
        page.click("#start")
        expect(page.locator("#form-error")).to_contain_text("the server is not answering")
        page.evaluate("setOffline(true)")  # what the event stream's error does
        page.context.set_offline(False)
        page.evaluate("setOffline(false)")  # ... and its reconnection
        expect(page.locator("#form-error")).to_have_text("")
        expect(page.locator("#estimate")).to_contain_text("About")
        assert errors == []


_DROP_TWO_PHOTOS = """async () => {
    const blob = await (await fetch(state.config.examples[0].thumb_url)).blob();
    const dt = new DataTransfer();
    for (const name of ["first.png", "second.png"]) {
        dt.items.add(new File([blob], name, {type: blob.type}));
    }
    document.getElementById("content-drop").dispatchEvent(
        new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""


def test_the_form_and_the_batch_check_what_they_send(server, images):
    """Typed numbers read as the browser reads them (1e2 is 100, not 1), a blank Size has no
    estimate and stops a batch as it stops Start, the Batch panel's error goes once its cause
    does, the content photo can be dropped again, and the controls have names and focus."""
    photo, _ = images
    expect = sync_api.expect
    with browser_page(server) as (page, errors):
        # a listener now: Playwright turns on its file-chooser interception without waiting,
        # and a chooser opened before that is a real one (no event; half the runs)
        page.on("filechooser", lambda _chooser: None)
        chelsea = page.locator('#content-examples .chip[data-ref="example:chelsea"]')
        chelsea.click()
        page.click('#style-examples .chip[data-ref="example:starry_night"]')
        expect(chelsea).to_have_attribute("aria-pressed", "true")
        estimate = page.locator("#estimate")
        expect(estimate).to_contain_text("About")
        page.fill("#size", "")
        expect(estimate).to_have_text(re.compile(r"^The form is incomplete: Size: "))
        page.fill("#size", "48.5")  # refused, not cut to 48
        expect(estimate).to_have_text(re.compile(r"^Not startable: Size: "))
        page.fill("#size", "6.4e1")
        page.fill("#iterations", "1e2")
        expect(estimate).to_contain_text("About")
        settings = page.evaluate("readSettings()")
        assert (settings["size"], settings["iterations"]) == (64, 100)

        # a batch is checked as Start is: a blank Size ran the engine's 512 px
        page.fill("#size", "")
        page.click('#batch-contents-examples .bchip[data-ref="example:chelsea"]')
        page.click('#batch-styles-examples .bchip[data-ref="example:starry_night"]')
        page.click("#batch-start")
        batch_error = page.locator("#batch-error")
        expect(batch_error).to_contain_text("Fix the settings above first: Size")
        expect(page.locator("#size")).to_be_focused()
        assert _api(server, "GET", "/api/batches") == []
        batch_count = page.locator("#batch-count")  # no time for a form Start would refuse
        expect(batch_count).to_contain_text("1 job; the form is incomplete: Size")
        page.fill("#size", "48")  # the cause is gone, and so is the error
        expect(batch_error).to_have_text("")
        # the batch's time before it starts, from the server's check (it had none)
        expect(batch_count).to_have_text(re.compile(r"^1 job, about .+ on cpu \("))
        page.click('#batch-styles-examples .bchip[data-ref="example:great_wave"]')
        expect(batch_count).to_have_text(re.compile(r"^2 jobs, about .+ on cpu \("))
        page.click('#batch-contents-examples .bchip[data-ref="example:chelsea"]')  # unpicked
        page.click("#batch-start")
        expect(batch_error).to_contain_text("Pick at least one photo")
        page.click('#batch-contents-examples .bchip[data-ref="example:coffee"]')
        expect(batch_error).to_have_text("")
        assert _api(server, "GET", "/api/batches") == []

        # names: the slider was named by its label's <output>, the progress bar by nothing
        expect(page.get_by_role("slider", name="Style strength")).to_have_count(1)
        expect(page.get_by_role("progressbar", name="job progress")).to_have_count(1)
        # the job's state is announced, not every step's numbers
        live = "(id) => document.getElementById(id).closest('[aria-live]') !== null"
        assert page.evaluate(live, "job-status")
        assert not page.evaluate(live, "stat-step")
        assert not page.evaluate(live, "stat-loss")

        # the upload area shows the keyboard focus of its 1 px file input; Enter opens it
        page.focus("#content-file")
        outline = "getComputedStyle(document.getElementById('content-drop')).outlineStyle"
        assert page.evaluate(outline) == "solid"
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Enter")
        chooser.value.set_files(str(photo))
        expect(page.locator("#content-name")).to_have_text("photo.png")
        expect(chelsea).to_have_attribute("aria-pressed", "false")

        # the content photo can go again (a texture): its remove button, a second chip click
        page.click("#content-clear")
        expect(page.locator("#content-name")).to_have_text("")
        expect(page.locator("#content-thumb")).to_be_hidden()
        expect(page.locator("#content-file")).to_be_focused()
        chelsea.click()
        expect(page.locator("#content-name")).to_have_text("chelsea")
        chelsea.click()
        expect(chelsea).to_have_attribute("aria-pressed", "false")
        expect(page.locator("#content-name")).to_have_text("")
        assert page.evaluate("state.content") is None
        expect(estimate).to_contain_text("About")  # a texture is startable
        # two photos dropped on the one-photo area: the first is taken, and that is said
        page.evaluate(_DROP_TWO_PHOTOS)
        expect(page.locator("#toast")).to_contain_text("took first.png, not the other 1")
        expect(page.locator("#content-name")).to_have_text("first.png")

        # with α = 0 the dial claimed the last β/α (its words stale), and moving it made up a
        # ratio while α stayed 0: it says there is none, and moving it sets α back to 1 first
        slider, ratio = page.locator("#strength"), page.locator("#ratio")
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#style_weight")).to_have_value("100")
        expect(ratio).to_have_text("2.0")
        expect(slider).to_have_attribute("aria-valuetext", "β/α = 100")
        page.fill("#content_weight", "0")
        expect(ratio).to_have_text("– (α is 0)")
        expect(slider).to_have_attribute("aria-valuetext", "no β/α (α is 0)")
        slider.focus()
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#content_weight")).to_have_value("1")
        expect(page.locator("#style_weight")).to_have_value("31.6")
        expect(ratio).to_have_text("1.5")
        expect(slider).to_have_attribute("aria-valuetext", "β/α = 32")
        expect(page.locator("#toast")).to_contain_text("α is 0: set to 1")
        page.fill("#style_weight", "0")  # β/α = 0: its log is -∞, said in both
        expect(ratio).to_have_text("−∞ (β is 0)")
        expect(slider).to_have_attribute("aria-valuetext", "β/α = 0 (β is 0)")
        assert errors == []


_QUEUE_LEFT_IS_STAGE_ETA = r"""(id) => {
    const eta = document.getElementById("stat-eta").textContent;
    const small = document.querySelector(`#queue li[data-id="${id}"] small`);
    if (state.watching !== id || !small || !/\d s$/.test(eta)) return false;
    if (!small.textContent.endsWith(` · ${eta} left`)) return false;
    (window.etasSeen = window.etasSeen || new Set()).add(eta);
    return window.etasSeen.size >= 3;  // the same figure, as it changes
}"""


def test_jobs_open_from_the_keyboard_and_a_deleted_one_leaves_the_stage(server):
    """Gallery thumbnails and queue entries were divs and list items with only a click
    handler; deleting the job on the stage left its title, DONE and a dead Download link
    there, with the focus on <body>; every card's buttons were just 'delete', 'edit' ..."""

    def post(seed: int, iterations: int) -> str:
        body = {
            "content": "example:chelsea",
            "styles": [{"image": "example:starry_night", "weight": 1.0}],
            "settings": {"size": 48, "iterations": iterations, "seed": seed, "device": "cpu"},
        }
        return _api(server, "POST", "/api/jobs", body)["id"]

    first, second = post(1, 2), post(2, 2)
    for job_id in (first, second):
        _until(server, job_id, lambda j: j["status"] == "done")
    title = "chelsea × starry night"
    expect = sync_api.expect
    with browser_page(server) as (page, errors):
        expect(page.locator("#gallery .card")).to_have_count(2)
        card = page.locator(f'#gallery .card[data-id="{first}"]')
        card.get_by_role("button", name=f"show {title} on the stage").focus()
        page.keyboard.press("Enter")
        expect(card).to_have_class(re.compile(r"\bcurrent\b"))
        expect(page.locator("#job-title")).to_have_text(title)
        expect(page.locator("#download")).to_be_visible()

        card.get_by_role("button", name=f"delete {title}").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#gallery .card")).to_have_count(1)
        expect(page.locator("#job-title")).to_have_text("No job selected")
        for gone in ("#job-status", "#download", "#download-settings", "#preview"):
            expect(page.locator(gone)).to_be_hidden()
        expect(page.locator("#preview-empty")).to_contain_text("Pick a photo")
        # the focus goes to the next card, and to the gallery's heading after the last
        other = page.locator(f'#gallery .card[data-id="{second}"]')
        expect(other.locator(".thumb")).to_be_focused()
        page.keyboard.press("Tab")  # re-run
        page.keyboard.press("Tab")  # edit
        page.keyboard.press("Tab")  # png
        page.keyboard.press("Tab")
        expect(other.get_by_role("button", name=f"delete {title}")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#gallery .card")).to_have_count(0)
        expect(page.locator("#gallery-heading")).to_be_focused()

        # a queued job opens on the stage from the keyboard; its cancel names it
        running, queued = post(3, 5000), post(4, 5000)
        entry = page.locator(f'#queue li[data-id="{queued}"]')
        expect(entry).to_have_count(1, timeout=30_000)
        # the running job's time left in the queue is the stage's ETA for it as its progress
        # arrives (it was the list's figure from when the job started: '– left', then stale)
        page.wait_for_function(_QUEUE_LEFT_IS_STAGE_ETA, arg=running, polling=100, timeout=30_000)
        entry.locator("button.open").focus()
        page.keyboard.press("Space")
        expect(page.locator("#job-status")).to_have_text(re.compile(r"^queued"))
        # ... and with another job on the stage, without taking the keyboard focus
        running_left = page.locator(f'#queue li[data-id="{running}"] small')
        expect(running_left).to_contain_text(" left")
        expect(running_left).not_to_have_text(running_left.inner_text(), timeout=10_000)
        expect(entry.locator("button.open")).to_be_focused()
        entry.get_by_role("button", name=f"cancel {title}").click()
        expect(page.locator("#job-status")).to_have_text("cancelled")
        _api(server, "POST", f"/api/jobs/{running}/cancel")
        _until(server, running, lambda j: j["status"] == "cancelled")
        assert errors == []


def test_the_api_page_gives_each_setting_its_default_and_range(server):
    """/api showed each setting's type and description but not what /openapi.json has: its
    default, range and choices (the README promises them)."""
    expect = sync_api.expect
    with browser_page(f"{server}/api") as (page, errors):
        settings = page.locator(
            "section.api-op", has=page.locator("h3", has_text=re.compile("^Settings$"))
        )
        size = settings.locator('li[data-field="size"]')
        expect(size).to_contain_text("default 512")
        expect(size).to_contain_text("range 16 ≤ value ≤ 16384")
        colors = settings.locator('li[data-field="preserve_colors"]')
        expect(colors).to_contain_text("default none")
        expect(colors).to_contain_text("one of none, luminance, histogram")
        beta = settings.locator('li[data-field="style_weight"]')
        expect(beta).to_contain_text("range 0 ≤ value")
        expect(settings.locator('li[data-field="seed"]')).to_contain_text("range 0 ≤ value < 2^63")
        assert errors == []
