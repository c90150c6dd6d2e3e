"""Sparse Structure Selection: channel and block scaling factors."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import keras_of
from tfprune_survey import zoo


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_channel_scaling_factors_feed_sss(xy, tmp_path, framework):
  x, _ = xy
  keras = keras_of(framework)
  base = build(framework)
  scaled = tps.add_scaling_factors(base, l1=1e-3, granularity="channel")
  assert isinstance(scaled, keras.Model)
  scales = [l for l in scaled.layers if isinstance(l, tps.ChannelScale)]
  assert len(scales) >= 3 and not any(
      isinstance(l, tps.ChannelScale) for l in base.layers)
  assert all(isinstance(s, keras.layers.Layer) for s in scales)
  np.testing.assert_allclose(np.asarray(scaled(x)), np.asarray(base(x)),
                             rtol=1e-5, atol=1e-6)
  assert len(scaled.losses) == len(scales)   # one L1 term per scale layer
  graph = tps.ChannelGraph(scaled)
  assert len(graph.prunable_groups) == len(
      tps.ChannelGraph(base).prunable_groups)
  # The sss criterion reads the scales: a zeroed scale ranks last.
  scales[0].scale.assign(np.r_[0.0, np.ones(scales[0].scale.shape[0] - 1)])
  owner = [g for g in graph.prunable_groups if scales[0].name in g.params]
  assert len(owner) == 1, [g.params for g in graph.prunable_groups]
  s = tps.score(scaled, "sss")[owner[0].id]
  assert s[0] < np.min(s[1:])
  path = str(tmp_path / "sss.keras")
  scaled.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(scaled(x)),
                             rtol=1e-5, atol=1e-6)


def test_block_scale_at_zero_removes_the_branch():
  keras = keras_of("tf_keras")
  keras.utils.set_random_seed(0)
  base = zoo.resnet_cifar(8)
  scaled = tps.add_scaling_factors(base, l1=1e-4, granularity="block")
  adds = [l for l in base.layers if isinstance(l, keras.layers.Add)]
  blocks = [l for l in scaled.layers
            if isinstance(l, tps.ChannelScale) and l.shared]
  assert len(blocks) == len(adds) >= 3
  x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
  np.testing.assert_allclose(scaled(x).numpy(), base(x).numpy(), rtol=1e-5,
                             atol=1e-6)
  # Every branch starts on the long path: its scale's input is a BN, not
  # the identity shortcut.
  for b in blocks:
    assert isinstance(b.inbound_nodes[0].inbound_layers,
                      keras.layers.BatchNormalization), b.name
  blocks[1].scale.assign([0.003])
  assert tps.zero_small_block_scales(scaled, 0.01) == [blocks[1].name]
  slim = tps.materialize(scaled, {})
  assert len(slim.layers) < len(scaled.layers) - 4
  assert not any(l.name == blocks[1].name for l in slim.layers)
  assert tps.count_macs(slim) < tps.count_macs(scaled)
  want = scaled(x).numpy()
  np.testing.assert_allclose(slim(x).numpy(), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(tps.mask_channels(scaled, {})(x).numpy(), want,
                             rtol=1e-5, atol=1e-6)
  # Channel pruning and branch removal together.
  graph = tps.ChannelGraph(scaled)
  keep = {g.id: np.arange(0, g.size, 2) for g in graph.prunable_groups}
  both = tps.materialize(scaled, keep)
  np.testing.assert_allclose(
      both(x).numpy(), tps.mask_channels(scaled, keep)(x).numpy(), rtol=1e-4,
      atol=1e-5)
  with pytest.raises(ValueError, match="granularity"):
    tps.add_scaling_factors(base, granularity="layer")


def test_block_scales_on_keras3_sit_on_the_residual_branches():
  keras = keras_of("keras3")
  keras.utils.set_random_seed(0)
  base = zoo.resnet_cifar(8, input_shape=(12, 12, 3), framework="keras3")
  scaled = tps.add_scaling_factors(base, l1=1e-4, granularity="block")
  adds = [l for l in base.layers if isinstance(l, keras.layers.Add)]
  blocks = [l for l in scaled.layers
            if isinstance(l, tps.ChannelScale) and l.shared]
  assert len(blocks) == len(adds) >= 3
  x = np.random.default_rng(0).random((4, 12, 12, 3)).astype("float32")
  np.testing.assert_allclose(np.asarray(scaled(x)), np.asarray(base(x)),
                             rtol=1e-5, atol=1e-6)
  config = scaled.get_config()
  entries = {e["name"]: e for e in config["layers"]}
  for b in blocks:
    history = entries[b.name]["inbound_nodes"][0]["args"][0]["config"][
        "keras_history"]
    assert entries[history[0]]["class_name"] == "BatchNormalization", b.name
  blocks[0].scale.assign([0.0])
  assert tps.zero_small_block_scales(scaled, 0.01) == [blocks[0].name]
  # materialize removes the dead branch on Keras 3 too, with channel pruning
  # of the rest, and computes what the masked model computes.
  slim = tps.materialize(scaled, {})
  assert isinstance(slim, keras.Model)
  assert not any(l.name == blocks[0].name for l in slim.layers)
  assert len(slim.layers) < len(scaled.layers) - 4
  assert tps.count_macs(slim) < tps.count_macs(scaled)
  want = np.asarray(scaled(x))
  np.testing.assert_allclose(np.asarray(slim(x)), want, rtol=1e-5, atol=1e-6)
  graph = tps.ChannelGraph(scaled)
  keep = {g.id: np.arange(0, g.size, 2) for g in graph.prunable_groups}
  np.testing.assert_allclose(
      np.asarray(tps.materialize(scaled, keep)(x)),
      np.asarray(tps.mask_channels(scaled, keep)(x)), rtol=1e-4, atol=1e-5)


def test_zero_small_block_scales_checks_the_threshold():
  # A negative or NaN threshold zeroed nothing without a word, and None
  # failed comparing floats with None.
  keras = keras_of("keras3")
  L = keras.layers
  inp = keras.Input((6, 6, 4))
  h = L.Conv2D(4, 3, padding="same", name="branch")(inp)
  h = L.BatchNormalization(name="bn")(h)
  model = keras.Model(inp, L.Add(name="add")([inp, h]))
  scaled = tps.add_scaling_factors(model, granularity="block")
  block = scaled.get_layer("add_branch_sss")
  block.scale.assign([-0.002])
  for bad in (-1e-3, float("nan"), None, "0.01", True):
    with pytest.raises(ValueError, match="`threshold` must be a number >= 0"):
      tps.zero_small_block_scales(scaled, bad)
  assert float(block.scale.numpy()[0]) == pytest.approx(-0.002)
  assert tps.zero_small_block_scales(scaled, 0.0) == []
  assert tps.zero_small_block_scales(scaled, np.float32(0.01)) == [
      "add_branch_sss"]
  assert float(block.scale.numpy()[0]) == 0.0


def test_add_scaling_factors_names_an_unserializable_op():
  import keras  # pylint: disable=g-import-not-at-top
  inp = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
  x = keras.ops.clip(x, np.float32(0.0), np.array(6.0, "float32"))
  x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  m = keras.Model(inp, keras.layers.Dense(2, name="out")(x))
  for granularity in ("channel", "block"):
    with pytest.raises(tps.UnsupportedModelError) as e:
      tps.add_scaling_factors(m, granularity=granularity)
    assert "(Clip)" in str(e.value)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_add_scaling_factors_refuses_a_taken_scale_name(framework):
  # Adding scales twice (or to a model with a layer named as a scale) failed
  # inside Keras ("has loops or disconnected nodes") naming no layer.
  keras = keras_of(framework)
  L = keras.layers
  inp = keras.Input((6, 6, 4))
  c0 = L.Conv2D(4, 3, padding="same", name="c0")(inp)
  h = L.Conv2D(4, 3, padding="same", name="branch")(c0)
  h = L.BatchNormalization(name="bn")(h)
  h = L.Add(name="add")([c0, h])
  model = keras.Model(inp, L.Conv2D(2, 3, name="out")(h), name="res")
  for granularity, taken in (("channel", "c0_sss"),
                             ("block", "add_branch_sss")):
    scaled = tps.add_scaling_factors(model, granularity=granularity)
    with pytest.raises(ValueError) as e:
      tps.add_scaling_factors(scaled, granularity=granularity)
    assert str(e.value) == (
        f"model {scaled.name!r} already has a layer named {taken!r}, the "
        "name of the scale add_scaling_factors would insert (scaling "
        "factors were already added to this model)")
  # A layer of the user's own under that name is named too.
  h = L.Conv2D(4, 3, padding="same", name="c1")(inp)
  h = L.Activation("relu", name="c1_sss")(h)
  other = keras.Model(inp, L.Conv2D(2, 3, name="c2")(h))
  with pytest.raises(ValueError, match="already has a layer named 'c1_sss'"
                     ", the name of the scale add_scaling_factors would "
                     "insert: rename that layer"):
    tps.add_scaling_factors(other)
  # The other layers' scales still go in when no name is taken.
  assert [l.name for l in tps.add_scaling_factors(model).layers
          if isinstance(l, tps.ChannelScale)] == ["c0_sss", "bn_sss"]
