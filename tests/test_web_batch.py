"""Batches in the web studio: several photos x several paintings queued as ONE entry.

Through FastAPI's test client with a tiny random-weight VGG19 (the server's ``weights``), 32-48 px
images and a few iterations. Waiting is done on the batch's Server-Sent Events (the stream ends
at the batch's final status), never by sleeping. Covers the cross product and its names, per-job
state, results one by one and as a zip, validation and the work limit over all jobs, cancel
(queued and running) and resume, a restart that resumes an interrupted batch without redoing a
done job, delete, the restart policy of the batch store and the OpenAPI document.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")

from fastapi.testclient import TestClient  # noqa: E402

from impasto.batch import manifest  # noqa: E402
from impasto.batch.jobs import seed_of  # noqa: E402
from impasto.errors import SettingsError  # noqa: E402
from impasto.settings import Settings  # noqa: E402
from impasto.web.app import WebConfig  # noqa: E402
from impasto.web.batches import BatchStore  # noqa: E402
from impasto.web.limits import check_batch_rules, job_work  # noqa: E402
from impasto.web.speed import START_SECONDS  # noqa: E402
from tests._web_helpers import BASE, client, tiny_network  # noqa: E402, F401

SMALL = {"size": 32, "iterations": 3, "device": "cpu"}
SLOWER = {"size": 48, "iterations": 40, "device": "cpu"}  # long enough to stop between jobs
LONG_JOB = {"size": 48, "iterations": 5000, "device": "cpu", "seed": 1}
STATIC = Path(__file__).resolve().parents[1] / "src" / "impasto" / "web" / "static"


def upload(c: TestClient, name: str, w: int = 64, h: int = 48, seed: int = 0) -> str:
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    r = c.post("/api/files", files={"file": (name, buf.getvalue(), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def queue_batch(c: TestClient, contents, styles, **settings) -> dict:
    body = {"contents": list(contents), "styles": list(styles), "settings": settings or SMALL}
    r = c.post("/api/batches", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def follow(c: TestClient, batch_id: str, on_view=None) -> list[dict]:
    """The batch's views from its event stream, until its final status (or ``on_view`` says
    to stop listening by returning True)."""
    views = []
    with c.stream("GET", f"/api/batches/{batch_id}/events") as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                views.append(json.loads(line[5:]))
                if on_view is not None and on_view(views[-1]):
                    break
    return views


def follow_job(c: TestClient, job_id: str) -> dict:
    with c.stream("GET", f"/api/jobs/{job_id}/events") as r:
        last = None
        for line in r.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
    return last


def start_long_job(c: TestClient) -> dict:
    """A single job that runs until cancelled: what is queued after it waits."""
    body = {"content": "example:coffee", "styles": [{"image": "example:great_wave"}]}
    r = c.post("/api/jobs", json={**body, "settings": LONG_JOB})
    assert r.status_code == 201, r.text
    return r.json()


def done_counts(data_dir: Path, batch_id: str) -> Counter:
    """How many ``done`` records each job has in the batch's manifest."""
    path = BatchStore(data_dir).outdir(batch_id) / manifest.MANIFEST
    return Counter(r["id"] for r in manifest.read(str(path)) if r["status"] == "done")


# --------------------------------------------------------------------------------------------


def test_check_batch_rules_counts_the_work_of_every_job(tmp_path):
    s = Settings(size=48, iterations=4, pyramid_start=0)
    one, _ = job_work(s, (451, 300))
    config = WebConfig(data_dir=tmp_path, max_work=2.5 * one)
    assert check_batch_rules(s, [(451, 300)] * 2, config) == pytest.approx(2 * one)
    with pytest.raises(SettingsError, match=r"3 jobs.*max_work"):
        check_batch_rules(s, [(451, 300)] * 3, config)
    with pytest.raises(SettingsError, match="size"):  # every job's own rules still apply
        check_batch_rules(s.replace(size=99), [(451, 300)], WebConfig(tmp_path, max_size=64))


def test_batch_store_restart_policy(tmp_path):
    store = BatchStore(tmp_path)
    made = {
        status: store.create(device="cpu", settings={}, contents=["c"], styles=["s"])
        for status in ("queued", "running", "interrupted", "done", "cancelled", "failed")
    }
    for status, rec in made.items():
        store.update(rec.id, status=status)
    again = BatchStore(tmp_path).recover()
    assert [r.id for r in again] == [made[s].id for s in ("queued", "running", "interrupted")]
    assert {BatchStore(tmp_path).get(r.id).status for r in again} == {"queued"}
    assert store.get(made["done"].id).status == "done"
    assert store.get("../" + "0" * 29) is None and store.get("x") is None


