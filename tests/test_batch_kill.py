"""impasto batch survives ``kill -9``: a re-run does each job exactly once, no torn file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from impasto.cli import main
from tests._batch_helpers import TINY_FLAGS, make_inputs, pixels, records

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process groups")


def test_sigkill_mid_batch_then_rerun_does_every_job_exactly_once(tmp_path, capsys):
    photos, paintings = make_inputs(tmp_path, 3, 2)
    out = tmp_path / "out"
    args = ["batch", "--contents", str(photos), "--styles", str(paintings), "-o", str(out)]
    args += [*TINY_FLAGS, "--iterations", "4", "-q", "-v"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", *args],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: kill -9 takes the workers too
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in proc.stderr:  # wait for the first finished job, then kill everything
            if line.startswith("done"):
                break
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = [r for r in records(out) if r["status"] == "done"]
    assert 1 <= len(before) < 6  # killed mid-batch
    for png in out.glob("*.png"):  # whatever is under a final name is complete
        pixels(png)

    assert main(args) == 0
    assert "6 jobs: " in capsys.readouterr().err
    done = Counter(r["id"] for r in records(out) if r["status"] == "done")
    assert len(done) == 6 and set(done.values()) == {1}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        f"photo{i}__paint{j}.png" for i in range(3) for j in range(2)
    )
    for png in out.glob("*.png"):
        pixels(png)
    assert not list(out.glob(".*.tmp"))  # leftovers of the killed write are cleaned up


@pytest.mark.parametrize("to_the_group", [True, False])
def test_ctrl_c_ends_a_batch_of_worker_processes_at_once(tmp_path, ctrl_c, to_the_group):
    """Ctrl-C on a batch with worker processes hung for ever when the workers got it too (a
    terminal's Ctrl-C, or `timeout -s INT`, reaches the group), and waited for the running jobs
    when only the driver did. Now the driver ends the workers and exits 130 at once; a re-run
    does the jobs that were running."""
    photos, paintings = make_inputs(tmp_path, 2, 1)
    out = tmp_path / "out"
    args = ["batch", "--contents", str(photos), "--styles", str(paintings), "-o", str(out)]
    args += ["--size", "32", "--iterations", "100000", "--pyramid-start", "0", "--device", "cpu"]
    args += ["--workers", "2", "--threads", "1", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", *args],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(8)  # the workers have started and are painting (a job takes minutes)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        if to_the_group:
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read()
    proc.stderr.close()
    # 130, or killed by the second SIGINT that `timeout` sends the group while Python exits
    assert rc in (130, -signal.SIGINT) and "interrupted" in err and "Traceback" not in err, err
    assert not _group_alive(proc.pid, within=10.0)  # no worker left behind
    assert not [r for r in records(out) if r["status"] == "done"]


def _group_alive(pgid: int, within: float) -> bool:
    """Whether process group ``pgid`` still has a process after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True
