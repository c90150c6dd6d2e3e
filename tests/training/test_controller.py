"""The controllers: in-graph statistics, strategies, distribution."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tests.conftest import tied_ranking_model
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import keras_of
from tfprune_survey.training import controller as controller_lib


def _no_bn_model(framework="tf_keras"):
  keras = keras_of(framework)
  keras.utils.set_random_seed(0)
  inp = keras.Input((12, 12, 1))
  h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
  h = keras.layers.Conv2D(8, 3, padding="same", name="c2")(h)
  h = keras.layers.ReLU(name="r2")(h)
  h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
  return keras.Model(inp, keras.layers.Dense(10, name="out")(h))


@pytest.mark.parametrize("framework, criterion", [
    ("tf_keras", "apoz"), ("tf_keras", "variance"), ("tf_keras", "taylor"),
    ("tf_keras", "entropy"), ("tf_keras", "taylor_fo"),
    ("keras3", "variance"), ("keras3", "taylor_fo")])
def test_in_graph_statistics_match_a_scoring_pass(framework, criterion):
  from tfprune_survey.criteria.entropy import Entropy  # pylint: disable=g-import-not-at-top
  keras = keras_of(framework)
  rng = np.random.default_rng(1)
  x = rng.random((256, 12, 12, 1)).astype("float32")
  y = rng.integers(0, 10, 256)
  base = _no_bn_model(framework)
  never = tps.schedules.ConstantSparsity(0.5, begin_step=10 ** 6,
                                         frequency=1)
  if criterion == "entropy":
    criterion = Entropy(bins=8)
  pm = tps.prune_channels(base, criterion, never)
  assert any(w.observe or w.observe_output for w in pm.layers
             if isinstance(w, tps.ChannelPruneWrapper))
  pm.compile(keras.optimizers.SGD(0.0), keras.losses.
             SparseCategoricalCrossentropy(from_logits=True))
  pm.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  got = controller_lib.make_controller(pm)._in_graph_scores()  # pylint: disable=protected-access
  # The same batches in the same order (taylor_fo squares per-batch sums).
  want = tps.score(base, criterion,
                   tf.data.Dataset.from_tensor_slices((x, y)).batch(64))
  assert got.keys() == want.keys() and got
  for gid in want:
    if not isinstance(criterion, str):  # entropy: edges from the 1st batch
      np.testing.assert_allclose(got[gid], want[gid], atol=0.25)
      assert np.argmin(got[gid]) == np.argmin(want[gid]), (got, want)
    else:
      np.testing.assert_allclose(got[gid], want[gid], rtol=1e-4, atol=1e-6)


def test_each_form_gets_its_strategy():
  keras = keras_of("keras3")
  pm = tps.prune_channels(build("keras3"), "l1")
  assert isinstance(controller_lib.make_controller(pm),
                    controller_lib.MaskingController)
  inp = keras.Input((12, 12, 1))
  conv = tps.prune_channels(keras.layers.Conv2D(4, 3, name="c"), "l1")
  out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(
      keras.layers.Conv2D(5, 3)(conv(inp))))
  ctl = controller_lib.make_controller(keras.Model(inp, out))
  assert isinstance(ctl, controller_lib.MarkerController)
  assert ctl.group_ids == ["c"] and ctl.remask_between_steps()
  with pytest.raises(ValueError, match="no ChannelPruneWrapper"):
    controller_lib.make_controller(build("keras3"))


_MIRRORED = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey.training.strip import current_keep
keras = frameworks.get("tf_keras").keras

def build():
  keras.utils.set_random_seed(0)
  inp = keras.Input((10, 10, 1))
  h = keras.layers.Conv2D(12, 3, activation="relu", name="c1")(inp)
  h = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(h)
  h = keras.layers.GlobalAveragePooling2D()(h)
  return keras.Model(inp, keras.layers.Dense(4, name="out")(h))

rng = np.random.default_rng(0)
x = rng.random((64, 10, 10, 1)).astype("float32")
y = rng.integers(0, 4, 64)
result = {}
for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                       ("mirrored", tf.distribute.MirroredStrategy(
                           ["/cpu:0", "/cpu:1"]))):
  with strategy.scope():
    pm = tps.prune_channels(build(), "l1", tps.schedules.PolynomialDecay(
        0.0, 0.5, begin_step=0, end_step=6, frequency=2))
    pm.compile(keras.optimizers.SGD(0.05),
               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  pm.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(pm)
  result[name] = {k: v.tolist() for k, v in keep.items()}
  result[name + "_replicas"] = strategy.num_replicas_in_sync
print("RESULT" + json.dumps(result))
"""


def test_mirrored_strategy_gives_the_same_masks():
  out = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True,
                       text=True, timeout=600)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
  assert line, out.stderr[-3000:]
  result = json.loads(line[0][len("RESULT"):])
  assert result["mirrored_replicas"] == 2 and result["one_replicas"] == 1
  assert result["one"] and result["one"] == result["mirrored"]


@pytest.mark.parametrize("framework, scope", [
    ("tf_keras", "global"), ("keras3", "local"), ("keras3", "global")])
