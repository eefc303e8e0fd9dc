"""The optimiser loop: descent, cancel, recovery from non-finite losses, the on_step contract,
determinism, objectives that compute their own gradient, and exact save/restore."""

import io
import threading

import pytest
import torch

from impasto.errors import Cancelled, SettingsError
from impasto.optimise import MAX_FAILURES, Descent, optimise

TARGET = torch.linspace(0.1, 0.9, 2 * 3 * 4 * 5).reshape(2 * 3, 4, 5)[None, :3]
START = torch.full((1, 3, 4, 5), 0.5)


def quadratic(x):
    loss = ((x - TARGET) ** 2).sum() * 1e6  # large, like Gatys' raw losses
    return loss, {"q": loss}


@pytest.mark.parametrize("name, lr, iterations", [("lbfgs", 1.0, 20), ("adam", 0.02, 60)])
def test_both_optimisers_decrease_a_quadratic(name, lr, iterations):
    totals = []
    out = optimise(
        START,
        quadratic,
        iterations=iterations,
        optimizer=name,
        lr=lr,
        history_size=5,
        on_step=lambda i, img, parts, total: totals.append(float(total)),
    )
    assert totals[-1] < 1e-2 * totals[0]
    assert float((out - TARGET).abs().max()) < 0.05
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(START, torch.full((1, 3, 4, 5), 0.5))  # the start is not modified


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_a_start_image_with_any_strides_descends(name):
    """A start resized from a 1x1 px image comes out channels-last (torch reads a 1x1 image's
    strides so); L-BFGS's flat view of its gradient failed (an internal error for ``--init``
    with a 1x1 file)."""
    start = torch.full((1, 3, 4, 5), 0.5).contiguous(memory_format=torch.channels_last)
    lr = 0.02 if name == "adam" else 1.0
    out = optimise(start, quadratic, iterations=5, optimizer=name, lr=lr, history_size=5)
    assert out.shape == (1, 3, 4, 5) and out.is_contiguous()


def test_on_step_contract():
    calls = []

    def on_step(i, image, parts, total):
        calls.append((i, image.clone(), image.requires_grad, set(parts), total.requires_grad))

    out = optimise(
        START, quadratic, iterations=3, optimizer="lbfgs", lr=1.0, history_size=5, on_step=on_step
    )
    assert [c[0] for c in calls] == [1, 2, 3]
    assert all(c[1].shape == START.shape and not c[2] and c[3] == {"q"} for c in calls)
    assert not any(c[4] for c in calls)
    assert torch.equal(calls[-1][1].clamp(0, 1), out)


def test_cancel_stops_before_the_next_iteration():
    cancel = threading.Event()
    seen = []

    def on_step(i, *_):
        seen.append(i)
        if i == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        optimise(
            START,
            quadratic,
            iterations=10,
            optimizer="adam",
            lr=0.01,
            history_size=1,
            on_step=on_step,
            cancel=cancel,
        )
    assert seen == [1, 2]


def test_a_non_finite_loss_goes_back_with_half_the_step():
    calls = []

    def flaky(x):
        calls.append(x.detach().clone())
        loss, parts = quadratic(x)
        return (loss * float("nan"), parts) if len(calls) == 2 else (loss, parts)

    d = Descent(START, flaky, optimizer="adam", lr=0.1, history_size=1)
    d.step()
    assert d.lr == 0.1 and torch.isfinite(d.total)
    d.step()  # evaluates at the new point: NaN -> back to the last finite one, step halved
    assert d.lr == 0.05 and d.failures == 1
    assert not torch.equal(calls[1], calls[0])
    assert torch.equal(d.x.detach(), calls[0])
    d.step()
    assert d.failures == 0 and torch.isfinite(d.total)


def test_a_scale_that_ends_on_a_blow_up_returns_the_last_sound_point():
    """L-BFGS without a line search sometimes jumps far and comes back (a user's --margin run:
    933 -> 5.2e6 -> 883); a scale that ended on the jump returned the step taken from it."""
    calls = []

    def jumpy(x):
        calls.append(x.detach().clone())
        loss, parts = quadratic(x)
        return (loss + 1e15, parts) if len(calls) == 3 else (loss, parts)  # a jump

    out = optimise(START, jumpy, iterations=3, optimizer="lbfgs", lr=1.0, history_size=5)
    assert torch.equal(out, calls[1].clamp(0, 1))  # the second point: the last sound one
    calls.clear()
    longer = optimise(START, jumpy, iterations=6, optimizer="lbfgs", lr=1.0, history_size=5)
    assert not torch.equal(longer, calls[1].clamp(0, 1))  # mid-run the jump is left alone


def test_a_loss_that_stays_non_finite_is_a_clear_error():
    def broken(x):
        loss, parts = quadratic(x)
        return loss * float("inf"), parts

    with pytest.raises(SettingsError, match="non-finite"):
        optimise(
            START, broken, iterations=MAX_FAILURES + 2, optimizer="adam", lr=0.1, history_size=1
        )


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_runs_are_deterministic(name):
    kw = dict(iterations=5, optimizer=name, lr=0.5, history_size=3)
    assert torch.equal(optimise(START, quadratic, **kw), optimise(START, quadratic, **kw))


