"""Issue "Nothing a user types can crash it": each defect a user found, as a regression test,
and the command line fuzzed (any argv either parses and validates, or is one line + exit 2)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from impasto.cli import main, parse
from impasto.cli.stylize import prepare
from impasto.errors import ImpastoError
from impasto.image import read_metadata

FAST = ["--size", "40", "--iterations", "2", "--seed", "0", "-q", "--pyramid-start", "0"]
PAIR = ["example:chelsea", "example:starry_night"]


def _one_line(capsys, rc, pattern, code=2):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == code, err
    assert len(lines) == 1 and lines[0].startswith("impasto: error:"), err
    assert pattern in lines[0], lines[0]


def test_zero_iterations_from_noise_is_refused_not_written(tmp_path, capsys):
    out = tmp_path / "it0.png"
    rc = main([*PAIR, "--size", "64", "--iterations", "0", "--pyramid-start", "0", "-o", str(out)])
    _one_line(capsys, rc, "random start image")
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        ([*PAIR, "--quality", "0", "-o", "{tmp}/out.jpg"], "--quality must be an integer from 1"),
        ([*PAIR, "--bits", "16", "-o", "{tmp}/out.jpg"], "--bits 16 needs a .png or .tif"),
        # --quality with a lossless output had no effect, silently
        ([*PAIR, "--quality", "80", "-o", "{tmp}/out.png"], "--quality applies to .jpg and .webp"),
        ([*PAIR, "--quality", "80", "-o", "{tmp}/out.tif"], "TIFF is lossless"),
        ([*PAIR, "--dpi", "0", "-o", "{tmp}/out.png"], "--dpi must be a number from 1 to 65535"),
        ([*PAIR, "--dpi", "nan", "-o", "{tmp}/out.png"], "--dpi must be a number from 1 to 65535"),
        (
            ["batch", "--contents", "example:chelsea", "--styles", "example:starry_night"]
            + ["-o", "{tmp}/b", "--quality", "80"],
            "PNG is lossless",
        ),
        (
            ["batch", "--contents", "example:chelsea", "--styles", "example:starry_night"]
            + ["-o", "{tmp}/b", "--format", "jpg", "--dpi", "1e6"],
            "--dpi must be a number from 1 to 65535",
        ),
        (
            ["sweep", *PAIR, "--over", "pooling", "--values", "max,avg", "--quality", "9"]
            + ["-o", "{tmp}/s.png"],
            "PNG is lossless",
        ),
        (
            ["reconstruct", "content", "example:chelsea", "--quality", "50", "-o", "{tmp}/r.png"],
            "PNG is lossless",
        ),
        (
            ["reconstruct", "content", "example:chelsea", "--bits", "16", "-o", "{tmp}/r.jpg"],
            "--bits 16 needs a .png or .tif",
        ),
        (
            ["reconstruct", "content", "example:chelsea", "--layers-sheet", "--bits", "16"]
            + ["-o", "{tmp}/r.png"],
            "8-bit contact sheet",
        ),
        (
            ["reconstruct", "content", "example:chelsea", "--save-every", "5", "-o", "{tmp}/r.png"],
            "unrecognized arguments: --save-every",
        ),
        (
            ["reconstruct", "style", "example:chelsea", "--init", "content", "-o", "{tmp}/r.png"],
            "unrecognized arguments: --init",
        ),
        ([*PAIR, "--init", "contnet", "-o", "{tmp}/o.png"], "neither one of noise, content, style"),
        ([*PAIR, "--size", "16", "-o", "{tmp}/o.png"], "too small for layer relu5_1"),
        ([*PAIR, "--size", "64.7", "-o", "{tmp}/o.png"], "argument --size: invalid int value"),
        ([*PAIR, "--pooling", "maxx", "-o", "{tmp}/o.png"], "choose from 'max', 'avg'"),
        ([*PAIR, "--content-weight", "0", "--style-weight", "0", "-o", "{tmp}/o.png"], "both 0"),
        ([*PAIR, "--keep-intermediates", "-o", "{tmp}/o.png"], "needs --save-every"),
        (["example:chelsea", "--bogus", "-o", "{tmp}/o.png"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, capsys, argv, pattern):
    started = time.perf_counter()
    rc = main([a.format(tmp=tmp_path) for a in argv])
    _one_line(capsys, rc, pattern)
    assert time.perf_counter() - started < 30  # refused up front, not after a run
    assert list(tmp_path.iterdir()) == []


def test_same_seed_gives_the_same_file_bytes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main([*PAIR, *FAST, "-o", str(a)]) == 0
    assert main([*PAIR, *FAST, "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert "elapsed" not in read_metadata(a)["impasto"]


def test_intermediate_files_record_seed_and_inputs(tmp_path):
    out = tmp_path / "o.png"
    argv = [*PAIR, "--size", "40", "--iterations", "3", "--pyramid-start", "0", "-q"]
    assert main([*argv, "--save-every", "1", "--keep-intermediates", "-o", str(out)]) == 0
    meta = json.loads(read_metadata(tmp_path / "o.i00001.png")["impasto"])
    assert meta["partial"] and isinstance(meta["seed"], int)
    assert meta["inputs"] == {"content": "chelsea.png", "styles": ["starry_night.jpg"]}
    final = json.loads(read_metadata(out)["impasto"])
    assert final["seed"] == meta["seed"]


def test_ctrl_c_during_start_up_is_one_line(tmp_path, ctrl_c):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "impasto", *PAIR, *FAST, "-o", str(tmp_path / "o.png")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(0.8)  # inside the imports (torch takes seconds to import)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (130, -signal.SIGINT), err


def test_help_is_fast_and_complete(capsys):
    for argv in (["--help"], ["stylize", "--help"], ["reconstruct", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "--max-input-pixels" in capsys.readouterr().out


_WORDS = st.sampled_from(
    [
        "example:chelsea",
        "example:starry_night",
        "example:nope",
        "reconstruct",
        "sweep",
        "content",
        "style",
        "--size",
        "--iterations",
        "--seed",
        "--pooling",
        "--init",
        "--style-layers",
        "--content-layers",
        "--style-blend",
        "--style-scales",
        "--bits",
        "--quality",
        "--dpi",
        "--region",
        "--labels",
        "--label-style",
        "--feather",
        "--style-layers-of",
        "--optimizer",
        "--learning-rate",
        "--precision",
        "--device",
        "--preserve-colors",
        "--weights",
        "--weights-format",
        "--style-weight",
        "--tv-weight",
        "--save-every",
        "--over",
        "--values",
        "max",
        "avg",
        "noise",
        "relu1_1",
        "relu9_9",
        "1=relu1_1",
        "-1",
        "0",
        "1",
        "16",
        "3.5",
        "1e309",
        "nan",
        "",
        "=",
        "a=b:c",
        "#ff0000=none",
        "-o",
        "-q",
        "-v",
        "--",
        "x.png",
        "x.jpg",
        "/nonexistent/x.png",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_WORDS, st.text(max_size=6)), max_size=8))
def test_any_command_line_validates_or_is_one_clear_error(argv):
    """Parse and validate everything a run would (no optimisation is started)."""
    try:
        args = parse(argv)
        if getattr(args, "run", None) is not None and args.command == "stylize":
            prepare(args)
    except ImpastoError as e:
        assert str(e) and "\n" not in str(e)
    except SystemExit as e:  # --help / --version only
        assert e.code == 0


def test_paintings_may_come_after_options():
    """`impasto stylize photo --size 48 painting` was argparse's "unrecognized arguments":
    the positionals before and after an option are taken together; the plain pass's messages
    (naming every missing argument) stay."""
    args = parse(["photo.jpg", "--size", "48", "a.jpg", "-o", "o.png", "b.jpg"])
    assert (args.command, args.content, args.styles, args.size) == (
        "stylize", "photo.jpg", ["a.jpg", "b.jpg"], 48
    )  # fmt: skip
    args = parse(["sweep", "p.jpg", "--over", "style_weight=1,2", "-o", "d", "s.jpg"])
    assert (args.command, args.styles) == ("sweep", ["s.jpg"])
    with pytest.raises(ImpastoError, match="required: content, -o/--output"):
        parse(["stylize"])
    with pytest.raises(ImpastoError, match="unrecognized arguments: --bogus"):
        parse(["photo.jpg", "--bogus", "-o", "o.png", "s.jpg"])


def test_broken_images_and_directories_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    _one_line(capsys, main([str(bad), PAIR[1], *FAST, "-o", str(tmp_path / "o.png")]), "bad.png")
    Image.new("RGB", (50, 40)).save(tmp_path / "ok.png")
    _one_line(capsys, main([str(tmp_path / "ok.png"), PAIR[1], *FAST, "-o", str(tmp_path)]), "")


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    """-o or --checkpoint naming the photo replaced it with the result (or with a checkpoint
    that no resume could then use, its photo gone)."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (60, 40), (200, 40, 40)).save(photo)
    start = tmp_path / "start.png"
    Image.new("RGB", (60, 40), (20, 40, 200)).save(start)
    before = photo.read_bytes(), start.read_bytes()
    paint = ["example:starry_night", *FAST]
    for argv, flag in (
        ([str(photo), *paint, "-o", str(photo)], "-o"),
        ([str(photo), *paint, "-o", str(tmp_path / "o.png"), "--checkpoint", str(photo)],
         "--checkpoint"),
        (["example:chelsea", str(photo), *FAST, "-o", str(tmp_path / "." / "photo.png")], "-o"),
        (["example:chelsea", *paint, "--init", str(start), "-o", str(start)], "-o"),
        (["reconstruct", "content", str(photo), "--size", "40", "-q", "-o", str(photo)], "-o"),
        (["sweep", str(photo), "example:starry_night", "--over", "pooling", "--values", "max,avg",
          "--size", "40", "-q", "-o", str(photo)], "-o"),
    ):  # fmt: skip
        _one_line(capsys, main(argv), f"{flag} ")
    assert (photo.read_bytes(), start.read_bytes()) == before
    assert not (tmp_path / "o.png").exists()


