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
