"""Any number of hidden layers (issue 12): one-layer results stay what they were on the parent
commit, the backward pass is the derivative of the forward pass at depths 2 and 3, one step
equals PyTorch's, the engine equals the reference, and groups may mix depths."""

import json
from pathlib import Path

import numpy as np
import pytest
from ffnn.kernels import BACKENDS, codes, get_backend
from ffnn.kernels.layout import n_params, unpack

import ffnn
from ffnn.studies.store import run_key

FIXTURES = Path(__file__).parent / "fixtures"
F, C, BATCH = 5, 3, 7
H_STEP = 1e-6


# ----------------------------------------------------------------------------- one layer as before
@pytest.fixture(scope="module")
def fixture_splits():
    """The data the parent commit's weights were trained on."""
    return ffnn.load_mnist(train_size=600, val_size=200, test_size=200)


CASES = json.loads((FIXTURES / "one_layer_weights.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_layer_weights_are_bitwise_those_of_the_parent_commit(fixture_splits, name):
    saved = np.load(FIXTURES / "one_layer_weights.npz")
    result = ffnn.train(ffnn.TrainConfig(**CASES[name]), fixture_splits)
    losses = [h.train_loss for h in result.history] + [h.val_loss for h in result.history]
    assert result.model.theta.dtype == saved[name].dtype
    np.testing.assert_array_equal(result.model.theta, saved[name])
    np.testing.assert_array_equal(losses, saved[name + "__losses"])


def test_one_layer_config_dicts_and_record_keys_are_those_of_the_parent_commit():
    saved = json.loads((FIXTURES / "one_layer_keys.json").read_text())
    for case in saved["configs"]:
        for config in (ffnn.TrainConfig(**case["kwargs"]),
                       ffnn.TrainConfig(**{**case["kwargs"], "hidden_sizes": (
                           case["kwargs"].get("hidden_size", 10),), "hidden_size": None})):
            assert config.to_dict() == case["to_dict"]
            assert run_key(config.to_dict(), saved["data"]) == case["run_key"]


def test_both_spellings_of_hidden_sizes_are_one_canonical_config():
    a, b = ffnn.TrainConfig(hidden_size=100), ffnn.TrainConfig(hidden_sizes=(100,))
    assert a == b and a.hidden_sizes == (100,) and a.hidden_size == 100
    deep = ffnn.TrainConfig(hidden_sizes=[100, 50])
    assert deep.hidden_sizes == (100, 50) and deep.hidden_size is None and deep.depth == 2
    assert deep.to_dict()["hidden_sizes"] == [100, 50] and "hidden_size" not in deep.to_dict()
    assert ffnn.TrainConfig.from_dict(deep.to_dict()) == deep
    assert deep.replace(hidden_size=7).hidden_sizes == (7,)
    assert a.replace(hidden_sizes=(3, 4)).hidden_size is None


@pytest.mark.parametrize(("changes", "message"), [
    (dict(hidden_sizes=()), "hidden_sizes: expected a non-empty sequence"),
    (dict(hidden_sizes=(10, 0)), "hidden_sizes[1]: must be >= 1, got 0"),
    (dict(hidden_sizes=(10, 2.5)), "hidden_sizes[1]: expected an integer"),
    (dict(hidden_sizes="10"), "hidden_sizes: expected a non-empty sequence"),
    (dict(hidden_size=5, hidden_sizes=(6,)), "hidden_size: 5 disagrees with hidden_sizes"),
    (dict(hidden_size=0), "hidden_size: must be >= 1, got 0"),
])
def test_bad_hidden_sizes_are_refused_naming_the_field(changes, message):
    with pytest.raises(ValueError) as error:
        ffnn.TrainConfig(**changes)
    assert message in str(error.value)


# ----------------------------------------------------------------------------- gradients
def step_gradient(backend, hidden, X, y, theta, activation, l2):
    """The loss and the penalised loss's gradient, read off one full-batch gd step (lr 1)."""
    hyper = np.zeros((1, codes.N_HYPER))
    hyper[0, codes.LR], hyper[0, codes.L2] = 1.0, l2
    nets = backend.Networks(F, C, [hidden], [activation], [codes.GD], hyper, [theta], "float64")
    (loss,) = backend.train_group(backend.prepare(X, "float64"), y, np.arange(BATCH), BATCH,
                                  nets, [0])
    return loss, theta - nets.theta(0)


def penalised(backend, hidden, X, y, theta, activation, l2):
    loss, _ = backend.evaluate(X, y, theta, hidden, C, activation)
    weights = unpack(theta, F, hidden, C)[::2]
    return loss + l2 / 2 * sum((W**2).sum() for W in weights)


def kink_free(hidden, activation, seed, margin=0.03):
    """A random tiny network and batch whose pre-activations in every hidden layer stay
    ``margin`` from 0, so no finite-difference step crosses a kink of relu, leaky_relu or elu."""
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        X = rng.normal(size=(BATCH, F))
        y = rng.integers(0, C, size=BATCH).astype(np.int64)
        theta = rng.normal(scale=0.8, size=n_params(F, hidden, C))
        params, A, closest = unpack(theta, F, hidden, C), X, np.inf
        for W, b in zip(params[:-2:2], params[1:-2:2], strict=True):
            Z = A @ W + b
            closest = min(closest, np.abs(Z).min())
            A = get_backend("numpy").activate(Z, activation)
        if closest > margin:
            return X, y, theta
    raise AssertionError("no problem away from the kinks")


@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("activation", codes.ACTIVATIONS)
@pytest.mark.parametrize("hidden", [(4, 3), (4, 3, 5)], ids=["depth2", "depth3"])
def test_deep_gradient_matches_central_differences(backend_name, activation, hidden):
    backend = get_backend(backend_name)
    code, l2 = codes.activation_code(activation), 0.2
    X, y, theta = kink_free(hidden, code, seed=len(hidden))
    _, grad = step_gradient(backend, hidden, X, y, theta, code, l2)
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += H_STEP
        minus[i] -= H_STEP
        numeric[i] = (penalised(backend, hidden, X, y, plus, code, l2)
                      - penalised(backend, hidden, X, y, minus, code, l2)) / (2 * H_STEP)
    error = np.linalg.norm(grad - numeric) / max(np.linalg.norm(grad), np.linalg.norm(numeric))
    assert error < 1e-6


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.kernels
@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_one_step_of_a_depth_3_network_equals_pytorch(backend_name, optimizer):
    torch = pytest.importorskip("torch")
    backend = get_backend(backend_name)
    hidden, code = (6, 5, 4), codes.ELU
    X, y, theta = kink_free(hidden, code, seed=11)
    config = ffnn.TrainConfig(hidden_sizes=hidden, optimizer=optimizer, learning_rate=0.05,
                              l2=0.01)
    from ffnn.training import hyper_vector
    nets = backend.Networks(F, C, [hidden], [code], [codes.optimizer_code(optimizer)],
                            [hyper_vector(config)], [theta], "float64")
    backend.train_group(backend.prepare(X, "float64"), y, np.arange(BATCH), BATCH, nets, [0])

    widths = [F, *hidden, C]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b).double())
        if i < len(hidden):
            layers.append(torch.nn.ELU())
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    params = unpack(theta, F, hidden, C)
    with torch.no_grad():
        for linear, W, b in zip(linears, params[::2], params[1::2], strict=True):
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b.copy()))
    groups = [{"params": [m.weight for m in linears], "weight_decay": 0.01},
              {"params": [m.bias for m in linears], "weight_decay": 0.0}]
    opt = (torch.optim.Adam(groups, lr=0.05) if optimizer == "adam" else
           torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True))
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    ours = unpack(nets.theta(0), F, hidden, C)
    for linear, W, b in zip(linears, ours[::2], ours[1::2], strict=True):
        np.testing.assert_allclose(W, linear.weight.detach().numpy().T, rtol=0, atol=1e-9)
        np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- engine == reference