def test_region_and_label_flags_a_user_mistyped(tmp_path, capsys):
    """An empty STYLE ('MASK=' from an empty shell variable) became an unstyled region; a
    colour given twice, or a tolerance out of range, was reported as matching no pixel; and
    --init took no example:NAME although every other input does."""
    mask, labels = tmp_path / "mask.png", tmp_path / "labels.png"
    Image.new("L", (60, 40), 255).save(mask)
    Image.new("RGB", (60, 40), (255, 0, 0)).save(labels)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (60, 40), (90, 120, 200)).save(photo)
    out = ["-o", str(tmp_path / "o.png"), *FAST]
    cases = (
        ([str(photo), "--region", f"{mask}="], "no style after '='"),
        (
            [str(photo), "--labels", str(labels), "--label-style", "red=example:starry_night"]
            + ["--label-style", "#ff0000=example:great_wave"],
            "gives the colour of red again as #ff0000",
        ),
        (
            [str(photo), "--labels", str(labels), "--label-style", "red=example:starry_night"]
            + ["--label-tolerance", "1.5"],
            "--label-tolerance must be between 0 and 1, got 1.5",
        ),
    )
    for argv, words in cases:
        _one_line(capsys, main([*argv, *out]), words)
    assert main([str(photo), "example:starry_night", "--init", "example:coffee", *out]) == 0


