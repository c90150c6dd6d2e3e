"""sparsify_bn: Network Slimming's L1 on BN gammas, in both Kerases."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import keras_of


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sparsify_bn_shrinks_gamma(xy, tmp_path, framework):
  x, y = xy
  keras = keras_of(framework)
  base = build(framework)
  reg = tps.sparsify_bn(base, l1=1e-1)
  assert isinstance(reg, keras.Model)
  assert all(l.gamma_regularizer is None for l in base.layers
             if isinstance(l, keras.layers.BatchNormalization))
  plain = keras.models.clone_model(base)
  plain.set_weights(base.get_weights())
  for m in (reg, plain):
    keras.utils.set_random_seed(1)
    m.compile(keras.optimizers.Adam(1e-2),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, batch_size=16, epochs=3, verbose=0)

  def gamma(m):
    return np.concatenate([np.abs(l.gamma.numpy()) for l in m.layers
                           if isinstance(l, keras.layers.BatchNormalization)])
  # 12 Adam steps of 1e-2 against the L1 pull: about 0.1 lower on average.
  assert gamma(reg).mean() < gamma(plain).mean() - 0.05, (
      gamma(reg).mean(), gamma(plain).mean())
  assert "gamma_regularizer" in str(reg.get_config())
  # Keras' own L1: saves and loads with no custom objects.
  path = str(tmp_path / "reg.keras")
  reg.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(np.asarray(loaded(x[:4])), np.asarray(reg(x[:4])),
                             rtol=1e-5, atol=1e-6)


def test_sparsify_bn_errors():
  with pytest.raises(ValueError, match="l1"):
    tps.sparsify_bn(build("keras3"), l1=-1.0)
  keras = keras_of("keras3")
  inp = keras.Input((4,))
  with pytest.raises(ValueError, match="BatchNormalization"):
    tps.sparsify_bn(keras.Model(inp, keras.layers.Dense(2)(inp)))
