"""Grouped convolutions and InceptionResNetV2's scaled residuals in the graph.

A grouped conv keeps its `groups` and loses the same number of channels in
every group (`ChannelGroup.blocks`); `CustomScaleLayer` (x + scale * r)
merges its inputs like Add, splitting a conv's output to match a
concatenated stream. Surgery is checked by equivalence (slim == masked),
and the slim grouped kernel against a numpy gather written here.
"""

import importlib

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import assert_equivalent
from tests.conftest import max_rel_diff
from tfprune_survey import frameworks
from tfprune_survey import zoo
from tfprune_survey.metrics.macs_model import MacsModel

FRAMEWORKS = ("tf_keras", "keras3")


def block_keep(graph, seed=0, fraction=0.5):
  """Keeps a random ~fraction of each block of every prunable group, at
  different positions in each block."""
  rng = np.random.default_rng(seed)
  keep = {}
  for g in graph.prunable_groups:
    per = g.size // g.blocks
    n = max(1, int(round(per * fraction)))
    keep[g.id] = np.sort(np.concatenate(
        [b * per + rng.choice(per, n, replace=False)
         for b in range(g.blocks)]))
  return keep


def producer_coverage(graph):
  """Share of producers' output channels in prunable groups."""
  total = sum(g.size * len(g.producers) for g in graph.groups)
  covered = sum(g.size * len(g.producers) for g in graph.prunable_groups)
  return covered / total


