"""``TrainConfig`` validates every field at construction and names the field it rejects."""

import json
from pathlib import Path

import pytest

import ffnn
from ffnn.studies.store import run_key

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("activation", "softplus"), ("optimizer", "adagrad"), ("dtype", "float16"),
        ("backend", "jax"), ("learning_rate", 0.0), ("learning_rate", -1e-3),
        ("learning_rate", float("nan")), ("batch_size", 0), ("hidden_size", 0),
        ("max_epochs", 0), ("patience", -1), ("min_delta", -0.1), ("l2", -1.0),
        ("seed", -1), ("shuffle_seed", 1.5), ("threads", 0), ("momentum", 1.5),
        ("beta1", 1.0), ("beta2", -0.1), ("eps", 0.0), ("hidden_size", 2.5),
        ("early_stopping", "yes"), ("lr_schedule", "optimal"), ("power_t", -0.5),
        ("power_t", float("inf")), ("power_t", "0.5"), ("output", "sigmoid"),
    ],
)
def test_invalid_value_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ffnn.TrainConfig(**{field: value})


def test_defaults():
    c = ffnn.TrainConfig()
    assert (c.hidden_size, c.activation, c.optimizer, c.learning_rate, c.batch_size) == (
        10, "elu", "adam", 1e-3, 250)
    assert (c.max_epochs, c.early_stopping, c.patience, c.min_delta, c.restore_best) == (
        250, True, 10, 0.0, True)
    assert (c.l2, c.seed, c.shuffle_seed, c.dtype, c.backend) == (0.0, 0, None, "float32", "numba")
    assert c.effective_shuffle_seed == 0
    assert (c.lr_schedule, c.power_t, c.output) == ("constant", 0.5, "softmax")


def test_identity_is_a_hidden_activation():
    assert ffnn.TrainConfig(activation="identity").activation == "identity"


def test_config_is_frozen_and_round_trips_through_a_dict():
    c = ffnn.TrainConfig(hidden_size=25, optimizer="nesterov", learning_rate=0.05, shuffle_seed=3)
    with pytest.raises(AttributeError):
        c.hidden_size = 5
    assert ffnn.TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="hidden_sise"):
        ffnn.TrainConfig.from_dict({"hidden_sise": 3})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("learning_rate", float("inf"), "learning_rate: must be a finite number > 0, got inf"),
        ("learning_rate", float("nan"), "learning_rate: must be a finite number > 0, got nan"),
        ("learning_rate", 0.0, "learning_rate: must be a finite number > 0, got 0.0"),
        ("learning_rate", 10**400, "learning_rate: must be a finite number > 0, got 1000"),
        ("l2", -1.0, "l2: must be a finite number >= 0, got -1.0"),
        ("momentum", 1.5, "momentum: must be a number in [0, 1], got 1.5"),
        ("beta1", 1.0, "beta1: must be a number in [0, 1), got 1.0"),
    ],
)
def test_range_errors_read_as_sentences(field, value, message):
    with pytest.raises(ValueError) as info:
        ffnn.TrainConfig(**{field: value})
    assert str(info.value).startswith(message)
    assert len(str(info.value)) < 100


def test_the_cli_reports_lr_inf_in_the_same_words():
    from click.testing import CliRunner

    from ffnn.cli import main

    result = CliRunner().invoke(main, ["train", "--lr", "inf"])
    assert result.exit_code == 2
    assert "--lr: must be a finite number > 0, got inf" in result.output


def test_fields_added_later_leave_the_committed_dicts_and_record_keys_unchanged():
    # The fixture's configs, dicts and run keys were written before lr_schedule, power_t and
    # output existed; at their defaults these fields are left out of to_dict().
    saved = json.loads((FIXTURES / "one_layer_keys.json").read_text())
    for case in saved["configs"]:
        defaults = dict(lr_schedule="constant", power_t=0.5, output="softmax")
        config = ffnn.TrainConfig(**case["kwargs"], **defaults)
        assert config.to_dict() == case["to_dict"]
        assert run_key(config.to_dict(), saved["data"]) == case["run_key"]


@pytest.mark.parametrize("changes", [dict(lr_schedule="invscaling"), dict(power_t=0.25),
                                     dict(lr_schedule="adaptive", power_t=1.0),
                                     dict(output="logistic")])
def test_a_new_field_away_from_its_default_is_in_the_dict_and_the_key(changes):
    config = ffnn.TrainConfig(**changes)
    values = config.to_dict()
    assert {k: values[k] for k in changes} == changes
    assert ffnn.TrainConfig.from_dict(values) == config
    data = {"source": "test"}
    assert run_key(values, data) != run_key(ffnn.TrainConfig().to_dict(), data)
