"""Hand-built graphs, one per rule: expected groups asserted exactly, plus equivalence."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey._compat import keras
from tests.conftest import assert_equivalent
from tests.conftest import random_keep
from tests.conftest import to_numpy

L = keras.layers


def groups_of(model):
  g = tps.ChannelGraph(model)
  return g, {grp.id: grp for grp in g.groups}


def prunable(model):
  g = tps.ChannelGraph(model)
  return {grp.id: (grp.size, grp.producers) for grp in g.prunable_groups}


def x_for(model, n=3, seed=0):
  shape = (n,) + tuple(model.input_shape[1:])
  return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def check_equivalence(model, seed=0):
  graph = tps.ChannelGraph(model)
  keep = random_keep(graph, seed)
  assert keep, "expected at least one prunable group"
  _, slim = assert_equivalent(model, keep, x_for(model), graph=graph)
  assert tps.count_macs(slim) < tps.count_macs(model)
  return slim


def test_chain_couples_producer_and_consumers():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(6, 3, name="a")(inp)
  x = L.BatchNormalization(name="bn")(x)
  x = L.ReLU()(x)
  x = L.Conv2D(5, 3, name="b")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  graph, by_id = groups_of(model)
  assert prunable(model) == {"a": (6, ["a"]), "b": (5, ["b"])}
  assert by_id["a"].consumers == ["b"]
  assert by_id["a"].params == ["bn"]
  assert by_id["b"].consumers == ["head"]
  assert not by_id["head"].prunable and "model output" in by_id["head"].reason
  assert [g.id for g in graph.groups] == ["input_1", "a", "b", "head"] or (
      graph.groups[0].id.startswith("input"))
  check_equivalence(model)


@pytest.mark.parametrize("conv,kernel_rank", [
    (L.Conv1D, 1), (L.Conv2D, 2), (L.Conv3D, 3)])
def test_conv_nd_producers(conv, kernel_rank):
  shape = (6,) * kernel_rank + (2,)
  inp = keras.Input(shape)
  x = conv(4, 3, padding="same", name="p")(inp)
  x = L.ReLU()(x)
  x = conv(3, 3, padding="same", name="q")(x)
  x = L.Flatten()(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"p": (4, ["p"]), "q": (3, ["q"])}
  check_equivalence(model)


@pytest.mark.parametrize("conv,rank", [
    (L.Conv2DTranspose, 2), (L.Conv3DTranspose, 3)])
def test_transposed_convs(conv, rank):
  inp = keras.Input((4,) * rank + (3,))
  x = conv(5, 3, strides=2, padding="same", name="up")(inp)
  x = L.BatchNormalization(name="bn")(x)
  x = L.Activation("sigmoid")(x)
  x = conv(4, 3, padding="same", name="up2")(x)
  x = L.GlobalAveragePooling2D()(x) if rank == 2 else L.GlobalAveragePooling3D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"up": (5, ["up"]), "up2": (4, ["up2"])}
  check_equivalence(model)


def test_dense_on_last_axis_of_sequence():
  inp = keras.Input((7, 4))
  x = L.Dense(6, activation="gelu", name="fc1")(inp)
  x = L.Dense(5, name="fc2")(x)
  x = L.GlobalAveragePooling1D()(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"fc1": (6, ["fc1"]), "fc2": (5, ["fc2"])}
  check_equivalence(model)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_ties_input_and_output(multiplier):
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 1, name="expand")(inp)
  x = L.DepthwiseConv2D(3, depth_multiplier=multiplier, padding="same",
                        name="dw")(x)
  x = L.BatchNormalization(name="dw_bn")(x)
  x = L.ReLU(6.0)(x)
  x = L.Conv2D(5, 1, name="project")(x)
  x = L.GlobalMaxPooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  graph, by_id = groups_of(model)
  assert prunable(model) == {"expand": (4, ["expand"]),
                             "project": (5, ["project"])}
  assert "dw" in by_id["expand"].params
  assert "dw_bn" in by_id["expand"].params
  assert by_id["expand"].consumers == ["dw", "project"]
  keep = {"expand": [1, 3]}
  _, slim = assert_equivalent(model, keep, x_for(model), graph=graph)
  assert slim.get_layer("dw").weights[0].shape[2] == 2  # the depthwise kernel
  assert slim.get_layer("project").kernel.shape[2] == 2 * multiplier


@pytest.mark.parametrize("sep,rank", [(L.SeparableConv1D, 1),
                                      (L.SeparableConv2D, 2)])
def test_separable_convs(sep, rank):
  inp = keras.Input((8,) * rank + (3,))
  x = L.Conv1D(4, 1, name="c")(inp) if rank == 1 else L.Conv2D(4, 1, name="c")(inp)
  x = sep(6, 3, depth_multiplier=2, padding="same", name="sep")(x)
  x = L.ReLU()(x)
  x = sep(5, 3, padding="same", name="sep2")(x)
  x = L.GlobalAveragePooling1D()(x) if rank == 1 else L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"c": (4, ["c"]), "sep": (6, ["sep"]),
                             "sep2": (5, ["sep2"])}
  check_equivalence(model)


@pytest.mark.parametrize("scale,center", [(True, True), (False, True),
                                          (True, False), (False, False)])
def test_batchnorm_with_and_without_scale(scale, center):
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = L.BatchNormalization(scale=scale, center=center, name="bn")(x)
  x = L.Activation("sigmoid")(x)   # sigmoid(0) = 0.5: consumers must be zeroed
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  bn = model.get_layer("bn")
  rng = np.random.default_rng(1)
  bn.set_weights([rng.standard_normal(w.shape).astype("float32") + (
      2.0 if "variance" in w.name else 0.0) for w in bn.weights])
  _, by_id = groups_of(model)
  assert by_id["c"].params == ["bn"]
  check_equivalence(model)


def test_batchnorm_renorm_statistics_are_sliced():
  if keras.__name__ == "keras":
    pytest.skip("batch renormalization is tf_keras only")
  inp = keras.Input((6, 6, 3))
  x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
  x = L.BatchNormalization(renorm=True, name="bn")(x)
  x = L.Conv2D(4, 1, name="c1")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  _, slim = assert_equivalent(model, {"c0": [1, 4, 6]}, x_for(model))
  assert [tuple(w.shape) for w in slim.get_layer("bn").weights] == [(3,)] * 7
  slim(x_for(model), training=True)


def test_prelu_per_channel_alpha_is_sliced():
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  model.get_layer("prelu").set_weights([np.arange(4, dtype="float32").reshape(
      1, 1, 4) * 0.1 + 0.05])
  _, by_id = groups_of(model)
  assert by_id["c"].params == ["prelu"]
  _, slim = assert_equivalent(model, {"c": [0, 3]}, x_for(model))
  np.testing.assert_allclose(slim.get_layer("prelu").get_weights()[0].ravel(),
                             [0.05, 0.35], rtol=1e-6)



def test_prelu_after_flatten_slices_alpha_at_every_position():
  # alpha has one value per (h, w, c) after a Flatten; materialize raised
  # "internal error: weights of layer 'prelu' do not fit" for it.
  inp = keras.Input((2, 2, 3))
  x = L.Conv2D(4, 1, name="c")(inp)
  x = L.Flatten()(x)
  x = L.PReLU(name="prelu")(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  alpha = np.arange(16, dtype="float32") * 0.01 + 0.1
  model.get_layer("prelu").set_weights([alpha])
  _, by_id = groups_of(model)
  assert by_id["c"].prunable and by_id["c"].params == ["prelu"]
  _, slim = assert_equivalent(model, {"c": [1, 3]}, x_for(model))
  # positions (h, w, c) = p * 4 + c for p in 0..3, channels 1 and 3 kept
  np.testing.assert_allclose(slim.get_layer("prelu").get_weights()[0],
                             alpha[[1, 3, 5, 7, 9, 11, 13, 15]], rtol=1e-6)

def test_layer_norm_over_channels_blocks_the_group():
  inp = keras.Input((6, 4))
  x = L.Dense(5, name="fc")(inp)
  x = L.LayerNormalization(name="ln")(x)
  x = L.Dense(3, name="fc2")(x)
  x = L.Flatten()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  assert not by_id["fc"].prunable
  assert "'ln'" in by_id["fc"].reason
  assert by_id["fc2"].prunable
  check_equivalence(model)


@pytest.mark.parametrize("layer", [
    L.ReLU(), L.LeakyReLU(), L.ELU(), L.Softmax(axis=1), L.Dropout(0.3),
    L.SpatialDropout2D(0.2), L.GaussianNoise(0.1), L.MaxPooling2D(2),
    L.AveragePooling2D(2), L.ZeroPadding2D(1), L.Cropping2D(1),
    L.UpSampling2D(), L.Activation("swish"), L.Activation("sigmoid"),
], ids=lambda l: type(l).__name__)
def test_pass_through_layers_keep_the_index(layer):
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, padding="same", name="c")(inp)
  x = layer(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"c": (4, ["c"]), "d": (3, ["d"])}
  check_equivalence(model)


@pytest.mark.parametrize("noise_shape,kept", [
    ((None, 1, 1, 8), 3), ((None, 6, 6, 8), 3), ((None, 1, 1, 1), 1)])
def test_dropout_noise_shape_follows_the_kept_width(noise_shape, kept):
  inp = keras.Input((6, 6, 3))
  x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
  x = L.Dropout(0.3, noise_shape=noise_shape, name="drop")(x)
  x = L.Conv2D(4, 1, name="c1")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  keep = {"c0": [0, 2, 5]}
  _, slim = assert_equivalent(model, keep, x_for(model))
  assert tuple(slim.get_layer("drop").noise_shape)[-1] == kept
  out = slim(x_for(model), training=True)   # the noise fits the slim width
  assert tuple(out.shape) == (3, 2)


def test_softmax_over_channels_blocks():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = L.Softmax(name="sm")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.Flatten()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  assert not by_id["c"].prunable and "'sm'" in by_id["c"].reason


@pytest.mark.parametrize("act", ["softmax", "log_softmax"])
@pytest.mark.parametrize("make", [
    lambda act: L.SeparableConv2D(8, 3, padding="same", activation=act,
                                  name="sm"),
    lambda act: L.DepthwiseConv2D(3, padding="same", activation=act,
                                  name="sm"),
    lambda act: L.Conv2D(8, 3, groups=8, padding="same", activation=act,
                         name="sm"),
], ids=["separable", "depthwise", "grouped_depthwise"])
def test_softmax_activation_of_separable_and_depthwise_blocks(make, act):
  inp = keras.Input((6, 6, 3))
  x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
  x = make(act)(x)
  x = L.Conv2D(4, 1, name="c1")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  graph = tps.ChannelGraph(model)
  blocked = [g for g in graph.groups if "'sm'" in g.reason]
  assert len(blocked) == 1 and f"applies {act}" in blocked[0].reason
  assert blocked[0].size == 8 and not blocked[0].prunable
  check_equivalence(model)   # what is left prunable (c1, maybe c0) is exact


def channel_mixer(x):
  """A user's activation that mixes channels (x minus its channel mean)."""
  return x - keras.ops.mean(x, axis=-1, keepdims=True) if hasattr(
      keras, "ops") else x - keras.backend.mean(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("where", ["conv", "dense", "layer"])
def test_unknown_activation_blocks_and_elementwise_ones_do_not(where):
  def build(act):
    inp = keras.Input((6, 6, 3))
    if where == "conv":
      x = L.Conv2D(8, 3, padding="same", activation=act, name="c0")(inp)
    elif where == "dense":
      x = L.Dense(8, activation=act, name="c0")(inp)
    else:
      x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
      x = L.Activation(act, name="act")(x)
    x = L.Conv2D(4, 1, name="c1")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(2, name="head")(x))
  c0 = tps.ChannelGraph(build(channel_mixer)).group("c0")
  assert not c0.prunable and "channel_mixer" in c0.reason
  for act in ("gelu", "swish", "hard_sigmoid", None):
    model = build(act)
    assert prunable(model) == {"c0": (8, ["c0"]), "c1": (4, ["c1"])}
  check_equivalence(model)
  # A user's function named like a built-in is still a user's function
  # (both Kerases serialize it as the string 'relu').
  def relu(x):
    return channel_mixer(x)
  c0 = tps.ChannelGraph(build(relu)).group("c0")
  assert not c0.prunable and "relu" in c0.reason
  if keras.backend.backend() == "tensorflow":
    # TensorFlow's element-wise functions (Keras 3 serializes them like a
    # user's function) stay prunable; its softmax does not.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    for act in (tf.nn.silu, tf.math.abs, tf.nn.relu6):
      assert prunable(build(act)) == {"c0": (8, ["c0"]), "c1": (4, ["c1"])}
    c0 = tps.ChannelGraph(build(tf.nn.softmax)).group("c0")
    assert not c0.prunable and "softmax" in c0.reason


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average,
                                   L.Maximum, L.Minimum])
