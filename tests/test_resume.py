"""Long runs end to end: the memory plan and exact tiles in the pyramid, checkpoints written on
cancel and periodically, and resumed runs equal to uninterrupted ones bit for bit (CPU, a
VGG19-shaped network with random weights, a pyramid of two scales, L-BFGS)."""

import itertools
import json

import pytest
import torch

from impasto import Settings, Stylizer
from impasto.cache import RunCache
from impasto.checkpoint import Autosave, load_checkpoint, save_checkpoint
from impasto.cli import main
from impasto.encoder.weights import save_weights
from impasto.errors import Cancelled, CheckpointError
from impasto.image import read_metadata
from impasto.plan import make_plan
from impasto.pyramid import scale_memory
from tests._tiny_vgg import SPEC, tiny_state_dict


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    save_weights(path, tiny_state_dict(), SPEC)
    return str(path)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def settings(weights, **kw):
    base = dict(
        size=64, iterations=5, pyramid_start=32, pyramid_iterations=4, seed=3, device="cpu",
        precision="fp32", weights=weights,
    )  # fmt: skip
    return Settings(**{**base, **kw})


def stop_at(step, error=Cancelled):
    def callback(it):
        if it.step == step:
            raise error("stop")

    return callback


@pytest.mark.parametrize(
    ("stop", "tile", "error"),
    [(2, None, Cancelled), (7, None, Cancelled), (6, 32, Cancelled), (5, None, KeyboardInterrupt)],
)
def test_cancelled_and_resumed_equals_uninterrupted(
    stop, tile, error, tiny_weights, content_path, style_path, tmp_path, one_thread
):
    s = settings(tiny_weights, tile=tile)
    straight = Stylizer(s).run(content_path, [style_path])
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(error):
        Stylizer(s).run(content_path, [style_path], callback=stop_at(stop, error), checkpoint=ckpt)
    saved = load_checkpoint(ckpt)
    assert (saved.level, saved.iteration) == ((0, stop) if stop <= 4 else (1, stop - 4))
    resumed = Stylizer(s).run(content_path, [style_path], resume=ckpt)
    assert torch.equal(resumed.image, straight.image)
    assert [h["step"] for h in resumed.history] == list(range(1, 10))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert resumed.memory == straight.memory


def test_a_periodic_checkpoint_resumes_exactly(tiny_weights, content_path, style_path, tmp_path):
    s = settings(tiny_weights)
    ticks = itertools.count()  # one tick per look at the clock: due at the 6th iteration
    ckpt, periodic = tmp_path / "run.ckpt", tmp_path / "periodic.ckpt"

    def keep_periodic(it):  # the periodic one, before the finished state replaces it
        if it.step == 8:
            periodic.write_bytes(ckpt.read_bytes())

    straight = Stylizer(s).run(
        content_path, [style_path], callback=keep_periodic,
        checkpoint=Autosave(ckpt, every=6, clock=ticks.__next__),
    )  # fmt: skip
    saved = load_checkpoint(periodic)
    assert (saved.level, saved.iteration) == (1, 2)
    resumed = Stylizer(s).run(content_path, [style_path], resume=periodic)
    assert torch.equal(resumed.image, straight.image)


def test_a_finished_runs_checkpoint_resumes_without_optimising(
    tiny_weights, content_path, style_path, tmp_path
):
    """A user resumed the checkpoint of a run that had finished: the README says it then just
    writes the result again, but it went back to the last timed save and optimised again. A
    run with a checkpoint brings it to the finished state at its last iteration; one that never
    saved (a short run) still writes none."""
    s = settings(tiny_weights)
    ticks = itertools.count()
    ckpt, none = tmp_path / "run.ckpt", tmp_path / "never.ckpt"
    straight = Stylizer(s).run(
        content_path, [style_path], checkpoint=Autosave(ckpt, every=6, clock=ticks.__next__)
    )
    saved = load_checkpoint(ckpt)
    assert (saved.level, saved.iteration) == (1, 5)
    steps = []
    resumed = Stylizer(s).run(content_path, [style_path], resume=ckpt, callback=steps.append)
    assert steps == [] and torch.equal(resumed.image, straight.image)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    Stylizer(s).run(content_path, [style_path], checkpoint=none)  # never due (5 minutes)
    assert not none.exists()