def test_flags_that_did_nothing_are_refused(tmp_path, capsys):
    """Found by a user: each ran with rc 0 and no word, doing nothing the flag asked for."""
    mask = tmp_path / "mask.png"
    Image.new("L", (451, 300), 255).save(mask)
    out = ["-o", str(tmp_path / "o.png"), *FAST]
    two = ["example:chelsea", "example:starry_night", "example:great_wave"]
    cases = (
        ([*PAIR, "--feather", "0.1"], "--feather applies to --region or --labels"),
        ([*PAIR, "--guide-propagation", "inside"], "--guide-propagation applies to --region"),
        ([*PAIR, "--label-tolerance", "0.5"], "--label-tolerance applies to --region"),
        (
            [*two, "--style-layers-of", "1=relu1_1", "--style-layers-of", "1=relu5_1"],
            "--style-layers-of gives style image 1 twice",
        ),
        (["example:chelsea", "--region", f"{mask}=none:2"], "a weight on an unstyled region"),
        (["example:chelsea", "--region", f"{mask}=none"], "every region is 'none'"),
        ([*two, "--style-blend=-1,2"], "--style-blend values must be positive numbers"),
        ([*two, "--style-scales", "0,1"], "--style-scales values must be positive numbers"),
    )
    for argv, words in cases:
        _one_line(capsys, main([*argv, *out]), words)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--pyramid-factor", "1"], "error: --pyramid-factor: Input should be greater than or"),
        (["--style-layer-weights", "0,0,0,0,0"], "style term off; set --style-weight 0 for that"),
        (["--style-layers-of", "1=relu9_1"], "error: --style-layers-of: unknown layer 'relu9_1'"),
        (["--tile", "5"], "error: --tile: at least 16 px, the stride of layer relu5_1"),
    ],
)
def test_a_setting_s_message_names_the_flag_typed(tmp_path, capsys, argv, pattern):
    out = str(tmp_path / "o.png")
    rc = main(["example:chelsea", "example:starry_night", "-o", out, "--size", "64", *argv])
    _one_line(capsys, rc, pattern)
    assert not os.path.exists(out)


