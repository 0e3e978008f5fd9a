"""Long-range tasks (adding problem, copy memory) and gradient-flow diagnostics."""

import math

import numpy as np
import pytest
from conftest import write_recipe

from seqkit.errors import ParameterError, RecipeError
from seqkit.longrange import AddingProblem, CopyMemory, SequenceClassification, SequenceRegression
from seqkit.recipe import load_recipe, validate_dict
from seqkit.tasks import Split, TaskData


def adding_doc(length=10, units=8, epochs=1, **source):
    src = {"type": "adding_problem", "length": length, "train_examples": 200,
           "validation_examples": 50, "test_examples": 50, "seed": 3} | source  # fmt: skip
    return {
        "name": "adding",
        "seed": 0,
        "data": {"source": src},
        "model": {"layers": [{"type": "gru", "units": units}]},
        "task": {"type": "sequence_regression"},
        "train": {"epochs": epochs, "batch_size": 50},
    }


# -- data ----------------------------------------------------------------------------------------


def test_adding_problem_markers_and_targets():
    src = AddingProblem(length=12, train_examples=300, validation_examples=20, test_examples=20)
    x, y = src.arrays("train")
    assert x.shape == (300, 12, 2) and y.shape == (300,) and x.dtype == np.float32
    markers = x[:, :, 1]
    assert np.all(markers.sum(1) == 2) and set(np.unique(markers)) == {0.0, 1.0}
    first, second = markers[:, :6].argmax(1), 6 + markers[:, 6:].argmax(1)
    assert np.all(markers[:, :6].sum(1) == 1) and np.all(markers[:, 6:].sum(1) == 1)
    rows = np.arange(300)
    np.testing.assert_allclose(y, x[rows, first, 0] + x[rows, second, 0], rtol=1e-6)
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] <= 1))


def test_adding_problem_baseline_is_one_sixth():
    # Predicting the constant 1 gives MSE Var(U1 + U2) = 2/12.
    _, y = AddingProblem(length=4, train_examples=40000, validation_examples=1, test_examples=1,
                         seed=7).arrays("train")  # fmt: skip
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.004)


def test_splits_are_seeded_and_independent_of_other_sizes():
    a = AddingProblem(length=8, train_examples=100, validation_examples=10, test_examples=10)
    b = AddingProblem(length=8, train_examples=500, validation_examples=10, test_examples=10)
    c = AddingProblem(length=8, train_examples=100, validation_examples=10, test_examples=10,
                      seed=1)  # fmt: skip
    for split in ("validation", "test"):
        np.testing.assert_array_equal(a.arrays(split)[0], b.arrays(split)[0])
    np.testing.assert_array_equal(a.arrays("train")[0], a.arrays("train")[0])
    assert not np.array_equal(a.arrays("train")[0], c.arrays("train")[0])
    assert not np.array_equal(a.arrays("validation")[0], a.arrays("test")[0])


def test_copy_memory_layout_and_baseline():
    src = CopyMemory(length=6, copy_length=3, symbols=4, train_examples=50,
                     validation_examples=5, test_examples=5)  # fmt: skip
    x, y = src.arrays("train")
    assert x.shape == (50, 12, 6) and y.shape == (50, 12)
    tokens = x.argmax(-1)
    assert np.all(x.sum(-1) == 1)  # one-hot
    letters = tokens[:, :3]
    assert letters.min() >= 1 and letters.max() <= 4
    assert np.all(tokens[:, 3:8] == 0) and np.all(tokens[:, 8] == 5)  # blanks, then delimiter
    assert np.all(tokens[:, 9:] == 0)
    assert np.all(y[:, :9] == 0) and np.array_equal(y[:, 9:], letters)
    # the best memoryless model: blanks exactly, a uniform guess at the 3 copy steps
    assert src.baseline_loss() == pytest.approx(3 * math.log(4) / 12)
    assert CopyMemory(length=100).baseline_loss() == pytest.approx(0.173287, abs=1e-6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"length": 1}, "`length` must be an integer >= 2; received 1."),
        ({"length": 50.5}, "`length` must be an integer >= 2; received 50.5."),
        ({"train_examples": 0}, "`train_examples` must be an integer >= 1; received 0."),
        ({"seed": -1}, "`seed` must be an integer in [0, 2**32); received -1."),
    ],
)
def test_bad_source_parameters(params, message):
    with pytest.raises(ParameterError) as err:
        AddingProblem(**params)
    assert str(err.value) == message


def test_recipe_errors_name_the_key(tmp_path):
    doc = adding_doc()
    doc["data"]["source"]["length"] = 1
    with pytest.raises(RecipeError, match=r"data\.source\.length: must be an integer >= 2"):
        validate_dict(doc)
    path = write_recipe(tmp_path / "a.yaml", adding_doc())
    recipe = load_recipe(path, ["data.source.length=500"])  # the sweep's override
    assert recipe.data.source.params["length"] == 500