def test_elementwise_merges_join_groups(merge):
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  b = L.Conv2D(4, 1, name="b")(inp)
  b = L.BatchNormalization(name="bn_b")(b)
  x = merge(name="m")([a, b])
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  # tf_keras lists 'b' first (it is deeper: b -> bn_b -> m), so 'b' names
  # the group; the id is the first producer in that topological order.
  assert prunable(model) == {"b": (4, ["b", "a"]), "d": (3, ["d"])}
  check_equivalence(model)


def test_squeeze_excite_broadcast_multiply_joins():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(8, 3, padding="same", name="c")(inp)
  s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
  s = L.Conv2D(2, 1, activation="relu", name="se_reduce")(s)
  s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
  x = L.Multiply(name="excite")([x, s])
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"c": (8, ["c", "se_expand"]),
                             "se_reduce": (2, ["se_reduce"]), "d": (3, ["d"])}
  check_equivalence(model)


def test_reshape_keeping_last_axis_follows_channels():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(8, 3, padding="same", name="c")(inp)
  s = L.GlobalAveragePooling2D(name="squeeze")(x)
  s = L.Reshape((1, 1, 8), name="rs")(s)
  s = L.Conv2D(8, 1, activation="sigmoid", name="se")(s)
  x = L.Multiply()([x, s])
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"c": (8, ["c", "se"])}
  slim = check_equivalence(model)
  assert slim.get_layer("rs").target_shape == (1, 1, 4)



