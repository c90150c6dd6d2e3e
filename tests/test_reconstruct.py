"""tps.reconstruct and prune(..., reconstruct=...): least-squares re-fits."""

import importlib

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import max_rel_diff
from tests.conftest import same_weights
from tests.conftest import to_numpy
from tests.conftest import weights_of
from tfprune_survey import frameworks
from tfprune_survey import zoo

FRAMEWORKS = ("tf_keras", "keras3")


def _keras(framework):
  return frameworks.get(framework).keras


def _set(layer, kernel, bias=None):
  layer.set_weights([kernel] if bias is None else [kernel, bias])


def _linear_conv2d_model(framework, seed=0, input_name=None):
  """c1 (linear) -> c2 (strided, linear) -> Flatten -> Dense.

  c1's filters 4 and 5 and c2's filters 3 and 4 (with their biases) are
  linear combinations of the others, so dropping them loses nothing that a
  re-fit of the next layer cannot restore exactly.
  """
  keras = _keras(framework)
  rng = np.random.default_rng(seed)
  inp = keras.Input((8, 8, 3), name=input_name)
  a = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inp)
  b = keras.layers.Conv2D(5, 3, strides=2, padding="same", name="c2")(a)
  f = keras.layers.Flatten(name="flat")(b)
  out = keras.layers.Dense(3, name="fc")(f)
  model = keras.Model(inp, out)
  w1 = rng.normal(size=(3, 3, 3, 6)).astype("float32")
  b1 = rng.normal(size=6).astype("float32")
  for t, (i, j, u, v) in zip((4, 5), ((0, 1, 0.5, -1.0), (2, 3, 1.0, 2.0))):
    w1[..., t] = u * w1[..., i] + v * w1[..., j]
    b1[t] = u * b1[i] + v * b1[j]
  w2 = rng.normal(size=(3, 3, 6, 5)).astype("float32")
  b2 = rng.normal(size=5).astype("float32")
  for t, (i, j, u, v) in zip((3, 4), ((0, 2, 1.0, -0.3), (1, 2, 0.7, 0.4))):
    w2[..., t] = u * w2[..., i] + v * w2[..., j]
    b2[t] = u * b2[i] + v * b2[j]
  _set(model.get_layer("c1"), w1, b1)
  _set(model.get_layer("c2"), w2, b2)
  return model


def _out(model, x):
  return to_numpy(model(x, training=False))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_exact_when_dropped_channels_are_combinations(framework):
  model = _linear_conv2d_model(framework)
  x = np.random.default_rng(1).normal(size=(128, 8, 8, 3)).astype("float32")
  keep = {"c1": [0, 1, 2, 3], "c2": [0, 1, 2]}
  slim = tps.materialize(model, keep)
  before_model, before_slim = weights_of(model), weights_of(slim)
  assert max_rel_diff(_out(model, x), _out(slim, x)) > 0.1  # pruning hurts
  fitted = tps.reconstruct(slim, model, x, keep=keep, positions_per_sample=16)
  # Strided conv c2 and Dense-after-Flatten fc are both re-fitted exactly.
  assert max_rel_diff(_out(model, x), _out(fitted, x)) < 1e-4
  assert fitted.get_layer("c2").get_weights()[0].shape == (3, 3, 4, 3)
  assert fitted.get_layer("fc").get_weights()[0].shape == (48, 3)
  assert same_weights(before_model, weights_of(model))
  assert same_weights(before_slim, weights_of(slim))
  assert type(fitted).__module__.split(".")[0] == type(
      model).__module__.split(".")[0]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv1d_causal_and_dilated_exact(framework):
  keras = _keras(framework)
  rng = np.random.default_rng(2)
  inp = keras.Input((12, 2))
  a = keras.layers.Conv1D(4, 3, padding="causal", name="c1")(inp)
  out = keras.layers.Conv1D(3, 3, dilation_rate=2, padding="same",
                            activation="tanh", name="c2")(a)
  model = keras.Model(inp, out)
  w1 = rng.normal(size=(3, 2, 4)).astype("float32")
  b1 = rng.normal(size=4).astype("float32")
  w1[..., 3] = w1[..., 0] - 2 * w1[..., 1]
  b1[3] = b1[0] - 2 * b1[1]
  _set(model.get_layer("c1"), w1, b1)
  x = rng.normal(size=(64, 12, 2)).astype("float32")
  keep = {"c1": [0, 1, 2]}
  slim = tps.materialize(model, keep)
  assert max_rel_diff(_out(model, x), _out(slim, x)) > 0.05
  fitted = tps.reconstruct(slim, model, x, keep=keep, positions_per_sample=4)
  # The fused tanh is outside the fit: its linear part is matched.
  assert max_rel_diff(_out(model, x), _out(fitted, x)) < 1e-4


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_consumers_of_one_tensor_with_other_geometries_exact(framework):
  # c1's output is read by a 3x3 conv and by a strided 1x1 conv: one wave
  # of the re-fit, two output grids and two patch shapes. Both are re-fitted
  # exactly (each from its own patches, not the first consumer's).
  keras = _keras(framework)
  rng = np.random.default_rng(5)
  inp = keras.Input((8, 8, 3))
  a = keras.layers.Conv2D(5, 3, padding="same", name="c1")(inp)
  k3 = keras.layers.Conv2D(4, 3, padding="same", name="k3")(a)
  k1 = keras.layers.Conv2D(3, 1, strides=2, name="k1")(a)
  model = keras.Model(inp, [k1, k3])
  w1 = rng.normal(size=(3, 3, 3, 5)).astype("float32")
  b1 = rng.normal(size=5).astype("float32")
  w1[..., 4] = 0.5 * w1[..., 0] - w1[..., 2]
  b1[4] = 0.5 * b1[0] - b1[2]
  _set(model.get_layer("c1"), w1, b1)
  x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
  keep = {"c1": [0, 1, 2, 3]}
  slim = tps.materialize(model, keep)
  fitted = tps.reconstruct(slim, model, x, keep=keep, positions_per_sample=8,
                           ridge=0.0)
  for ref, before, after in zip(_outs(model, x), _outs(slim, x),
                                _outs(fitted, x)):
    assert max_rel_diff(ref, before) > 0.05  # pruning hurts each output
    assert max_rel_diff(ref, after) < 1e-4