def test_task_refuses_audio_features_and_audio_sources(tmp_path):
    from seqkit.build import check_recipe

    doc = adding_doc()
    doc["features"] = [{"type": "load", "sample_rate": 8000}, {"type": "melspectrogram"}]
    with pytest.raises(RecipeError, match="reads generated sequences, not audio; remove"):
        check_recipe(validate_dict(doc))
    doc = adding_doc()
    doc["data"]["source"] = {"type": "synthetic_tones", "root": str(tmp_path / "d")}
    with pytest.raises(
        RecipeError,
        match=r"data\.source\.type: the sequence_regression task .* "
        "needs a generated regression sequence source such as adding_problem",
    ):
        check_recipe(validate_dict(doc))
    doc = adding_doc()
    doc["task"] = {"type": "sequence_classification"}
    with pytest.raises(RecipeError, match="such as copy_memory; received 'adding_problem'"):
        check_recipe(validate_dict(doc))


# -- evaluation oracles --------------------------------------------------------------------------


class _Constant:
    """A stand-in model whose predictions are fixed arrays."""

    def __init__(self, out):
        self.out = out

    def predict(self, x, batch_size=None, verbose=0):
        return np.broadcast_to(self.out, (len(x), *np.shape(self.out)[1:])).copy()


def test_regression_metrics_of_the_mean_predictor_are_the_baseline():
    rng = np.random.default_rng(0)
    ytr, yte = rng.normal(1, 0.4, 100), rng.normal(1, 0.4, 40)
    data = TaskData({"train": Split(np.zeros((100, 3, 2)), ytr),
                     "test": Split(np.zeros((40, 3, 2)), yte)}, (3, 2))  # fmt: skip
    m = SequenceRegression().evaluate(_Constant(np.array([[ytr.mean()]])), data, "test")
    assert m["baseline_ratio"] == pytest.approx(1.0)
    assert m["mse"] == m["loss"] == pytest.approx(np.mean((yte - ytr.mean()) ** 2))
    m = SequenceRegression().evaluate(_Constant(np.array([[0.0]])), data, "test")
    assert m["mse"] == pytest.approx(np.mean(yte**2)) and m["mae"] == pytest.approx(
        np.mean(np.abs(yte))
    )


def test_copy_metrics_of_the_memoryless_predictor_are_the_baseline():
    src = CopyMemory(length=6, copy_length=3, symbols=4, train_examples=20,
                     validation_examples=5, test_examples=30)  # fmt: skip
    task = SequenceClassification()
    task.per_step = True
    x, y = src.arrays("test")
    data = TaskData({"train": Split(*src.arrays("train")), "test": Split(x, y)},
                    src.input_shape, src.info())  # fmt: skip
    probs = np.zeros((1, 12, 5))
    probs[0, :9, 0] = 1.0  # blanks are certain
    probs[0, 9:, 1:] = 0.25  # letters: a uniform guess
    m = task.evaluate(_Constant(probs), data, "test")
    assert m["loss"] == pytest.approx(src.baseline_loss())
    assert m["baseline_ratio"] == pytest.approx(1.0)
    assert m["scored_accuracy"] == pytest.approx(np.mean(y[:, 9:] == 1))  # argmax -> letter 1
    assert not task.learns(m)
    assert task.learns({"baseline_ratio": 0.09})


def test_adding_trains_and_metrics_match_the_model(tmp_path):
    from seqkit.build import load_data
    from seqkit.runs import Run
    from seqkit.training import train

    recipe = validate_dict(adding_doc(length=10, epochs=2))
    path = train(recipe, run_dir=tmp_path / "run", verbose=0)
    run = Run(path)
    m = run.metrics
    data = load_data(recipe)
    assert data.input_shape == (10, 2) and m["examples"] == {"train": 200, "validation": 50,
                                                            "test": 50}  # fmt: skip
    pred = run.model.predict(data.splits["test"].x, verbose=0)[:, 0]
    mse = np.mean((pred - data.splits["test"].y) ** 2)
    assert m["test"]["mse"] == pytest.approx(mse, rel=1e-5)
    assert m["test"]["baseline_ratio"] == pytest.approx(mse / m["test"]["baseline_mse"], rel=1e-5)
    assert m["params"] == 3 * (8 * 2 + 8 * 8 + 8) + 9  # GRU(8) on 2 inputs + Dense(1)
    lines = run.task.summary(m)
    assert lines[1].startswith(f"test MSE: {m['test']['mse']:.5f} (")


