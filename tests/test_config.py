"""``TrainConfig`` validates every field at construction and names the field it rejects."""

import pytest

import ffnn


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("activation", "softplus"), ("optimizer", "adagrad"), ("dtype", "float16"),
        ("backend", "jax"), ("learning_rate", 0.0), ("learning_rate", -1e-3),
        ("learning_rate", float("nan")), ("batch_size", 0), ("hidden_size", 0),
        ("max_epochs", 0), ("patience", -1), ("min_delta", -0.1), ("l2", -1.0),
        ("seed", -1), ("shuffle_seed", 1.5), ("threads", 0), ("momentum", 1.5),
        ("beta1", 1.0), ("beta2", -0.1), ("eps", 0.0), ("hidden_size", 2.5),
        ("early_stopping", "yes"),
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
