"""HTTP API tests of the web studio through FastAPI's test client.

Covers uploads (good and bad), job validation, progress events (SSE), the queue, cancel,
resume and re-run, persistence across restarts, the safety guards and the OpenAPI contract the
page relies on. Jobs are tiny (48 px, a few iterations) so each runs in about a second.
"""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")

from fastapi.testclient import TestClient  # noqa: E402

from impasto import examples  # noqa: E402
from impasto.settings import Settings  # noqa: E402
from impasto.web.app import WebConfig, create_app  # noqa: E402
from impasto.web.config import is_loopback  # noqa: E402
from impasto.web.store import Store, is_id, sanitize_name  # noqa: E402
from impasto.web.studio import resume_settings  # noqa: E402
from tests._web_helpers import BASE, client, tiny_network  # noqa: E402, F401

POLL = 0.03
LONG = 5000  # iterations of a job that is cancelled or interrupted long before its end
TINY = {"size": 48, "iterations": 6, "device": "cpu", "seed": 3}
STATIC = Path(__file__).resolve().parents[1] / "src" / "impasto" / "web" / "static"


def png_bytes(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def upload(c: TestClient, data: bytes, name: str = "photo.png", ctype: str = "image/png"):
    return c.post("/api/files", files={"file": (name, data, ctype)})


def submit(c: TestClient, content="example:chelsea", styles=("example:starry_night",), **kw):
    body = {
        "content": content,
        "styles": [{"image": s, "weight": 1.0} for s in styles],
        "settings": {**TINY, **kw},
    }
    return c.post("/api/jobs", json=body)


def wait(
    c: TestClient,
    job_id: str,
    until=("done", "failed", "cancelled", "interrupted"),
    timeout: float = 90.0,
    cond=None,
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/api/jobs/{job_id}").json()
        if (cond is not None and cond(job)) or (cond is None and job["status"] in until):
            return job
        assert time.monotonic() < deadline, f"timed out waiting: {job}"
        time.sleep(POLL)


def detail_text(r) -> str:
    """A 4xx answer's detail as one string: a line, or pydantic's list of problems."""
    detail = r.json()["detail"]
    if isinstance(detail, list):
        return "; ".join(".".join(map(str, d["loc"])) + ": " + d["msg"] for d in detail)
    return detail


def sse_events(c: TestClient, url: str) -> list[dict]:
    events = []
    with c.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


# --------------------------------------------------------------------------------------------
# pure helpers


def test_sanitize_name_and_ids():
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("C:\\Users\\me\\cat.jpg") == "cat.jpg"
    assert sanitize_name("a\x00b\u202ec.png") == "abc.png"
    assert sanitize_name("...hidden") == "hidden"
    assert sanitize_name("") == "image"
    assert len(sanitize_name("x" * 500)) == 100
    assert is_id("0" * 32) and not is_id("../" + "0" * 29) and not is_id("A" * 32)


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert not is_loopback("example.org")


def test_resume_settings_counts_remaining_full_size_iterations():
    s = Settings(size=64, iterations=30, pyramid_start=32, pyramid_iterations=10).to_dict()
    # 10 coarse steps + 5 full-size steps done of 40: 25 full-size iterations left, no pyramid.
    out = resume_settings(s, {"step": 15, "total_steps": 40})
    assert (out["iterations"], out["pyramid_start"], out["init"]) == (25, 0, "noise")
    assert resume_settings(s, {"step": 3, "total_steps": 40})["iterations"] == 30
    assert resume_settings(s, {"step": 40, "total_steps": 40})["iterations"] == 1
    Settings.from_dict(out)  # still valid


# --------------------------------------------------------------------------------------------
# page, config, OpenAPI


def test_page_config_examples_and_openapi(tmp_path):
    with client(tmp_path) as c:
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert c.head("/").status_code == 200  # was 405
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert c.get("/static/app.js").status_code == 200
        assert c.get("/api").status_code == 200
        assert c.get("/docs").status_code == 404  # Swagger UI would load assets from a CDN

        cfg = c.get("/api/config").json()
        assert isinstance(cfg["limits"]["max_size"], int)  # was 10723.0
        weights = {"style_weight": Settings().beta, "tv_weight": Settings().tv}
        assert cfg["defaults"] == {**Settings().to_dict(), **weights}
        assert cfg["choices"]["loss_scale"] == ["normalized", "paper"]
        assert cfg["style_weight_defaults"] == {"normalized": 10.0, "paper": 1e3}
        assert cfg["tv_weight_defaults"] == {"normalized": 3.0, "paper": 0.0}
        assert "luminance" in cfg["choices"]["preserve_colors"]
        import torch

        devices = cfg["choices"]["device"]  # only what this server has (was cuda/mps always)
        assert devices[:2] == ["auto", "cpu"]
        assert ("cuda" in devices) == torch.cuda.is_available()
        assert cfg["limits"]["max_upload_bytes"] == 25 * 1024 * 1024
        refs = {e["ref"]: e for e in c.get("/api/examples").json()}
        assert refs["example:chelsea"]["kind"] == "content"
        assert refs["example:starry_night"]["kind"] == "style"
        assert (refs["example:chelsea"]["width"], refs["example:chelsea"]["height"]) == (451, 300)
        thumb = c.get(refs["example:starry_night"]["thumb_url"])
        with Image.open(io.BytesIO(thumb.content)) as im:
            assert im.format == "PNG" and max(im.size) == 256
        full = c.get(refs["example:chelsea"]["url"])
        assert full.content == examples.path("chelsea").read_bytes()
        assert c.get("/api/examples/passwd").status_code == 404
        assert c.get("/api/examples/..%2F..%2Fsettings").status_code == 404

        spec = c.get("/openapi.json").json()
    # Every API URL the page uses is a documented path.
    js = (STATIC / "app.js").read_text()
    used = set(re.findall(r"[`\"](/api/[^`\"?]*)", js))
    assert len(used) >= 8
    documented = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in spec["paths"]]
    for url in used:
        concrete = re.sub(r"\$\{[^}]+\}", "x" * 32, url)
        assert any(p.match(concrete) for p in documented), url
    for path in (
        "/api/files",
        "/api/jobs",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/resume",
    ):
        assert path in spec["paths"]


# --------------------------------------------------------------------------------------------
# uploads


def test_upload_stores_decoded_image_under_generated_id(tmp_path):
    data = png_bytes(64, 48)
    with client(tmp_path) as c:
        r = upload(c, data, name="../../etc/passwd.png", ctype="text/plain")
        assert r.status_code == 201, r.text
        info = r.json()
        assert is_id(info["id"])
        assert info["name"] == "passwd.png"
        assert (info["width"], info["height"], info["bytes"]) == (64, 48, len(data))
        assert info["media_type"] == "image/png"  # from decoding, not the client's text/plain
        assert c.get(info["url"]).content == data
        with Image.open(io.BytesIO(c.get(info["thumb_url"]).content)) as im:
            assert im.size == (64, 48)
        # JPEG content under a .png name is stored as what it is
        buf = io.BytesIO()
        Image.new("RGB", (30, 20), "red").save(buf, format="JPEG")
        jpeg = upload(c, buf.getvalue(), name="fake.png").json()
        assert jpeg["media_type"] == "image/jpeg"
    names = sorted(p.name for p in (tmp_path / "files").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{32}\.(png|jpg)", n) for n in names), names
    assert not list((tmp_path / "tmp").iterdir())


def _turned(fmt: str, grey: bool) -> bytes:
    """A 48x32 image (a bright block at its top left) stored with EXIF orientation 6."""
    arr = np.zeros((32, 48), np.uint8)
    arr[:8, :12] = 255
    im = Image.fromarray(arr) if grey else Image.fromarray(np.stack([arr] * 3, -1))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    if fmt == "TIFF":  # orientation as a TIFF tag, uncompressed: Pillow memory-maps such strips
        im.save(buf, format="TIFF", tiffinfo={274: 6})
    else:
        im.save(buf, format=fmt, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "grey"), [("JPEG", False), ("TIFF", True), ("TIFF", False)])
def test_a_turned_upload_is_sized_and_thumbed_as_the_engine_sees_it(tmp_path, fmt, grey):
    """A TIFF with orientation 6 was recorded landscape (its size swapped twice), and a grey
    one's thumbnail came out scrambled; a job's size checks read the recorded size."""
    from impasto.image import load_image

    data = _turned(fmt, grey)
    path = tmp_path / f"turned.{fmt.lower()}"
    path.write_bytes(data)
    engine = load_image(path).rgb
    assert tuple(engine.shape[-2:]) == (48, 32)  # portrait: H 48, W 32
    with client(tmp_path / "data") as c:
        info = upload(c, data, name=path.name).json()
        assert (info["width"], info["height"]) == (32, 48)
        with Image.open(io.BytesIO(c.get(info["thumb_url"]).content)) as im:
            thumb = np.asarray(im.convert("L"), dtype=np.float32)
    assert thumb.shape == (48, 32)
    expected = engine[0].mean(0).numpy() * 255
    assert np.abs(thumb - expected).mean() < 6  # the block at the top right, as the engine has it


def _bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels, with a tiny (truncated) body."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + tag
            + body
            + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize(
    "data, name, status, words",
    [
        (b"hello, not an image", "x.png", 415, "not a supported image"),
        (b"", "empty.png", 415, "empty"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "a.eps", 415, "supported"),
        (png_bytes()[:200], "truncated.png", 422, "upload"),
        (_bomb_png(100_000, 100_000), "bomb.png", 413, "pixels"),
        (png_bytes(80, 80), "big.png", 413, "6,400 pixels; this server's limit (max_pixels) is"),
        # a real PNG cut short was 'not a supported image'
        (png_bytes(60, 60)[:500], "cut.png", 422, "cannot decode the upload (damaged or trunc"),
    ],
)
def test_bad_uploads_are_refused_with_json(tmp_path, data, name, status, words):
    with client(tmp_path, max_pixels=5000) as c:
        r = upload(c, data, name=name)
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]
        assert c.get("/api/jobs").json() == []
    assert not [p for p in (tmp_path / "files").iterdir()]  # nothing kept
    assert not list((tmp_path / "tmp").iterdir())