@pytest.mark.parametrize("target,kept", [((1, 1, -1), (1, 1, -1)),
                                         ((-1,), (-1,))])
def test_reshape_to_minus_one_keeping_last_axis_follows_channels(target,
                                                                  kept):
  # Reshape((1, 1, -1)) of (N, C), and (-1,) of (N, 1, 1, C), keep the last
  # axis as (1, 1, C) does; they blocked the squeeze-excite channels.
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(8, 3, padding="same", name="c")(inp)
  s = L.GlobalAveragePooling2D(name="squeeze", keepdims=target == (-1,))(x)
  s = L.Reshape(target, name="rs")(s)
  s = L.Dense(2, activation="relu", name="s1")(s)
  s = L.Dense(8, activation="sigmoid", name="s2")(s)
  if target == (-1,):
    s = L.Reshape((1, 1, 8))(s)
  x = L.Multiply()([x, s])
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  assert prunable(model) == {"c": (8, ["c", "s2"]), "s1": (2, ["s1"])}
  slim = check_equivalence(model)
  assert tuple(slim.get_layer("rs").target_shape) == kept
  assert slim.get_layer("c").filters == 4

def test_concatenate_maps_offsets():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  b = L.Conv2D(6, 1, name="b")(inp)
  x = L.Concatenate(name="cat")([a, b])
  x = L.BatchNormalization(name="bn")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  assert prunable(model) == {"a": (4, ["a"]), "b": (6, ["b"]), "d": (3, ["d"])}
  assert ("d", "kernel", 2, 4) in by_id["b"].slices
  assert ("bn", "gamma", 0, 4) in by_id["b"].slices
  masked, slim = assert_equivalent(model, {"a": [3], "b": [0, 5]},
                                   x_for(model))
  assert slim.get_layer("d").kernel.shape[2] == 3
  del masked


