"""While a CPU run is in progress freed memory stays in the process (no page faults on the next
iteration); when the last run ends it goes back to the system. Measured in a fresh process, by
its resident set size around a 256 MB tensor allocated and freed."""

import json
import subprocess
import sys
import textwrap

import pytest

from impasto.allocator import _glibc, keep_freed_memory

needs_glibc = pytest.mark.skipif(_glibc() is None, reason="glibc only")

PROBE = textwrap.dedent(
    """
    import json, torch
    from impasto.allocator import keep_freed_memory
    rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6

    def cycle():
        t = torch.ones(64 * 1024 * 1024)  # 256 MB, every page touched
        del t
        return rss()

    out = {"start": rss(), "plain": cycle()}
    with keep_freed_memory() as kept:
        with keep_freed_memory():  # a second, concurrent run ending first changes nothing
            pass
        out["kept"], out["in_run"] = kept, cycle()
    out["after"] = rss()
    out["plain_again"] = cycle()
    print(json.dumps(out))
    """
)


@needs_glibc
def test_freed_memory_stays_during_a_run_and_goes_back_after():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["kept"] is True
    assert r["plain"] - r["start"] < 50  # glibc unmapped it: the default
    assert r["in_run"] - r["start"] > 200  # kept for the next iteration
    assert r["after"] - r["start"] < 50  # trimmed when the last run ended
    assert r["plain_again"] - r["start"] < 50  # and glibc's defaults are back


def test_elsewhere_than_the_cpu_it_changes_nothing():
    with keep_freed_memory("cuda") as kept:
        assert kept is False


@needs_glibc
def test_a_cpu_run_keeps_freed_memory_while_it_runs_only(content_path, style_path):
    from impasto import Settings, Stylizer, allocator

    seen = []
    s = Settings(size=48, iterations=2, pyramid_start=0, seed=0, device="cpu", precision="fp32")
    Stylizer(s).run(content_path, style_path, callback=lambda it: seen.append(allocator._runs))
    assert seen == [1, 1] and allocator._runs == 0


THREAD_PROBE = textwrap.dedent(
    """
    import json, sys, threading
    from impasto import allocator
    shared = sys.argv[1] == "shared" and allocator.share_main_heap()
    import torch
    rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6
    out = {"shared": shared}

    def run():  # as a web studio job: a worker thread, freed memory kept while it runs
        with allocator.keep_freed_memory():
            start = rss()
            t = torch.ones(64 * 1024 * 1024)  # 256 MB: more than a thread's own heap holds
            del t
            out["kept"] = rss() - start

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    print(json.dumps(out))
    """
)


@needs_glibc
def test_a_worker_thread_keeps_freed_memory_once_threads_share_the_main_heap():
    def probe(mode):
        done = subprocess.run(
            [sys.executable, "-c", THREAD_PROBE, mode], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    own, shared = probe("own"), probe("shared")
    assert own["kept"] < 50  # glibc's per-thread heap: mapped anew, unmapped at free
    assert shared["shared"] is True and shared["kept"] > 200


def test_impasto_serve_shares_the_main_heap_before_starting_threads(monkeypatch, tmp_path):
    from impasto.cli import main, serve
    from impasto.web.lock import DataDirLock

    calls = []
    monkeypatch.setattr(serve, "share_main_heap", lambda: calls.append("shared"))

    def acquire(self, port):  # the first step that holds anything: stop the start-up there
        calls.append("lock")
        raise serve.ServeError("stopped here")

    monkeypatch.setattr(DataDirLock, "acquire", acquire)
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "8123"]) != 0
    assert calls == ["shared", "lock"]
