"""The graph rules of test_graph_rules.py, on Keras 3 models (TF backend).

The same test bodies (group sizes, prunability, reasons, materialize ==
mask_channels) run with `keras` bound to Keras 3 instead of tf_keras, so every
held-out-style graph is checked in both Kerases. Tests of tf_keras-only
features (TFOpLambda, ThresholdedReLU) are skipped here with a reason; Keras
3's own Operation nodes are tested in tests/frameworks.
"""

import re
import pathlib

_SOURCE = pathlib.Path(__file__).with_name("test_graph_rules.py").read_text()
_SOURCE = _SOURCE.replace("from tfprune_survey._compat import keras",
                          "import keras")
exec(compile(_SOURCE, "tests/graph/test_graph_rules.py[keras3]", "exec"))  # pylint: disable=exec-used


# Keras 3 only (after the shared rules above).


class _Unserializable(keras.layers.Layer):
  """Made with a NumPy array and no get_config(): Keras cannot serialize it."""

  def __init__(self, scale, **kwargs):
    super().__init__(**kwargs)
    self.scale = scale

  def call(self, x):
    return x * self.scale


@pytest.mark.parametrize("where", ["op", "nested_layer"])
def test_unserializable_op_or_layer_is_named(where):
  """model.get_config() fails (Keras's NotImplementedError named neither the
  op nor the layer): the error names it and the config it fails in."""
  inp = keras.Input((8,))
  a = keras.layers.Dense(4, name="a")(inp)
  if where == "op":   # the bounds of ops.clip are Clip's __init__ arguments
    x = keras.ops.clip(a, np.array([0.1, 0.2, 0.3, 0.4], "float32"), 1.0)
    # Keras 3 names the op clip_1, clip_2, ... after the first in a process.
    name, cls = r"'clip(_\d+)?' \(Clip\)", "ops.clip"
  else:
    i2 = keras.Input((4,))
    inner = keras.Model(i2, _Unserializable(np.arange(4.0), name="sc")(i2),
                        name="inner")
    x = inner(a)
    name, cls = r"'inner/sc' \(_Unserializable\)", "get_config()"
  model = keras.Model(inp, keras.layers.Dense(3, name="head")(
      keras.layers.Dense(5, name="d")(x)))
  for fn in (tps.ChannelGraph, tps.count_macs):
    with pytest.raises(tps.UnsupportedModelError) as info:
      fn(model)
    assert re.search(name, str(info.value)) and cls in str(info.value)
    assert "get_config" in str(info.value)


# Keras 3 models quantized in place with model.quantize(mode).


def _quantizable(kind):
  """A Dense MLP, or a small CNN with a Dense head after a Flatten.

  Keras 3.15 quantizes Dense layers only (Conv2D has no `quantize`), so in
  the CNN the conv c2's group has a quantized consumer (d1's rows after the
  Flatten) and d1's group a quantized producer and consumer.
  """
  L = keras.layers
  if kind == "mlp":
    inp = keras.Input((8,))
    x = L.Dense(16, activation="relu", name="d1")(inp)
    x = L.Dense(12, activation="relu", name="d2")(x)
  else:
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = L.Conv2D(6, 3, activation="relu", name="c2")(x)
    x = L.Flatten()(x)
    x = L.Dense(10, activation="relu", name="d1")(x)
  model = keras.Model(inp, L.Dense(4, name="head")(x))
  rng = np.random.default_rng(0)
  for layer in model.layers:
    for v in layer.weights:
      v.assign(rng.standard_normal(v.shape).astype("float32") * 0.5)
  return model, rng.standard_normal((6,) + inp.shape[1:]).astype("float32")


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_int8_quantized_dense_is_pruned_with_its_kernel_scale(kind):
  """model.quantize('int8') gives Dense an int8 kernel and a per-output
  kernel_scale (the layer divides output c by kernel_scale[c]); the scale
  is sliced with the output channels (prune used to fail: 'weights of layer
  'd1' do not fit the rebuilt layer'), mask_channels keeps it finite, and
  the slim model computes what the masked one does."""
  model, x = _quantizable(kind)
  model.quantize("int8")
  before = [v.copy() for v in model.get_weights()]
  graph = tps.ChannelGraph(model)
  assert "d1" in {g.id for g in graph.prunable_groups}
  result = tps.prune(model, "l1", ratio=0.4)
  keep = result.keep
  assert len(keep["d1"]) < 10 if kind == "cnn" else len(keep["d1"]) < 16
  slim = result.model
  d1, new = model.get_layer("d1"), slim.get_layer("d1")
  assert new.quantization_mode == "int8"
  assert str(new._kernel.dtype) == "int8"   # pylint: disable=protected-access
  np.testing.assert_array_equal(np.asarray(new.kernel_scale),
                                np.asarray(d1.kernel_scale)[keep["d1"]])
  masked = tps.mask_channels(model, keep)
  np.testing.assert_array_equal(np.asarray(masked.get_layer("d1").kernel_scale),
                                np.asarray(d1.kernel_scale))
  want = np.asarray(masked(x))
  assert np.isfinite(want).all()
  np.testing.assert_allclose(np.asarray(tps.materialize(model, keep)(x)), want,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(slim(x)), want, rtol=1e-5, atol=1e-6)
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_int4_quantized_dense_blocks_its_channels_naming_the_mode(kind):
  """int4 packs two output channels per byte and scales blocks of input
  rows (kernel_zero, g_idx); those are not sliced, so the groups a
  quantized Dense reads or writes are not prunable, with a reason naming
  the layer and the mode and saying to prune before quantizing (prune used
  to drop the packed axis' group with a reason about 8 positions against
  16, and slice the kernel's rows without g_idx)."""
  model, x = _quantizable(kind)
  model.quantize("int4")
  graph = tps.ChannelGraph(model)
  ids = {g.id for g in graph.prunable_groups}
  assert ids == (set() if kind == "mlp" else {"c1"})
  reason = graph.group("d1").reason
  assert "'d1' (Dense) is quantized with mode 'int4'" in reason
  assert "prune the float model before quantizing it" in reason
  if kind == "cnn":
    assert "'d1' (Dense) is quantized with mode 'int4'" in (
        graph.group("c2").reason)
  want = np.asarray(model(x))
  result = tps.prune(model, "l1", ratio=0.4)
  assert set(result.keep) == ids
  np.testing.assert_allclose(np.asarray(result.model(x)),
                             np.asarray(tps.mask_channels(model,
                                                          result.keep)(x)),
                             rtol=1e-5, atol=1e-6)
  if kind == "mlp":
    np.testing.assert_array_equal(np.asarray(result.model(x)), want)