def test_flatten_then_dense_maps_all_positions():
  inp = keras.Input((4, 4, 2))
  x = L.Conv2D(5, 3, padding="same", name="c")(inp)
  x = L.Flatten(name="flat")(x)
  x = L.Dense(3, name="fc")(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"c": (5, ["c"]), "fc": (3, ["fc"])}
  _, slim = assert_equivalent(model, {"c": [0, 2, 4]}, x_for(model))
  assert slim.get_layer("fc").kernel.shape[0] == 4 * 4 * 3


def test_depthwise_written_as_grouped_conv_ties_channels():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(6, 1, name="a")(inp)
  x = L.Conv2D(6, 3, groups=6, padding="same", name="dw")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  graph, by_id = groups_of(model)
  assert prunable(model) == {"a": (6, ["a"]), "d": (3, ["d"])}
  assert "dw" in by_id["a"].params
  _, slim = assert_equivalent(model, {"a": [0, 2, 5]}, x_for(model),
                              graph=graph)
  assert slim.get_layer("dw").groups == 3
  assert slim.get_layer("dw").filters == 3


def test_grouped_conv_loses_as_many_channels_in_every_group():
  inp = keras.Input((8, 8, 4))
  x = L.Conv2D(8, 1, name="a")(inp)
  x = L.Conv2D(8, 3, groups=2, name="g")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  for gid in ("a", "g"):
    assert by_id[gid].prunable and by_id[gid].blocks == 2
  assert by_id["d"].prunable and by_id["d"].blocks == 1
  keep = {"a": [0, 2, 5, 7], "g": [1, 2, 4, 7], "d": [0, 2]}
  _, slim = assert_equivalent(model, keep, x_for(model))
  assert slim.get_layer("g").groups == 2
  assert tps.count_macs(slim) < tps.count_macs(model)