@pytest.fixture(scope="module")
def splits():
    return ffnn.load_mnist(train_size=800, val_size=300, test_size=300)


DEEP = [  # (hidden sizes, activation, optimizer, learning rate, patience)
    ((24, 12), "relu", "adam", 3e-3, 1),
    ((20, 16, 9), "tanh", "nesterov", 0.05, 1),
    ((30, 10), "elu", "adam", 1e3, 5),  # diverges
]


def deep_configs(**changes):
    return [ffnn.TrainConfig(hidden_sizes=h, activation=a, optimizer=o, learning_rate=lr,
                             patience=p, min_delta=0.05, max_epochs=10, batch_size=100, seed=i,
                             shuffle_seed=5, dtype="float64", **changes)
            for i, (h, a, o, lr, p) in enumerate(DEEP)]


@pytest.mark.parametrize("input_path", ["sparse", "dense"])
def test_deep_engine_equals_reference_with_early_stopping_and_divergence(splits, input_path):
    stops = []
    for config in deep_configs(input_path=input_path):
        fast = ffnn.train(config, splits)
        stops.append(fast)
        slow = ffnn.train(config.replace(backend="numpy"), splits)
        assert (fast.epochs, fast.best_epoch, fast.stopped_early, fast.diverged) == (
            slow.epochs, slow.best_epoch, slow.stopped_early, slow.diverged)
        if not fast.diverged:
            np.testing.assert_allclose(fast.model.theta, slow.model.theta, rtol=0, atol=1e-9)
            np.testing.assert_allclose([r.val_loss for r in fast.history],
                                       [r.val_loss for r in slow.history], rtol=1e-9)
    assert any(r.stopped_early for r in stops) and stops[-1].diverged