def test_resume_refuses_another_run(tiny_weights, content_path, style_path, tmp_path):
    s = settings(tiny_weights)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Cancelled):
        Stylizer(s).run(content_path, [style_path], callback=stop_at(2), checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="^style_weight: the checkpoint was made with"):
        Stylizer(s.replace(style_weight=5.0)).run(content_path, [style_path], resume=ckpt)
    with pytest.raises(CheckpointError, match="seed"):
        Stylizer(s.replace(seed=4)).run(content_path, [style_path], resume=ckpt)
    with pytest.raises(CheckpointError, match="painting 1 .*differs"):
        Stylizer(s).run(content_path, [content_path], resume=ckpt)
    # weights are compared as in use: the default TV (3) is refused as 0, accepted spelled out
    with pytest.raises(CheckpointError, match="tv_weight: the checkpoint was made with 3.0, this"):
        Stylizer(s.replace(tv_weight=0)).run(content_path, [style_path], resume=ckpt)
    assert load_checkpoint(ckpt).settings["tv_weight"] == 3.0  # recorded as in use
    same = s.replace(tv_weight=3.0, style_weight=10.0)
    Stylizer(same).run(content_path, [style_path], resume=ckpt)


def test_forced_tiles_are_exact_and_recorded(tiny_weights, content_path, style_path, tmp_path):
    whole = Stylizer(settings(tiny_weights)).run(content_path, [style_path])
    tiled = Stylizer(settings(tiny_weights, tile=32)).run(content_path, [style_path])
    # Same loss at the start; the optimisation then amplifies float rounding only slightly.
    assert tiled.history[0]["loss"] == pytest.approx(whole.history[0]["loss"], rel=1e-5)
    assert (tiled.image - whole.image).abs().max() < 1e-2
    assert [m["tile"] for m in tiled.memory] == [None, 32]  # the small level runs whole
    assert [m["tile"] for m in whole.memory] == [None, None]
    out = tmp_path / "o.png"
    tiled.save(out)
    meta = json.loads(read_metadata(out)["impasto"])
    assert meta["memory"][1] == {"size": [64, 43], "tile": 32, "optimizer": "lbfgs", "history": 20}


class Recorder:
    def __init__(self):
        self.notes, self.tiles = [], []

    def __call__(self, it):
        pass

    def on_note(self, note):
        self.notes.append(note)

    def on_tile(self, tick):
        self.tiles.append(tick)


def test_a_tight_budget_shortens_the_history_and_says_so(tiny_weights, content_path, style_path):
    s = settings(tiny_weights, tile=32, pyramid_start=0)
    plan = make_plan(s, content_path, [style_path], None, RunCache())
    enc = RunCache().encoder(s, plan.device, plan.dtype, plan.style_layers, winograd=plan.winograd)
    roomy = scale_memory(plan, 0, enc, 1 << 40)
    pixels = 64 * 43 * 3 * 4  # one image-sized float32 vector
    budget = roomy.estimate - 10 * 2 * pixels  # 10 curvature pairs fewer
    rec = Recorder()
    result = Stylizer(s.replace(max_memory=budget)).run(content_path, [style_path], callback=rec)
    assert result.memory[0]["history"] == 10
    warnings = [n for n in rec.notes if n.warning]
    assert len(warnings) == 1 and "L-BFGS history 20 -> 10" in warnings[0].text
    # Tile progress: both passes over every tile of every iteration, progress increasing.
    n = rec.tiles[0].tiles
    assert n == 4 and len(rec.tiles) == 2 * n * s.iterations
    assert [t.progress for t in rec.tiles] == sorted(t.progress for t in rec.tiles)
    assert rec.tiles[-1].progress == pytest.approx(1.0)


def test_an_enlarged_painting_is_a_warning(tiny_weights, content_path, tiny_rgb):
    rec = Recorder()
    Stylizer(settings(tiny_weights, iterations=1, pyramid_start=0)).run(
        content_path, [tiny_rgb], callback=rec
    )
    (note,) = [n for n in rec.notes if n.kind == "upscale"]
    assert note.warning and "tiny.png (40x30 px) is enlarged 1.6x to 64 px" in note.text