def test_reconstruct_s_layer_flags_are_named_as_typed(tmp_path, capsys):
    out = str(tmp_path / "o.png")
    rc = main(["reconstruct", "content", "example:chelsea", "--layer", "relu9_9", "-o", out])
    _one_line(capsys, rc, "error: --layer: unknown layer 'relu9_9'")
    rc = main(["reconstruct", "style", "example:chelsea", "--layers", "relu9_9", "-o", out])
    _one_line(capsys, rc, "error: --layers: unknown layer 'relu9_9'")


def test_the_library_keeps_the_settings_own_names():
    from impasto import Settings
    from impasto.cli import named_as_flags
    from impasto.errors import SettingsError

    with pytest.raises(SettingsError, match=r"^pyramid_factor: "):
        Settings(pyramid_factor=1)
    flags = {"style_weight": "--style-weight", "size": "--size"}
    assert named_as_flags("size: too big; lower style_weight", flags) == (
        "--size: too big; lower --style-weight"
    )
    # only known settings change: layer names and other snake_case words stay
    assert named_as_flags("relu9_9 in content_layers", flags) == "relu9_9 in content_layers"
    assert named_as_flags("the size is wrong", flags) == "the size is wrong"


def test_an_image_over_pillow_s_guard_names_the_flag_that_raises_it(tmp_path, capsys, monkeypatch):
    from PIL import Image as PILImage

    Image.new("RGB", (32, 32)).save(tmp_path / "big.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 400)  # 1024 > 2 * 400: Pillow refuses
    rc = main([str(tmp_path / "big.png"), "example:starry_night", "-o", str(tmp_path / "o.png")])
    _one_line(capsys, rc, "pixels); --max-input-pixels raises the limit")


def test_painting_count_messages_read_as_a_user_typed_them(tmp_path, capsys):
    out = ["-o", str(tmp_path / "o.png"), *FAST]
    rc = main([*PAIR, "--style-blend", "1,2", *out])
    _one_line(capsys, rc, "--style-blend takes one value per painting given (1); got 2")
    mask = tmp_path / "m.png"
    Image.new("L", (8, 8), 255).save(mask)
    argv = ["example:chelsea", "--region", f"{mask}=example:great_wave", "--style-layers-of"]
    rc = main([*argv, "1=relu1_1", *out])
    _one_line(capsys, rc, "--style-layers-of names a painting by its number; none is given")


def test_region_weights_and_mask_names_with_equals(tmp_path, capsys):
    from impasto.cli.stylize import parse_region

    rc = main(["example:chelsea", "--region", "m.png=example:great_wave:abc", "-o",
               str(tmp_path / "o.png"), *FAST])  # fmt: skip
    _one_line(capsys, rc, "the weight in 'example:great_wave:abc' is not a number")
    mask = tmp_path / "le=ft.png"  # a mask whose name has '=' in it
    Image.new("L", (8, 8), 255).save(mask)
    region = parse_region(f"{mask}=example:great_wave:0.5")
    assert region.mask == str(mask) and region.weight == 0.5
    assert region.style.image.endswith("great_wave.jpg")


def test_a_bare_stylize_names_only_what_is_required(capsys):
    """Paintings may be left out with --region/--labels: argparse called them required."""
    rc = main(["stylize"])
    _one_line(capsys, rc, "required: content, -o/--output (see")


def test_a_value_starting_with_a_minus_says_how_to_write_it(tmp_path, capsys):
    """``--style-blend -1,2`` said only 'expected one argument': argparse takes a value that
    starts with '-' and is not one plain number for an option. The line now says how to pass it;
    an option after a flag (a forgotten value) keeps argparse's own message."""
    out = ["-o", str(tmp_path / "o.png"), *FAST]
    styles = ["example:starry_night", "example:the_scream"]
    _one_line(
        capsys,
        main(["example:chelsea", *styles, "--style-blend", "-1,2", *out]),
        "argument --style-blend: '-1,2' starts with '-', so it was read as an option; "
        "write --style-blend=-1,2",
    )
    _one_line(capsys, main([*PAIR, "--init", "-q", *out]), "argument --init: expected one argument")
    _one_line(  # written as the hint says, the value reaches the setting's own check
        capsys,
        main(["example:chelsea", *styles, "--style-blend=-1,2", *out]),
        "--style-blend values must be positive numbers",
    )
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (
            ["--iterations", "0", "--pyramid-start", "0"],
            "error: --iterations: 0, and no pyramid level runs: the result would be the random "
            "start image; set it (or --pyramid-iterations) above 0",
        ),
        (
            ["--content-weight", "0", "--style-weight", "0"],
            "error: --content-weight and --style-weight are both 0: nothing to optimise",
        ),
        (["--init", "nope.png"], "error: --init: 'nope.png' is neither one of noise, content"),
        (
            ["--precision", "bf16", "--conv", "winograd"],
            "error: --precision: bf16 cannot run 'winograd' convolutions (fp32 only); give fp32",
        ),
        (
            ["--style-layers", "relu1_1,relu2_1", "--style-layer-weights", "1"],
            "error: --style-layer-weights: 1 given for --style-layers (2 layers)",
        ),
        (["--size", "16"], "error: --size: 16 gives a 16x11 px image at this aspect ratio"),
        (
            ["--max-memory", "10M"],
            "error: --max-memory: a budget of 10 MB leaves no room beyond what the process itself",
        ),
        (
            ["--max-memory", "1.06G", "--tile", "32"],  # 1.1 GB and ~1.1 GB read as the same
            "error: --max-memory: a budget of 1.06 GB leaves no room beyond what the process "
            "itself takes (~1.07 GB: Python, torch, the network); raise it to at least ~1.2 GB "
            "for a 40x27 image in tiles of 32 px",
        ),
    ],
)
def test_a_library_message_names_the_flags_on_the_command_line(tmp_path, capsys, argv, pattern):
    """Found by a user: these said 'iterations is 0', 'content weight and style weight', 'init
    ...', '1 style layer weights given' (the settings, not the flags typed) or mixed a flag into
    the library's words ('--precision fp32'). The library names each setting as written, at the
    head of the message or snake_case, and the command line turns them into its flags."""
    out = str(tmp_path / "o.png")
    rc = main([*PAIR, "-o", out, *FAST, *argv])
    _one_line(capsys, rc, pattern)
    assert not os.path.exists(out)