def tiny_grouped(framework, groups=4, filters=12, multiplier_conv=False):
  """image -> conv1 (8) -> grouped conv -> ReLU -> conv3 (5)."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  keras.utils.set_random_seed(1)
  inp = keras.Input((6, 6, 3), name="image")
  x = L.Conv2D(8, 1, name="conv1")(inp)
  if multiplier_conv:   # depthwise with multiplier 2, written as Conv2D
    x = L.Conv2D(16, 3, padding="same", groups=8, name="gconv")(x)
  else:
    x = L.Conv2D(filters, 3, padding="same", groups=groups, name="gconv")(x)
  x = L.ReLU(name="relu")(x)
  x = L.Conv2D(5, 1, name="conv3")(x)
  return keras.Model(inp, x)


def _x(shape, seed=0):
  return np.random.default_rng(seed).normal(size=(2,) + shape).astype(
      "float32")


# ---- grouped convs -------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_grouped_conv_groups_have_blocks(framework):
  graph = tps.ChannelGraph(tiny_grouped(framework))
  g1, g2 = graph.group("conv1"), graph.group("gconv")
  assert (g1.size, g1.blocks, g1.prunable) == (8, 4, True)
  assert (g2.size, g2.blocks, g2.prunable) == (12, 4, True)
  assert "gconv" in g1.consumers and g2.producers == ["gconv"]
  assert graph.block_layers(g1) == ["gconv"]
  (gs,) = graph.grouped_slices
  assert (gs.path, gs.axis, gs.out_axis, gs.groups) == ("gconv", 2, 3, 4)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_slim_grouped_kernel_is_the_per_group_gather(framework):
  model = tiny_grouped(framework)
  keep = {"conv1": [0, 3, 4, 7],                       # 1 of 2 per group
          "gconv": [0, 2, 3, 4, 7, 8, 9, 11]}          # 2 of 3 per group
  _, slim = assert_equivalent(model, keep, _x((6, 6, 3)))
  old = model.get_layer("gconv").get_weights()
  new = slim.get_layer("gconv")
  assert new.groups == 4 and new.filters == 8
  # numpy reference: output o of group k reads input k*2 + j at position j
  ref = np.zeros((3, 3, 1, 8), np.float32)
  for col, o in enumerate(keep["gconv"]):
    k = o // 3
    kept_in = [c for c in keep["conv1"] if c // 2 == k]
    ref[:, :, :, col] = old[0][:, :, [c - 2 * k for c in kept_in], o]
  np.testing.assert_array_equal(new.get_weights()[0], ref)
  np.testing.assert_array_equal(new.get_weights()[1],
                                old[1][keep["gconv"]])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_grouped_conv_macs(framework):
  model = tiny_grouped(framework)
  # 3x3 taps x (8 / 4) inputs per group x 12 outputs x 36 positions
  grouped = 9 * 2 * 12 * 36
  assert tps.count_macs(model) == 3 * 8 * 36 + grouped + 12 * 5 * 36
  keep = {"conv1": [0, 3, 4, 7], "gconv": [0, 2, 3, 4, 7, 8, 9, 11]}
  slim = tps.materialize(model, keep)
  after = 3 * 4 * 36 + 9 * 1 * 8 * 36 + 8 * 5 * 36
  assert tps.count_macs(slim) == after
  counts = {k: len(v) for k, v in keep.items()}
  assert MacsModel(model, tps.ChannelGraph(model)).macs(counts) == after


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unequal_blocks_are_rejected_by_materialize_only(framework):
  model = tiny_grouped(framework)
  keep = {"conv1": [0, 1, 2, 4, 6]}   # blocks keep 2, 1, 1, 1
  with pytest.raises(ValueError, match=r"gconv.*\[2, 1, 1, 1\]"):
    tps.materialize(model, keep)
  masked = tps.mask_channels(model, keep)   # masking needs no equal blocks
  w = masked.get_layer("gconv").get_weights()[0]
  # input 3 (group 1, position 1) is dropped: zero for group 1's outputs
  assert not w[:, :, 1, 3:6].any() and w[:, :, 1, 0:3].any()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv_with_one_input_per_group_is_depthwise(framework):
  model = tiny_grouped(framework, multiplier_conv=True)
  graph = tps.ChannelGraph(model)
  g = graph.group("conv1")
  assert g.prunable and g.blocks == 1 and "gconv" in g.params
  assert [x.id for x in graph.prunable_groups] == ["conv1"]
  keep = {"conv1": [1, 2, 5]}
  _, slim = assert_equivalent(model, keep, _x((6, 6, 3)))
  layer = slim.get_layer("gconv")
  assert (layer.groups, layer.filters) == (3, 6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_resnext_block_exact_and_cheaper(framework):
  model = zoo.resnext_small(framework=framework)
  graph = tps.ChannelGraph(model)
  blocks = {g.id: g.blocks for g in graph.prunable_groups}
  assert blocks["s1b1_reduce"] == blocks["s1b1_group_conv"] == 8
  assert producer_coverage(graph) >= 0.8
  keep = block_keep(graph, seed=3)
  x = _x((32, 32, 3))
  masked, slim = assert_equivalent(model, keep, x, graph=graph)
  assert not np.allclose(model(x, training=False), masked(x, training=False))
  macs = tps.count_macs(slim)
  assert macs < tps.count_macs(model)
  assert MacsModel(model, graph).macs(
      {k: len(v) for k, v in keep.items()}) == macs
  assert slim.get_layer("s2b1_group_conv").groups == 8


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_prune_resnext_end_to_end(framework):
  model = zoo.resnext_small(framework=framework)
  weights = [np.array(w) for w in model.get_weights()]
  result = tps.prune(model, "l1", ratio=0.5)
  graph = tps.ChannelGraph(model)
  for gid, kept in result.keep.items():
    g = graph.group(gid)
    per = g.size // g.blocks
    counts = np.bincount(np.asarray(kept) // per, minlength=g.blocks)
    assert (counts == counts[0]).all(), (gid, counts)
  assert result.keep["s2b1_reduce"].size < 64
  assert result.report.macs_after < result.report.macs_before
  assert result.model.get_layer("s1b1_group_conv").groups == 8
  x = _x((32, 32, 3))
  masked = tps.mask_channels(model, result.keep, graph=graph)
  assert max_rel_diff(masked(x, training=False),
                      result.model(x, training=False)) <= 1e-5
  cut = tps.prune(model, "l1", target_macs=0.4)
  assert cut.report.macs_reduction >= 0.4
  assert all(np.array_equal(a, b) for a, b in zip(weights,
                                                  model.get_weights()))


def test_merge_that_splits_a_grouped_conv_group_blocks_it():
  keras = frameworks.get("tf_keras").keras
  L = keras.layers
  inp = keras.Input((6, 6, 4))
  a = L.Conv2D(4, 1, name="a")(inp)
  b = L.Conv2D(4, 1, name="b")(inp)
  cat = L.Concatenate(name="cat")([a, b])
  g = L.Conv2D(8, 3, padding="same", groups=2, name="g")(inp)
  x = L.Add(name="add")([cat, g])
  x = L.Conv2D(3, 1, name="head")(x)
  graph = tps.ChannelGraph(keras.Model(inp, x))
  assert not graph.group("a").prunable and not graph.group("b").prunable
  assert "merge splits across groups" in graph.group("a").reason
  assert "g" in graph.group("a").producers


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_split_groups_are_named_in_topological_order(framework):
  keras = frameworks.get(framework).keras
  L = keras.layers
  keras.utils.set_random_seed(6)
  inp = keras.Input((6, 6, 3))
  early = L.Conv2D(8, 1, name="early")(inp)   # split after late_a, late_b
  a = L.Conv2D(4, 3, padding="same", name="late_a")(early)
  b = L.Conv2D(4, 3, padding="same", name="late_b")(early)
  x = L.Add(name="add")([early, L.Concatenate(name="cat")([a, b])])
  x = L.Conv2D(3, 1, name="head")(L.ReLU(name="relu")(x))
  model = keras.Model(inp, L.GlobalAveragePooling2D()(x))
  graph = tps.ChannelGraph(model)
  split = [(g.id, g.size, g.producers) for g in graph.prunable_groups]
  assert split == [("early", 4, ["early", "late_a"]),
                   ("early:2", 4, ["early", "late_b"])]
  assert {"late_a", "late_b"} <= set(graph.group("early").consumers)
  _, slim = assert_equivalent(model, {"early": [1, 2], "early:2": [0]},
                              _x((6, 6, 3)), graph=graph)
  assert slim.get_layer("early").filters == 3
  assert slim.get_layer("late_b").filters == 1


# ---- InceptionResNetV2's CustomScaleLayer ------------------------------------

def scale_layer_class(framework):
  keras = frameworks.get(framework).keras
  module = importlib.import_module(
      keras.__name__ + ".src.applications.inception_resnet_v2")
  return module.CustomScaleLayer


def inception_resnet_block(framework):
  """A concatenated stream plus a scaled residual, as in InceptionResNetV2."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  keras.utils.set_random_seed(2)
  inp = keras.Input((12, 12, 3), name="image")
  branches = []
  for name, k in (("mix_a", 1), ("mix_b", 3)):
    y = L.Conv2D(8, k, padding="same", use_bias=False, name=name)(inp)
    y = L.BatchNormalization(name=name + "_bn")(y)
    branches.append(L.ReLU(name=name + "_relu")(y))
  x = L.Concatenate(name="mixed")(branches)            # 16 = 8 + 8
  r1 = L.Conv2D(4, 1, activation="relu", name="res_1x1")(x)
  r2 = L.Conv2D(6, 3, padding="same", activation="relu", name="res_3x3")(x)
  r = L.Concatenate(name="res_cat")([r1, r2])
  up = L.Conv2D(16, 1, name="res_up")(r)
  x = scale_layer_class(framework)(0.17, name="scale")([x, up])
  x = L.Activation("relu", name="block_relu")(x)
  x = L.Conv2D(12, 1, name="head")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  x = L.Dense(5, name="logits")(x)
  return keras.Model(inp, x)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_scale_layer_merges_like_add(framework):
  model = inception_resnet_block(framework)
  graph = tps.ChannelGraph(model)
  a, b = graph.group("mix_a"), graph.group("mix_b")
  assert a.prunable and b.prunable and a.size == b.size == 8
  # the residual conv's 16 outputs are split to match the concatenation
  assert a.producers == ["mix_a", "res_up"]
  assert b.producers == ["mix_b", "res_up"]
  assert {"res_1x1", "res_3x3", "head"} <= set(a.consumers)
  assert producer_coverage(graph) > 0.9
  keep = block_keep(graph, seed=5)
  x = _x((12, 12, 3))
  masked, slim = assert_equivalent(model, keep, x, graph=graph)
  assert not np.allclose(model(x, training=False), masked(x, training=False))
  assert slim.get_layer("res_up").filters == 8
  assert tps.count_macs(slim) < tps.count_macs(model)


