"""impasto batch: planning, ids and seeds, the manifest, skip on re-run, bad inputs, the CLI."""

from __future__ import annotations

import json
import os

import pytest

from impasto.batch import (
    BatchOptions,
    assign_names,
    cross_jobs,
    expand_inputs,
    jsonl_jobs,
    manifest,
    run_batch,
)
from impasto.errors import SettingsError
from impasto.settings import Settings
from tests._batch_helpers import TINY, TINY_FLAGS, make_image, make_inputs, pixels, records

# One in-process worker with one torch thread: the fastest for 32 px jobs on a shared CI box.
ONE = BatchOptions(workers=1, threads=1)


def _cross(root, settings=None):
    photos, paintings = root / "photos", root / "paintings"
    if not photos.exists():
        make_inputs(root, 2, 2)
    s = settings or Settings(**TINY)
    return cross_jobs(
        expand_inputs([str(photos)], "contents"), expand_inputs([str(paintings)], "styles"), s
    )


def test_cross_product_writes_outputs_and_manifest_then_skips_on_rerun(tmp_path):
    out = tmp_path / "out"
    events = []
    summary = run_batch(_cross(tmp_path), str(out), ONE, callback=events.append)
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (4, 4, 0, 0)
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"photo{i}__paint{j}.png" for i in range(2) for j in range(2)]
    recs = records(out)
    assert [r["status"] for r in recs] == ["done"] * 4
    for r in recs:
        assert r["sha256"] == manifest.file_digest(str(out / r["output"]))
        assert r["settings"]["seed"] == r["seed"] and isinstance(r["seed"], int)
        assert set(r["final_losses"]) >= {"loss", "content", "style"}
        assert r["elapsed_s"] > 0
        assert pixels(out / r["output"]).shape == (24, 32, 3)
    assert [e.event for e in events].count("done") == 4
    assert events[-1].done == 4 and events[-1].running == 0

    again = run_batch(_cross(tmp_path), str(out), ONE)
    assert (again.done, again.skipped, again.failed) == (0, 4, 0)
    assert len(records(out)) == 4  # nothing appended

    # A missing or altered output is not "done": exactly those jobs run again.
    (out / "photo0__paint1.png").unlink()
    (out / "photo1__paint0.png").write_bytes(b"not the recorded file")
    third = run_batch(_cross(tmp_path), str(out), ONE)
    assert (third.done, third.skipped) == (2, 2)
    assert pixels(out / "photo1__paint0.png").shape == (24, 32, 3)


def test_seed_comes_from_the_job_id_and_ids_follow_bytes_and_settings(tmp_path):
    jobs = _cross(tmp_path)
    assert [j.id for j in jobs] == [j.id for j in _cross(tmp_path)]  # stable
    assert len({j.id for j in jobs}) == 4 and len({j.seed for j in jobs}) == 4
    given = _cross(tmp_path, Settings(**TINY, seed=7))
    assert {j.seed for j in given} == {7} and given[0].id != jobs[0].id
    other = _cross(tmp_path, Settings(**{**TINY, "iterations": 3}))
    assert other[0].id != jobs[0].id
    make_image(tmp_path / "photos" / "photo0.png", (40, 30), seed=99)  # new bytes, same name
    changed = _cross(tmp_path)
    assert changed[0].id != jobs[0].id and changed[3].id == jobs[3].id


def test_name_collisions_get_id_suffixes_whatever_the_order(tmp_path):
    a = make_image(tmp_path / "a" / "cat.png", (40, 30), seed=1)
    b = make_image(tmp_path / "b" / "cat.jpg", (40, 30), seed=2)
    style = make_image(tmp_path / "s.png", (32, 32), seed=3)
    s = Settings(**TINY)
    one, dropped = assign_names(cross_jobs([str(a), str(b)], [str(style)], s))
    two, _ = assign_names(cross_jobs([str(b), str(a)], [str(style)], s))
    assert dropped == 0
    names = {j.id: j.name for j in one}
    assert names == {j.id: j.name for j in two}
    assert len(set(names.values())) == 2
    assert all(n.startswith("cat__s-") and n.endswith(".png") for n in names.values())
    # The same bytes twice (same path or not) is one job.
    same, dropped = assign_names(cross_jobs([str(a), str(a)], [str(style)], s))
    assert len(same) == 1 and dropped == 1
    twin = make_image(tmp_path / "c" / "cat.png", (40, 30), seed=1)
    _, dropped = assign_names(cross_jobs([str(a), str(twin)], [str(style)], s))
    assert dropped == 1