@pytest.mark.parametrize("make", [
    lambda: L.Lambda(lambda t: t * 2.0, name="odd"),
    lambda: L.Permute((2, 1, 3), name="odd"),
    lambda: L.Reshape((8, 32, 1), name="odd"),
], ids=["Lambda", "Permute", "Reshape"])
def test_unmodelled_layers_block_with_reason(make):
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, padding="same", name="c")(inp)
  x = make()(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  assert not by_id["c"].prunable and "'odd'" in by_id["c"].reason
  assert by_id["d"].prunable
  check_equivalence(model)


class Doubler(L.Layer):
  """A custom layer the graph knows nothing about."""

  def call(self, x):
    return 2.0 * x


def test_reshape_keeping_last_axis_is_followed():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, padding="same", name="c")(inp)
  x = L.Reshape((4, 16, 4), name="rs")(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  assert prunable(model) == {"c": (4, ["c"]), "d": (3, ["d"])}
  check_equivalence(model)


def test_custom_layer_blocks_and_register_handler_opens_it():
  def build():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="c")(inp)
    x = Doubler(name="dbl")(x)
    x = L.Conv2D(3, 1, name="d")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(2)(x))
  model = build()
  _, by_id = groups_of(model)
  assert not by_id["c"].prunable and "'dbl'" in by_id["c"].reason
  tps.register_handler(Doubler, tps.graph.handlers.PassThrough())
  try:
    assert prunable(model)["c"] == (4, ["c"])
    check_equivalence(model)
  finally:
    from tfprune_survey.graph.handlers import registry
    registry._HANDLERS.pop(Doubler)  # pylint: disable=protected-access


def test_model_output_groups_are_not_prunable():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, name="c")(inp)
  out = L.Conv2D(5, 1, name="final")(x)
  model = keras.Model(inp, out)
  _, by_id = groups_of(model)
  assert by_id["c"].prunable
  assert not by_id["final"].prunable
  assert "'final'" in by_id["final"].reason



@pytest.mark.parametrize("make", [
    lambda: L.Reshape((1, 4), name="shared"),
    lambda: L.Dropout(0.5, noise_shape=(None, 4), name="shared")])
def test_weightless_layer_with_a_width_shared_by_two_groups(make):
  # One config entry (Reshape's target_shape[-1], Dropout's noise_shape[-1])
  # serves both calls, so the two groups are pruned alike; they were pruned
  # apart and the slim model failed in Reshape (or in Dropout in training).
  inp = keras.Input((6,))
  shared = make()
  a = L.Dense(4, name="a")(inp)
  b = L.Dense(4, name="b")(inp)
  xa = L.Dense(3, name="da")(shared(a))
  xb = L.Dense(3, name="db")(shared(b))
  if len(xa.shape) > 2:
    xa, xb = L.Flatten()(xa), L.Flatten()(xb)
  model = keras.Model(inp, L.Dense(2)(L.Concatenate()([xa, xb])))
  _, by_id = groups_of(model)
  assert "b" not in by_id and by_id["a"].producers == ["a", "b"]
  _, slim = assert_equivalent(model, {"a": [1, 2]}, x_for(model))
  assert slim.get_layer("a").units == slim.get_layer("b").units == 2
  out = slim(x_for(model), training=True)
  assert tuple(out.shape) == (3, 2)


def test_shared_reshape_on_a_concatenation_and_a_conv_splits_it():
  inp = keras.Input((6,))
  a = L.Dense(2, name="a")(inp)
  b = L.Dense(3, name="b")(inp)
  c = L.Dense(5, name="c")(inp)
  r = L.Reshape((1, 5), name="r")
  xa = L.Flatten()(L.Dense(3, name="da")(r(L.Concatenate()([a, b]))))
  xb = L.Flatten()(L.Dense(3, name="db")(r(c)))
  model = keras.Model(inp, L.Dense(2)(L.Concatenate()([xa, xb])))
  _, by_id = groups_of(model)
  assert by_id["a"].producers == ["a", "c"] and by_id["b"].producers == [
      "b", "c"]
  _, slim = assert_equivalent(model, {"a": [1], "b": [0, 2]}, x_for(model))
  assert slim.get_layer("c").units == 3