def test_an_upload_of_two_files_is_refused_not_cut_to_the_last(tmp_path):
    """A form with two ``file`` parts stored the last one and said nothing of the first."""
    with client(tmp_path) as c:
        two = [("file", ("a.png", png_bytes(16, 16), "image/png"))] * 2
        r = c.post("/api/files", files=two)
        assert r.status_code == 422 and "one image per upload" in r.json()["detail"], r.text
        assert upload(c, png_bytes(16, 16)).status_code == 201
    assert len(list((tmp_path / "files").iterdir())) == 2  # the one upload and its thumbnail


def test_upload_byte_limit(tmp_path):
    with client(tmp_path, max_upload_bytes=20_000) as c:
        big = png_bytes(200, 200)  # ~120 kB of noise
        assert len(big) > 20_000 + 64 * 1024
        r = upload(c, big)  # refused on the body's length, and named by the upload limit
        assert r.status_code == 413 and "20,000-byte upload limit" in r.json()["detail"]
        medium = png_bytes(100, 100)  # over the file limit, under the body limit
        assert 20_000 < len(medium) < 20_000 + 64 * 1024
        r = upload(c, medium)
        assert r.status_code == 413 and "upload limit" in r.json()["detail"]
        assert upload(c, png_bytes(16, 16)).status_code == 201
        assert c.post("/api/files").status_code == 422  # no file field
    exact = png_bytes(40, 40)  # a file of exactly the limit is accepted, one byte more is not
    with client(tmp_path / "exact", max_upload_bytes=len(exact)) as c:
        assert upload(c, exact).status_code == 201
    with client(tmp_path / "over", max_upload_bytes=len(exact) - 1) as c:
        assert upload(c, exact).status_code == 413


