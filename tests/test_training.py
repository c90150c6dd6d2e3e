"""Training-time channel pruning: wrappers, schedule, callback, strip, save."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.training.api import current_keep

sched = tfmot.sparsity.keras


@pytest.fixture(scope="module")
def xy():
  rng = np.random.default_rng(0)
  return (rng.random((64, 12, 12, 1)).astype("float32"),
          rng.integers(0, 10, 64))


def _model():
  keras.utils.set_random_seed(0)
  return zoo.residual_cnn(input_shape=(12, 12, 1), width=8)


def _compile(m):
  m.compile(keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return m


def _kept_fraction(model):
  graph, keep = current_keep(model)
  groups = graph.prunable_groups
  kept = sum(len(keep.get(g.id, range(g.size))) for g in groups)
  return kept / sum(g.size for g in groups)


def test_masks_follow_polynomial_decay(xy):
  x, y = xy
  base = _model()
  before = [w.copy() for w in base.get_weights()]
  schedule = sched.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6,
                                   frequency=1)
  pm = _compile(tps.prune_channels(base, "l1", schedule))
  fractions = []

  class Probe(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      fractions.append(_kept_fraction(self.model))

  pm.fit(x, y, batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(), Probe()])
  total = sum(g.size for g in tps.ChannelGraph(base).prunable_groups)
  for step, got in enumerate(fractions):
    _, sparsity = schedule(tf.constant(min(step, 6), tf.int64))
    want = 1 - int(round(float(sparsity) * total)) / total
    assert got == pytest.approx(want, abs=1e-9), (step, got, want)
  assert fractions[-1] == pytest.approx(0.5, abs=1 / total)
  assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))


@pytest.mark.parametrize("criterion", ["l1", "l2", "fpgm", "random",
                                       "slimming", "taylor"])
def test_strip_equals_wrapped_model_and_macs_drop(xy, criterion):
  x, y = xy
  base = _model()
  data = (x[:32], y[:32]) if criterion == "taylor" else None
  pm = _compile(tps.prune_channels(
      base, criterion, sched.ConstantSparsity(0.5, 0, frequency=2),
      data=data))
  pm.fit(x, y, batch_size=16, epochs=2, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  slim = tps.strip_channel_pruning(pm)
  masked = tps.strip_channel_pruning(pm, materialize=False)
  want = pm(x, training=False).numpy()
  np.testing.assert_allclose(slim(x, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(masked(x, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-5)
  assert tps.count_macs(slim) < 0.6 * tps.count_macs(base)
  assert tps.count_macs(masked) == tps.count_macs(base)
  assert not any(isinstance(l, tps.ChannelPruneWrapper) for l in slim.layers)


def test_fit_without_callback_raises_clear_error(xy):
  x, y = xy
  pm = _compile(tps.prune_channels(_model(), "l1"))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="UpdateChannelPruningStep"):
    pm.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_save_load_resume(xy, tmp_path, fmt):
  x, y = xy
  pm = _compile(tps.prune_channels(
      _model(), "l1", sched.PolynomialDecay(0.0, 0.5, 0, 8, frequency=1)))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  path = str(tmp_path / ("m" if fmt == "savedmodel" else f"m.{fmt}"))
  pm.save(path, **({"save_format": "tf"} if fmt == "savedmodel" else {}))
  loaded = keras.models.load_model(path)
  _, keep_a = current_keep(pm)
  _, keep_b = current_keep(loaded)
  assert keep_a.keys() == keep_b.keys() and keep_a
  for k in keep_a:
    np.testing.assert_array_equal(keep_a[k], keep_b[k])
  step = [w for w in loaded.layers if isinstance(w, tps.ChannelPruneWrapper)
          ][0].pruning_step.numpy()
  assert step == 3   # 4 batches: steps 0..3
  np.testing.assert_allclose(loaded(x, training=False).numpy(),
                             pm(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-6)
  # Training resumes at the saved step and reaches the final sparsity.
  _compile(loaded).fit(x, y, batch_size=16, epochs=2, verbose=0,
                       callbacks=[tps.UpdateChannelPruningStep()])
  assert _kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)


def test_prune_channels_errors():
  model = _model()
  with pytest.raises(ValueError, match="whole model"):
    tps.prune_channels(model.layers[1])
  with pytest.raises(ValueError, match="pruning_policy"):
    tps.prune_channels(model, "l1", pruning_policy=["no_such_layer"])
  with pytest.raises(TypeError, match="PruningSchedule"):
    tps.prune_channels(model, "l1", pruning_schedule=0.5)
  with pytest.raises(ValueError, match="strip|prune_channels"):
    tps.strip_channel_pruning(model)


def test_sparsify_bn_shrinks_gamma(xy):
  x, y = xy
  base = _model()
  reg = tps.sparsify_bn(base, l1=1e-1)
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
