"""The Ray backend paints the same pictures as the local backend (a local 2-CPU Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from impasto.batch import BatchOptions, cross_jobs, expand_inputs, run_batch
from impasto.settings import Settings
from tests._batch_helpers import TINY, make_inputs, pixels, records

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_backend_gives_the_local_backends_images(tmp_path, local_ray):
    photos, paintings = make_inputs(tmp_path, 2, 1)
    jobs = cross_jobs(
        expand_inputs([str(photos)], "contents"),
        expand_inputs([str(paintings)], "styles"),
        Settings(**TINY),
    )
    local, remote = tmp_path / "local", tmp_path / "ray"
    local_options = BatchOptions(workers=2, threads=1)  # the process pool
    assert run_batch(jobs, str(local), local_options).done == 2
    summary = run_batch(jobs, str(remote), BatchOptions(backend="ray", threads=1))  # 2 actors
    assert (summary.done, summary.failed) == (2, 0)
    recs = {r["output"]: r for r in records(remote)}  # written by the driver
    assert len(recs) == 2 and all(r["status"] == "done" for r in recs.values())
    for name, rec in recs.items():
        assert np.array_equal(pixels(local / name), pixels(remote / name))
        assert rec["seed"] == next(r["seed"] for r in records(local) if r["output"] == name)
    assert run_batch(jobs, str(remote), BatchOptions(backend="ray")).skipped == 2


def test_a_cluster_that_cannot_run_a_worker_is_one_line_not_a_hang(tmp_path, local_ray):
    """Found by a user: --threads above the cluster's CPUs started an actor Ray never placed,
    and an --address where nothing listens retried for minutes: both hung the batch."""
    import socket

    from impasto.errors import SettingsError

    photos, paintings = make_inputs(tmp_path, 1, 1)
    jobs = cross_jobs(
        expand_inputs([str(photos)], "contents"),
        expand_inputs([str(paintings)], "styles"),
        Settings(**TINY),
    )
    with pytest.raises(SettingsError, match="--threads 3 is more than the 2 CPUs"):
        run_batch(jobs, str(tmp_path / "a"), BatchOptions(backend="ray", threads=3))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.shutdown()  # joining a cluster needs no Ray already running here
    with pytest.raises(SettingsError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        run_batch(
            jobs, str(tmp_path / "b"), BatchOptions(backend="ray", address=f"127.0.0.1:{port}")
        )


def test_a_private_ray_has_room_for_the_threads_asked(tmp_path):
    """With no cluster, the private Ray got the machine's CPU count (2 here), fewer than
    --threads 3: the one actor was never placed."""
    photos, paintings = make_inputs(tmp_path, 1, 1)
    jobs = cross_jobs(
        expand_inputs([str(photos)], "contents"),
        expand_inputs([str(paintings)], "styles"),
        Settings(**TINY),
    )
    summary = run_batch(jobs, str(tmp_path / "out"), BatchOptions(backend="ray", threads=3))
    assert (summary.done, summary.failed) == (1, 0)