def test_a_batch_is_one_entry_with_per_job_progress_and_results(tmp_path):
    with client(tmp_path) as c:
        holiday = upload(c, "holiday.png", 64, 48, seed=1)
        mine = upload(c, "mine.png", 40, 40, seed=2)
        contents = ["example:chelsea", holiday, "example:chelsea"]  # a repeat is ignored
        batch = queue_batch(c, contents, ["example:starry_night", mine])
        assert batch["kind"] == "batch" and batch["total"] == 4
        assert batch["status"] in ("queued", "running")
        names = {j["name"] for j in batch["jobs"]}
        assert names == {
            "chelsea__starry_night.png",
            "chelsea__mine.png",
            "holiday__starry_night.png",
            "holiday__mine.png",
        }
        assert c.get("/api/jobs").json() == []  # one batch entry, not four jobs
        assert [b["id"] for b in c.get("/api/batches").json()] == [batch["id"]]

        views = follow(c, batch["id"])
        end = views[-1]
        assert end["status"] == "done" and end["error"] is None, end
        assert (end["done"], end["failed"], end["running"], end["pending"]) == (4, 0, 0, 0)
        assert any(v["running"] == 1 for v in views)  # per-job progress was published
        done_seen = [v["done"] for v in views]
        assert done_seen == sorted(done_seen) and len(set(done_seen)) >= 3
        got = c.get(f"/api/batches/{batch['id']}").json()
        assert [(j["id"], j["status"]) for j in got["jobs"]] == [
            (j["id"], j["status"]) for j in end["jobs"]
        ]

        sizes = {}
        for job in end["jobs"]:
            assert job["status"] == "done" and job["seed"] == seed_of(job["id"])
            with Image.open(io.BytesIO(c.get(job["result_url"]).content)) as im:
                assert im.format == "PNG"
                sizes[job["name"]] = im.size
        assert sizes["chelsea__starry_night.png"] == (32, 21)
        assert sizes["holiday__mine.png"] == (32, 24)
        missing = f"/api/batches/{batch['id']}/jobs/{'0' * 16}/result.png"
        assert c.get(missing).status_code == 404

        z = c.get(end["zip_url"])
        assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
            assert sorted(zf.namelist()) == sorted([*names, "manifest.jsonl"])
            text = zf.read("manifest.jsonl").decode()
        records = [json.loads(line) for line in text.splitlines()]
        assert {r["status"] for r in records} == {"done"} and len(records) == 4
        assert str(tmp_path) not in text  # inputs by name, no server paths
        assert {r["content"] for r in records} == {"chelsea", "holiday.png"}

        assert c.delete(f"/api/batches/{batch['id']}").status_code == 204
        assert c.get(f"/api/batches/{batch['id']}").status_code == 404
        assert not (tmp_path / "batches" / batch["id"]).exists()


def test_batches_are_validated_and_limited_over_all_jobs(tmp_path):
    s = Settings(**SMALL)
    one, _ = job_work(s, (451, 300))
    with client(tmp_path, run_jobs=False, max_work=2.5 * one) as c:
        body = {"contents": ["example:chelsea"], "styles": ["example:starry_night"]}
        for bad, words in (
            ({**body, "contents": []}, "contents"),
            ({**body, "styles": ["nope"]}, "unknown image"),
            ({**body, "settings": {"init": "/etc/passwd"}}, "init"),
            ({**body, "settings": {"size": 1}}, "size"),
        ):
            for url in ("/api/batches", "/api/batches/estimate"):
                r = c.post(url, json=bad)
                assert r.status_code == 422 and words in json.dumps(r.json()["detail"]), r.text
        paintings = ["example:starry_night", "example:the_scream", "example:great_wave"]
        for url in ("/api/batches", "/api/batches/estimate"):
            r = c.post(url, json={**body, "styles": paintings, "settings": SMALL})
            assert r.status_code == 422 and "max_work" in r.json()["detail"]
        # the estimate: every job's work and start-up, at the server's (unmeasured) speed
        two = {**body, "styles": paintings[:2] * 2, "settings": SMALL}  # repeats ignored
        est = c.post("/api/batches/estimate", json=two).json()
        rate = c.app.state.studio.speed.seconds_per_work("cpu")[0]
        assert (est["jobs"], est["device"], est["measured"]) == (2, "cpu", False)
        assert est["work"] == pytest.approx(2 * one)
        assert est["seconds"] == pytest.approx(2 * START_SECONDS + rate * 2 * one)
        assert c.get("/api/batches").json() == []  # nothing queued
        single = {"content": "example:chelsea", "styles": [{"image": "example:starry_night"}]}
        assert c.post("/api/jobs", json={**single, "settings": SMALL}).status_code == 201
        ok = queue_batch(c, body["contents"], paintings[:2])
        assert ok["total"] == 2 and ok["status"] == "queued"
        assert c.post(f"/api/batches/{ok['id']}/resume").status_code == 409
        assert c.delete(f"/api/batches/{ok['id']}").status_code == 409
        assert c.get(f"/api/batches/{ok['id']}/results.zip").status_code == 404
        assert c.get("/api/batches/" + "0" * 32).status_code == 404


