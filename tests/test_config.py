"""Typed configs: profiles, string overrides converted by field type, unknown keys and bad values refused."""

import dataclasses

import pytest

from lab.config import CONFIG_CLASSES, PROFILE_OVERRIDES, make_config, parse_overrides
from lab.errors import LabError
from lab.inits import make_init, parse_init


def test_defaults_are_the_labs_protocol():
    deep = make_config("deep_init")
    assert (deep.depth, deep.width, deep.inits) == (20, 100, ("normal:1", "glorot", "he"))
    shallow = make_config("shallow_init")
    assert (shallow.hidden, shallow.lr, shallow.steps, shallow.n_train) == ((6, 3), 0.1, 1000, 100)
    drop = make_config("dropout")
    assert (drop.hidden, drop.p_input, drop.p_hidden, drop.sigma, drop.lr) == ((800, 800), 0.2, 0.5, 0.1, 3e-4)
    assert (drop.n_train, drop.n_val) == (5000, 10000)
    assert (drop.n_train_seeds, drop.k_max) == (3, 1000)  # the "at least 3 training seeds, each to k = 1,000"


def test_configs_are_frozen():
    cfg = make_config("deep_init")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depth = 3


@pytest.mark.parametrize("name", list(CONFIG_CLASSES))
def test_quick_profile_only_names_real_fields(name):
    fields = {f.name for f in dataclasses.fields(CONFIG_CLASSES[name])}
    assert set(PROFILE_OVERRIDES["quick"].get(name, {})) <= fields
    make_config(name, "quick")


def test_string_overrides_are_typed():
    cfg = make_config("deep_init", "quick", {"width": "50", "inits": "he,glorot"})
    assert cfg.width == 50 and cfg.inits == ("he", "glorot")
    assert make_config("dropout", "quick", {"final": "yes", "lr": "1e-3"}).final is True


@pytest.mark.parametrize(
    "experiment, overrides, message",
    [
        ("deep_init", {"widht": "5"}, "unknown setting 'widht'"),
        ("deep_init", {"width": "abc"}, "expected a value of type int"),
        ("dropout", {"final": "maybe"}, "expected a value of type bool"),
        ("dropout", {"p_hidden": "1.0"}, "p_hidden must be in [0, 1)"),
        ("dropout", {"p_input": "-0.1"}, "p_input must be in [0, 1)"),
        ("dropout", {"sigma": "-1"}, "sigma must be > 0"),
        ("dropout", {"n_train_seeds": "0"}, "n_train_seeds must be in [1, 100]"),
        ("dropout", {"k_max_reference": "-1"}, "k_max_reference must be >= 0"),
        ("dropout", {"k_max_spread": "300"}, "unknown setting 'k_max_spread'"),
        ("deep_init", {"inits": "he,bogus"}, "unknown init 'bogus'"),
        ("deep_init", {"inits": "normal:-2"}, "positive finite"),
        ("nope", {}, "unknown experiment 'nope'"),
    ],
)
def test_bad_settings_are_one_line_lab_errors(experiment, overrides, message):
    with pytest.raises(LabError) as err:
        make_config(experiment, "full", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_profile():
    with pytest.raises(LabError, match="unknown profile 'fast'"):
        make_config("deep_init", "fast")


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(LabError, match="key=value"):
        parse_overrides(["novalue"])


def test_init_specs():
    import torch

    assert parse_init("normal:0.5").label == "N(0, 0.5)"
    layer = torch.nn.Linear(400, 300)
    layer.apply(make_init("normal:0.1", torch.Generator().manual_seed(0)))
    assert abs(float(layer.weight.detach().std()) - 0.1) < 0.003 and float(layer.bias.detach().abs().sum()) == 0
    layer.apply(make_init("he", torch.Generator().manual_seed(0)))
    assert abs(float(layer.weight.detach().std()) - (2 / 400) ** 0.5) < 0.002
    layer.apply(make_init("glorot", torch.Generator().manual_seed(0)))
    assert abs(float(layer.weight.detach().std()) - (2 / 700) ** 0.5) < 0.002
    with pytest.raises(LabError):
        parse_init("glorot:2")


@pytest.mark.parametrize("inits", ["he,he", "normal:1,glorot,normal:1.0", "glorot, glorot"])
def test_an_init_named_twice_is_refused_not_merged(inits):
    """Part 2's results are keyed by init: a repeated init used to be merged into one silently."""
    with pytest.raises(LabError, match=r"twice .*name each init once"):
        make_config("deep_init", "quick", {"inits": inits})
    assert make_config("deep_init", "quick", {"inits": "normal:1,normal:2,he"}).inits == ("normal:1", "normal:2", "he")


@pytest.mark.parametrize("factors", ["1,1", "0.01,1.0,1", "0.1234567,0.1234568"])
def test_a_scale_factor_named_twice_is_refused_not_merged(factors):
    """Part 1's scaling arms are named by the factor as shown: a repeat used to be merged into one arm."""
    with pytest.raises(LabError, match=r"scale_factors lists .* twice"):
        make_config("shallow_init", "quick", {"scale_factors": factors})
    assert make_config("shallow_init", "quick", {"scale_factors": "0.01,100"}).scale_factors == (0.01, 100.0)
