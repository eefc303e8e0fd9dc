import io

import pytest
import torch

from impasto.callbacks import Iterate, ProgressBar


def _it(step, progress, total=10, scale=0, *, i=None, elapsed=None):
    return Iterate(
        step=step,
        total_steps=total,
        scale=scale,
        n_scales=2,
        size=(64, 48),
        i=step if i is None else i,
        i_max=total,
        loss=1.0,
        losses={"content": 0.5, "style": 0.5},
        elapsed=step * 1.0 if elapsed is None else elapsed,
        image=torch.zeros(1, 3, 48, 64),
        progress=progress,
    )


def test_eta_uses_pixel_weighted_progress():
    it = _it(5, progress=0.2)  # half the steps, a fifth of the work
    assert it.eta == 20.0  # 5 s for 20 % -> 20 s left
    assert _it(5, progress=None).eta == 5.0  # by steps when the work is unknown


def test_progress_bar_follows_work_and_shows_iterations_and_rate():
    out = io.StringIO()
    saved = []
    with ProgressBar(file=out, save_every=2, save=saved.append) as bar:
        bar(_it(2, 0.1))
        assert bar.bar.n == 100
        bar(_it(10, 1.0))
        assert bar.bar.n == 1000
    text = out.getvalue()
    assert "it 10/10" in text and "it/s" in text and "content=0.5" in text
    assert [it.step for it in saved] == [2]  # never on the last step


def test_save_latest_saves_the_last_iterate_once_unless_already_saved():
    """An interrupted run's output held the image up to ``save_every`` steps before the stop."""
    saved = []
    with ProgressBar(enabled=False, save_every=4, save=saved.append) as bar:
        bar.save_latest()  # nothing seen yet
        for step in (1, 2, 3, 4):
            bar(_it(step, step / 10))
        bar.save_latest()  # step 4 was saved on schedule
        bar(_it(5, 0.5))
        bar.save_latest()
        bar.save_latest()
    assert [it.step for it in saved] == [4, 5]
    quiet = ProgressBar(enabled=False, save=saved.append)  # no --save-every: never
    quiet(_it(1, 0.1))
    quiet.save_latest()
    assert len(saved) == 2


def test_no_empty_bar_is_drawn_before_the_first_iteration():
    out = io.StringIO()
    with ProgressBar(file=out) as bar:
        bar(_it(1, 0.1))
    first = [part for part in out.getvalue().split("\r") if part.strip()][0]
    assert first.startswith("64x48 it 1/10"), first  # not an empty "  0%|" line


def test_the_bar_shows_the_current_scale_s_rate_not_the_run_s():
    """12 s of setup, then 10 it/s at the first scale and 2 it/s at the second: the run's
    average (step / elapsed) would read 0.2 and 0.7 it/s."""
    out = io.StringIO()
    with ProgressBar(file=out) as bar:
        bar(_it(1, 0.05, elapsed=12.0))
        assert bar.scale_rate(bar._last) is None  # one iterate: no rate yet
        bar(_it(3, 0.15, elapsed=12.2))
        assert bar.scale_rate(bar._last) == pytest.approx(10.0)
        assert bar.bar.postfix.startswith("10.00 it/s")
        bar(_it(4, 0.5, scale=1, i=1, elapsed=13.0))
        bar(_it(8, 0.9, scale=1, i=5, elapsed=15.0))
        assert bar.scale_rate(bar._last) == pytest.approx(2.0)
    assert "2.00 it/s" in out.getvalue() and "0.53 it/s" not in out.getvalue()


def test_a_resumed_run_s_bar_starts_at_the_work_already_done():
    """Its time-left estimate counts only this session's progress (the bar's rate would
    otherwise take the earlier session's work as done in the first second)."""
    with ProgressBar(file=io.StringIO()) as bar:
        bar(_it(6, 0.6, elapsed=40.0))
        assert bar.bar.initial == 600 and bar.bar.n == 600
        bar(_it(7, 0.7, elapsed=41.0))
        assert bar.bar.n == 700
