"""Keras 3 graphs that tf_keras cannot express: Operation nodes and names.

`keras.ops` calls and Python operators become Operation nodes; op classes
share names with layer classes (ops.numpy.Add vs layers.Add) and auto-named
ops can share a name with a user's layer in another (nested) model. Each
graph is checked for its groups and for materialize == mask_channels.
"""

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import tfprune_survey as tps
from tests.conftest import assert_equivalent
from tests.conftest import random_keep
from tests.conftest import to_numpy


def x_for(model, n=3, seed=0):
  shape = (n,) + tuple(model.inputs[0].shape[1:])
  return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def prunable(model):
  return {g.id: (g.size, g.producers)
          for g in tps.ChannelGraph(model).prunable_groups}


def check(model, seed=0):
  graph = tps.ChannelGraph(model)
  keep = random_keep(graph, seed)
  assert keep
  masked, slim = assert_equivalent(model, keep, x_for(model), graph=graph)
  x = x_for(model)
  assert not np.allclose(to_numpy(masked(x)), to_numpy(model(x)))
  assert tps.count_macs(slim) < tps.count_macs(model)
  assert type(slim).__module__.startswith("keras.")
  return slim


def test_python_operators_and_keras_ops_follow_channels():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  h = ops.relu(a * 0.5 + 3.0)          # ops with scalars: pass-through
  b = L.Conv2D(4, 1, name="b")(h)
  x = ops.add(a, b)                    # an op with two tensors: merge
  x = ops.clip(x, 0.0, 6.0)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  assert prunable(model) == {"a": (4, ["a", "b"]), "d": (3, ["d"])}
  check(model)


def test_op_and_layer_of_the_same_class_name_are_not_confused():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  b = L.Conv2D(4, 3, padding="same", name="b")(inp)
  c = L.Conv2D(4, 3, padding="same", name="c")(inp)
  x = L.Add(name="add_layer")([a, b])   # layers.Add
  y = x + c                              # ops.numpy.Add
  z = L.Multiply()([y, ops.sigmoid(y)])  # layers.Multiply, ops.nn.Sigmoid
  z = L.Conv2D(3, 1, name="d")(z)
  z = L.GlobalAveragePooling2D()(z)
  model = keras.Model(inp, L.Dense(2)(z))
  kinds = {type(op).__module__.split(".")[2] for op in model.operations}
  assert {"layers", "ops"} <= kinds
  assert prunable(model) == {"a": (4, ["a", "b", "c"]), "d": (3, ["d"])}
  check(model)