def _outs(model, x):
  return [to_numpy(t) for t in model(x, training=False)]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_lowers_the_error_against_no_refit(framework):
  keras = _keras(framework)
  keras.utils.set_random_seed(0)
  model = zoo.residual_cnn(input_shape=(8, 8, 1), width=8,
                           framework=framework)
  x = np.random.default_rng(3).random((96, 8, 8, 1)).astype("float32")
  graph = tps.ChannelGraph(model)
  keep = {g.id: np.arange(0, g.size, 2) for g in graph.prunable_groups}
  slim = tps.materialize(model, keep, graph=graph)
  before = weights_of(model), weights_of(slim)
  fitted = tps.reconstruct(slim, model, x, keep=keep)
  ref = _out(model, x)
  err_slim = np.mean((_out(slim, x) - ref) ** 2)
  err_fit = np.mean((_out(fitted, x) - ref) ** 2)
  assert err_fit < 0.5 * err_slim, (err_fit, err_slim)
  assert same_weights(before[0], weights_of(model))
  assert same_weights(before[1], weights_of(slim))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_prune_with_reconstruct(framework):
  model = _linear_conv2d_model(framework)
  x = np.random.default_rng(4).normal(size=(128, 8, 8, 3)).astype("float32")
  plain = tps.prune(model, "l1", ratios={"c1": 0.34}, data=x)
  result = tps.prune(model, "l1", ratios={"c1": 0.34}, data=x,
                     reconstruct={"positions_per_sample": 16, "ridge": 0.0})
  assert {k: list(v) for k, v in result.keep.items()} == {
      k: list(v) for k, v in plain.keep.items()}
  ref = _out(model, x)
  assert max_rel_diff(ref, _out(result.model, x)) < max_rel_diff(
      ref, _out(plain.model, x))
  with pytest.raises(ValueError, match="data"):
    tps.prune(model, "l1", ratio=0.3, reconstruct=True)
  with pytest.raises(ValueError, match="reconstruct"):
    tps.prune(model, "l1", ratio=0.3, data=x, reconstruct={"nope": 1})


