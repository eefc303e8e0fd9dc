"""Large sizes in the web studio: the server's memory budget sets the largest size it offers and
accepts (tiled sizes far above the whole-image limit fit), and a tiled job reports tile progress
and the engine's memory notes. Jobs are tiny (96 px with forced 48 px tiles, tiny network)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's test client")

from fastapi.testclient import TestClient  # noqa: E402

from impasto.devices import resolve_device  # noqa: E402
from impasto.errors import SettingsError  # noqa: E402
from impasto.memory import parse_bytes  # noqa: E402
from impasto.settings import Settings  # noqa: E402
from impasto.web.capacity import largest_size, plan_job_memory  # noqa: E402
from impasto.web.store import TERMINAL  # noqa: E402
from tests._web_helpers import BASE, client, tiny_network  # noqa: E402, F401


def submit(c: TestClient, **settings):
    body = {
        "content": "example:chelsea",
        "styles": [{"image": "example:starry_night", "weight": 1.0}],
        "settings": {"device": "cpu", "seed": 3, **settings},
    }
    return c.post("/api/jobs", json=body)


def wait_status(c: TestClient, job_id: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"timed out waiting for {status}: {job}"
        time.sleep(0.03)


def test_config_reports_the_budget_and_the_size_it_allows(tmp_path):
    budget = parse_bytes("1.5G")
    with client(tmp_path, run_jobs=False, max_memory=budget, max_size=None) as c:
        cfg = c.get("/api/config").json()
    allowed = largest_size(Settings(), budget, resolve_device("auto"))
    assert cfg["memory"]["budget"] == budget and cfg["memory"]["source"] == "max_memory"
    assert cfg["memory"]["max_size"] == allowed == cfg["limits"]["max_size"]
    assert cfg["limits"]["max_memory"] == budget and cfg["memory"]["max_size_cap"] is None
    assert 16 < allowed < 16384
    # an explicit --max-size still caps what memory allows
    with client(tmp_path / "capped", run_jobs=False, max_memory=budget, max_size=256) as c:
        cfg = c.get("/api/config").json()
    assert cfg["limits"]["max_size"] == 256 and cfg["memory"]["max_size"] == allowed


def test_tiles_let_sizes_far_above_the_whole_image_limit_fit():
    budget = parse_bytes("4G")
    s = Settings()
    cpu = resolve_device("cpu")
    top = largest_size(s, budget, cpu)
    assert plan_job_memory(s, (top, top), budget, cpu).tile is not None  # the largest is tiled
    whole = 16  # the whole-image limit, to a power of two
    while plan_job_memory(s, (whole * 2, whole * 2), budget, cpu).tile is None:
        whole *= 2
    assert top >= 2 * whole  # more than twice the whole-image side
    with pytest.raises(SettingsError, match="budget"):
        plan_job_memory(s, (top + 64, top + 64), budget, cpu)


def test_a_size_over_the_budget_is_refused_naming_the_limit(tmp_path):
    budget = parse_bytes("1.2G")
    allowed = largest_size(Settings(), budget, resolve_device("cpu"))
    with client(tmp_path, run_jobs=False, max_memory=budget, max_size=None) as c:
        r = submit(c, size=allowed + 100, iterations=5)
        assert r.status_code == 422
        assert f"at most {allowed} px" in r.json()["detail"]
        assert "1.2 GB" in r.json()["detail"]
        est = c.post(
            "/api/estimate",
            json={
                "content": "example:chelsea",
                "settings": {"size": allowed + 100, "device": "cpu"},
            },
        )
        assert est.status_code == 422
        assert submit(c, size=min(allowed, 64), iterations=5).status_code == 201


async def _follow(studio, job_id: str, start) -> list[dict]:
    """Every event the bus publishes for ``job_id`` after ``start()`` until its end."""
    sub = studio.bus.subscribe(job_id)
    try:
        await asyncio.to_thread(start)
        events = []
        while not events or events[-1]["status"] not in TERMINAL:
            event = await sub.get(60.0)
            assert event is not None, "no event in 60 s"
            events.append(event)
        return events
    finally:
        studio.bus.unsubscribe(sub)


def test_a_tiled_job_publishes_tile_progress_and_memory_notes(tmp_path):
    with client(tmp_path) as c:
        blocker = submit(c, size=32, iterations=5000).json()
        wait_status(c, blocker["id"], "running")
        job = submit(c, size=96, iterations=3, pyramid_start=0, tile=48).json()
        assert job["status"] == "queued" and job["tile"] is None and job["notes"] == []

        def start() -> None:
            c.post(f"/api/jobs/{blocker['id']}/cancel")

        events = asyncio.run(_follow(c.app.state.studio, job["id"], start))
        assert events[-1]["status"] == "done", events[-1]["error"]
        ticks = [e["tile"] for e in events if e["tile"] is not None]
        assert ticks, "no tile progress was published"
        assert all(t["tiles"] == 4 and 1 <= t["tile"] <= 4 for t in ticks)
        assert all(t["phase"] in (1, 2) and 1 <= t["step"] <= 3 for t in ticks)
        done = c.get(f"/api/jobs/{job['id']}").json()
    assert done["tile"] is None  # only while running
    texts = [n["text"] for n in done["notes"]]
    (budget,) = [t for t in texts if t.startswith("memory budget")]
    # whose budget it is: the server's (it said "max_memory", which nobody had set)
    assert "(the server's: " in budget and "% of the" in budget and "max_memory" not in budget
    assert any("tiles of 48 px" in t for t in texts), texts
    assert done["settings"]["max_memory"] is None  # the server's budget is not the job's setting


def test_batch_jobs_run_within_the_server_budget(tmp_path):
    """A batch's jobs get the server's memory budget as single jobs do: their manifest records
    carry it as max_memory (a job's own lower max_memory is kept)."""
    from impasto.batch import manifest
    from impasto.web.batches import BatchStore

    budget = parse_bytes("1.5G")
    with client(tmp_path, max_memory=budget, max_size=None) as c:
        small = {"size": 32, "iterations": 2, "device": "cpu", "pyramid_start": 0}
        ids = []
        for own in (None, parse_bytes("1.3G")):
            body = {
                "contents": ["example:chelsea"],
                "styles": ["example:starry_night"],
                "settings": {**small, "max_memory": own},
            }
            r = c.post("/api/batches", json=body)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for batch_id in ids:
            deadline = time.monotonic() + 60
            while c.get(f"/api/batches/{batch_id}").json()["status"] != "done":
                assert time.monotonic() < deadline, c.get(f"/api/batches/{batch_id}").json()
                time.sleep(0.05)
    got = []
    for batch_id in ids:
        path = BatchStore(tmp_path).outdir(batch_id) / manifest.MANIFEST
        (record,) = manifest.read(str(path))
        assert record["status"] == "done"
        got.append(record["settings"]["max_memory"])
    assert got == [budget, parse_bytes("1.3G")]


def test_a_job_is_planned_on_the_device_it_names(tmp_path, monkeypatch):
    """A job asking for the CPU on a GPU server is checked against the CPU's memory and runs
    within the CPU's budget. Both were the server's default device's (the GPU's), so a size the
    CPU holds was refused. The GPU is faked: CUDA "present" with 1.6 GB free."""
    import torch

    from impasto.memory import available_memory

    free = parse_bytes("1.6G")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 8 * free))
    cpu_budget = available_memory(torch.device("cpu"))[0]
    if cpu_budget < 3 * free:  # then the CPU may hold no larger size than the fake GPU
        pytest.skip("this machine's CPU budget is too small for the test")
    with client(tmp_path, run_jobs=False, max_size=None) as c:
        cfg = c.get("/api/config").json()["memory"]
        assert cfg["device"] == "cuda" and cfg["budget"] < free
        size = cfg["max_size"] + 64  # over the GPU's limit
        for device, status in (("auto", 422), ("cuda", 422), ("cpu", 200)):
            body = {
                "content": "example:chelsea",
                "styles": [{"image": "example:starry_night", "weight": 1}],
                "settings": {"size": size, "device": device},
            }
            r = c.post("/api/estimate", json=body)
            assert r.status_code == status, (device, r.text)
        assert r.json()["device"] == "cpu"
        job = submit(c, size=size, iterations=5)  # device cpu
        assert job.status_code == 201, job.text
        studio = c.app.state.studio
        settings, _, _ = studio.runner._inputs(studio.store.get_job(job.json()["id"]))
    assert settings.max_memory == cpu_budget  # the CPU's budget, not the GPU's
