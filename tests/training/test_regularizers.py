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


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sparsify_bn_skips_bn_without_gamma(framework):
  # BatchNormalization(scale=False) has no gamma: a model with only such
  # BNs has nothing to regularize (it was returned with no penalty at all),
  # and beside a BN with a gamma the penalty is that one's alone.
  keras = keras_of(framework)
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  h = L.BatchNormalization(scale=False, name="no_gamma")(L.Conv2D(3, 3)(inp))
  only = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
  with pytest.raises(ValueError, match="scale=False"):
    tps.sparsify_bn(only)
  h2 = L.BatchNormalization(name="with_gamma")(h)
  mixed = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(h2)))
  mixed.get_layer("with_gamma").gamma.assign(np.array([1.0, -2.0, 0.5],
                                                      "float32"))
  reg = tps.sparsify_bn(mixed, l1=0.1)
  assert reg.get_layer("no_gamma").get_config()["gamma_regularizer"] is None
  np.testing.assert_allclose([float(v) for v in reg.losses], [0.1 * 3.5],
                             rtol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sparsify_bn_keeps_a_gamma_regularizer_the_model_has(framework):
  # An L2 (or L1) the model had on gamma was replaced by the L1: its
  # penalty was lost. It is kept, and the L1 added; a regularizer of the
  # user's own class cannot be combined and is named.
  keras = keras_of(framework)
  L = keras.layers

  def model(reg):
    inp = keras.Input((6, 6, 2))
    h = L.BatchNormalization(name="bn", gamma_regularizer=reg)(
        L.Conv2D(3, 3)(inp))
    m = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
    m.get_layer("bn").gamma.assign(np.array([1.0, -2.0, 3.0], "float32"))
    return m

  gamma = np.array([1.0, -2.0, 3.0])
  cases = [(keras.regularizers.L2(0.5), 0.5 * np.sum(gamma ** 2)),
           (keras.regularizers.L1(0.2), 0.2 * np.abs(gamma).sum()),
           (keras.regularizers.L1L2(l1=0.2, l2=0.5),
            0.2 * np.abs(gamma).sum() + 0.5 * np.sum(gamma ** 2))]
  for reg, penalty in cases:
    got = tps.sparsify_bn(model(reg), l1=0.1)
    want = penalty + 0.1 * np.abs(gamma).sum()
    np.testing.assert_allclose([float(v) for v in got.losses], [want],
                               rtol=1e-5)

  class Mine(keras.regularizers.Regularizer):

    def __call__(self, x):
      return 0.0 * x[0]

    def get_config(self):
      return {}

  with pytest.raises(ValueError, match="'bn' already has a gamma_regularizer"):
    tps.sparsify_bn(model(Mine()), l1=0.1)


def _clip_model_keras3():
  """A Keras 3 model whose config Keras cannot make (NumPy clip bounds)."""
  import keras  # pylint: disable=g-import-not-at-top
  inp = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
  x = keras.layers.BatchNormalization(name="bn1")(x)
  x = keras.ops.clip(x, np.float32(0.0), np.array(6.0, "float32"))
  x = keras.layers.GlobalAveragePooling2D()(x)
  return keras.Model(inp, keras.layers.Dense(2, name="out")(x))


@pytest.mark.parametrize("fn", [tps.sparsify_bn, tps.reinitialize])
def test_unserializable_op_is_named(fn):
  m = _clip_model_keras3()
  with pytest.raises(tps.UnsupportedModelError) as e:
    fn(m)
  assert "(Clip)" in str(e.value)
  assert "NumPy array" in str(e.value)