def test_nested_submodel_called_twice():
  sub_in = keras.Input((8, 8, 4))
  y = L.Conv2D(6, 3, padding="same", name="inner_a")(sub_in)
  y = L.ReLU()(y)
  y = L.Conv2D(4, 1, name="inner_b")(y)
  sub = keras.Model(sub_in, y, name="block")
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 1, name="stem")(inp)
  x = L.Add(name="add1")([x, sub(x)])
  x = L.Add(name="add2")([x, sub(x)])
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"stem": (4, ["stem", "block/inner_b"]),
                             "block/inner_a": (6, ["block/inner_a"])}
  slim = check_equivalence(model)
  assert tps.count_macs(model) == (8 * 8 * (3 * 4) + 2 * 8 * 8 * (
      9 * 4 * 6 + 6 * 4) + 4 * 2)
  assert slim.get_layer("block").get_layer("inner_a").filters == 3


def test_layers_also_called_in_another_model_use_this_models_calls():
  c0 = L.Conv2D(6, 3, padding="same", name="c0")
  c1 = L.Conv2D(4, 3, padding="same", name="c1")
  ia = keras.Input((16, 16, 3))
  keras.Model(ia, c1(c0(ia)))                 # first use, at 16x16
  ib = keras.Input((8, 8, 3))
  model = keras.Model(ib, L.Dense(2, name="out")(L.Flatten()(c1(c0(ib)))))
  assert tps.count_macs(model) == (8 * 8 * 6 * 27 + 8 * 8 * 4 * 54 +
                                   8 * 8 * 4 * 2)
  assert prunable(model) == {"c0": (6, ["c0"]), "c1": (4, ["c1"])}
  check_equivalence(model)
  scores = tps.score(model, "apoz", data=x_for(model, n=4))
  assert sorted(scores) == ["c0", "c1"] and scores["c1"].shape == (4,)


def test_layer_shared_by_a_nested_model_and_its_parent_is_refused():
  # Keras rebuilds such a model with two unshared copies of the layer, so
  # its channels are blocked and the surgery raises naming it.
  shared = L.Conv2D(6, 3, padding="same", name="sharedc")
  ii = keras.Input((8, 8, 6))
  inner = keras.Model(ii, L.ReLU()(shared(ii)), name="inner")
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(6, 3, padding="same", name="c0")(inp)
  x = L.Conv2D(4, 1, name="c2")(shared(inner(x)))
  model = keras.Model(inp, L.Dense(2, name="out")(
      L.GlobalAveragePooling2D()(x)))
  graph = tps.ChannelGraph(model)
  assert graph.shared_across_models == [("inner/sharedc", "sharedc")]
  assert prunable(model) == {"c2": (4, ["c2"])}
  assert "'sharedc' is shared by 'inner/sharedc' and 'sharedc'" in (
      graph.group("c0").reason)
  for fn in (tps.mask_channels, tps.materialize):
    with pytest.raises(ValueError, match="layer 'sharedc' is called both"):
      fn(model, {"c2": [0, 1]})


def test_weightless_layer_shared_by_a_nested_model_and_its_parent():
  # Two rebuilt copies of a ReLU compute the same: nothing is blocked.
  act = L.ReLU(name="shared_relu")
  ii = keras.Input((8, 8, 6))
  inner = keras.Model(ii, L.Conv2D(5, 1, name="ic")(act(ii)), name="inner")
  inp = keras.Input((8, 8, 3))
  x = act(L.Conv2D(6, 3, padding="same", name="c0")(inp))
  x = L.Conv2D(4, 1, name="c2")(inner(x))
  model = keras.Model(inp, L.Dense(2, name="out")(
      L.GlobalAveragePooling2D()(x)))
  graph = tps.ChannelGraph(model)
  assert graph.shared_across_models == []
  assert prunable(model) == {"c0": (6, ["c0"]), "inner/ic": (5, ["inner/ic"]),
                             "c2": (4, ["c2"])}
  check_equivalence(model)