def test_train_many_mixes_depths_and_each_equals_training_alone(splits):
    configs = [*deep_configs(), deep_configs()[0].replace(hidden_size=16, seed=9)]
    together = ffnn.train_many(configs, splits)
    for config, result in zip(configs, together, strict=True):
        alone = ffnn.train(config, splits)
        np.testing.assert_array_equal(result.model.theta, alone.model.theta)
        assert [r.val_loss for r in result.history] == [r.val_loss for r in alone.history]
        assert result.model.hidden_sizes == config.hidden_sizes


# ----------------------------------------------------------------------------- model files
def test_a_one_layer_file_saved_by_the_parent_commit_still_loads_and_predicts_the_same():
    splits = ffnn.load_mnist(train_size=600, val_size=200, test_size=200)
    model = ffnn.load_model(FIXTURES / "one_layer_model.npz")
    assert model.hidden_size == 12 and model.hidden_sizes == (12,)
    expected = np.load(FIXTURES / "one_layer_model_probs.npz")["probs"]
    np.testing.assert_array_equal(model.predict_proba(splits.X_test[:20]), expected)


def test_a_three_layer_model_file_round_trips(splits, tmp_path):
    config = ffnn.TrainConfig(hidden_sizes=(12, 8, 6), max_epochs=2, early_stopping=False)
    model = ffnn.train(config, splits).model
    model.save(tmp_path / "deep.npz")
    with np.load(tmp_path / "deep.npz", allow_pickle=False) as stored:
        assert json.loads(str(stored["meta"]))["hidden_size"] == [12, 8, 6]
    loaded = ffnn.load_model(tmp_path / "deep.npz")
    assert loaded.hidden_sizes == (12, 8, 6) and loaded.config == config
    assert [w.shape for w in loaded.weights] == [(784, 12), (12,), (12, 8), (8,), (8, 6), (6,),
                                                 (6, 10), (10,)]
    np.testing.assert_array_equal(loaded.predict_proba(splits.X_test),
                                  model.predict_proba(splits.X_test))


def test_a_deep_model_file_with_a_wrong_layer_is_refused_naming_the_sizes(splits, tmp_path):
    model = ffnn.train(ffnn.TrainConfig(hidden_sizes=(12, 8), max_epochs=1,
                                        early_stopping=False), splits).model
    meta = {"format_version": 1, "n_features": 784, "hidden_size": [12, 9], "n_classes": 10,
            "activation": model.activation, "backend": "numba", "dtype": "float32",
            "config": None}
    np.savez(tmp_path / "bad.npz", theta=model.theta, meta=np.array(json.dumps(meta)))
    with pytest.raises(ffnn.ModelFileError, match="784-12-9-10 network's parameters need"):
        ffnn.load_model(tmp_path / "bad.npz")
    meta["hidden_size"] = [12, 0]
    np.savez(tmp_path / "bad.npz", theta=model.theta, meta=np.array(json.dumps(meta)))
    with pytest.raises(ffnn.ModelFileError, match="hidden_size: expected a positive integer"):
        ffnn.load_model(tmp_path / "bad.npz")


def test_train_many_calibrates_deep_networks(splits):
    configs = [c.replace(max_epochs=2, early_stopping=False) for c in deep_configs()[:2]]
    results = ffnn.train_many(configs, splits, calibrate=True)
    assert [r.train_time_source for r in results] == ["calibrated"] * 2