def test_hard_masks_never_bring_back_a_dropped_channel(framework, scope,
                                                       monkeypatch):
  # A dropped channel is zero; a score that ties it with (or ranks it above)
  # a live channel must not bring it back: the kept sets only shrink, each
  # block of the grouped conv keeps as many as the others.
  from tfprune_survey import scoring  # pylint: disable=g-import-not-at-top
  keras = keras_of(framework)
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 6, 4))
  h = keras.layers.Conv2D(8, 1, activation="relu", name="c1")(inp)
  h = keras.layers.Conv2D(8, 3, groups=2, activation="relu", name="g")(h)
  h = keras.layers.GlobalAveragePooling2D()(h)
  base = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
  pm = tps.prune_channels(base, "l1", scope=scope)
  ctl = controller_lib.make_controller(pm)
  scores = {"c1": np.arange(8.0), "g": np.arange(8.0)[::-1].copy()}
  monkeypatch.setattr(scoring, "score", lambda *a, **k: dict(scores))
  ctl.update(0.25)
  first = {g: set(k.tolist()) for g, k in ctl.keep.items()}
  # Now the dropped channels score highest (a zeroed one can, e.g. APoZ
  # and entropy tie it with a dead channel that is still live).
  for g in scores:
    scores[g] = np.where(np.isin(np.arange(8), list(first[g])), 1.0, 9.0)
  ctl.update(0.5)
  assert sum(len(k) for k in ctl.keep.values()) == 8
  for g, k in ctl.keep.items():
    assert set(k.tolist()) <= first[g], (g, first, ctl.keep)
    assert len(k) % 2 == 0 and (k < 4).sum() == (k >= 4).sum(), ctl.keep


def test_layers_wrapped_with_other_arguments_are_a_clear_error(xy):
  # One controller prunes every wrapper with the first one's settings: a
  # second layer wrapped with its own schedule (25% here) was pruned to
  # the first one's 50% without a word.
  x, y = xy
  keras = keras_of("keras3")
  L = keras.layers
  inp = keras.Input((12, 12, 1))
  h = tps.prune_channels(L.Conv2D(8, 3, name="c1"), "l1",
                         tps.schedules.ConstantSparsity(0.5, 0, frequency=1),
                         scope="local")(inp)
  h = tps.prune_channels(L.Conv2D(8, 3, name="c2"), "l1",
                         tps.schedules.ConstantSparsity(0.25, 0, frequency=1),
                         scope="local")(L.ReLU()(h))
  h = L.GlobalAveragePooling2D()(L.ReLU()(h))
  model = compile_model(keras.Model(inp, L.Dense(10)(h)))
  with pytest.raises(ValueError, match=r"'c1' and 'c2' differ in "
                     r"\['schedule'\].*0\.25.*same arguments"):
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
              callbacks=[tps.UpdateChannelPruningStep()])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_layers_wrapped_inside_a_nested_model_are_named(xy, framework):
  # Wrappers inside a nested model never get their step: the fit failed
  # with "has no ChannelPruneWrapper: build it with tps.prune_channels"
  # (or "no channel group can be pruned ... wrapped: ['c1']").
  x, y = xy
  keras = keras_of(framework)
  L = keras.layers
  every = tps.schedules.ConstantSparsity(0.5, 0, frequency=1)
  block = keras.Sequential(
      [keras.Input((10, 10, 8)),
       tps.prune_channels(L.Conv2D(8, 3, name="inner_conv"), "l1", every),
       L.ReLU()], name="block")
  inp = keras.Input((12, 12, 1))
  h = tps.prune_channels(L.Conv2D(8, 3, name="c1"), "l1", every)(inp)
  h = L.GlobalAveragePooling2D()(block(L.ReLU()(h)))
  model = compile_model(keras.Model(inp, L.Dense(10)(h)))
  with pytest.raises(ValueError, match=r"inside nested models "
                     r"\(\['block/chprune_inner_conv'\]\)"):
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
              callbacks=[tps.UpdateChannelPruningStep()])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_global_sparsity_with_round_to_removes_at_least_the_sparsity(
    framework):
  # As tps.prune(ratio=0.25, round_to=8): removing 4 of each 16-channel
  # group (8 of 32) rounds back up to 16 and 16, so nothing was pruned.
  base = tied_ranking_model(framework)
  one_shot = tps.prune(base, "l1", ratio=0.25, round_to=8).report.groups
  assert {g: n for g, n, _ in one_shot if g in ("a", "b")} == {
      "a": 8, "b": 16}
  pm = tps.prune_channels(base, "l1", round_to=8)
  ctl = controller_lib.make_controller(pm)
  ctl.update(0.25)
  kept = lambda: {g: len(ctl.keep.get(g, range(16))) for g in ("a", "b")}
  assert kept() == {"a": 8, "b": 16}
  np.testing.assert_array_equal(ctl.keep["a"], np.arange(8, 16))
  # A later, higher sparsity (hard masks: the kept sets only shrink).
  ctl.update(0.5)
  assert kept() == {"a": 8, "b": 8}
  np.testing.assert_array_equal(ctl.keep["b"], np.arange(8, 16))