def test_nested_sequential():
  seq = keras.Sequential([keras.Input((8, 8, 3)),
                          L.Conv2D(5, 3, padding="same", name="s1"),
                          L.BatchNormalization(name="sbn"),
                          L.ReLU()], name="stem")
  inp = keras.Input((8, 8, 3))
  x = seq(inp)
  x = L.Conv2D(4, 1, name="c")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"stem/s1": (5, ["stem/s1"]), "c": (4, ["c"])}
  check_equivalence(model)


def test_model_outputs_taken_from_nested_functional_models():
  # Keras 3 numbers a nested Functional's calls from 1 in `output_layers`
  # and from 0 in inbound nodes; two levels of nesting, head called twice.
  i3 = keras.Input((6, 6, 5))
  m3 = keras.Model(i3, L.Conv2D(4, 1, name="l3")(i3), name="m3")
  i2 = keras.Input((6, 6, 6))
  m2 = keras.Model(i2, m3(L.Conv2D(5, 1, name="l2")(i2)), name="m2")
  ih = keras.Input((6, 6, 4))
  head = keras.Model(ih, L.Dense(2, name="out")(
      L.GlobalAveragePooling2D()(ih)), name="head")
  inp = keras.Input((6, 6, 3))
  y = m2(L.Conv2D(6, 3, padding="same", name="c0")(inp))
  z = L.Conv2D(4, 1, name="c1")(y)
  model = keras.Model(inp, [head(y), head(z)])
  # head's Dense reads l3 and c1 through one kernel: one group
  assert prunable(model) == {"c0": (6, ["c0"]), "m2/l2": (5, ["m2/l2"]),
                             "m2/m3/l3": (4, ["m2/m3/l3", "c1"])}
  check_equivalence(model)


def test_dict_inputs_and_outputs_and_a_nested_model_on_a_dict():
  ja, jb = keras.Input((6, 6, 3), name="ja"), keras.Input((6, 6, 2), name="jb")
  sub = keras.Model({"jb": jb, "ja": ja}, L.Conv2D(5, 1, name="s")(
      L.Concatenate()([ja, jb])), name="sub")
  ia, ib = keras.Input((6, 6, 3), name="ia"), keras.Input((6, 6, 2), name="ib")
  a = L.Conv2D(6, 3, padding="same", name="a")(ia)
  b = L.Conv2D(2, 3, padding="same", name="b")(ib)
  y = sub({"ja": L.Conv2D(3, 1, name="a2")(a), "jb": b})
  y = L.Conv2D(4, 1, name="c")(y)
  o1 = L.Dense(2, name="o1")(L.GlobalAveragePooling2D()(y))
  o2 = L.Dense(3, name="o2")(L.GlobalAveragePooling2D()(a))
  model = keras.Model({"ib": ib, "ia": ia}, {"z": o2, "y": o1})
  graph = tps.ChannelGraph(model)
  assert {g.id: g.size for g in graph.prunable_groups} == {
      "a": 6, "a2": 3, "b": 2, "sub/s": 5, "c": 4}
  # sub's kernel reads a2 at offset 0 and b at offset 3 (sorted dict keys)
  assert sorted(sl[3] for sl in graph.group("b").slices
                if sl[0] == "sub/s") == [3]
  rng = np.random.default_rng(0)
  x = {"ia": rng.standard_normal((2, 6, 6, 3)).astype("float32"),
       "ib": rng.standard_normal((2, 6, 6, 2)).astype("float32")}
  keep = random_keep(graph)
  masked = tps.mask_channels(model, keep, graph=graph)(x, training=False)
  slim_model = tps.materialize(model, keep, graph=graph)
  slim = slim_model(x, training=False)
  assert sorted(slim) == ["y", "z"]
  for k in ("y", "z"):
    np.testing.assert_allclose(to_numpy(slim[k]), to_numpy(masked[k]),
                               rtol=1e-5, atol=1e-6)
  assert tps.count_macs(slim_model) < tps.count_macs(model)


def test_sequential_model():
  model = keras.Sequential([
      keras.Input((10, 10, 1)), L.Conv2D(6, 3, name="c1"), L.ReLU(),
      L.MaxPooling2D(2), L.Conv2D(8, 3, name="c2"), L.Flatten(),
      L.Dense(16, activation="relu", name="fc"), L.Dense(3, name="out")])
  assert prunable(model) == {"c1": (6, ["c1"]), "c2": (8, ["c2"]),
                             "fc": (16, ["fc"])}
  check_equivalence(model)