def test_ops_concatenate_maps_offsets():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(2, 3, padding="same", name="a")(inp)
  b = L.Conv2D(3, 3, padding="same", name="b")(inp)
  x = ops.concatenate([a, b], axis=-1)
  x = L.Conv2D(4, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  assert prunable(model) == {"a": (2, ["a"]), "b": (3, ["b"]),
                             "d": (4, ["d"])}
  graph = tps.ChannelGraph(model)
  d_slices = sorted(s for s in graph.group("b").slices if s[0] == "d")
  assert d_slices == [("d", "kernel", 2, 2)]   # b starts at offset 2 in d
  check(model)


def test_an_unmodelled_op_blocks_with_a_reason_naming_it():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  x = ops.flip(a, axis=-1)   # reverses the channels: not modelled
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  group = tps.ChannelGraph(model).group("a")
  assert not group.prunable
  assert "flip" in group.reason.lower()
  check(model)


def test_a_per_channel_constant_blocks_the_group():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  x = a * np.arange(1.0, 5.0, dtype="float32")   # a constant per channel
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  group = tps.ChannelGraph(model).group("a")
  assert not group.prunable
  check(model)


@keras.saving.register_keras_serializable(package="tps_tests")
def registered_channel_softmax(x):
  return ops.softmax(x, axis=-1)


@pytest.mark.parametrize("act", ["sparsemax", "softmax",
                                 registered_channel_softmax])
@pytest.mark.parametrize("where", ["conv", "layer"])
def test_keras3_channel_mixing_activations_block(act, where):
  inp = keras.Input((6, 6, 3))
  if where == "conv":
    x = L.Conv2D(8, 3, padding="same", activation=act, name="c0")(inp)
  else:
    x = L.Activation(act)(L.Conv2D(8, 3, padding="same", name="c0")(inp))
  x = L.Conv2D(4, 1, name="c1")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  c0 = tps.ChannelGraph(model).group("c0")
  name = act if isinstance(act, str) else act.__name__
  assert not c0.prunable and name in c0.reason
  check(model)   # c1 is still pruned exactly


@pytest.mark.parametrize("op,blocked", [
    (lambda x: ops.log(x * x), True), (ops.reciprocal, True),
    (lambda x: x ** -1.0, True), (lambda x: x ** 2, False),
    (lambda x: 2.0 ** x, False), (lambda x: x / 3.0, False)],
    ids=["log", "reciprocal", "pow-1", "pow2", "2pow", "div3"])
def test_ops_infinite_at_zero_block_the_group(op, blocked):
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(8, 3, padding="same", name="a")(inp)
  x = L.Activation("tanh")(op(a))
  x = L.Conv2D(4, 1, name="c1")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  group = tps.ChannelGraph(model).group("a")
  assert group.prunable != blocked
  check(model)   # c1 (and a, when prunable) materialize == mask, finite


def test_lora_factors_are_sliced_with_the_kernel():
  rng = np.random.default_rng(0)
  inp = keras.Input((6, 6, 3))
  x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
  x = L.Conv2D(6, 1, name="c1")(x)
  x = L.Dense(5, name="d0")(L.GlobalAveragePooling2D()(x))
  model = keras.Model(inp, L.Dense(2, name="out")(x))
  for name in ("c0", "c1", "d0", "out"):
    layer = model.get_layer(name)
    layer.enable_lora(2)
    layer.lora_kernel_b.assign(rng.standard_normal(
        layer.lora_kernel_b.shape).astype("float32"))
  assert prunable(model) == {"c0": (8, ["c0"]), "c1": (6, ["c1"]),
                             "d0": (5, ["d0"])}
  slim = check(model)
  assert tuple(slim.get_layer("c1").lora_kernel_a.shape) == (1, 1, 4, 2)
  assert tuple(slim.get_layer("d0").lora_kernel_b.shape) == (2, 2)


def test_lora_on_a_grouped_conv_blocks_its_channels():
  inp = keras.Input((6, 6, 4))
  x = L.Conv2D(8, 3, padding="same", name="c0")(inp)
  x = L.Conv2D(4, 1, groups=2, name="g")(x)
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  model.get_layer("g").enable_lora(2)
  graph = tps.ChannelGraph(model)
  assert not graph.group("c0").prunable
  assert "'g' (Conv2D) has LoRA weights (groups=2)" in graph.group("c0").reason


def test_a_layer_called_twice_shares_its_channels():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, padding="same", name="a")(inp)
  shared = L.Conv2D(4, 1, name="shared")
  x = shared(a)
  x = shared(ops.relu(x))
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  groups = prunable(model)
  assert groups["a"] == (4, ["a", "shared"])
  assert tps.count_macs(model) == (2 * 8 * 8 * 4 * 4 + 8 * 8 * 27 * 4 +
                                   8 * 8 * 4 * 3 + 3 * 2)
  check(model)


def _next_auto_name(prefix):
  """The name Keras 3 will give the next op auto-named `prefix`."""
  probe = ops.add(keras.Input((1,)), 1.0)
  name = probe._keras_history[0].name  # pylint: disable=protected-access
  base, _, n = name.rpartition("_")
  return f"{prefix}_{int(n) + 1}" if base == prefix else f"{prefix}_1"


