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
