"""The web studio's parts on their own: work limits, time estimates, views, the event bus, image
snapshots and the cost of accepting a large upload."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import zlib

import pytest
import torch

pytest.importorskip("fastapi", reason="the web extra is not installed")

from impasto.settings import Settings  # noqa: E402
from impasto.web.config import WebConfig  # noqa: E402
from impasto.web.encode import snapshot  # noqa: E402
from impasto.web.events import EventBus, StreamClosed  # noqa: E402
from impasto.web.limits import check_server_rules, header_size, job_aspect, job_work  # noqa: E402
from impasto.web.speed import DEFAULT_SECONDS_PER_WORK, START_SECONDS, SpeedMeter  # noqa: E402
from impasto.web.store import JobRecord  # noqa: E402
from impasto.web.views import job_view  # noqa: E402


def test_work_counts_every_pyramid_scale():
    s = Settings(size=512, iterations=200, pyramid_start=256, pyramid_iterations=300)
    work, steps = job_work(s, (400, 300))
    assert steps == 500
    assert work == pytest.approx((256 * 192 * 300 + 512 * 384 * 200) / 1e6)
    # issue 9 item 9: 10000 iterations per scale over 55 scales passed a per-scale limit
    sneaky = Settings(
        size=4096, iterations=200, pyramid_start=16, pyramid_iterations=10000, pyramid_factor=1.1
    )
    work, steps = job_work(sneaky, (4096, 4096))
    assert steps == 590_200 and work > 800_000
    config = WebConfig(data_dir=None)  # type: ignore[arg-type] - the limits only
    with pytest.raises(ValueError, match=r"limit \(max_iterations\) is 10,000"):
        check_server_rules(sneaky, (4096, 4096), config)
    with pytest.raises(ValueError, match=r"limit \(max_work\) is 20,000"):
        check_server_rules(Settings(size=4096, iterations=5000), (4096, 4096), config)
    assert check_server_rules(s, (400, 300), config) == (pytest.approx(work_of(s)), 500)


def test_a_jobs_aspect_is_its_photos_else_its_first_paintings(tmp_path):
    from impasto import examples
    from impasto.web.store import Store

    store = Store(tmp_path)
    photo, painting = "example:chelsea", {"image": "example:starry_night", "weight": 1.0}
    size = {n: header_size(examples.path(n)) for n in ("chelsea", "starry_night")}
    assert job_aspect(store, photo, [painting]) == size["chelsea"] != size["starry_night"]
    assert job_aspect(store, None, [painting, {"image": photo}]) == size["starry_night"]
    with pytest.raises(ValueError, match="unknown image"):
        job_aspect(store, None, [])


def test_a_job_is_resumed_once_unless_its_resume_stopped_before_any_image(tmp_path):
    """Each click on a cancelled job's resume queued another copy of the same continuation; a
    resume that is queued, running, done or stopped with an image of its own carries it on."""
    from impasto.web.store import Store

    store = Store(tmp_path)
    job = dict(device="cpu", settings={}, content="example:chelsea", styles=[])
    parent = store.create_job(**job)
    assert store.resumed_by(parent.id) is None
    child = store.create_job(**job, parent=parent.id, origin="resume")
    assert store.resumed_by(parent.id) == child.id  # queued
    store.create_job(**job, parent=parent.id, origin="rerun")  # a re-run resumes nothing
    store.update_job(child.id, status="cancelled")  # stopped before its first image
    assert store.resumed_by(parent.id) is None
    store.update_job(child.id, partial_file="0" * 32)
    assert store.resumed_by(parent.id) == child.id
    store.update_job(child.id, status="done", partial_file=None)  # finished: no partial left
    assert store.resumed_by(parent.id) == child.id


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read():
    """The Guard answers 413 from the Content-Length alone, without reading the body (the
    streamed count is the fallback for a body that declares no length)."""
    import asyncio

    from impasto.web.guard import FORM_OVERHEAD, Guard

    reached = []

    async def app(scope, receive, send):  # the studio behind the guard
        reached.append(scope["path"])

    async def receive():
        raise AssertionError("the body was read")

    sent = []

    async def send(message):
        sent.append(message)

    def call(length: int) -> None:
        scope = {"type": "http", "method": "POST", "path": "/api/files",
                 "headers": [(b"content-length", str(length).encode())]}  # fmt: skip
        asyncio.run(Guard(app, max_upload=1000)(scope, receive, send))

    call(1000 + FORM_OVERHEAD + 1)
    assert sent[0]["status"] == 413 and b"1,000-byte upload limit" in sent[1]["body"]
    assert reached == []
    call(1000 + FORM_OVERHEAD)
    assert reached == ["/api/files"]


def test_thumbnails_are_colour_managed_as_the_engine_loads_images(tmp_path):
    """A thumbnail goes through the loader's ICC conversion (impasto.image.colour_management;
    web.encode had its own copy): a profile with red and blue swapped swaps them, a bad one is
    ignored with the loader's warning."""
    from PIL import Image

    from impasto.web.encode import thumbnail
    from tests._image_helpers import bgr_profile

    def thumb(icc: bytes):
        path = tmp_path / "tagged.png"
        Image.new("RGB", (64, 48), (200, 30, 10)).save(path, icc_profile=icc)
        with Image.open(path) as im:
            return tuple(int(v) for v in thumbnail(im, 32).getpixel((0, 0)))

    assert thumb(bgr_profile()) == pytest.approx((10, 30, 200), abs=2)
    with pytest.warns(UserWarning, match="upload: ignoring unreadable ICC profile"):
        assert thumb(b"not a profile") == (200, 30, 10)