def test_cli_checkpoint_and_resume(tiny_weights, content_path, style_path, tmp_path, capsys):
    out, again, ckpt = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "run.ckpt"
    flags = ["--size", "48", "--iterations", "3", "--pyramid-start", "0", "--device", "cpu"]
    flags += ["--weights", tiny_weights, "--precision", "fp32", "--max-memory", "20G", "-q"]
    rc = main([str(content_path), str(style_path), "-o", str(out), *flags,
               "--checkpoint", str(ckpt), "--checkpoint-every", "1e-9"])  # fmt: skip
    assert rc == 0 and ckpt.is_file()
    assert load_checkpoint(ckpt).iteration == 3  # saved after every iteration: the last
    assert main(["resume", str(ckpt), "-o", str(again), "-q"]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert main(["resume", str(tmp_path / "nope.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2
    assert "is a directory; give the checkpoint file" in capsys.readouterr().err


def test_a_moved_checkpoint_keeps_its_progress_where_it_now_is(
    tiny_weights, content_path, style_path, tmp_path, monkeypatch, capsys
):
    """`impasto resume moved/run.ckpt` saved the new progress to the run's first checkpoint
    path, recreated there, and told the user to resume the stale, moved file."""
    from impasto import callbacks

    real, stops = callbacks.ProgressBar.__call__, iter([2, 4])
    stop = [next(stops)]

    def interrupt(self, it):
        real(self, it)
        if it.step == stop[0]:
            stop[0] = next(stops, None)
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.ProgressBar, "__call__", interrupt)
    (tmp_path / "first").mkdir()
    (tmp_path / "moved").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    flags = ["--size", "48", "--iterations", "6", "--pyramid-start", "0", "--device", "cpu"]
    flags += ["--weights", tiny_weights, "--precision", "fp32", "-q", "--seed", "1"]
    argv = [str(content_path), str(style_path), "-o", str(tmp_path / "a.png"), *flags]
    assert main([*argv, "--checkpoint", "run.ckpt", "--checkpoint-every", "0"]) == 130
    (tmp_path / "first" / "run.ckpt").rename(tmp_path / "moved" / "run.ckpt")
    monkeypatch.chdir(tmp_path / "moved")
    capsys.readouterr()
    assert main(["resume", "run.ckpt", "-q"]) == 130
    moved = tmp_path / "moved" / "run.ckpt"
    assert f"state saved in {moved}; continue with `impasto resume {moved}`" in (
        capsys.readouterr().err
    )
    assert load_checkpoint(moved).iteration == 4
    assert not (tmp_path / "first" / "run.ckpt").exists()


def test_resume_names_the_recorded_bits_it_cannot_write(
    tiny_weights, content_path, style_path, tmp_path, capsys
):
    """It said '--bits 16 needs a .png or .tif output', a flag `impasto resume` does not take."""
    ckpt = tmp_path / "run.ckpt"
    flags = ["--size", "48", "--iterations", "2", "--pyramid-start", "0", "--device", "cpu"]
    flags += ["--weights", tiny_weights, "-q", "--bits", "16", "--checkpoint", str(ckpt)]
    rc = main([str(content_path), str(style_path), "-o", str(tmp_path / "a.png"), *flags,
               "--checkpoint-every", "1e-9"])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    assert main(["resume", str(ckpt), "-o", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "impasto: error: the run writes 16 bits per channel (--bits 16); -o needs a .png or "
        ".tif, not .jpg"
    )


def test_resume_refuses_changed_weights_and_a_damaged_checkpoint(
    tiny_weights, content_path, style_path, tmp_path
):
    """Other weights under the same path resumed silently (only the images were identified);
    a checkpoint with flipped bytes resumed into a wrong image (torch.load skips the CRCs)."""
    import shutil

    weights = tmp_path / "w.pth"
    shutil.copy(tiny_weights, weights)
    s = settings(str(weights), iterations=6, pyramid_start=0, size=48)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Cancelled):
        Stylizer(s).run(content_path, [style_path], callback=stop_at(3), checkpoint=ckpt)
    data = bytearray(ckpt.read_bytes())
    damaged = tmp_path / "damaged.ckpt"
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(255 - b for b in data[middle : middle + 4])
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is damaged .* fails its CRC check"):
        load_checkpoint(damaged)
    save_weights(weights, tiny_state_dict(seed=9), SPEC)  # other weights, same path
    with pytest.raises(CheckpointError, match=r"the weights file \(w.pth\) has changed since"):
        Stylizer(s).run(content_path, [style_path], resume=ckpt)


def test_sigterm_saves_the_state_as_ctrl_c_does(
    tiny_weights, content_path, style_path, tmp_path, monkeypatch, capsys, ctrl_c
):
    """SIGTERM (kill, timeout, a scheduler) ended the run at once: with --checkpoint-every 0
    nothing was saved. It now takes Ctrl-C's path; exit 143, as a shell reports SIGTERM."""
    import os
    import signal

    from impasto import callbacks

    real = callbacks.ProgressBar.__call__

    def terminate_at_2(self, it):
        real(self, it)
        if it.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(callbacks.ProgressBar, "__call__", terminate_at_2)
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "a.png"
    flags = ["--size", "48", "--iterations", "6", "--pyramid-start", "0", "--device", "cpu"]
    flags += ["--weights", tiny_weights, "-q", "--seed", "1", "--checkpoint-every", "0"]

    def not_taken(signum, frame):  # what a regression meets, rather than pytest's death
        raise AssertionError("SIGTERM reached the default handling")

    before = signal.signal(signal.SIGTERM, not_taken)
    try:
        rc = main(
            [str(content_path), str(style_path), "-o", str(out), *flags, "--checkpoint", str(ckpt)]
        )
    finally:
        after = signal.signal(signal.SIGTERM, before)
    assert rc == 143 and after is not_taken  # main put the handler before it back
    err = capsys.readouterr().err
    assert f"state saved in {ckpt}" in err and "impasto: terminated;" in err
    assert load_checkpoint(ckpt).iteration == 2 and not out.exists()
    monkeypatch.setattr(callbacks.ProgressBar, "__call__", real)
    assert main(["resume", str(ckpt), "-q"]) == 0 and out.is_file()


def test_cli_refuses_checkpoint_flags_it_cannot_honour_before_any_work(
    content_path, style_path, tmp_path, capsys
):
    """A directory as --checkpoint failed at the first save (an internal error, the state
    lost); the output's own path was accepted and the checkpoint replaced the image; and
    --checkpoint-every without --checkpoint was silently ignored."""
    out = tmp_path / "a.png"
    base = [str(content_path), str(style_path), "-o", str(out), "--size", "32", "-q"]
    (tmp_path / "dir.ckpt").mkdir()
    for extra, words in (
        (["--checkpoint", str(tmp_path / "dir.ckpt")], "is a directory"),
        (["--checkpoint", str(out)], "another file than the output"),
        (["--checkpoint", str(tmp_path / "." / "a.png")], "another file than the output"),
        (["--checkpoint-every", "1"], "--checkpoint-every needs --checkpoint"),
        (["--checkpoint", ""], "--checkpoint needs a file path"),  # was silently off
    ):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_resumes_a_checkpoint_of_the_previous_release(
    tiny_weights, content_path, style_path, tmp_path
):
    """A checkpoint written before ``conv`` existed (all convolutions direct) resumes with direct
    convolutions and the recorded settings, not with today's defaults (which it would refuse)."""
    out, again, ckpt = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "run.ckpt"
    flags = ["--size", "48", "--iterations", "3", "--pyramid-start", "0", "--device", "cpu"]
    flags += ["--weights", tiny_weights, "--precision", "fp32", "--conv", "direct", "-q"]
    rc = main([str(content_path), str(style_path), "-o", str(out), *flags,
               "--checkpoint", str(ckpt), "--checkpoint-every", "1e-9"])  # fmt: skip
    assert rc == 0
    old = load_checkpoint(ckpt)
    del old.settings["conv"]
    del old.inputs["weights"]  # not identified before
    caller = json.loads(old.extra["caller"])
    del caller["args"]["conv"], caller["args"]["dpi"]
    caller["args"]["quality"] = 95  # recorded so before --quality was refused for a .png
    old.extra["caller"] = json.dumps(caller)
    save_checkpoint(ckpt, old)
    with pytest.raises(CheckpointError, match="conv: the checkpoint was made with 'direct', this"):
        Stylizer(settings(tiny_weights, size=48, iterations=3, pyramid_start=0)).run(
            content_path, [style_path], resume=ckpt
        )
    assert main(["resume", str(ckpt), "-o", str(again), "-q"]) == 0
    assert again.read_bytes() == out.read_bytes()


def _quadratic(x):
    loss = ((x - 0.25) ** 2).sum()
    return loss, {"q": loss}


def test_ctrl_c_during_an_evaluation_saves_the_last_iteration(ctrl_c):
    import signal

    from impasto.optimise import optimise

    calls, saved = [], []

    def objective(x):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, in the middle of iteration 3
        return _quadratic(x)

    with pytest.raises(KeyboardInterrupt):
        optimise(
            torch.zeros(1, 3, 4, 4), objective, iterations=5, optimizer="lbfgs", lr=1.0,
            history_size=3, on_interrupt=lambda i, state: saved.append((i, state()["done"])),
        )  # fmt: skip
    assert saved == [(2, 2)]


def test_ctrl_c_during_the_optimisers_update_waits_for_its_end(ctrl_c):
    import signal

    from impasto.optimise import Descent, _DeferredInterrupt

    d = Descent(torch.zeros(1, 3, 4, 4), _quadratic, optimizer="lbfgs", lr=1.0, history_size=3)
    with _DeferredInterrupt(d) as held:
        assert signal.SIGINT in held.previous  # installed (main thread, default handling)
        d.steady = False
        signal.raise_signal(signal.SIGINT)  # held: no exception here
        d.steady = True
        with pytest.raises(KeyboardInterrupt):
            held.check()
        held.check()  # once only
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # steady: at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_is_held_like_ctrl_c_where_sigint_is_ignored(ctrl_c):
    """A job a script starts with ``&`` has SIGINT ignored: the CLI's SIGTERM handler sent
    itself a SIGINT, which did nothing, and ``kill`` could not stop the run. SIGTERM's own
    (Python) handler now interrupts, held while the optimiser updates its state as Ctrl-C is."""
    import signal

    from impasto.optimise import Descent, _DeferredInterrupt

    class Terminated(Exception):
        pass

    def terminate(signum, frame):
        raise Terminated

    d = Descent(torch.zeros(1, 3, 4, 4), _quadratic, optimizer="lbfgs", lr=1.0, history_size=3)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, terminate)
    try:
        with _DeferredInterrupt(d) as held:
            assert list(held.previous) == [signal.SIGTERM]  # ignored SIGINT stays ignored
            d.steady = False
            signal.raise_signal(signal.SIGTERM)  # held: no exception here
            d.steady = True
            with pytest.raises(Terminated):
                held.check()
            with pytest.raises(Terminated):
                signal.raise_signal(signal.SIGTERM)  # steady: at once
        assert signal.getsignal(signal.SIGTERM) is terminate
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_kill_stops_a_run_started_with_sigint_ignored(tmp_path):
    """The user's case, end to end: ``impasto ... &`` from a script (SIGINT ignored), then
    ``kill``: the run went on to the end and exited 0 with no checkpoint. It now saves the
    state and exits 143, as it does in a terminal."""
    import signal
    import subprocess
    import sys
    import time

    ckpt, out, seen = tmp_path / "run.ckpt", tmp_path / "a.png", tmp_path / "a.i00001.png"
    argv = [sys.executable, "-m", "impasto", "example:chelsea", "example:starry_night", "-o",
            str(out), "--size", "64", "--iterations", "100000", "--pyramid-start", "0", "-q",
            "--save-every", "1", "--keep-intermediates", "--checkpoint", str(ckpt),
            "--checkpoint-every", "0"]  # fmt: skip
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not seen.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the loop has run an iteration
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "impasto: terminated;" in err and "Traceback" not in err, err
    assert load_checkpoint(ckpt).iteration >= 1
