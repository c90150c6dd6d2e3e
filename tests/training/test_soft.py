"""Soft filter pruning: prune_channels(..., soft=True) (He et al. 2018)."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import keras_of
from tests.training.conftest import kept_fraction
from tests.training.conftest import outputs
from tfprune_survey.training.strip import current_keep

GROUP = "block_conv1"   # one producer (block_conv1), BN, consumer block_conv2


def _kernel(pm):
  return np.array(pm.get_layer(f"chprune_{GROUP}").layer.kernel.numpy())


def _mask(pm):
  w = pm.get_layer(f"chprune_{GROUP}")
  return np.asarray(w.channel_mask.numpy())


def _probe(framework, fn):
  """A callback of the model's Keras calling fn(step) at each batch begin
  (steps counted across epochs)."""
  keras = keras_of(framework)

  class Probe(keras.callbacks.Callback):

    def __init__(self):
      super().__init__()
      self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
      fn(self.step)
      self.step += 1
  return Probe()


def _slice_norms(kernel, channels):
  return np.abs(kernel[..., channels]).reshape(-1, len(channels)).sum(0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_zeroed_channel_trains_back(xy, framework):
  x, y = xy
  # Prunes at step 2 only (frequency 100) in the 8 steps of the fit. (A
  # filter zeroed before any training, BN beta still 0, sits where ReLU's
  # gradient is 0 and has no optimizer momentum to move it.)
  schedule = tps.schedules.ConstantSparsity(0.5, 2, frequency=100)
  pm = compile_model(tps.prune_channels(build(framework), "l1", schedule,
                                        soft=True), lr=1e-2)
  seen = {}

  def record(step):
    if step == 2:   # just after the pruning step
      seen["dropped"] = np.flatnonzero(_mask(pm) < 0.5)
      seen["at_prune"] = _slice_norms(_kernel(pm), seen["dropped"])
    if step == 6:
      seen["later"] = _slice_norms(_kernel(pm), seen["dropped"])
  pm.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
         callbacks=[tps.UpdateChannelPruningStep(),
                    _probe(framework, record)])
  assert len(seen["dropped"]) >= 1
  np.testing.assert_array_equal(seen["at_prune"], 0.0)
  # Trainable: four Adam steps moved every zeroed filter (no pruning step
  # since, so nothing zeroed them again).
  assert (seen["later"] > 1e-3).all(), seen["later"]
  assert pm.get_layer(f"chprune_{GROUP}").settings["soft"] is True


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_selection_is_recomputed_from_the_current_weights(xy, framework):
  """A zeroed channel given the largest filter between two pruning steps is
  selected again under soft pruning; hard masks keep it dropped."""
  x, y = xy
  schedule = tps.schedules.ConstantSparsity(0.5, 0, frequency=1)
  results = {}
  for soft in (True, False):
    pm = compile_model(tps.prune_channels(build(framework), "l1", schedule,
                                          soft=soft), lr=1e-4)
    masks = []

    def revive(step, pm=pm, masks=masks):
      if step == 1:   # before step 1's pruning: revive a dropped channel
        masks.append(_mask(pm))
        k = pm.get_layer(f"chprune_{GROUP}").layer.kernel
        value = np.array(k.numpy())
        dropped = np.flatnonzero(masks[0] < 0.5)[0]
        value[..., dropped] = 5.0 * np.abs(value).max()
        k.assign(value)
        masks.append(dropped)
    pm.fit(x[:32], y[:32], batch_size=16, epochs=1, verbose=0,
           shuffle=False,
           callbacks=[_probe(framework, revive),
                      tps.UpdateChannelPruningStep()])
    first, dropped = masks
    results[soft] = (first[dropped], _mask(pm)[dropped])
  assert results[True] == (0.0, 1.0)    # dropped at step 0, back at step 1
  assert results[False] == (0.0, 0.0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_strip_removes_the_final_selection_exactly(xy, framework):
  x, y = xy
  base = build(framework)
  schedule = tps.schedules.PolynomialDecay(0.0, 0.5, 0, 6, frequency=2)
  pm = compile_model(tps.prune_channels(base, "l1", schedule, soft=True),
                     lr=1e-2)
  pm.fit(x, y, batch_size=16, epochs=2, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(pm)
  assert keep
  dropped = np.flatnonzero(_mask(pm) < 0.5)
  # The end of fit zeroed the final selection: the wrapped model is what
  # the stripped ones compute.
  np.testing.assert_array_equal(_kernel(pm)[..., dropped], 0.0)
  want = outputs(pm, x)
  scale = np.abs(want).max()
  slim = tps.strip_channel_pruning(pm)
  masked = tps.strip_channel_pruning(pm, materialize=False)
  assert not any(isinstance(l, tps.ChannelPruneWrapper) for l in slim.layers)
  assert np.abs(outputs(slim, x) - want).max() <= 1e-5 * scale
  assert np.abs(outputs(masked, x) - want).max() <= 1e-5 * scale
  assert tps.count_params(slim) < 0.6 * tps.count_params(base)
  assert type(slim).__module__.split(".")[0] == type(base).__module__.split(
      ".")[0]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_soft_fpgm_saves_and_resumes_as_soft(xy, tmp_path, framework):
  x, y = xy
  keras = keras_of(framework)
  schedule = tps.schedules.ConstantSparsity(0.5, 0, frequency=2)
  pm = compile_model(tps.prune_channels(build(framework), "fpgm", schedule,
                                        soft=True))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  path = str(tmp_path / "mid.keras")
  pm.save(path)
  loaded = keras.models.load_model(path)
  wrapper = loaded.get_layer(f"chprune_{GROUP}")
  assert wrapper.settings["soft"] is True
  np.testing.assert_array_equal(_mask(loaded), _mask(pm))
  np.testing.assert_allclose(outputs(loaded, x), outputs(pm, x), rtol=1e-5,
                             atol=1e-6)
  # Resumed at step 4 as soft pruning: no mask is held (the wrappers' mask
  # variables stay at one), the selection is still half the channels.
  compile_model(loaded, lr=1e-2).fit(
      x, y, batch_size=16, epochs=1, verbose=0,
      callbacks=[tps.UpdateChannelPruningStep()])
  assert wrapper.pruning_step.numpy() == 7
  for w in loaded.layers:
    if isinstance(w, tps.ChannelPruneWrapper):
      for m in w.mask_vars:
        np.testing.assert_array_equal(m.numpy(), 1.0)
  assert kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)
  slim = tps.strip_channel_pruning(loaded)
  want = outputs(loaded, x)
  assert np.abs(outputs(slim, x) - want).max() <= 1e-5 * np.abs(want).max()


def test_soft_must_be_a_bool():
  with pytest.raises(TypeError, match="soft"):
    tps.prune_channels(build(), "l1", soft="yes")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layer_form_prunes_softly(xy, framework):
  x, y = xy
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((12, 12, 1))
  wrapped = tps.prune_channels(
      L.Conv2D(8, 3, name="c1"), "l1",
      tps.schedules.ConstantSparsity(0.5, 2, frequency=100), soft=True)
  h = L.ReLU()(L.BatchNormalization(name="bn1")(wrapped(inp)))
  h = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, name="c2")(h))
  model = compile_model(keras.Model(inp, L.Dense(10, name="out")(h)),
                        lr=1e-2)
  seen = {}

  def record(step):
    kernel = np.array(wrapped.layer.kernel.numpy())
    if step == 2:
      seen["dropped"] = np.flatnonzero(wrapped.channel_mask.numpy() < 0.5)
      seen["at_prune"] = _slice_norms(kernel, seen["dropped"])
    if step == 6:
      seen["later"] = _slice_norms(kernel, seen["dropped"])
  model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
            callbacks=[tps.UpdateChannelPruningStep(),
                       _probe(framework, record)])
  assert len(seen["dropped"]) == 4
  np.testing.assert_array_equal(seen["at_prune"], 0.0)
  assert (seen["later"] > 1e-3).all(), seen["later"]
  slim = tps.strip_channel_pruning(model)
  assert slim.get_layer("c1").filters == 4
  want = outputs(model, x)
  assert np.abs(outputs(slim, x) - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_strip_of_a_model_saved_during_fit_makes_the_final_prune(
    xy, tmp_path, framework):
  # A checkpoint saved during fit, before on_train_end's final prune: the
  # dropped filters regrew since the last pruning step, and strip used that
  # step's channels, 0.094 off the loaded model's outputs (of 0.95). Now
  # it makes the final prune, as finishing the training would.
  from tfprune_survey.training import controller  # pylint: disable=g-import-not-at-top
  x, y = xy
  keras = keras_of(framework)
  path = str(tmp_path / "mid.keras")
  pm = compile_model(tps.prune_channels(
      build(framework), "l1",
      tps.schedules.ConstantSparsity(0.5, 2, frequency=4), soft=True),
                     lr=1e-2)
  pm.fit(x[:32], y[:32], batch_size=8, epochs=2, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(),
                    keras.callbacks.ModelCheckpoint(path, save_freq="epoch")])
  loaded = keras.models.load_model(path)
  weights = [w.copy() for w in loaded.get_weights()]
  # What the end of fit does: a controller's finish on another copy.
  finished = keras.models.load_model(path)
  controller.make_controller(finished).finish()
  want = outputs(finished, x)
  for materialize in (False, True):
    with pytest.warns(UserWarning, match="saved during fit, before the "
                      "final prune"):
      slim = tps.strip_channel_pruning(loaded, materialize=materialize)
    np.testing.assert_allclose(outputs(slim, x), want, rtol=1e-5, atol=1e-6)
  assert slim.get_layer(GROUP).filters == len(current_keep(finished)[1][GROUP])
  # The loaded model is not changed; a finished one strips with no warning.
  for before, after in zip(weights, loaded.get_weights()):
    np.testing.assert_array_equal(before, after)
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    slim = tps.strip_channel_pruning(finished)
  np.testing.assert_allclose(outputs(slim, x), want, rtol=1e-5, atol=1e-6)


def test_strip_of_a_model_saved_during_fit_asks_for_the_data_it_needs(
    xy, tmp_path):
  x, y = xy
  keras = keras_of("tf_keras")
  path = str(tmp_path / "mid.keras")
  pm = compile_model(tps.prune_channels(
      build("tf_keras"), "apoz",
      tps.schedules.ConstantSparsity(0.5, 2, frequency=4), soft=True),
                     lr=1e-2)
  pm.fit(x[:32], y[:32], batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(),
                    keras.callbacks.ModelCheckpoint(path, save_freq="epoch")])
  loaded = keras.models.load_model(path)
  with pytest.raises(ValueError, match=r"before the final prune.*'apoz' "
                     r"needs data.*strip_channel_pruning\(model, data="):
    tps.strip_channel_pruning(loaded)
  with pytest.warns(UserWarning, match="final prune"):
    slim = tps.strip_channel_pruning(loaded, data=x[:16])
  assert tps.count_macs(slim) < 0.7 * tps.count_macs(build("tf_keras"))