# -- gradient flow -------------------------------------------------------------------------------


def _model(layer, t=6, f=2, head_bias=True):
    import keras

    model = keras.Sequential(
        [keras.Input((t, f)), layer, keras.layers.Dense(1, use_bias=head_bias)]
    )
    model.compile(loss="mse")
    return model


def test_gradients_of_a_linear_rnn_match_the_analytic_product():
    # h_t = x_t W + h_{t-1} U, L_i = (h_T w - y_i)^2  =>  dL_i/dh_t = 2 (p_i - y_i) w^T (U^T)^(T-t)
    import keras

    from seqkit.gradflow import state_gradients

    keras.utils.set_random_seed(0)
    rnn = keras.layers.SimpleRNN(
        4, activation=None, recurrent_initializer=keras.initializers.RandomNormal(stddev=0.6)
    )
    model = _model(rnn, head_bias=False)
    rng = np.random.default_rng(1)
    x, y = rng.random((5, 6, 2), dtype=np.float32), rng.random(5, dtype=np.float32)
    gf = state_gradients(model, x, y, keep=True)
    u = keras.ops.convert_to_numpy(rnn.cell.recurrent_kernel)
    w = keras.ops.convert_to_numpy(model.layers[-1].kernel)[:, 0]
    p = model.predict(x, verbose=0)[:, 0]
    g = 2 * (p - y)[:, None] * w[None, :]
    for t in range(5, -1, -1):
        np.testing.assert_allclose(gf.grads[t], g, rtol=2e-4, atol=1e-6)
        g = g @ u.T
    assert gf.norms.shape == (6,)
    np.testing.assert_allclose(gf.norms, np.linalg.norm(gf.grads, axis=2).mean(1))
    assert gf.loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gradients_match_finite_differences(kind):
    import keras

    import seqkit
    from seqkit.gradflow import _forward, _recurrent_index, state_gradients

    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(2)
        layer = seqkit.GRU(3) if kind == "gru" else keras.layers.LSTM(3)
        model = _model(layer, t=5)
        rng = np.random.default_rng(3)
        x, y = rng.normal(size=(4, 5, 2)), rng.normal(size=4)
        gf = state_gradients(model, x, y, keep=True)
        assert gf.grads.dtype == np.float64
        i = _recurrent_index(model)
        delta = 1e-6
        for t, b, j in [(0, 0, 0), (1, 2, 1), (3, 1, 2), (4, 3, 0)]:
            e = np.zeros((4, 3))
            e[b, j] = delta
            up = float(np.sum(_forward(model, x, y, i, perturb={t: e})[0]))
            down = float(np.sum(_forward(model, x, y, i, perturb={t: -e})[0]))
            assert (up - down) / (2 * delta) == pytest.approx(gf.grads[t, b, j], rel=1e-5,
                                                              abs=1e-9)  # fmt: skip
    finally:
        keras.config.set_dtype_policy("float32")


def test_gradient_flow_refuses_what_it_cannot_unroll():
    import keras

    from seqkit.gradflow import state_gradients

    x, y = np.zeros((2, 4, 2), np.float32), np.zeros(2, np.float32)
    model = _model(keras.layers.Bidirectional(keras.layers.GRU(2)), t=4)
    with pytest.raises(ParameterError, match="is bidirectional; gradient flow is defined here"):
        state_gradients(model, x, y)
    model = _model(keras.layers.Flatten(), t=4)
    with pytest.raises(ParameterError, match="has no recurrent layer"):
        state_gradients(model, x, y)


def test_copy_memory_trains_with_a_softmax_per_step(tmp_path):
    from seqkit.build import load_data
    from seqkit.runs import Run
    from seqkit.training import train

    doc = adding_doc()
    doc["data"]["source"] = {"type": "copy_memory", "length": 4, "copy_length": 2, "symbols": 3,
                             "train_examples": 60, "validation_examples": 20,
                             "test_examples": 20}  # fmt: skip
    doc["task"] = {"type": "sequence_classification"}
    recipe = validate_dict(doc)
    run = Run(train(recipe, run_dir=tmp_path / "run", verbose=0))
    data = load_data(recipe)
    x, y = data.splits["test"].x, data.splits["test"].y
    probs = run.model.predict(x, verbose=0)
    assert probs.shape == (20, 8, 4)  # a softmax over blank + 3 letters at each of 4 + 2*2 steps
    m = run.metrics["test"]
    nll = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0]).mean()
    assert m["loss"] == pytest.approx(nll, rel=1e-4)
    assert m["scored_accuracy"] == pytest.approx(np.mean(probs.argmax(-1)[:, -2:] == y[:, -2:]))
    assert m["baseline_loss"] == pytest.approx(2 * math.log(3) / 8)