def test_tf_op_layers_elementwise_and_residual():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  h = a * 0.5 + 3.0              # TFOpLambda with scalars: pass-through
  b = L.Conv2D(4, 1, name="b")(h)
  x = a + b                      # TFOpLambda with two tensors: merge
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(2)(x)
  model = keras.Model(inp, out)
  assert prunable(model) == {"a": (4, ["a", "b"]), "d": (3, ["d"])}
  check_equivalence(model)


def test_elementwise_op_with_a_constant_first_operand_is_followed():
  # tf_keras writes `2.0 - x` as tf.math.subtract with a `_CONSTANT_VALUE`
  # first input; Keras 3 as an op with the constant inline.
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(8, 3, padding="same", name="a")(inp)
  h = 2.0 - L.ReLU()(a)
  h = 0.5 * h
  x = L.Conv2D(4, 1, name="b")(h)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  assert prunable(model) == {"a": (8, ["a"]), "b": (4, ["b"])}
  check_equivalence(model)


def test_elementwise_op_with_a_rank0_tensor_operand():
  # x / max|x|: the rank-0 divisor is broadcast (not coupled); the
  # reduction over all channels blocks the channels it reads.
  if keras.__name__ == "keras":
    from keras import ops  # pylint: disable=g-import-not-at-top
    reduce_max = ops.max
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    reduce_max = tf.reduce_max
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(8, 3, padding="same", name="a")(inp)
  x = a / (reduce_max(a) + 1e-6)
  x = L.Conv2D(4, 1, name="b")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2, name="head")(x))
  _, by_id = groups_of(model)
  assert not by_id["a"].prunable and "max" in by_id["a"].reason
  assert prunable(model) == {"b": (4, ["b"])}
  check_equivalence(model)


@pytest.mark.parametrize("op,blocked", [
    (lambda a, b: a / b, True), (lambda a, b: 2.0 / (a + b), True),
    (lambda a, b: (a + b) / 2.0, False)], ids=["a/b", "2/x", "x/2"])
def test_division_by_pruned_channels_blocks(op, blocked):
  # mask_channels zeroes a dropped channel: dividing by it gives inf, and
  # the zeroed consumer slice 0 * inf = NaN where materialize is finite.
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(8, 3, padding="same", name="a")(inp)
  b = L.Conv2D(8, 3, padding="same", name="b")(inp)
  x = L.Activation("tanh")(op(a, b))
  x = L.Conv2D(4, 1, name="c1")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  group = tps.ChannelGraph(model).group("a")
  assert group.prunable != blocked
  if blocked:
    assert "not finite where a pruned channel is zero" in group.reason
  masked, _ = assert_equivalent(model, random_keep(tps.ChannelGraph(model)),
                                x_for(model))
  assert np.isfinite(to_numpy(masked(x_for(model)))).all()


def test_division_by_a_broadcast_tensor_keeps_the_dividend_prunable():
  # Only the divisor's channels can make a division infinite: a zeroed
  # dividend channel gives 0 / s = 0. Here the divisor is a one-channel
  # map of another branch, so the dividend 'a' stays prunable.
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(6, 3, padding="same", name="a")(inp)
  s = L.Conv2D(1, 1, activation="sigmoid", name="s")(inp)
  x = a / (s + 1.0)
  x = L.Conv2D(4, 1, name="c1")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  graph = tps.ChannelGraph(model)
  assert graph.group("a").prunable
  assert not graph.group("s").prunable
  assert "not finite where a pruned channel is zero" in graph.group(
      "s").reason
  masked, _ = assert_equivalent(model, {"a": [0, 2, 4], "c1": [1, 3]},
                                x_for(model))
  assert np.isfinite(to_numpy(masked(x_for(model)))).all()


def test_group_ids_are_stable_and_unique():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = L.Conv2D(4, 3, name="d")(x)
  x = L.Flatten()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  ids1 = [g.id for g in tps.ChannelGraph(model).groups]
  ids2 = [g.id for g in tps.ChannelGraph(model).groups]
  assert ids1 == ids2
  assert len(set(ids1)) == len(ids1)


def test_channels_first_layers_block_with_reason():
  inp = keras.Input((3, 8, 8))
  x = L.Conv2D(4, 3, data_format="channels_first", name="cf")(inp)
  x = L.Conv2D(5, 1, data_format="channels_first", name="cf2")(x)
  x = L.Flatten()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  _, by_id = groups_of(model)
  assert not by_id["cf"].prunable
  assert "channels_first" in by_id["cf"].reason
