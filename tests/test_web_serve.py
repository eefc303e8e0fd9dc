"""``impasto serve``: one server per data directory, start-up order, quiet shutdown.

Regression tests of issue 9: a second server on the same directory must not touch the first
one's jobs (item 3), ``--data-dir FILE`` is one line and exit 2 (item 8), and Ctrl-C with an open
event stream returns quickly without a traceback (item 11).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("uvicorn", reason="the web extra is not installed")

from impasto import cli  # noqa: E402
from impasto.settings import Settings  # noqa: E402
from impasto.web.lock import DataDirError, DataDirLock  # noqa: E402
from impasto.web.store import Store  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running_job(data_dir) -> tuple[str, object]:
    """A data directory as a live server leaves it: a job running, an upload being received."""
    store = Store(data_dir)
    job = store.create_job(
        device="cpu",
        settings=Settings(size=48, iterations=5).to_dict(),
        content="example:chelsea",
        styles=[{"image": "example:starry_night", "weight": 1.0}],
    )
    store.update_job(job.id, status="running", started=time.time())
    receiving = store.tmp_path()
    receiving.write_bytes(b"half an upload")
    return job.id, receiving


def test_lock_names_its_holder_and_is_released(tmp_path):
    first = DataDirLock(tmp_path).acquire(port=8123)
    with pytest.raises(DataDirError, match=rf"pid {os.getpid()}, port 8123"):
        DataDirLock(tmp_path).acquire(port=9000)
    first.release()
    DataDirLock(tmp_path).acquire(port=9000).release()
    with pytest.raises(DataDirError, match="is a file"):
        (tmp_path / "f").write_text("x")
        DataDirLock(tmp_path / "f").acquire()


def test_serve_flags_default_to_web_configs_defaults(tmp_path, capsys):
    """`impasto serve`'s defaults are WebConfig's (they were written twice), and neither caps
    the size: WebConfig.max_size was 4096 while the CLI and the README said none (the memory
    budget sets the limit; --max-size is an optional explicit cap)."""
    from impasto.cli.serve import _config
    from impasto.web.config import WebConfig

    parser = cli.build_parser()
    config = _config(parser.parse_args(["serve"]), tmp_path)
    hosts = config.allowed_hosts
    assert config == WebConfig(data_dir=tmp_path, allowed_hosts=hosts)
    assert WebConfig(tmp_path).max_size is None
    # --max-upload-mb counts MiB, as its help now says (it said MB)
    two = _config(parser.parse_args(["serve", "--max-upload-mb", "2"]), tmp_path)
    assert two.max_upload_bytes == 2 * 1024 * 1024
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    assert "largest upload in MiB" in capsys.readouterr().out


def test_second_server_on_a_data_dir_exits_2_without_touching_it(tmp_path):
    job_id, receiving = _running_job(tmp_path)
    holder = DataDirLock(tmp_path).acquire(port=8123)  # this test process is "the first server"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "impasto", "serve", "--data-dir", str(tmp_path),
             "--port", str(_free_port())],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.release()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {os.getpid()}, port 8123" in lines[0], proc.stderr
    assert receiving.read_bytes() == b"half an upload"  # tmp/ not emptied
    assert Store(tmp_path).get_job(job_id).status == "running"  # not marked interrupted


def test_busy_port_exits_2_before_any_recovery(tmp_path, capsys):
    job_id, receiving = _running_job(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = cli.main(["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0]
    assert receiving.exists()
    assert Store(tmp_path).get_job(job_id).status == "running"
    DataDirLock(tmp_path).acquire().release()  # the lock was given back


def test_data_dir_that_is_a_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    assert cli.main(["serve", "--data-dir", str(path), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"impasto: error: data directory {path} is a file, not a directory"]
    assert cli.main(["serve", "--port", "0", "--data-dir", str(tmp_path / "d")]) == 2


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: (d / "impasto.lock").mkdir(), "Is a directory (impasto.lock)"),
        (lambda d: (d / "files").write_text("x"), "File exists"),
        (lambda d: (d / "impasto.sqlite3").write_text("not a database" * 20), "not a database"),
    ],
)
def test_an_unusable_data_dir_is_one_line_exit_2(tmp_path, capsys, make, words):
    """A data directory the server cannot write (a read-only folder or database; here, since
    the tests run as root, a file or folder in the way) was an internal error with a
    traceback."""
    data = tmp_path / "data"
    data.mkdir()
    make(data)
    assert cli.main(["serve", "--data-dir", str(data), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"impasto: error: cannot use data directory {data}")
    assert words in err[0], err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--weights", "{tmp}/junk.pth"], "junk.pth: not a PyTorch weights file"),
        (["--max-upload-mb", "nan"], "--max-upload-mb must be above 0 and below 1e6, got nan"),
        (["--max-upload-mb", "inf"], "--max-upload-mb must be above 0"),
        (["--max-memory", "1K"], "leaves no room for any job"),
    ],
)
def test_a_server_that_could_run_no_job_does_not_start(tmp_path, flags, words):
    """Found by a user: bad weights started the server (every job then failed), NaN or inf
    upload limits were internal errors, a 1 kB budget started a server that refused all jobs."""
    (tmp_path / "junk.pth").write_bytes(os.urandom(5000))
    argv = ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(_free_port())]
    argv += [f.format(tmp=tmp_path) for f in flags]
    # a process, not main(): a server that starts would serve for ever
    done = subprocess.run(
        [sys.executable, "-m", "impasto", *argv], capture_output=True, text=True, timeout=60
    )
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and words in err[0], err
    if (tmp_path / "d").exists():  # the lock was given back
        DataDirLock(tmp_path / "d").acquire().release()


def test_ctrl_c_with_an_open_event_stream_is_quick_and_quiet(tmp_path, ctrl_c):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", "serve", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                stream = urllib.request.urlopen(f"{base}/api/events", timeout=30)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        with stream:
            assert stream.readline().startswith(b"retry:")  # the stream is open
            start = time.monotonic()
            proc.send_signal(signal.SIGINT)
            assert stream.read() == b": connected\n\n"  # then the server ended it
            took = time.monotonic() - start
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "CancelledError" not in err, err
    # Before, the stream held the server until uvicorn's 3 s graceful timeout cancelled it.
    assert took < 2.0, f"the event stream stayed open {took:.1f} s after Ctrl-C"