def test_bad_inputs_fail_their_jobs_with_reasons_never_the_batch(tmp_path):
    good = make_image(tmp_path / "good.png", (40, 30), seed=1)
    make_image(tmp_path / "style.png", (32, 32), seed=2)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    lines = [
        {"content": "good.png", "styles": [{"image": "style.png", "weight": 2}], "output": "g.png"},
        {"content": "broken.jpg", "style": "style.png"},
        {"content": "good.png", "style": "missing.png"},
        {"content": "good.png", "style": "style.png", "settings": {"size": 4}},
        {"content": "good.png", "style": "style.png", "settings": {"colour": 1}},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"content": oops\n\n# a comment\n'
    (tmp_path / "jobs.jsonl").write_text(text)
    jobs = jsonl_jobs(str(tmp_path / "jobs.jsonl"), Settings(**TINY))
    assert len(jobs) == 6 and str(good) == jobs[0].content and jobs[0].styles[0].weight == 2
    out = tmp_path / "out"
    summary = run_batch(jobs, str(out), ONE)
    assert (summary.done, summary.failed, summary.ok) == (1, 5, False)
    by_source = {r["source"]: r for r in records(out)}
    assert by_source["jobs.jsonl:1"]["status"] == "done" and (out / "g.png").exists()
    errors = {k: r.get("error") or "" for k, r in by_source.items()}
    assert "broken.jpg" in errors["jobs.jsonl:2"]
    assert "missing.png: file not found" in errors["jobs.jsonl:3"]
    assert "size" in errors["jobs.jsonl:4"]
    assert "colour" in errors["jobs.jsonl:5"]
    assert "not valid JSON" in errors["jobs.jsonl:6"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "g.png",
        "manifest.jsonl",
    ]


def test_manifest_tolerates_a_torn_last_line_and_repairs_it(tmp_path):
    path = str(tmp_path / "manifest.jsonl")
    manifest.append(path, {"id": "a", "status": "done"})
    with open(path, "ab") as fh:
        fh.write(b'{"id": "b", "sta')  # a crash mid-write
    assert [r["id"] for r in manifest.read(path)] == ["a"]
    assert manifest.repair(path) and not manifest.repair(path)
    manifest.append(path, {"id": "c", "status": "failed"})
    assert [r["id"] for r in manifest.read(path)] == ["a", "c"]


def test_one_batch_per_output_folder(tmp_path):
    with manifest.locked(str(tmp_path)):
        with pytest.raises(SettingsError, match="another impasto batch"):
            run_batch([], str(tmp_path))
    with pytest.raises(SettingsError, match="backend"):
        run_batch([], str(tmp_path), BatchOptions(backend="slurm"))


def test_an_output_folder_it_cannot_use_is_one_line(tmp_path, capsys):
    """A read-only output folder was an internal error (PermissionError on the lock file; here
    the lock's name is taken by a folder: the tests run as root); a file said 'File exists'."""
    from impasto.cli import main

    photos, paintings = make_inputs(tmp_path, 1, 1)
    argv = ["batch", "--contents", str(photos), "--styles", str(paintings), *TINY_FLAGS, "-q"]
    (tmp_path / "ro" / manifest.LOCK).mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    for out, words in (("ro", "cannot write in the output folder (Is a directory)"),
                       ("file", "is a file; a batch writes a folder")):  # fmt: skip
        assert main([*argv, "-o", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_expand_inputs_errors_and_examples(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="no image files"):
        expand_inputs([str(tmp_path / "empty")], "contents")
    with pytest.raises(SettingsError, match="no files match"):
        expand_inputs([str(tmp_path / "*.png")], "contents")
    found = expand_inputs(["example:chelsea", str(tmp_path / "nope.png")], "contents")
    assert found[0].endswith("chelsea.png") and found[1].endswith("nope.png")


def test_cli_exit_codes_summary_and_verbose_lines(tmp_path, capsys):
    from impasto.cli import main

    photos, paintings = make_inputs(tmp_path, 1, 1)
    (photos / "zz_broken.png").write_bytes(b"nope")
    out = tmp_path / "out"
    argv = ["batch", "--contents", str(photos), "--styles", str(paintings), "-o", str(out)]
    assert main([*argv, *TINY_FLAGS, "-q", "-v"]) == 1
    err = capsys.readouterr().err
    assert "done     photo0__paint0.png" in err
    assert "2 jobs: 1 done, 1 failed" in err and "failed: zz_broken__paint0.png" in err
    os.unlink(photos / "zz_broken.png")
    assert main([*argv, *TINY_FLAGS, "-q"]) == 0
    assert "1 job: 0 done, 1 done before, 0 failed" in capsys.readouterr().err
    assert main(["batch", "jobs.jsonl", "--contents", "x", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    # a photo that is not there: its job is named by its inputs (it was named 'cross')
    missing = ["--contents", str(tmp_path / "gone.png"), "--styles", str(paintings)]
    assert main(["batch", *missing, "-o", str(tmp_path / "out2"), *TINY_FLAGS, "-q", "-v"]) == 1
    err = capsys.readouterr().err
    assert "failed: gone.png x paint0.png: " in err and "file not found" in err
    # a JOBS line that cannot be read at all is named by its line (it was '? x no style')
    (tmp_path / "bad.jsonl").write_text('{"content": "a.png", "styles": ["b.png"], "x": 1}\n')
    bad = ["batch", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "out3"), "-q", "-v"]
    assert main([*bad, *TINY_FLAGS]) == 1
    err = capsys.readouterr().err
    assert "failed: bad.jsonl:1: " in err and "? x" not in err


def test_cancel_stops_the_running_job_mid_run(tmp_path):
    """One local worker: a cancel while a job runs stops it at its next iteration; its record
    says cancelled, no file is written, and a re-run paints it."""
    import threading

    photos, paintings = make_inputs(tmp_path, 1, 1)
    settings = Settings(**{**TINY, "iterations": 200})
    jobs = cross_jobs(
        expand_inputs([str(photos)], "c"), expand_inputs([str(paintings)], "s"), settings
    )
    cancel = threading.Event()
    events = []

    def on_event(e):
        events.append(e.event)
        if e.event == "started":
            cancel.set()

    out = tmp_path / "out"
    first = run_batch(jobs, str(out), ONE, callback=on_event, cancel=cancel)
    assert events == ["started", "cancelled"]
    assert (first.done, first.failed, first.not_run) == (0, 0, 1)
    (record,) = manifest.read(str(out / manifest.MANIFEST))
    assert record["status"] == "cancelled" and not list(out.glob("*.png"))
    again = run_batch(jobs, str(out), ONE)
    assert (again.done, again.ok) == (1, True) and len(list(out.glob("*.png"))) == 1


def test_cancel_stops_starting_jobs_and_a_rerun_finishes_the_rest(tmp_path):
    import threading

    photos, paintings = make_inputs(tmp_path, 2, 1)
    jobs = cross_jobs(
        expand_inputs([str(photos)], "c"), expand_inputs([str(paintings)], "s"), Settings(**TINY)
    )
    cancel = threading.Event()

    def on_event(e):
        if e.event == "done":
            cancel.set()

    out = str(tmp_path / "out")
    first = run_batch(jobs, out, ONE, callback=on_event, cancel=cancel)
    assert (first.done, first.not_run, first.ok) == (1, 1, False)
    second = run_batch(jobs, out, ONE)
    assert (second.done, second.skipped, second.ok) == (1, 1, True)


def test_output_options_reach_every_file_and_bad_ones_are_refused_up_front(tmp_path):
    """``--format jpg --quality --dpi`` (BatchOptions) reach each job's file; options no file
    could take are refused before any job runs (they failed every job, one by one)."""
    from PIL import Image

    jobs = _cross(tmp_path)[:1]
    out = tmp_path / "out"
    options = BatchOptions(workers=1, threads=1, extension=".jpg", quality=70, dpi=300)
    assert run_batch(jobs, str(out), options).done == 1
    with Image.open(out / "photo0__paint0.jpg") as im:
        assert im.info["dpi"] == (300, 300) and im.getexif()[282] == 300
    for bad, words in (
        (dict(extension=".gif"), "extension must be one of"),
        (dict(extension=".jpg", bits=16), "JPEG cannot store 16 bits"),
        (dict(quality=0), "quality must be an integer from 1 to 100"),
        (dict(dpi=0), "dpi must be a number from 1 to 65535"),
    ):
        with pytest.raises(SettingsError, match=words):
            run_batch(jobs, str(tmp_path / "never"), BatchOptions(workers=1, **bad))
    assert not (tmp_path / "never").exists()


def test_a_rerun_with_other_settings_keeps_the_earlier_images(tmp_path, capsys):
    """Changing a setting and re-running into the same folder replaced each earlier image
    without a word (same name, another job); the copies of a photo were merged silently."""
    from impasto.cli import main

    photos, paintings = make_inputs(tmp_path, 1, 1)
    (tmp_path / "copies").mkdir()
    (tmp_path / "copies" / "again.png").write_bytes((photos / "photo0.png").read_bytes())
    out = tmp_path / "out"
    argv = ["batch", "--contents", str(photos), "--styles", str(paintings), "-o", str(out)]
    assert main([*argv, *TINY_FLAGS, "-q"]) == 0
    first = (out / "photo0__paint0.png").read_bytes()
    assert main([*argv, *TINY_FLAGS, "-q", "--iterations", "3"]) == 0
    assert (out / "photo0__paint0.png").read_bytes() == first
    [other] = [p for p in out.glob("photo0__paint0-*.png")]
    assert other.read_bytes() != first
    # the first settings again: done before, nothing painted over
    assert main([*argv, *TINY_FLAGS, "-q", "--contents", str(tmp_path / "copies")]) == 0
    err = capsys.readouterr().err
    assert "1 job: 0 done, 1 done before, 0 failed, 1 repeated (same images and settings" in err
    assert len(list(out.glob("*.png"))) == 2


def test_the_last_done_record_of_a_job_decides_whether_it_is_skipped(tmp_path):
    # Two done records for one job; only one of them matches the file on disk. The last one
    # decides: matching, the job is skipped (whatever the first says); not matching, it is
    # redone (even though the first one matches).
    make_inputs(tmp_path, 1, 1)
    (job,) = _cross(tmp_path)
    name = "photo0__paint0.png"
    stale = "0" * 64

    def folder(sub, first_matches):
        out = tmp_path / sub
        make_image(out / name, (32, 24), seed=7)
        digest = manifest.file_digest(str(out / name))
        path = str(out / manifest.MANIFEST)
        first, last = (digest, stale) if first_matches else (stale, digest)
        for i, sha in enumerate((first, last)):
            rec = {"id": job.id, "status": "done", "output": name, "sha256": sha, "n": i}
            manifest.append(path, rec)
        chosen = manifest.done_records(manifest.read(path))[job.id]
        assert chosen["n"] == 1
        assert manifest.is_done(chosen, str(out)) is (not first_matches)
        return out, digest

    out, digest = folder("last_matches", first_matches=False)
    events = []
    summary = run_batch([job], str(out), ONE, callback=events.append)
    assert (summary.done, summary.skipped, summary.failed) == (0, 1, 0)
    assert [(e.event, e.record["n"]) for e in events] == [("skipped", 1)]
    assert manifest.file_digest(str(out / name)) == digest
    assert len(records(out)) == 2  # nothing appended

    out, digest = folder("first_matches", first_matches=True)
    summary = run_batch([job], str(out), ONE)
    assert (summary.done, summary.skipped, summary.failed) == (1, 0, 0)
    recs = records(out)
    assert len(recs) == 3 and recs[-1]["status"] == "done" and recs[-1]["output"] == name
    assert recs[-1]["sha256"] == manifest.file_digest(str(out / name)) != digest
    assert pixels(out / name).shape == (24, 32, 3)
