"""recalibrate_bn: moving statistics become the data statistics."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey._compat import keras

L = keras.layers


def test_moving_stats_equal_average_of_batch_stats():
  inp = keras.Input((4, 4, 2))
  x = L.Conv2D(3, 1, name="c")(inp)
  x = L.BatchNormalization(name="bn", momentum=0.99)(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  rng = np.random.default_rng(0)
  data = (rng.standard_normal((64, 4, 4, 2)) * 3 + 1).astype("float32")
  before = {w.name: w.numpy().copy() for w in model.weights}
  tps.recalibrate_bn(model, data)   # numpy x: batches of 32
  conv = keras.Model(model.input, model.get_layer("c").output)
  feats = conv(data).numpy().astype(np.float64)
  means = [feats[i:i + 32].mean(axis=(0, 1, 2)) for i in (0, 32)]
  varis = [feats[i:i + 32].var(axis=(0, 1, 2)) for i in (0, 32)]
  bn = model.get_layer("bn")
  np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, 0),
                             rtol=1e-4, atol=1e-5)
  # Keras updates the moving variance with the unbiased batch variance.
  n = 32 * 16
  np.testing.assert_allclose(bn.moving_variance.numpy(),
                             np.mean(varis, 0) * n / (n - 1), rtol=1e-4)
  for w in model.weights:
    if "moving" not in w.name:
      np.testing.assert_array_equal(w.numpy(), before[w.name])
  assert bn.momentum == 0.99


FRAMEWORKS = ("tf_keras", "keras3")


def _np(t):
  if hasattr(t, "detach"):   # torch
    t = t.detach().cpu()
  return np.asarray(t, np.float64)


def _batch_stats(feats, unbiased, batch=32):
  """Cumulative averages of the batch means and variances, and each batch's
  (mean, biased variance), which a BN in training mode normalises with.

  tf_keras' (fused) BatchNormalization averages the unbiased batch
  variance; Keras 3's and tf_keras' SyncBatchNormalization the biased one.
  """
  means, varis, normed = [], [], []
  for i in range(0, len(feats), batch):
    f = feats[i:i + batch]
    m, v = f.mean(axis=(0, 1, 2)), f.var(axis=(0, 1, 2))
    n = f[..., 0].size
    means.append(m)
    varis.append(v * n / (n - 1) if unbiased else v)
    normed.append((m, v))
  return np.mean(means, 0), np.mean(varis, 0), normed


def _normalise(feats, normed, bn, batch=32):
  out = []
  gamma, beta = _np(bn.gamma), _np(bn.beta)
  for j, (m, v) in enumerate(normed):
    f = feats[j * batch:(j + 1) * batch]
    out.append(gamma * (f - m) / np.sqrt(v + bn.epsilon) + beta)
  return np.concatenate(out)


def _conv1x1(layer, x):
  kernel, bias = (_np(w) for w in layer.weights)
  return x @ kernel[0, 0] + bias


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_only_batchnorms_run_in_training_mode(framework):
  """Dropout, SpatialDropout and GaussianNoise are off during the
  re-estimation (before a BN of the model and one of a nested model); the
  BNs normalise with their batch statistics, as in training."""
  keras = frameworks.get(framework).keras
  layers = keras.layers
  sub_in = keras.Input((4, 4, 3))
  h = layers.Conv2D(5, 1, name="c2")(sub_in)
  h = layers.SpatialDropout2D(0.5, name="sdrop")(h)
  sub = keras.Model(sub_in, layers.BatchNormalization(name="bn2")(h),
                    name="sub")
  inp = keras.Input((4, 4, 2))
  h = layers.Conv2D(3, 1, name="c1")(inp)
  h = layers.Dropout(0.5, name="drop")(h)
  h = layers.BatchNormalization(name="bn1", momentum=0.9)(h)
  h = layers.GaussianNoise(1.0, name="noise")(h)
  h = layers.GlobalAveragePooling2D()(sub(h))
  model = keras.Model(inp, layers.Dense(2)(h))
  rng = np.random.default_rng(0)
  bn1, bn2 = model.get_layer("bn1"), sub.get_layer("bn2")
  for bn in (bn1, bn2):
    size = bn.gamma.shape[0]
    bn.gamma.assign(rng.uniform(0.5, 2, size).astype("float32"))
    bn.beta.assign(rng.standard_normal(size).astype("float32"))
  data = (rng.standard_normal((96, 4, 4, 2)) * 3 + 1).astype("float32")
  before = {w.path if hasattr(w, "path") else w.name: _np(w)
            for w in model.weights}

  assert tps.recalibrate_bn(model, data) is model   # batches of 32

  f1 = _conv1x1(model.get_layer("c1"), data.astype(np.float64))
  unbiased = framework == "tf_keras"
  mean1, var1, normed1 = _batch_stats(f1, unbiased)
  f2 = _conv1x1(sub.get_layer("c2"), _normalise(f1, normed1, bn1))
  mean2, var2, _ = _batch_stats(f2, unbiased)
  for bn, mean, var in ((bn1, mean1, var1), (bn2, mean2, var2)):
    np.testing.assert_allclose(_np(bn.moving_mean), mean, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(_np(bn.moving_variance), var, rtol=1e-4,
                               atol=1e-5)
    assert "call" not in vars(bn)   # the training-mode override is gone
  assert bn1.momentum == 0.9 and bn2.momentum == 0.99
  for w in model.weights:
    if "moving" not in w.name:
      key = w.path if hasattr(w, "path") else w.name
      np.testing.assert_array_equal(_np(w), before[key])


def _subclass_and_sync(framework):
  keras = frameworks.get(framework).keras

  class MyBatchNorm(keras.layers.BatchNormalization):
    pass

  out = [(MyBatchNorm, framework == "tf_keras")]
  if framework == "tf_keras":   # not a BatchNormalization subclass there
    out.append((keras.layers.experimental.SyncBatchNormalization, False))
  return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_batchnorm_subclasses_and_sync_batchnorm(framework):
  keras = frameworks.get(framework).keras
  layers = keras.layers
  for cls, unbiased in _subclass_and_sync(framework):
    inp = keras.Input((4, 4, 2))
    h = layers.Conv2D(3, 1, name="c")(inp)
    h = layers.Dropout(0.5)(h)
    h = cls(name="bn")(h)
    model = keras.Model(inp, layers.GlobalAveragePooling2D()(h))
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((64, 4, 4, 2)) * 2 - 1).astype("float32")
    tps.recalibrate_bn(model, data)
    mean, var, _ = _batch_stats(_conv1x1(model.get_layer("c"),
                                         data.astype(np.float64)), unbiased)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(_np(bn.moving_mean), mean, rtol=1e-4,
                               atol=1e-5, err_msg=cls.__name__)
    np.testing.assert_allclose(_np(bn.moving_variance), var, rtol=1e-4,
                               atol=1e-5, err_msg=cls.__name__)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_failing_call_leaves_the_batchnorms_as_they_were(framework):
  keras = frameworks.get(framework).keras
  inp = keras.Input((4, 4, 2))
  h = keras.layers.BatchNormalization(name="bn", momentum=0.9)(inp)
  model = keras.Model(inp, h)
  with pytest.raises(Exception):
    tps.recalibrate_bn(model, np.zeros((8, 4, 4, 5), "float32"))
  bn = model.get_layer("bn")
  assert "call" not in vars(bn) and bn.momentum == 0.9
  np.testing.assert_array_equal(_np(bn.moving_mean), 0)