# --------------------------------------------------------------------------------------------
# job validation


C = "example:chelsea"


@pytest.mark.parametrize(
    "body, words",
    [
        ({"content": C, "settings": {"size": 5}}, "settings.size: Input should be greater"),
        ({"content": C, "settings": {"colour": "x"}}, "settings.colour: Unexpected keyword"),
        ({"content": C, "settings": {"preserve_colors": "sepia"}}, "settings.preserve_colors"),
        ({"content": C, "settings": {"init": "/etc/passwd"}}, "init: must be one of"),
        ({"content": C, "settings": {"weights": "/tmp/w.pth"}}, "weights"),
        ({"content": C, "settings": {"size": 9000}}, "at most 4096"),
        ({"content": C, "settings": {"device": "tpu"}}, "settings.device"),
        # issue 9 item 2: wrong value types were a plain-text 500
        ({"content": C, "settings": {"size": "abc"}}, "settings.size: Input should be a valid"),
        ({"content": C, "settings": {"size": None}}, "settings.size"),
        ({"content": C, "settings": {"size": 64.7}}, "settings.size"),
        ({"content": C, "settings": {"content_layers": None}}, "settings.content_layers"),
        ({"content": C, "settings": {"style_layers": "relu1_1"}}, "settings.style_layers"),
        ({"content": C, "settings": {"style_layers": ["relu9_9"]}}, "unknown layer"),
        ({"content": C, "settings": {"seed": "x"}}, "settings.seed"),
        # item 10: alpha = beta = 0 was accepted and failed in the worker
        ({"content": C, "settings": {"content_weight": 0, "style_weight": 0}}, "both 0"),
        # item 9: the iteration limit was per scale; the work across the pyramid is bounded
        (
            {
                "content": C,
                "settings": {
                    "size": 4096,
                    "pyramid_start": 16,
                    "pyramid_iterations": 10000,
                    "pyramid_factor": 1.1,
                },
            },
            "limit (max_iterations)",
        ),
        (
            {"content": C, "settings": {"size": 4096, "iterations": 2000, "pyramid_start": 0}},
            "limit (max_work)",
        ),
        ({"content": "/etc/passwd"}, "unknown image"),
        ({"content": "example:../../settings"}, "unknown image"),
        ({"content": "0" * 32}, "unknown image"),
        ({"content": C, "styles": [{"image": "../x.jpg"}]}, "unknown image"),
        ({"content": None, "styles": []}, "nothing to do"),
        ({"content": C, "settings": ["size", 64]}, "settings"),
        ({"content": C, "styles": [{"image": "example:coffee", "weight": 0}]}, "weight"),
        ({"content": C, "styles": [{"image": "example:coffee", "weight": None}]}, "weight"),
        # a photo with no painting was queued and failed in the worker
        ({"content": C, "styles": []}, "give at least one style image"),
        ({"content": None, "settings": {"preserve_colors": "luminance"}}, "needs a content image"),
    ],
)
def test_invalid_jobs_are_422_naming_the_problem(tmp_path, body, words):
    body = {"styles": [{"image": "example:starry_night", "weight": 1}], **body}  # unless given
    with client(tmp_path, run_jobs=False, max_size=4096) as c:  # --max-size 4096
        for url in ("/api/jobs", "/api/estimate"):
            r = c.post(url, json=body)
            assert r.status_code == 422, r.text
            assert words in detail_text(r)
            assert "Value error, " not in detail_text(r)  # pydantic's prefix to our own words
        assert c.get("/api/jobs").json() == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_422_naming_the_field_not_a_bare_500(tmp_path, number):
    """The validation error echoes the number it refused, and JSON has no NaN: FastAPI's own
    handler then failed, a plain-text 500."""
    style = {"image": "example:starry_night", "weight": 1}
    bodies = {
        "/api/jobs": {"content": C, "styles": [style], "settings": {"style_weight": "N"}},
        "/api/estimate": {"content": C, "styles": [{**style, "weight": "N"}]},
        "/api/batches": {"contents": [C], "styles": [C], "settings": {"tv_weight": "N"}},
    }
    with client(tmp_path, run_jobs=False) as c:
        job = submit(c).json()["id"]
        bodies[f"/api/jobs/{job}/rerun"] = {"settings": {"content_weight": "N"}}
        bodies = {url: json.dumps(b).replace('"N"', number) for url, b in bodies.items()}
        for url, body in bodies.items():
            r = c.post(url, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (url, r.text)
            detail = r.json()["detail"]
            assert any("weight" in str(e["loc"][-1]) for e in detail), (url, detail)
            assert isinstance(detail[0]["input"], str), detail  # spelled, e.g. "nan"


def test_a_data_directory_that_cannot_be_written_mid_run_is_a_json_507(tmp_path):
    """Uploads into a data directory made unwritable while the server runs were a plain-text
    500 (here ``tmp/`` is replaced by a file: the tests run as root, who ignores modes)."""
    with client(tmp_path, run_jobs=False) as c:
        tmp = tmp_path / "tmp"
        tmp.rmdir()
        tmp.write_text("in the way")
        r = upload(c, png_bytes())
        assert r.status_code == 507, r.text
        assert r.json()["detail"].startswith("the server cannot store data: ")
        tmp.unlink()
        tmp.mkdir()
        assert upload(c, png_bytes()).status_code == 201


def test_what_the_engine_would_refuse_is_refused_at_submission_in_the_users_words(tmp_path):
    """Found by an exploratory user: a photo too thin for the size was accepted, then failed
    at run time (and again on each re-run); a tiny max_memory was blamed on the size and the
    server's budget; a painting's enlargement note named the stored file, not the upload."""
    with client(tmp_path) as c:
        thin = upload(c, png_bytes(1000, 3), name="thin.png").json()["id"]
        for url, body in (
            ("/api/jobs", {"content": thin, "styles": [{"image": C}], "settings": TINY}),
            ("/api/estimate", {"content": thin, "styles": [{"image": C}], "settings": TINY}),
            ("/api/batches", {"contents": [thin], "styles": [C], "settings": TINY}),
        ):
            r = c.post(url, json=body)
            assert r.status_code == 422, (url, r.text)
            assert "48x1 px image at this aspect ratio, too small for layer relu5_1" in r.text
        body = {"content": C, "styles": [{"image": C}], "settings": {**TINY, "max_memory": 1}}
        r = c.post("/api/estimate", json=body)
        assert r.status_code == 422
        text = detail_text(r)
        assert text.startswith("max_memory: a budget of 1 B leaves no room beyond what the")
        assert "raise it to at least" in text and "--" not in text  # the settings' own names
        small = upload(c, png_bytes(40, 40, seed=4), name="my painting.png").json()["id"]
        job = wait(c, submit(c, styles=(small,)).json()["id"])
        notes = " ".join(n["text"] for n in job["notes"])
        assert "painting my painting.png (40x40 px) is enlarged 1.2x" in notes, notes
        assert small not in notes
    with client(tmp_path, run_jobs=False) as c:
        assert c.get("/api/jobs").json()[0]["status"] == "done"  # the only job: the good one


def test_numeric_strings_coerce_and_estimate_is_offered(tmp_path):
    with client(tmp_path, run_jobs=False) as c:
        body = {"content": C, "styles": [{"image": "example:starry_night"}]}
        est = c.post("/api/estimate", json={**body, "settings": {"size": "128"}})
        assert est.status_code == 200, est.text
        est = est.json()
        # chelsea is 451 x 300: at 128 px the default pyramid (from 128 px) has one scale, so
        # the default full-size iterations at 128 x 85
        its = Settings().iterations
        assert est["iterations"] == its and est["work"] == pytest.approx(128 * 85 * its / 1e6)
        assert est["device"] == "cpu" and est["seconds"] > 0 and est["measured"] is False
        r = c.post("/api/jobs", json={**body, "settings": {"size": "128"}})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["settings"]["size"] == 128
        assert job["estimate"] == pytest.approx(est["seconds"])  # the queue shows it


def test_an_example_may_be_named_by_its_file_name_as_on_the_cli(tmp_path):
    """``example:chelsea.png`` names the bundled example everywhere (impasto.inputs); the web
    read the prefix by hand and refused it as an unknown image."""
    with client(tmp_path, run_jobs=False) as c:
        style = {"image": "example:starry_night.jpg"}
        body = {"content": "example:chelsea.png", "styles": [style], "settings": {"size": 64}}
        assert c.post("/api/estimate", json=body).status_code == 200
        r = c.post("/api/jobs", json=body)
        assert r.status_code == 201, r.text
    content, (painting,) = r.json()["content"], r.json()["styles"]
    assert content["name"] == "chelsea"
    assert content["thumb_url"] == "/api/examples/chelsea/thumb.png"
    assert painting["name"] == "starry night"


def test_malformed_and_unknown_ids(tmp_path):
    with client(tmp_path) as c:
        for url in (
            "/api/jobs/" + "0" * 32,
            "/api/jobs/nope/result.png",
            "/api/files/" + "1" * 32,
            "/api/jobs/" + "0" * 32 + "/events",
        ):
            r = c.get(url)
            assert r.status_code == 404 and "detail" in r.json(), url
        assert c.post("/api/jobs/" + "0" * 32 + "/cancel").status_code == 404
        assert c.delete("/api/jobs/" + "0" * 32).status_code == 404
        assert c.get("/api/jobs?status=bogus").status_code == 422
        r = c.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422


# --------------------------------------------------------------------------------------------
# running jobs


def test_job_progress_events_preview_result_and_settings(tmp_path):
    with client(tmp_path, preview_every=2) as c:
        blocker = submit(c, iterations=LONG).json()  # keeps the worker busy until cancelled
        wait(c, blocker["id"], cond=lambda j: j["status"] == "running")
        photo = upload(c, examples.path("chelsea").read_bytes(), name="cat.png").json()
        r = submit(c, content=photo["id"], styles=("example:starry_night", "example:great_wave"))
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "queued" and job["position"] == 1
        assert job["settings"]["seed"] == 3
        assert [s["ref"] for s in job["styles"]] == ["example:starry_night", "example:great_wave"]

        def cancel_blocker():
            time.sleep(0.3)
            c.post(f"/api/jobs/{blocker['id']}/cancel")

        threading.Thread(target=cancel_blocker).start()
        events = sse_events(c, f"/api/jobs/{job['id']}/events")
        assert events[0]["status"] == "queued" and events[0]["position"] == 1
        assert events[-1]["status"] == "done"
        running = [e for e in events if e["status"] == "running" and e["step"] > 0]
        steps = [e["step"] for e in running]
        assert steps == sorted(steps) and steps[-1] == 6 and len(steps) >= 3
        assert all(e["total_steps"] == 6 for e in running)
        assert all(e["loss"] > 0 and set(e["losses"]) >= {"content", "style"} for e in running)
        assert all(e["eta"] is None or e["eta"] >= 0 for e in running)
        versions = [e["preview_version"] for e in events]
        assert versions == sorted(versions) and len(set(versions)) >= 4  # steps 1, 2, 4, 6 + done
        assert all(f"v={e['preview_version']}" in e["preview_url"] for e in running)

        done = events[-1]
        assert done["result_url"] and (done["width"], done["height"]) == (48, 32)
        with Image.open(io.BytesIO(c.get(done["preview_url"]).content)) as im:
            assert im.size == (48, 32)
        res = c.get(done["result_url"] + "?download=true")
        assert res.headers["content-type"] == "image/png"
        assert "attachment" in res.headers["content-disposition"]
        with Image.open(io.BytesIO(res.content)) as im:
            meta = json.loads(im.text["impasto"])
        assert meta["settings"]["seed"] == 3 and meta["settings"]["size"] == 48
        assert meta["inputs"]["content"] == "cat.png"  # display names, not storage paths
        got = c.get(done["settings_url"]).json()
        # the settings as run: the weights in use filled in
        assert Settings.from_dict(got["settings"]) == Settings.from_dict(
            Settings(**TINY).resolved()
        )
        assert [s["name"] for s in got["inputs"]["styles"]] == ["starry night", "great wave"]
        # the stream of a finished job gives its final view and ends
        assert [e["status"] for e in sse_events(c, f"/api/jobs/{job['id']}/events")] == ["done"]


def test_queue_runs_one_job_at_a_time_and_cancels_waiting_ones(tmp_path):
    with client(tmp_path) as c:
        a = submit(c, iterations=LONG).json()
        b = submit(c).json()
        d = submit(c, seed=None).json()
        assert isinstance(d["settings"]["seed"], int)  # drawn at submission, recorded
        assert b["position"] in (1, 2) and d["position"] == b["position"] + 1
        wait(c, a["id"], cond=lambda j: j["status"] == "running" and j["step"] >= 1)
        assert c.get(f"/api/jobs/{b['id']}").json()["position"] == 1
        assert c.get(f"/api/jobs/{d['id']}").json()["status"] == "queued"
        cancelled = c.post(f"/api/jobs/{b['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["position"] is None
        assert c.get(f"/api/jobs/{d['id']}").json()["position"] == 1
        c.post(f"/api/jobs/{a['id']}/cancel")
        a_end, d_done = wait(c, a["id"]), wait(c, d["id"])
        assert (a_end["status"], d_done["status"]) == ("cancelled", "done")
        assert d_done["started"] >= a_end["finished"]  # never two at once on one device
        assert c.get(f"/api/jobs/{b['id']}").json()["status"] == "cancelled"
        listed = c.get("/api/jobs").json()
        assert [j["id"] for j in listed] == [d["id"], b["id"], a["id"]]  # newest first
        cancelled_ids = [j["id"] for j in c.get("/api/jobs?status=cancelled").json()]
        assert cancelled_ids == [b["id"], a["id"]]


def test_cancel_running_then_resume_and_rerun(tmp_path):
    with client(tmp_path, preview_every=1) as c:
        job = submit(c, iterations=LONG, size=64).json()
        wait(c, job["id"], cond=lambda j: j["step"] >= 2)
        c.post(f"/api/jobs/{job['id']}/cancel")
        stopped = wait(c, job["id"])
        assert stopped["status"] == "cancelled" and stopped["can_resume"]
        assert 2 <= stopped["step"] < LONG
        assert stopped["eta"] is None  # it kept the running job's last estimate
        assert c.get(stopped["preview_url"]).headers["content-type"] == "image/png"
        assert c.get(f"/api/jobs/{job['id']}/result.png").status_code == 404
        # a cancelled job offers its last image for download (was: nothing to download)
        last = c.get(stopped["partial_url"] + "?download=true")
        assert last.status_code == 200 and "attachment" in last.headers["content-disposition"]
        with Image.open(io.BytesIO(last.content)) as im:
            assert im.size == (64, 43) and json.loads(im.text["impasto"])["partial"] is True

        resumed = c.post(f"/api/jobs/{job['id']}/resume")
        assert resumed.status_code == 201, resumed.text
        resumed = resumed.json()
        assert resumed["origin"] == "resume" and resumed["parent"] == job["id"]
        assert resumed["settings"]["iterations"] == LONG - stopped["step"]
        # its settings name the real start image (were: init noise)
        start_name = f"impasto-{job['id'][:8]}-partial.png"
        assert resumed["settings"]["init"] == start_name
        shown = c.get(resumed["settings_url"]).json()["settings"]
        assert shown["init"] == start_name and shown["pyramid_start"] == 0
        assert c.get(f"/api/jobs/{job['id']}").json()["can_resume"] is False  # resumed once
        wait(c, resumed["id"], cond=lambda j: j["step"] >= 2)
        c.post(f"/api/jobs/{resumed['id']}/cancel")
        assert wait(c, resumed["id"])["status"] == "cancelled"
        # the parent again: each click queued another copy of the same continuation; the
        # resume, further on, is the one to resume
        twice = c.post(f"/api/jobs/{job['id']}/resume")
        assert twice.status_code == 409 and resumed["id"] in twice.json()["detail"]
        short = c.post(f"/api/jobs/{resumed['id']}/resume", json={"settings": {"iterations": 3}})
        assert short.status_code == 201, short.text
        done = wait(c, short.json()["id"])
        assert done["status"] == "done", done["error"]
        assert c.get(done["settings_url"]).json()["resumed_from_partial"] is True
        with Image.open(io.BytesIO(c.get(done["result_url"]).content)) as im:
            meta = im.text["impasto"]
        assert str(tmp_path) not in meta and "-partial.png" in meta  # no server paths
        assert c.post(f"/api/jobs/{done['id']}/resume").status_code == 409
        assert done["partial_url"] is None
        assert c.get(f"/api/jobs/{done['id']}/partial.png").status_code == 404

        again = c.post(f"/api/jobs/{job['id']}/rerun", json={"settings": {"iterations": 3}})
        assert again.status_code == 201
        again = again.json()
        assert again["origin"] == "rerun" and again["settings"]["iterations"] == 3
        assert again["settings"]["seed"] == 3
        assert wait(c, again["id"])["status"] == "done"
        bad = c.post(f"/api/jobs/{job['id']}/rerun", json={"settings": {"size": 1}})
        assert bad.status_code == 422


def test_a_job_shows_the_weights_it_ran_with_and_a_rerun_follows_a_new_loss_scale(tmp_path):
    """A job left to the default weights showed them as null: the page read beta/alpha 0 and
    its edit kept the form's previous beta. Views show the weights in use; the stored settings
    keep "the default", so a re-run that changes the loss scale takes that scale's weights."""
    with client(tmp_path) as c:
        job = wait(c, submit(c).json()["id"])
        assert (job["settings"]["style_weight"], job["settings"]["tv_weight"]) == (10.0, 3.0)
        shown = c.get(job["settings_url"]).json()["settings"]
        assert (shown["style_weight"], shown["tv_weight"]) == (10.0, 3.0)
        paper = c.post(f"/api/jobs/{job['id']}/rerun", json={"settings": {"loss_scale": "paper"}})
        paper = wait(c, paper.json()["id"])
        assert paper["status"] == "done", paper["error"]
        assert (paper["settings"]["style_weight"], paper["settings"]["tv_weight"]) == (1e3, 0.0)
        given = wait(c, submit(c, style_weight=20.0).json()["id"])
        assert given["settings"]["style_weight"] == 20.0  # a weight given stays as given


def test_rerun_reproduces_a_result_and_delete_removes_it(tmp_path):
    with client(tmp_path) as c:
        first = wait(c, submit(c).json()["id"])
        second = wait(c, c.post(f"/api/jobs/{first['id']}/rerun").json()["id"])
        assert second["settings"] == first["settings"]

        def pixels(job):
            with Image.open(io.BytesIO(c.get(job["result_url"]).content)) as im:
                return np.asarray(im.convert("RGB"), dtype=np.int16)

        assert np.abs(pixels(first) - pixels(second)).mean() < 1.0  # same seed, same image
        files_before = set((tmp_path / "files").iterdir())
        assert c.delete(f"/api/jobs/{first['id']}").status_code == 204
        assert c.get(f"/api/jobs/{first['id']}").status_code == 404
        assert len(set((tmp_path / "files").iterdir())) < len(files_before)
        running = submit(c, iterations=LONG).json()
        wait(c, running["id"], cond=lambda j: j["status"] == "running")
        assert c.delete(f"/api/jobs/{running['id']}").status_code == 409
        c.post(f"/api/jobs/{running['id']}/cancel")
        assert wait(c, running["id"])["status"] == "cancelled"


# --------------------------------------------------------------------------------------------
# persistence


def test_restart_keeps_results_and_marks_interrupted_jobs(tmp_path):
    with client(tmp_path, preview_every=1) as c:
        done = wait(c, submit(c).json()["id"])
        result = c.get(done["result_url"]).content
        long = submit(c, iterations=LONG, size=64).json()
        wait(c, long["id"], cond=lambda j: j["step"] >= 2)
    # leaving the client stops the server: the running job is interrupted, its partial kept

    # A crash leaves rows behind as they were: simulate one job "running" and one "queued".
    store = Store(tmp_path)
    crashed = store.create_job(
        device="cpu",
        settings={**Settings(**TINY).to_dict()},
        content="example:coffee",
        styles=[{"image": "example:the_scream", "weight": 1.0}],
    )
    store.update_job(crashed.id, status="running", started=time.time())
    waiting = store.create_job(
        device="cpu",
        settings=Settings(**TINY).to_dict(),
        content="example:rocket",
        styles=[{"image": "example:composition_viii", "weight": 1.0}],
    )
    del store

    with client(tmp_path) as c:
        again = c.get(f"/api/jobs/{done['id']}").json()
        assert again["status"] == "done"
        assert c.get(again["result_url"]).content == result

        stopped = c.get(f"/api/jobs/{long['id']}").json()
        assert stopped["status"] == "interrupted" and stopped["can_resume"]
        assert "server stopped" in stopped["error"]
        crash = c.get(f"/api/jobs/{crashed.id}").json()
        assert crash["status"] == "interrupted" and not crash["can_resume"]
        assert c.post(f"/api/jobs/{crashed.id}/resume").status_code == 409
        assert wait(c, waiting.id)["status"] == "done"  # queued jobs run after a restart

        resumed = c.post(f"/api/jobs/{long['id']}/resume").json()
        assert resumed["settings"]["iterations"] == LONG - stopped["step"]
        c.post(f"/api/jobs/{resumed['id']}/cancel")
        rerun = c.post(f"/api/jobs/{crashed.id}/rerun").json()
        assert wait(c, rerun["id"])["status"] == "done"
        assert c.get(f"/api/jobs/{resumed['id']}").json()["status"] == "cancelled"


# --------------------------------------------------------------------------------------------
# safety


def test_host_and_origin_guards(tmp_path):
    app = create_app(WebConfig(data_dir=tmp_path))
    with TestClient(app, base_url="http://evil.example") as c:
        r = c.get("/api/config")
        assert r.status_code == 400  # Starlette's TrustedHostMiddleware
    with TestClient(app, base_url="http://localhost:8000") as c:
        assert c.get("/api/config").status_code == 200
        r = c.post(
            "/api/jobs",
            json={"content": "example:chelsea"},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403
        r = upload(c, png_bytes(), name="x.png")
        assert r.status_code == 201
        r = c.post(
            "/api/files",
            files={"file": ("x.png", png_bytes(), "image/png")},
            headers={"origin": "null"},
        )
        assert r.status_code == 403
        ok = c.get("/api/jobs", headers={"origin": "http://evil.example"})
        assert ok.status_code == 200  # reads are not writes (CORS keeps them unreadable)
    open_app = create_app(WebConfig(data_dir=tmp_path / "open", allowed_hosts=None))
    with TestClient(open_app, base_url="http://studio.lan") as c:
        assert c.get("/api/config").status_code == 200


def test_json_body_limit(tmp_path):
    with client(tmp_path, max_upload_bytes=1000) as c:
        body = {"content": "example:chelsea", "settings": {}, "pad": "x" * 100_000}
        r = c.post("/api/jobs", json=body)
        assert r.status_code == 413

        def chunks():  # no content-length: counted while received
            yield b'{"content": "example:chelsea", "pad": "'
            for _ in range(100):
                yield b"x" * 1000
            yield b'"}'

        r = c.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413  # named by the upload limit the server was given
        assert r.json()["detail"] == "request over the 1,000-byte upload limit"
        assert c.get("/api/jobs").json() == []


def test_a_key_a_request_does_not_know_is_422_naming_it(tmp_path):
    """A user's misspelt keys were dropped without a word: "contnet" ran a texture with no
    photo, a rerun's "setings" re-ran the old settings, a style's "wieght" kept weight 1.
    Unknown keys inside settings were refused already; now every request body refuses them."""
    style = {"image": "example:starry_night"}
    bodies = {
        "/api/jobs": {"contnet": C, "styles": [style], "settings": TINY},
        "/api/estimate": {"content": C, "styles": [{**style, "wieght": 3}], "settings": TINY},
        "/api/batches": {"contents": [C], "styles": [C], "settings": TINY, "extra": 1},
        "/api/batches/estimate": {"contentz": [C], "contents": [C], "styles": [C]},
    }
    with client(tmp_path, run_jobs=False) as c:
        job = submit(c).json()["id"]
        bodies[f"/api/jobs/{job}/rerun"] = {"setings": {"size": 96}}
        bodies[f"/api/jobs/{job}/resume"] = {"settings": {}, "x": 1}
        for url, body in bodies.items():
            r = c.post(url, json=body)
            assert r.status_code == 422, (url, r.text)
            (problem,) = r.json()["detail"]
            assert problem["type"] == "extra_forbidden", (url, problem)
            assert problem["loc"][-1] in ("contnet", "wieght", "extra", "contentz", "setings", "x")
        assert [j["id"] for j in c.get("/api/jobs").json()] == [job]  # nothing else queued
        assert c.get("/api/batches").json() == []
