"""recalibrate_bn: moving statistics become the data statistics."""

import numpy as np

import tfprune_survey as tps
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
