"""Study definitions: the built-in table, seeds per repeat, TOML loading and its errors, keys."""

import pytest

import ffnn
from ffnn.studies.plan import DataSpec, StudyOptions, plan_study
from ffnn.studies.specs import (
    BUILTIN_STUDIES,
    StudyError,
    builtin_study,
    example_path,
    load_study_file,
    resolve_studies,
)
from ffnn.studies.store import run_key

IDENTITY = {"float32": {"fingerprint": "f" * 32, "train_size": 300, "val_size": 100,
                        "test_size": 100, "split_seed": 0}}


def test_the_thirteen_builtin_studies_vary_what_the_issue_says():
    expected = {
        "optimizers-lr1e-3": ("optimizer", {"learning_rate": 1e-3}),
        "optimizers-lr1e-4": ("optimizer", {"learning_rate": 1e-4}),
        "activations-nesterov": ("activation", {"optimizer": "nesterov", "learning_rate": 0.05}),
        "activations-adam": ("activation", {"optimizer": "adam", "learning_rate": 1e-3}),
        "lr-nesterov-no-es": ("learning_rate", {"optimizer": "nesterov",
                                                "early_stopping": False}),
        "lr-nesterov": ("learning_rate", {"optimizer": "nesterov", "early_stopping": True}),
        "lr-adam-no-es": ("learning_rate", {"optimizer": "adam", "early_stopping": False}),
        "lr-adam": ("learning_rate", {"optimizer": "adam", "early_stopping": True}),
        "hidden-nesterov": ("hidden_size", {"optimizer": "nesterov", "learning_rate": 0.05}),
        "hidden-adam": ("hidden_size", {"optimizer": "adam", "learning_rate": 1e-3}),
        "batch-nesterov": ("batch_size", {"optimizer": "nesterov", "learning_rate": 0.05}),
        "batch-adam": ("batch_size", {"optimizer": "adam", "learning_rate": 1e-3}),
        "depth-adam": ("hidden_sizes", {"optimizer": "adam", "learning_rate": 1e-3}),
    }
    assert list(BUILTIN_STUDIES) == list(expected)
    for name, (parameter, fixed) in expected.items():
        spec = BUILTIN_STUDIES[name]
        assert spec.parameter == parameter
        assert len(spec.values) == 5
        for value in spec.values:
            config = spec.config(value)
            assert getattr(config, parameter) == value
            for field, fixed_value in fixed.items():
                assert getattr(config, field) == fixed_value, (name, field)
            for field, default in (("hidden_size", 10), ("batch_size", 250),
                                   ("activation", "elu"), ("max_epochs", 250),
                                   ("patience", 10), ("min_delta", 0.0)):
                if field != parameter and {field, parameter} != {"hidden_size", "hidden_sizes"}:
                    assert getattr(config, field) == default, (name, field)
    assert BUILTIN_STUDIES["optimizers-lr1e-3"].config("nesterov").learning_rate == 1e-3
    assert BUILTIN_STUDIES["lr-adam"].values == (1e-5, 1e-4, 1e-3, 1e-2, 5e-2)


def test_repeat_r_uses_seed_and_shuffle_seed_base_plus_r_and_keys_are_unique():
    spec = builtin_study("hidden-adam")
    runs = plan_study(spec, StudyOptions(repeats=3, seed=7, backend="numpy", max_epochs=4),
                      IDENTITY)
    assert len(runs) == 15
    for run in runs:
        assert run.config.seed == run.config.shuffle_seed == 7 + run.repeat
        assert run.config.threads == 1 and run.config.max_epochs == 4
        assert run.config.backend == "numpy"
    # repeat-major: all settings of repeat 0 first
    assert [run.repeat for run in runs[:5]] == [0] * 5
    assert len({run.key for run in runs}) == 15


def test_key_changes_with_every_input_that_determines_a_run():
    config = ffnn.TrainConfig(backend="numpy").to_dict()
    data = IDENTITY["float32"]
    key = run_key(config, data)
    assert key == run_key(dict(reversed(config.items())), dict(data))  # canonical: order-free
    assert len(key) == 64
    assert key != run_key({**config, "seed": 1}, data)
    assert key != run_key({**config, "backend": "numba"}, data)
    assert key != run_key(config, {**data, "fingerprint": "0" * 32})
    assert key != run_key(config, {**data, "train_size": 301})
    assert key != run_key(config, {**data, "split_seed": 1})


def test_resolve_all_and_unknown_names():
    assert [s.name for s in resolve_studies(["all"])] == list(BUILTIN_STUDIES)
    assert [s.name for s in resolve_studies(["lr-adam", "lr-adam"])] == ["lr-adam"]
    with pytest.raises(StudyError, match="unknown study 'lr-sgd'"):
        resolve_studies(["lr-sgd"])