def test_bad_input():
  model = _linear_conv2d_model("keras3")
  x = np.zeros((4, 8, 8, 3), "float32")
  keep = {"c1": [0, 1, 2, 3]}
  slim = tps.materialize(model, keep)
  with pytest.raises(ValueError, match="data"):
    tps.reconstruct(slim, model, None, keep=keep)
  with pytest.raises(ValueError, match="keep"):
    tps.reconstruct(slim, model, x)
  with pytest.raises(ValueError, match="positions_per_sample"):
    tps.reconstruct(slim, model, x, keep=keep, positions_per_sample=0)
  with pytest.raises(ValueError, match="'c2'"):
    tps.reconstruct(model, model, x, keep=keep)  # widths do not match
  keras = _keras("keras3")
  inp = keras.Input((6, 6, 2))
  a = keras.layers.Conv2D(4, 3, name="c1")(inp)
  out = keras.layers.Conv2DTranspose(3, 3, name="up")(a)
  other = keras.Model(inp, out)
  keep = {"c1": [0, 1]}
  with pytest.raises(ValueError, match=r"'up' \(Conv2DTranspose\)"):
    tps.reconstruct(tps.materialize(other, keep), other,
                    np.zeros((2, 6, 6, 2), "float32"), keep=keep)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_data_with_nan_or_inf_is_refused(framework):
  # The re-fit streams its data through the scorers' check: one NaN sample
  # would otherwise give the slim model NaN weights, with no error.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = _linear_conv2d_model(framework)
  x = np.random.default_rng(5).normal(size=(8, 8, 8, 3)).astype("float32")
  bad = x.copy()
  bad[3, 2, 2, 1] = np.nan
  keep = {"c1": [0, 1, 2, 3]}
  slim = tps.materialize(model, keep)
  before = weights_of(slim)
  for data in (bad, (bad, np.zeros(8)),
               tf.data.Dataset.from_tensor_slices(bad).batch(4)):
    with pytest.raises(ValueError, match="`data` holds NaN or inf.*re-fit"):
      tps.reconstruct(slim, model, data, keep=keep)
  assert same_weights(before, weights_of(slim))
  bad[3, 2, 2, 1] = np.inf
  with pytest.raises(ValueError, match="`data` holds NaN or inf"):
    tps.prune(model, "l1", ratios={"c1": 0.34}, data=bad, reconstruct=True)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_fit_that_is_not_finite_names_the_layer(framework, monkeypatch):
  model = _linear_conv2d_model(framework)
  c1 = model.get_layer("c1")
  _set(c1, c1.get_weights()[0] * 1e30, c1.get_weights()[1])
  x = np.random.default_rng(6).normal(size=(8, 8, 8, 3)).astype("float32")
  x *= 1e10   # finite data whose features overflow float32 in c1
  keep = {"c1": [0, 1, 2, 3]}
  slim = tps.materialize(model, keep)
  with pytest.raises(ValueError, match=r"re-fit layer 'c2' \(Conv2D\).*NaN"):
    tps.reconstruct(slim, model, x, keep=keep)
  # tps.reconstruct is the function; the module is looked up by name.
  reconstruct_lib = importlib.import_module("tfprune_survey.reconstruct")
  monkeypatch.setattr(reconstruct_lib, "_solve",
                      lambda a, b, ridge, k: np.full(b.shape, np.nan))
  model = _linear_conv2d_model(framework)
  with pytest.raises(ValueError, match=r"re-fit layer 'c2'.*not finite"):
    tps.reconstruct(tps.materialize(model, keep), model, x / 1e10, keep=keep)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_single_input_model_takes_x_by_name_or_in_a_list(framework):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = _linear_conv2d_model(framework, input_name="img")
  x = np.random.default_rng(7).normal(size=(16, 8, 8, 3)).astype("float32")
  y = np.zeros(16)
  keep = {"c1": [0, 1, 2, 3]}
  slim = tps.materialize(model, keep)
  want = weights_of(tps.reconstruct(slim, model, x, keep=keep))
  for data in (({"img": x}, y), ([x], y), ((x,),),
               tf.data.Dataset.from_tensor_slices(({"img": x}, y)).batch(5)):
    got = weights_of(tps.reconstruct(slim, model, data, keep=keep))
    for a, b in zip(want, got):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  result = tps.prune(model, "l1", ratios={"c1": 0.34}, data=({"img": x}, y),
                     reconstruct=True)
  plain = tps.prune(model, "l1", ratios={"c1": 0.34}, data=x,
                    reconstruct=True)
  for a, b in zip(weights_of(plain.model), weights_of(result.model)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="`data` gives inputs.*'img'"):
    tps.reconstruct(slim, model, ({"image": x},), keep=keep)