# ----------------------------------------------------------------------------- CLI and studies
def test_cli_trains_and_saves_a_deep_network(tmp_path):
    from click.testing import CliRunner

    from ffnn.cli import main

    path = tmp_path / "deep.npz"
    result = CliRunner().invoke(main, [
        "train", "--backend", "numpy", "--max-epochs", "2", "--hidden-sizes", "8,4",
        "--train-size", "300", "--val-size", "100", "--test-size", "100", "--save", str(path)])
    assert result.exit_code == 0, result.output
    assert ffnn.load_model(path).hidden_sizes == (8, 4)
    for bad, message in (("8,0", "every entry must be >= 1"), ("8,x", "comma-separated")):
        refused = CliRunner().invoke(main, ["train", "--hidden-sizes", bad])
        assert refused.exit_code == 2 and "--hidden-sizes" in refused.output
        assert message in refused.output


def test_depth_adam_is_a_built_in_study_of_five_depths():
    from ffnn.studies.specs import BUILTIN_STUDIES

    spec = BUILTIN_STUDIES["depth-adam"]
    assert spec.values == ((100,), (100, 100), (256, 128), (128, 64, 32), (512, 256, 128))
    configs = [spec.config(v) for v in spec.values]
    assert [c.hidden_sizes for c in configs] == list(spec.values)
    assert {(c.optimizer, c.learning_rate, c.activation, c.early_stopping) for c in configs} == {
        ("adam", 1e-3, "elu", True)}
    assert "hidden_size" not in spec.fixed and "hidden_sizes" not in spec.fixed
    # its one-layer setting is hidden-adam's hidden 100, key for key
    assert configs[0].to_dict() == BUILTIN_STUDIES["hidden-adam"].config(100).to_dict()
    assert [s.label for s in spec.settings()] == ["100", "100-100", "256-128", "128-64-32",
                                                  "512-256-128"]


def test_hidden_sizes_is_a_toml_parameter_labelled_by_its_sizes():
    from ffnn.studies.specs import StudyError, parse_study

    spec = parse_study(b'name = "d"\nparameter = "hidden_sizes"\nvalues = [[100], [100, 50]]\n',
                       "d.toml")
    assert spec.values == ((100,), (100, 50))
    assert [s.label for s in spec.settings()] == ["100", "100-50"]
    assert spec.config((100,)) == ffnn.TrainConfig(**{**spec.fixed, "hidden_size": 100})
    with pytest.raises(StudyError, match=r"values\[1\] = \[100\] duplicates values\[0\]"):
        parse_study(b'name = "d"\nparameter = "hidden_sizes"\nvalues = [[100], [100]]\n', "d")
    with pytest.raises(StudyError, match=r"values\[1\]: expected a non-empty list of integers"):
        parse_study(b'name = "d"\nparameter = "hidden_sizes"\nvalues = [[100], "x"]\n', "d")
    deep_base = parse_study(b'name = "d"\nparameter = "activation"\nvalues = ["relu"]\n'
                            b'[base]\nhidden_sizes = [12, 6]\n', "d")
    assert deep_base.config("relu").hidden_sizes == (12, 6)


def test_a_toml_study_over_hidden_sizes_runs_resumes_and_reports(tmp_path):
    from click.testing import CliRunner

    from ffnn.cli import main

    study = tmp_path / "d.toml"
    study.write_text('name = "d"\nparameter = "hidden_sizes"\nvalues = [[8], [8, 4]]\n'
                     '[base]\nmax_epochs = 2\n')
    args = ["study", "--file", str(study), "--repeats", "1", "--train-size", "300",
            "--val-size", "100", "--test-size", "100", "--workers", "1", "--backend", "numpy",
            "--no-models", "--out", str(tmp_path / "out")]
    for _ in range(2):  # the second run finds every run recorded
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in
               (tmp_path / "out" / "d" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["setting"] for r in records) == ["8", "8-4"]
    assert {r["config"].get("hidden_size") or tuple(r["config"]["hidden_sizes"])
            for r in records} == {8, (8, 4)}
    report = (tmp_path / "out" / "d" / "report.md").read_text()
    assert "| 8-4 |" in report and "| 8 |" in report