def test_the_least_memory_an_error_names_is_enough_when_given(tmp_path, capsys):
    """Found by a user: --max-memory 10M said 'raise --max-memory to at least ~1.1 GB'; 1.1G,
    1.12G and 1.14G then said 'needs at least ~1.1 GB here, more than the 1.1 GB budget'. The
    least is rounded up now, and a need is never shown as the budget's number."""
    import re

    out = str(tmp_path / "o.png")
    argv = [*PAIR, "-o", out, "--size", "192", "--iterations", "1", "--pyramid-start", "0", "-q"]
    for budget in ("10M", "1.1G"):
        rc = main([*argv, "--max-memory", budget])
        line = capsys.readouterr().err.strip()
        assert rc == 2 and line.count("\n") == 0, line
        assert "raise --max-memory" in line or line.startswith("impasto: error: --max-memory: ")
        (least,) = re.findall(r"at least ~(\d+(?:\.\d+)? [kMG]?B)", line)
        amounts = re.findall(r"\d+(?:\.\d+)? [kMG]?B", line)
        assert len(amounts) == len(set(amounts)), line
        assert main([*argv, "--max-memory", least.replace(" ", "")]) == 0, capsys.readouterr()
    assert line.startswith("impasto: error: --size: a 192x128 image needs at least ~")
    assert line.endswith("budget; lower it or raise --max-memory")