def test_nested_models_called_twice_and_a_user_layer_named_like_an_op():
  op_name = _next_auto_name("add")
  sub_in = keras.Input((8, 8, 6))
  y = L.Conv2D(5, 1, name=op_name)(sub_in)      # a user layer named "add_N"
  sub = keras.Model(sub_in, L.ReLU()(y), name="sub")
  seq = keras.Sequential([keras.Input((8, 8, 5)), L.Conv2D(4, 1, name="s1"),
                          L.BatchNormalization(name="s1_bn")], name="seq")
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(6, 3, padding="same", name="a")(inp)
  o = sub(a) + sub(ops.relu(a))                   # the op auto-named "add_N"
  o = seq(o)
  o = L.GlobalAveragePooling2D()(o)
  model = keras.Model(inp, L.Dense(2)(o))
  names = [op.name for op in model.operations]
  assert op_name in names and op_name in [l.name for l in sub.layers]
  assert prunable(model) == {"a": (6, ["a"]),
                             f"sub/{op_name}": (5, [f"sub/{op_name}"]),
                             "seq/s1": (4, ["seq/s1"])}
  check(model)


def test_sequential_keras3():
  model = keras.Sequential([
      keras.Input((10, 10, 1)), L.Conv2D(6, 3, name="c1"), L.ReLU(),
      L.MaxPooling2D(2), L.DepthwiseConv2D(3, name="dw"),
      L.Conv2D(8, 1, name="c2"), L.Flatten(),
      L.Dense(16, activation="relu", name="fc"), L.Dense(3, name="out")])
  assert prunable(model) == {"c1": (6, ["c1"]), "c2": (8, ["c2"]),
                             "fc": (16, ["fc"])}
  slim = check(model)
  assert isinstance(slim, keras.Sequential)


def test_a_weight_the_handler_expects_is_never_silently_skipped():

  class Odd(L.Layer):
    """A conv-like layer whose kernel has another name."""

    def build(self, shape):
      self.w = self.add_weight(name="w", shape=(1, 1, shape[-1], 4))

    def call(self, x):
      return ops.conv(x, self.w, padding="same")

  inp = keras.Input((8, 8, 3))
  x = Odd(name="odd")(L.Conv2D(3, 1, name="c")(inp))
  model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
  handler = tps.graph.handlers.Producer(-2, -1, "filters")

  class OddHandler(tps.LayerHandler):
    def propagate(self, call, b):
      call.config.setdefault("filters", 4)
      return handler.propagate(call, b)

  tps.register_handler(Odd, OddHandler())
  try:
    with pytest.raises(ValueError, match="'odd'.*'kernel'"):
      tps.ChannelGraph(model)
  finally:
    from tfprune_survey.graph.handlers import registry  # pylint: disable=g-import-not-at-top
    registry._HANDLERS.pop(Odd)  # pylint: disable=protected-access


def test_keras3_subclassed_model_is_refused_naming_its_class():

  class Net(keras.Model):

    def __init__(self):
      super().__init__()
      self.c = L.Conv2D(4, 3)

    def call(self, x):
      return self.c(x)

  m = Net()
  m(np.zeros((1, 8, 8, 3), "float32"))
  for fn in (tps.ChannelGraph, tps.count_macs,
             lambda m: tps.materialize(m, {})):
    with pytest.raises(tps.UnsupportedModelError, match="Net"):
      fn(m)


def test_a_keras3_model_prunes_and_stays_keras3():
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.residual_cnn(input_shape=(12, 12, 1), width=8,
                           framework="keras3")
  before = [w.copy() for w in model.get_weights()]
  result = tps.prune(model, "l1", target_macs=0.5)
  assert type(result.model).__module__.startswith("keras.")
  assert 0.45 <= result.report.macs_reduction <= 0.55
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)   # the model passed in is unchanged


def test_profile_lists_op_nodes_and_sums_to_count_params():
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(4, 3, name="a")(inp)
  x = L.GlobalAveragePooling2D()(a * 2.0 + 1.0)
  model = keras.Model(inp, L.Dense(2, name="fc")(x))
  rows = tps.profile(model)
  assert [r.type for r in rows][:3] == ["Conv2D", "Multiply", "Add"]
  assert rows.total_params == model.count_params() == 4 * 27 + 4 + 10
  assert rows.total_macs == tps.count_macs(model) == 6 * 6 * 27 * 4 + 8