def test_unknown_optimizer_is_a_settings_error():
    with pytest.raises(SettingsError, match="lbfgs, adam"):
        optimise(START, quadratic, iterations=1, optimizer="sgd", lr=1.0, history_size=1)


class OwnGradient:
    """An objective that fills ``image.grad`` itself (as tiles do)."""

    computes_gradient = True

    def __call__(self, x):
        loss, parts = quadratic(x.detach())
        x.grad = 2e6 * (x.detach() - TARGET)
        return loss, parts


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_an_objective_may_compute_its_own_gradient(name):
    kw = dict(iterations=6, optimizer=name, lr=0.5, history_size=3)
    torch.testing.assert_close(
        optimise(START, OwnGradient(), **kw), optimise(START, quadratic, **kw)
    )


@pytest.mark.parametrize("ema", [0.0, 0.8])
@pytest.mark.parametrize("name", ["lbfgs", "adam"])
def test_saved_and_restored_descent_continues_bit_for_bit(name, ema):
    kw = dict(optimizer=name, lr=0.5, history_size=3, ema_decay=ema)
    straight = Descent(START, quadratic, **kw)
    for _ in range(7):
        straight.step()

    first = Descent(START, quadratic, **kw)
    for _ in range(3):
        first.step()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    del first

    def saved():
        buf.seek(0)
        return torch.load(buf, weights_only=True)

    second = Descent(torch.zeros_like(START), quadratic, **kw)
    second.load_state_dict(saved())
    assert second.done == 3
    for _ in range(4):
        second.step()
    assert torch.equal(second.x, straight.x)
    assert torch.equal(second.total, straight.total)
    assert torch.equal(second.result(), straight.result())

    resumed = optimise(START, quadratic, iterations=7, resume=saved(), **kw)
    assert torch.equal(resumed, straight.result())


def test_restoring_another_run_is_refused():
    d = Descent(START, quadratic, optimizer="lbfgs", lr=1.0, history_size=3)
    state = d.state_dict()
    other = Descent(START, quadratic, optimizer="adam", lr=1.0, history_size=3)
    with pytest.raises(SettingsError, match="does not match"):
        other.load_state_dict(state)


@pytest.mark.parametrize("name, lr", [("lbfgs", 0.5), ("adam", 0.05)])
def test_iterate_averaging_returns_the_ema_of_the_clamped_iterates(name, lr):
    decay = 0.7
    d = Descent(START, quadratic, optimizer=name, lr=lr, history_size=3, ema_decay=decay)
    plain = Descent(START, quadratic, optimizer=name, lr=lr, history_size=3)
    expected = START.clone()
    for _ in range(6):
        d.step()
        plain.step()
        expected = decay * expected + (1 - decay) * d.x.detach().clamp(0, 1)
    assert torch.equal(d.x, plain.x)  # averaging does not change the descent
    torch.testing.assert_close(d.result(), expected)
    assert not torch.equal(d.result(), plain.result())
    seen = []
    out = optimise(
        START,
        quadratic,
        iterations=6,
        optimizer=name,
        lr=lr,
        history_size=3,
        ema_decay=decay,
        on_step=lambda i, img, parts, total: seen.append(img.clone()),
    )
    assert torch.equal(out, d.result()) and torch.equal(seen[-1], out)


def test_restoring_with_other_averaging_is_refused():
    state = Descent(START, quadratic, optimizer="adam", lr=0.1, history_size=3).state_dict()
    other = Descent(START, quadratic, optimizer="adam", lr=0.1, history_size=3, ema_decay=0.9)
    with pytest.raises(SettingsError, match="averages"):
        other.load_state_dict(state)


def test_lbfgs_keeps_the_history_it_is_given():
    """The memory planner shortens the L-BFGS history to fit the budget; the optimiser must
    keep no more (step, gradient change) pairs than asked, or the plan is void."""

    def bowl(x):  # curved differently per pixel: every step adds a pair
        loss = ((x - TARGET) ** 2 * torch.linspace(1, 30, x.numel()).reshape(x.shape)).sum()
        return loss, {"q": loss}

    runs = {}
    for history in (2, 5):
        d = Descent(START, bowl, optimizer="lbfgs", lr=0.1, history_size=history)
        for _ in range(8):
            d.step()
        assert len(d.opt.state_dict()["state"][0]["old_dirs"]) == history
        runs[history] = d.x.clone()
    assert not torch.equal(runs[2], runs[5])


def test_adam_keeps_every_iterate_a_valid_image():
    """Adam's steps are clamped to [0, 1] after each one (L-BFGS's by the objective's own
    clamp); a target outside the range pulls it there."""
    outside = torch.where(TARGET < TARGET.median(), -0.5, 1.5)  # half below 0, half above 1

    def pull(x):
        loss = ((x - outside) ** 2).sum()
        return loss, {"q": loss}

    d = Descent(START, pull, optimizer="adam", lr=0.2, history_size=1)
    for _ in range(10):
        d.step()
        x = d.x.detach()
        assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert float(x.min()) == 0 and float(x.max()) == 1  # it got there, and stopped