def test_the_verbose_notes_name_the_flags(tmp_path, capsys):
    """The notes named the flags in the library ('memory budget 20.0 GB (--max-memory)',
    'because --tile 48'), which the API and the web showed too; the library names the settings
    now, and the command line's notes, as its errors, name the flags."""
    out = str(tmp_path / "o.png")
    argv = ["--size", "40", "--iterations", "1", "--pyramid-start", "0", "--seed", "0", "-v"]
    rc = main([*PAIR, "-o", out, *argv, "--max-memory", "20G", "--tile", "32"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "impasto: memory budget 20.0 GB (--max-memory)" in err
    assert "impasto: --tile: 40x27 in tiles of 32 px (+80 px halo)" in err
    assert "max_memory" not in err


def test_the_api_names_its_settings_and_arguments_not_the_cli_flags():
    """The API said 'lower --size or raise --max-memory' and its notes '(--max-memory)',
    'because --tile 48'; a reconstruction named content_layers/style_layers for its own
    arguments layer/layers."""
    import impasto
    from impasto import Settings, Stylizer
    from impasto.errors import SettingsError

    with pytest.raises(SettingsError) as e:
        impasto.stylize(*PAIR, size=192, iterations=2, pyramid_start=0, max_memory=1_130_000_000)
    message = str(e.value)
    assert message.startswith("size: a 192x128 image needs at least ~1.2 GB here, more than the")
    assert message.endswith("; lower it or raise max_memory") and "--" not in message
    notes = []

    class Notes:
        def __call__(self, it):
            pass

        def on_note(self, note):
            notes.append(note.text)

    s = Settings(size=40, tile=32, max_memory=20 * 10**9, iterations=1, pyramid_start=0, seed=0)
    Stylizer(s).run(*PAIR, callback=Notes())
    assert notes[0] == "memory budget 20.0 GB (max_memory)"
    assert notes[1].startswith("tile: 40x27 in tiles of 32 px (+80 px halo)")
    assert not any("--" in n for n in notes), notes
    with pytest.raises(SettingsError, match=r"^layer: unknown layer 'relu6_1'"):
        impasto.reconstruct_content("example:chelsea", "relu6_1", size=40)
    with pytest.raises(SettingsError, match=r"^layers: layer relu1_1 is listed twice"):
        impasto.reconstruct_style("example:chelsea", "relu1_1,relu1_1", size=40)
    with pytest.raises(SettingsError, match=r"^layers: unknown layer 'relu9_1'"):
        impasto.reconstruct_style("example:chelsea", ["relu1_1", "relu9_1"], size=40)
    with pytest.raises(SettingsError, match=r"^init: 'nope.png' is neither one of noise"):
        impasto.stylize(*PAIR, size=40, init="nope.png")
    with pytest.raises(SettingsError, match=r"^precision: bf16 cannot run 'winograd'"):
        impasto.stylize(*PAIR, size=40, precision="bf16", conv="winograd")


def test_reconstruct_names_its_layer_flags_for_every_layer_error(tmp_path, capsys):
    out = str(tmp_path / "o.png")
    rc = main(["reconstruct", "style", "example:chelsea", "--layers", "relu1_1,relu1_1", "-o", out])
    _one_line(capsys, rc, "error: --layers: layer relu1_1 is listed twice")


def test_a_resumed_run_s_notes_name_the_flags_too(tmp_path, capsys):
    """``impasto resume`` runs the recorded command line, which names no sub-command: its notes
    take the default command's flags."""
    out, ckpt = str(tmp_path / "o.png"), str(tmp_path / "run.ckpt")
    argv = ["--size", "40", "--iterations", "1", "--pyramid-start", "0", "--seed", "0", "-q"]
    rc = main([*PAIR, "-o", out, *argv, "--max-memory", "20G", "--checkpoint", ckpt,
               "--checkpoint-every", "1e-9"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["resume", ckpt, "-o", str(tmp_path / "again.png"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "impasto: memory budget 20.0 GB (--max-memory)" in err, err


def test_a_weights_hint_names_the_flag_on_the_command_line(tmp_path, capsys):
    """The library names weights_format (the API's setting); the command line, its flag."""
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"not a model")
    argv = ["--weights", str(weights), "--weights-format", "torchvision"]
    rc = main([*PAIR, "-o", str(tmp_path / "o.png"), *FAST, *argv])
    _one_line(capsys, rc, "a .caffemodel file takes --weights-format caffe-protobuf (or auto)")


def test_a_resumed_runs_messages_name_the_flags_of_the_run_it_resumes():
    """`impasto resume` has none of the settings' flags: its errors named them by the setting
    (max_memory) where the run it resumes was typed with flags (--max-memory)."""
    import argparse

    from impasto.cli import flags_of, named_as_flags

    flags = flags_of(argparse.Namespace(command="resume"))
    assert flags["max_memory"] == "--max-memory" and flags["iterations"] == "--iterations"
    text = "iterations: the checkpoint was made with 4, this run has 5"
    assert named_as_flags(text, flags).startswith("--iterations: ")