def work_of(s: Settings) -> float:
    return job_work(s, (400, 300))[0]


def test_speed_meter_learns_and_keeps_its_figure(tmp_path):
    path = tmp_path / "speed.json"
    meter = SpeedMeter(path, min_work=1.0, smoothing=0.5)
    assert meter.seconds_per_work("cpu") == (DEFAULT_SECONDS_PER_WORK["cpu"], False)
    meter.record("cpu", 0.5, 100.0)  # too small to teach anything
    assert not path.exists()
    meter.record("cpu", 10.0, 20.0)  # 2 s per megapixel-iteration
    assert meter.seconds_per_work("cpu") == (2.0, True)
    meter.record("cpu", 10.0, 40.0)
    assert meter.seconds_per_work("cpu")[0] == pytest.approx(3.0)
    assert meter.estimate("cpu", 10.0) == pytest.approx(START_SECONDS + 30.0)
    again = SpeedMeter(path)
    assert again.seconds_per_work("cpu") == (pytest.approx(3.0), True)
    assert again.seconds_per_work("cuda")[1] is False
    path.write_text("{not json")
    assert SpeedMeter(path).seconds_per_work("cpu")[1] is False


def _job(**kw) -> JobRecord:
    base = dict(
        id="a" * 32, seq=1, status="cancelled", device="cpu",
        settings=Settings(seed=1).to_dict(), content="example:chelsea",
        styles=[{"image": "example:starry_night", "weight": 1.0}], init_file=None, parent=None,
        origin="new", created=1.0, started=2.0, finished=3.0, error=None,
        progress={"step": 4, "total_steps": 10, "loss": float("nan")},
    )  # fmt: skip
    return JobRecord(**{**base, **kw})


def test_job_view_is_pure_json():
    view = job_view(_job(partial_file="b" * 32), live=None, position=None, files=lambda _: None)
    json.dumps(view, allow_nan=False)  # NaN losses become null
    assert view["loss"] is None and view["step"] == 4
    assert view["partial_url"] == f"/api/jobs/{'a' * 32}/partial.png" and view["can_resume"]
    assert view["content"]["name"] == "chelsea"
    done = job_view(_job(status="done", partial_file="b" * 32), live=None, position=None,
                    files=lambda _: None)  # fmt: skip
    assert done["partial_url"] is None and not done["can_resume"]
    resumed = job_view(_job(init_file="c" * 32), live=None, position=None, files=lambda _: None)
    assert resumed["settings"]["init"] == "partial.png"  # never "noise"


def test_snapshot_is_a_clamped_copy_of_the_live_image():
    live = torch.tensor([[-0.5, 0.5], [1.5, 0.25]]).reshape(1, 1, 2, 2).requires_grad_()
    kept = snapshot(live)
    with torch.no_grad():
        live.mul_(0)  # the optimiser's next step
    assert kept.flatten().tolist() == [0.0, 0.5, 1.0, 0.25]


def test_closing_the_bus_ends_every_stream():
    async def scenario() -> list[str]:
        bus = EventBus()
        one, all_ = bus.subscribe("x"), bus.subscribe(None)
        bus.publish({"id": "x", "status": "running"}, ["x", None])
        got = [(await one.get(1))["status"], (await all_.get(1))["status"]]
        bus.close()
        for sub in (one, all_, bus.subscribe(None)):  # also one opened after the close
            with pytest.raises(StreamClosed):
                await sub.get(5)
            got.append("closed")
        return got

    assert asyncio.run(scenario()) == ["running", "running", "closed", "closed", "closed"]


def _big_png16(path, w: int, h: int) -> None:
    """A w x h 16-bit RGB PNG of one colour, written row by row (small file, big image)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return len(body).to_bytes(4, "big") + tag + body + crc.to_bytes(4, "big")

    z = zlib.compressobj(9)
    row = b"\0" + b"\x80\x00\x40\x00\x20\x00" * w
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def test_accepting_a_large_upload_costs_about_its_8_bit_pixels(tmp_path):
    # 24 MP 16-bit: decoded to float, as before, it grew the process by ~810 MB; now by about
    # Pillow's 8-bit buffer (96 MB)
    src = tmp_path / "big.png"
    _big_png16(src, 6000, 4000)
    script = textwrap.dedent(
        f"""
        import resource, shutil
        from pathlib import Path
        from impasto.web.store import Store
        from impasto.web.uploads import ingest_upload
        store = Store({str(tmp_path / "data")!r})
        tmp = store.tmp_path()
        shutil.copy({str(src)!r}, tmp)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rec = ingest_upload(store, tmp, "big.png", 50_000_000)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(rec.width, rec.height, (after - before) // 1024)
        """
    )
    cmd = [sys.executable, "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    w, h, grew_mb = map(int, out.stdout.split())
    assert (w, h) == (6000, 4000)
    assert grew_mb < 250, f"accepting the upload grew the process by {grew_mb} MB"
