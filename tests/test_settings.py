"""Settings: one validation on every surface, one-line errors naming the setting."""

import dataclasses
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impasto.choices import COLOR_MODES, OPTIMIZERS, POOLINGS
from impasto.errors import SettingsError
from impasto.settings import Settings, StyleInput, field_help, resolve_weights


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": "abc"}, "size: Input should be a valid integer"),
        ({"size": 64.7}, "size: Input should be a valid integer"),
        ({"size": None}, "size: "),
        ({"size": 8}, "size: Input should be greater than or equal to 16"),
        ({"content_layers": None}, "content_layers: "),
        ({"style_layers": "relu1_1"}, "style_layers: Input should be a valid tuple"),
        ({"style_layers": ()}, "style_layers: "),
        ({"style_layers": ("relu9_1",)}, "unknown layer 'relu9_1'; valid names: conv1_1"),
        ({"pooling": "maxx"}, "pooling: Input should be 'max' or 'avg'"),
        ({"style_weight": float("inf")}, "style_weight: Input should be a finite number"),
        ({"content_weight": 0, "style_weight": 0}, "both 0: nothing to optimise"),
        ({"content_layer_weights": (1, 2)}, "content_layer_weights: 2 given for content_layers"),
        # each names the settings by their names (the CLI turns them into its flags)
        (
            {"style_layers": ("relu1_1", "relu2_1"), "style_layer_weights": (1,)},
            "^style_layer_weights: 1 given for style_layers (2 layers)$",
        ),
        (
            {"content_weight": 0, "style_weight": 0},
            "^content_weight and style_weight are both 0: nothing to optimise$",
        ),
        (
            {"iterations": 0, "pyramid_start": 0},
            "^iterations: 0, and no pyramid level runs: .* set it (or pyramid_iterations) above 0$",
        ),
        ({"style_layer_weights": (0,) * 5}, "^style_layer_weights: all 0, .* set style_weight 0"),
        ({"colour": "red"}, "unknown setting 'colour'"),
    ],
)
def test_bad_values_are_one_line_settings_errors(changes, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        Settings(**changes)
    assert "\n" not in str(e.value)


def test_numeric_strings_are_read_as_numbers_and_lists_as_tuples():
    s = Settings(size="128", style_layers=["relu1_1", "relu2_1"])
    assert s.size == 128 and s.style_layers == ("relu1_1", "relu2_1")
    assert hash(s) == hash(Settings(size=128, style_layers=("relu1_1", "relu2_1")))


def test_round_trip_through_a_dict_and_replace_revalidates():
    s = Settings(size=96, seed=3, pooling="max")
    assert Settings.from_dict(s.to_dict()) == s
    with pytest.raises(SettingsError, match="iterations"):
        s.replace(iterations=-1)
    with pytest.raises(SettingsError, match="must be a JSON object"):
        Settings.from_dict(["size", 3])


def test_every_field_has_help_and_a_default_that_validates():
    help_ = field_help()
    assert list(help_) == [f.name for f in dataclasses.fields(Settings)]
    assert all(text for _, text in help_.values())
    defaults = Settings()
    assert all(getattr(defaults, name) == default for name, (default, _) in help_.items())


def test_tv_weight_defaults_by_loss_scale_and_yields_to_an_explicit_value():
    assert Settings().tv == 3.0 and Settings(loss_scale="paper").tv == 0.0
    assert Settings(tv_weight=0).tv == 0.0 and Settings(loss_scale="paper", tv_weight=2).tv == 2.0
    assert Settings().tv_weight is None  # unset: the loss scale's default
    # what files and checkpoints record: the weights in use
    assert Settings().resolved()["tv_weight"] == 3.0
    assert Settings(loss_scale="paper").resolved()["style_weight"] == 1e3
    recorded = {"loss_scale": "paper", "style_weight": 5.0, "tv_weight": None}
    old = {**recorded, "tv_weight": 0.0, "margin": 0, "conv": "direct"}
    assert resolve_weights(recorded) == old
    # a record from before --margin existed was made without one, from before --conv with
    # direct convolutions; a recorded value stays
    assert resolve_weights({"margin": 4, "conv": "auto"}) == {"margin": 4, "conv": "auto"}


def test_choices_come_from_one_home():
    hints = typing.get_type_hints(Settings)
    assert typing.get_args(hints["pooling"]) == POOLINGS
    assert typing.get_args(hints["optimizer"]) == OPTIMIZERS
    assert typing.get_args(hints["preserve_colors"]) == COLOR_MODES


def test_style_input_checks_its_own_fields():
    assert StyleInput("a.png", weight=2, layers=["relu1_1"]).layers == ("relu1_1",)
    for bad in ({"weight": 0}, {"scale": 20}, {"layers": ["nope"]}, {"layers": []}):
        with pytest.raises(SettingsError):
            StyleInput("a.png", **bad)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.text(max_size=8), st.floats(), st.integers()), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*field_help(), "bogus"]), _VALUES, max_size=4))
def test_any_input_either_validates_or_is_a_one_line_settings_error(data):
    try:
        s = Settings(**data)
    except SettingsError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert Settings.from_dict(s.to_dict()) == s