def test_the_shipped_example_file_loads():
    spec = load_study_file(example_path())
    assert spec.name == "l2-adam" and spec.parameter == "l2" and spec.label == "L2"
    assert spec.config(1e-3).hidden_size == 25


def _write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


GOOD = 'name = "mine"\nparameter = "learning_rate"\nvalues = [0.1, 1]\n[base]\noptimizer = "gd"\n'


def test_a_user_study_gets_study_defaults_and_float_fields_normalised(tmp_path):
    spec = load_study_file(_write(tmp_path, GOOD))
    assert spec.values == (0.1, 1) and spec.label == "Learning rate"
    config = spec.config(1)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.optimizer == "gd" and config.batch_size == 250


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\nparameter = [', "not valid TOML"),
    ('name = "x"\nparameter = "lr"\nvalues = [1]\n', "unknown parameter 'lr'"),
    ('name = "x"\nparameter = "seed"\nvalues = [1]\n', "unknown parameter 'seed'"),
    ('name = "x"\nvalues = [1]\n', "missing required key 'parameter'"),
    ('name = "x"\nparameter = "l2"\nvalues = []\n', "values: expected a non-empty list"),
    ('name = "x"\nparameter = "l2"\nvalues = [1.0, 1.0]\n', "duplicates"),
    ('name = "x"\nparameter = "l2"\nvalues = [-1.0]\n', r"values\[0\] = -1.0: l2"),
    ('name = "x"\nparameter = "hidden_size"\nvalues = [2.5]\n', "hidden_size"),
    ('name = "x"\nparameter = "l2"\nvalues = [0.0]\n[base]\nwidth = 3\n', "base.width"),
    ('name = "x"\nparameter = "l2"\nvalues = [0.0]\n[base]\nseed = 3\n', "base.seed"),
    ('name = "x"\nparameter = "l2"\nvalues = [0.0]\n[base]\nl2 = 3\n', "base.l2"),
    ('name = "x"\nparameter = "l2"\nvalues = [0.0]\n[base]\noptimizer = "sgd"\n',
     "optimizer"),
    ('name = "lr-adam"\nparameter = "l2"\nvalues = [0.0]\n', "built-in study name"),
    ('name = "a b"\nparameter = "l2"\nvalues = [0.0]\n', "name"),
    ('name = "x"\nparameter = "l2"\nvalues = [0.0]\nrepetitions = 3\n', "unknown key"),
])
def test_bad_study_files_raise_naming_file_and_field(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(StudyError, match=message) as info:
        load_study_file(path)
    assert str(path) in str(info.value)


def test_values_equal_once_converted_are_duplicates(tmp_path):
    path = _write(tmp_path, 'name = "x"\nparameter = "l2"\nvalues = [0, 0.0, 1e-3]\n')
    with pytest.raises(StudyError) as info:
        load_study_file(path)
    assert str(info.value) == (f"{path}: values[1] = 0.0 duplicates values[0] = 0 "
                               "(both are l2 = 0.0)")
    spec = load_study_file(_write(tmp_path, 'name = "x"\nparameter = "l2"\nvalues = [0, 1]\n'))
    assert spec.values == (0.0, 1.0) and all(isinstance(v, float) for v in spec.values)


def test_a_user_study_may_vary_the_new_activation_schedules_and_power_t(tmp_path):
    spec = load_study_file(_write(tmp_path, 'name = "x"\nparameter = "activation"\n'
                                  'values = ["tanh", "identity"]\n[base]\n'
                                  'lr_schedule = "invscaling"\npower_t = 1\n'))
    config = spec.config("identity")
    assert (config.activation, config.lr_schedule, config.power_t) == (
        "identity", "invscaling", 1.0)
    assert "identity" not in builtin_study("activations-adam").values  # built-ins unchanged


@pytest.mark.parametrize(("base", "message"), [
    ('activation = "softplus"', "base.activation: 'softplus' is not one of"),
    ("hidden_size = 2.5", "base.hidden_size: expected an integer, got 2.5"),
    ("learning_rate = [1]", "base.learning_rate: expected a number, string or boolean"),
])
def test_a_bad_base_field_is_blamed_on_that_field(tmp_path, base, message):
    path = _write(tmp_path, f'name = "x"\nparameter = "l2"\nvalues = [0.0]\n[base]\n{base}\n')
    with pytest.raises(StudyError) as info:
        load_study_file(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "values[0]" not in str(info.value)


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyError, match="file not found"):
        load_study_file(tmp_path / "nope.toml")


def test_data_spec_loads_with_the_split_seed():
    spec = DataSpec(train_size=50, val_size=20, test_size=10, split_seed=3)
    a, b = spec.load("float32"), DataSpec(train_size=50, val_size=20, test_size=10,
                                          split_seed=4).load("float32")
    assert len(a.y_train) == 50 and a.fingerprint() != b.fingerprint()