def test_cancel_queued_and_running_batches_then_resume(tmp_path):
    with client(tmp_path) as c:
        long = start_long_job(c)
        contents = ["example:chelsea", "example:coffee"]
        styles = ["example:starry_night", "example:the_scream"]
        batch = queue_batch(c, contents, styles, **SLOWER)
        assert batch["position"] in (1, 2)  # waits behind the single job: one queue
        gone = c.post(f"/api/batches/{batch['id']}/cancel").json()
        assert (gone["status"], gone["position"], gone["runs"]) == ("cancelled", None, 0)

        again = c.post(f"/api/batches/{batch['id']}/resume").json()
        assert again["status"] == "queued"
        c.post(f"/api/jobs/{long['id']}/cancel")
        assert follow_job(c, long["id"])["status"] == "cancelled"

        def cancel_once_running(view):
            if view["running"]:
                c.post(f"/api/batches/{batch['id']}/cancel")
                return True
            return False

        follow(c, batch["id"], cancel_once_running)
        stopped = follow(c, batch["id"])[-1]
        assert stopped["status"] == "cancelled" and "resume runs them" in stopped["error"]
        # the job running when the cancel came stops mid-run (not painted, not counted done)
        assert stopped["done"] < 4 and stopped["pending"] == 4 - stopped["done"]
        assert (stopped["zip_url"] is not None) == (stopped["done"] > 0)

        c.post(f"/api/batches/{batch['id']}/resume")
        end = follow(c, batch["id"])[-1]
        assert end["status"] == "done" and end["done"] == 4 and end["runs"] == 2
    assert set(done_counts(tmp_path, batch["id"]).values()) == {1}  # no job painted twice


def test_a_batch_interrupted_by_a_restart_resumes_and_skips_done_jobs(tmp_path):
    with client(tmp_path) as c:
        long = start_long_job(c)
        contents = ["example:chelsea", upload(c, "a.png")]
        batch = queue_batch(c, contents, ["example:starry_night", "example:the_scream"], **SLOWER)
        c.post(f"/api/jobs/{long['id']}/cancel")
        follow(c, batch["id"], lambda v: v["running"] > 0)
    # leaving the client stops the server: the job running stops mid-run (recorded cancelled,
    # unless it had just finished), the batch is interrupted
    rec = BatchStore(tmp_path).get(batch["id"])
    assert rec.status == "interrupted" and "server stopped" in rec.error
    before = done_counts(tmp_path, batch["id"])
    assert sum(before.values()) < 4
    path = BatchStore(tmp_path).outdir(batch["id"]) / manifest.MANIFEST
    records = manifest.read(str(path))
    assert records and {r["status"] for r in records} <= {"done", "cancelled"}

    with client(tmp_path) as c:
        end = follow(c, batch["id"])[-1]  # queued again at start-up
        assert end["status"] == "done" and end["runs"] == 2 and end["done"] == 4
    after = done_counts(tmp_path, batch["id"])
    assert len(after) == 4 and set(after.values()) == {1}  # done jobs were skipped


def test_openapi_documents_batches_and_the_page_uses_them(tmp_path):
    with client(tmp_path, run_jobs=False) as c:
        spec = c.get("/openapi.json").json()
        page = c.get("/").text
        assert c.get("/static/batch.js").status_code == 200
    for path in (
        "/api/batches",
        "/api/batches/{batch_id}",
        "/api/batches/estimate",
        "/api/batches/{batch_id}/events",
        "/api/batches/{batch_id}/cancel",
        "/api/batches/{batch_id}/resume",
        "/api/batches/{batch_id}/results.zip",
        "/api/batches/{batch_id}/jobs/{job_id}/result.png",
    ):
        assert path in spec["paths"], path
    request = spec["components"]["schemas"]["BatchRequest"]
    assert request["required"] == ["contents", "styles"]
    assert "Settings" in json.dumps(request["properties"]["settings"])
    assert "/static/batch.js" in page and 'id="batch-start"' in page
    js = (STATIC / "batch.js").read_text()
    used = set(re.findall(r"[`\"](/api/[^`\"?]*)", js))
    assert len(used) >= 4
    documented = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in spec["paths"]]
    for url in used:
        concrete = re.sub(r"\$\{[^}]+\}", "x" * 32, url)
        assert any(p.match(concrete) for p in documented), url
