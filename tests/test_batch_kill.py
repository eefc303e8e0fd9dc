"""impasto batch survives ``kill -9``: a re-run does each job exactly once, no torn file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