def layer_scale_block(framework):
  """conv -> ConvNeXt's LayerScale -> Add with the stream."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  cls = importlib.import_module(
      keras.__name__ + ".src.applications.convnext").LayerScale
  keras.utils.set_random_seed(4)
  inp = keras.Input((8, 8, 3), name="image")
  x = L.Conv2D(8, 1, name="stem")(inp)
  y = L.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
  y = cls(0.5, 8, name="layer_scale")(y)
  x = L.Add(name="add")([x, y])
  x = L.Conv2D(4, 1, name="head")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  model = keras.Model(inp, L.Dense(3, name="logits")(x))
  gamma = model.get_layer("layer_scale")
  gamma.set_weights([np.linspace(-1.0, 1.0, 8).astype("float32")])
  return model


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layer_scale_is_sliced_per_channel(framework):
  model = layer_scale_block(framework)
  graph = tps.ChannelGraph(model)
  g = graph.group("stem")
  assert g.prunable and g.producers == ["stem", "branch"]
  assert g.params == ["layer_scale"]
  keep = {"stem": [0, 3, 4, 6]}
  _, slim = assert_equivalent(model, keep, _x((8, 8, 3)), graph=graph)
  layer = slim.get_layer("layer_scale")
  assert layer.projection_dim == 4
  np.testing.assert_allclose(layer.get_weights()[0],
                             np.linspace(-1.0, 1.0, 8)[[0, 3, 4, 6]],
                             rtol=1e-6)


# ---- the real applications --------------------------------------------------

def _application(framework, name, size):
  fn = getattr(frameworks.get(framework).keras.applications, name)
  return fn(weights=None, input_shape=(size, size, 3), classes=10,
            classifier_activation=None)


def test_regnety002_coverage():
  graph = tps.ChannelGraph(_application("tf_keras", "RegNetY002", 32))
  assert producer_coverage(graph) >= 0.8
  assert max(g.blocks for g in graph.prunable_groups) > 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_inception_resnet_v2_coverage(framework):
  graph = tps.ChannelGraph(_application(framework, "InceptionResNetV2", 75))
  assert producer_coverage(graph) >= 0.8


@pytest.mark.slow
def test_inception_resnet_v2_exact_keras3():
  # tf_keras' InceptionResNetV2 is checked in tests/strip (zoo equivalence).
  model = _application("keras3", "InceptionResNetV2", 75)
  graph = tps.ChannelGraph(model)
  keep = block_keep(graph, seed=7)
  x = np.random.default_rng(0).uniform(0, 255, (2, 75, 75, 3)).astype(
      "float32")
  _, slim = assert_equivalent(model, keep, x, rtol=1e-4, graph=graph)
  assert tps.count_macs(slim) < 0.5 * tps.count_macs(model)
