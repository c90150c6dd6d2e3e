"""Validation of `keep`, bad models, and 'never mutate the input'."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey._compat import keras

L = keras.layers


def small_model():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = L.BatchNormalization(name="bn")(x)
  x = L.ReLU()(x)
  x = L.Conv2D(5, 3, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  return keras.Model(inp, L.Dense(2, name="head")(x))


@pytest.fixture(scope="module")
def model():
  return small_model()


@pytest.mark.parametrize("fn", [tps.mask_channels, tps.materialize])
@pytest.mark.parametrize("keep,exc,words", [
    ({"nope": [0]}, ValueError, ["'nope'"]),
    ({"c": [0, 4]}, ValueError, ["'c'", "out of range"]),
    ({"c": [-1]}, ValueError, ["'c'", "out of range"]),
    ({"c": [1, 1]}, ValueError, ["'c'", "repeats"]),
    ({"c": []}, ValueError, ["'c'", "empty"]),
    ({"head": [0]}, ValueError, ["'head'", "not prunable", "model output"]),
    ({"c": [0.5]}, TypeError, ["'c'", "integer"]),
    ({"c": "01"}, TypeError, ["'c'"]),
    ({"c": np.array([True, False, True, True])}, TypeError,
     ["'c'", "boolean mask", "np.flatnonzero"]),
    ({"c": [True, True, False, False]}, TypeError, ["'c'", "boolean mask"]),
    ([("c", [0])], TypeError, ["dict"]),
    # a fixed group's entry is checked like any other (it was read with
    # int() and len(): [0, 1.5] passed as "every channel", 2 and "01"
    # raised errors that did not name the group)
    ({"head": [0, 1.5]}, TypeError, ["'head'", "integer"]),
    ({"head": [0.0, 1.0]}, TypeError, ["'head'", "integer"]),
    ({"head": ["0", "1"]}, TypeError, ["'head'", "integer"]),
    ({"head": 2}, TypeError, ["'head'"]),
    ({"head": "01"}, TypeError, ["'head'"]),
    ({"c": np.array(2)}, TypeError, ["'c'", "1-D"]),
    ({"c": np.array([[0, 1]])}, TypeError, ["'c'", "1-D", "(1, 2)"]),
])
def test_bad_keep_is_rejected_naming_the_group(model, fn, keep, exc, words):
  with pytest.raises(exc) as info:
    fn(model, keep)
  for w in words:
    assert w in str(info.value)


def test_keeping_all_of_a_fixed_group_is_allowed(model):
  slim = tps.materialize(model, {"head": [0, 1], "c": [0, 2]})
  assert slim.get_layer("c").filters == 2


def test_input_model_is_never_mutated(model):
  before = [w.copy() for w in model.get_weights()]
  config = model.get_config()
  tps.mask_channels(model, {"c": [1], "d": [0, 4]})
  tps.materialize(model, {"c": [1], "d": [0, 4]})
  tps.ChannelGraph(model)
  tps.count_macs(model)
  after = model.get_weights()
  assert all(np.array_equal(a, b) for a, b in zip(before, after))
  assert model.get_config() == config


def test_empty_keep_gives_an_identical_copy(model):
  x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
  slim = tps.materialize(model, {})
  assert slim is not model
  np.testing.assert_allclose(slim(x).numpy(), model(x).numpy(), rtol=1e-6)


class Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.c = L.Conv2D(3, 3)

  def call(self, x):
    return self.c(x)


@pytest.mark.parametrize("fn", [tps.ChannelGraph, tps.count_macs,
                                tps.profile, tps.count_params,
                                lambda m: tps.materialize(m, {})])
def test_subclassed_model_raises_unsupported_model_error(fn):
  m = Subclassed()
  m(np.zeros((1, 8, 8, 3), "float32"))
  with pytest.raises(tps.UnsupportedModelError) as info:
    fn(m)
  assert "Subclassed" in str(info.value)
  assert isinstance(info.value, TypeError)


def test_non_model_raises_type_error():
  with pytest.raises(TypeError, match="model"):
    tps.ChannelGraph("not a model")
  with pytest.raises(TypeError, match="model"):
    tps.ChannelGraph(L.Dense(3))


def test_unbuilt_sequential_raises_unsupported_model_error():
  m = keras.Sequential([L.Dense(3)])
  with pytest.raises(tps.UnsupportedModelError, match="Input"):
    tps.ChannelGraph(m)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_slim_model_saves_and_loads(model, tmp_path, fmt):
  slim = tps.materialize(model, {"c": [0, 3], "d": [1, 2, 4]})
  path = str(tmp_path / f"slim.{fmt}")
  slim.save(path)
  loaded = keras.models.load_model(path)
  x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
  np.testing.assert_allclose(loaded(x).numpy(), slim(x).numpy(), rtol=1e-6)
  assert loaded.get_layer("d").filters == 3


def _kerases():
  import keras as keras3  # pylint: disable=g-import-not-at-top
  return [pytest.param(keras, "tf_keras", id="tf_keras"),
          pytest.param(keras3, "keras3", id="keras3")]


@pytest.mark.parametrize("k,fw", _kerases())
def test_add_of_two_branches_both_scaled_by_zero(k, fw):
  # Both inputs of one Add are SSS block scales at exactly 0: one branch is
  # removed, the Add becomes the identity on the other (still 0), and the
  # slim model computes what the model does (it raised KeyError: 'add').
  from tfprune_survey.layers.channel_scale import ChannelScale  # pylint: disable=g-import-not-at-top
  inp = k.Input((4, 4, 3))
  a = k.layers.Conv2D(4, 1, name="a")(inp)
  b = k.layers.Conv2D(4, 1, name="b")(a)
  c = k.layers.Conv2D(4, 1, name="c")(a)
  s1 = ChannelScale(0.0, shared=True, name="s1", framework=fw)(c)
  s2 = ChannelScale(0.0, shared=True, name="s2", framework=fw)(b)
  x = k.layers.Add(name="add")([s1, s2])
  x = k.layers.Conv2D(2, 1, name="d", bias_initializer="ones")(x)
  m = k.Model(inp, k.layers.Dense(2, name="head")(k.layers.Flatten()(x)))
  x = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
  slim = tps.materialize(m, {"a": [0, 2]})
  names = [layer.name for layer in slim.layers]
  assert "add" not in names and ("b" in names) != ("c" in names)
  ref = np.asarray(tps.mask_channels(m, {"a": [0, 2]})(x))
  np.testing.assert_allclose(np.asarray(slim(x)), ref, atol=1e-5)
  np.testing.assert_allclose(ref, np.asarray(m(x)), atol=1e-5)


@pytest.mark.parametrize("fn", [tps.mask_channels, tps.materialize])
@pytest.mark.parametrize("k,fw", _kerases())
def test_graph_of_another_model_is_refused_naming_the_layer(k, fw, fn):
  del fw

  def build(width, extra=False):
    inp = k.Input((6, 6, 3))
    x = k.layers.Conv2D(width, 3, name="c")(inp)
    x = k.layers.ReLU()(x)
    if extra:
      x = k.layers.Conv2D(4, 1, name="e")(x)
    x = k.layers.Conv2D(5, 3, name="d")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(2, name="head")(x))

  model = build(4)
  graph = tps.ChannelGraph(model)
  # raised "internal error: layer 'd' not in config" / "weights of layer
  # 'c' do not fit" instead of saying that `graph` is not this model's
  with pytest.raises(ValueError, match=r"`graph` was built for .*'c'"):
    fn(build(6), {"c": [0, 1]}, graph=graph)
  with pytest.raises(ValueError, match=r"`graph` was built for .*'e'"):
    fn(build(4, extra=True), {"c": [0, 1]}, graph=graph)
  # a copy of the same architecture is fine, even with other layer names
  # for its weightless layers
  copy = build(4)
  copy.set_weights(model.get_weights())
  x = np.random.default_rng(0).random((2, 6, 6, 3)).astype("float32")
  np.testing.assert_allclose(
      np.asarray(fn(copy, {"c": [0, 3]}, graph=graph)(x)),
      np.asarray(fn(model, {"c": [0, 3]})(x)), atol=1e-6)


@pytest.mark.parametrize("restorable", [True, False])
def test_zero_initializer_rebuild_gives_rnn_layers_their_initializers(
    monkeypatch, restorable):
  """The JAX/PyTorch rebuild (zero initializers, then the layers' own set
  back) run here by claiming another backend: an LSTM's and a GRU's
  initializers are their cell's (setting them on the layer raised
  AttributeError: no setter); MultiHeadAttention's are private (its config
  said Zeros). Where one cannot be set back, the model is rebuilt with its
  own initializers."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  from tfprune_survey.strip import surgery  # pylint: disable=g-import-not-at-top
  inp = keras.Input((10, 4))
  h = L.Conv1D(6, 3, padding="same", activation="relu", name="c1")(inp)
  h = L.MultiHeadAttention(2, 3, kernel_initializer="he_normal",
                           name="mha")(h, h)
  h = L.LSTM(5, return_sequences=True, kernel_initializer="he_normal",
             name="lstm")(h)
  h = L.GRU(5, recurrent_initializer="glorot_normal", name="gru")(h)
  h = L.Dense(7, activation="relu", name="d1")(h)
  model = keras.Model(inp, L.Dense(3, name="o")(h))
  x = np.random.default_rng(0).random((4, 10, 4)).astype("float32")
  monkeypatch.setattr(type(frameworks.of(model)), "backend",
                      lambda self: "jax")
  restored = []
  if restorable:   # and set back, not rebuilt slowly
    real = surgery._restore_initializer
    monkeypatch.setattr(surgery, "_restore_initializer",
                        lambda *args: restored.append(real(*args)) or
                        restored[-1])
  else:
    monkeypatch.setattr(surgery, "_restore_initializer",
                        lambda *args: False)
  keep = {"d1": [0, 1, 5]}
  masked = np.asarray(tps.mask_channels(model, keep)(x))
  slim = tps.materialize(model, keep)
  np.testing.assert_allclose(np.asarray(slim(x)), masked, atol=1e-6)
  for layer in slim.layers:
    cfg = layer.get_config()
    for key in [k for k in cfg if k.endswith("_initializer")]:
      assert cfg[key] == model.get_layer(layer.name).get_config()[key], (
          layer.name, key)
  assert all(restored) and (len(restored) > 10) == restorable


def test_dead_branch_model_with_an_unserializable_op_is_named():
  # tps.prune reads the config to drop a residual branch scaled by 0 before
  # the channel analysis; an op Keras cannot serialize is named there too.
  import keras as keras3  # pylint: disable=g-import-not-at-top
  k = keras3.layers
  inp = keras3.Input((8, 8, 3))
  s = k.Conv2D(4, 3, padding="same", name="stem")(inp)
  s = keras3.ops.clip(s, np.float32(0.0), np.array(6.0, "float32"))
  b = k.Conv2D(4, 3, padding="same", name="b1")(s)
  b = tps.ChannelScale(0.0, shared=True, name="sss")(b)
  x = k.Add()([s, b])
  x = k.GlobalAveragePooling2D()(x)
  m = keras3.Model(inp, k.Dense(2, name="out")(x))
  for fn in (lambda: tps.prune(m, "l1", ratio=0.5),
             lambda: tps.materialize(m, {"b1": [0, 1]})):
    with pytest.raises(tps.UnsupportedModelError) as e:
      fn()
    assert "(Clip)" in str(e.value) and "NumPy array" in str(e.value)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_float8_quantized_dense_keeps_its_scales_by_name(kind):
  """A Keras 3 Dense quantized with model.quantize('float8') adds per-tensor
  scales and amax histories after its kernel and bias, but a Dense rebuilt
  from its config creates them first: materialize and mask_channels used to
  fail ('weights of layer 'd1' do not fit the rebuilt layer'); weights are
  now matched by name, each scale lands in its own variable, and the slim
  model computes what the masked one does."""
  import keras as keras3  # pylint: disable=g-import-not-at-top
  K = keras3.layers
  if kind == "mlp":
    inp = keras3.Input((8,))
    x = K.Dense(16, activation="relu", name="d1")(inp)
  else:
    inp = keras3.Input((8, 8, 3))
    x = K.Conv2D(6, 3, activation="relu", name="c1")(inp)
    x = K.Flatten()(x)
    x = K.Dense(16, activation="relu", name="d1")(x)
  m = keras3.Model(inp, K.Dense(3, name="head")(x))
  m.quantize("float8")
  rng = np.random.default_rng(0)
  for layer in m.layers:     # distinct values, so a mix-up would show
    for i, v in enumerate(layer.weights):
      if len(v.shape) == 0:
        v.assign(0.01 * (i + 1))
      elif "amax_history" in v.path:
        v.assign(rng.random(v.shape).astype("float32"))
  x = rng.standard_normal((4,) + inp.shape[1:]).astype("float32")
  keep = {"d1": [0, 3, 5, 6, 9, 12, 15]}
  if kind == "cnn":
    keep["c1"] = [1, 2, 4]
  slim = tps.materialize(m, keep)
  ref = np.asarray(tps.mask_channels(m, keep)(x))
  np.testing.assert_allclose(np.asarray(slim(x)), ref, rtol=1e-5, atol=1e-6)
  for name in ("d1", "head"):
    old, new = m.get_layer(name), slim.get_layer(name)
    for attr in ("inputs_scale", "kernel_scale", "outputs_grad_scale",
                 "inputs_amax_history", "kernel_amax_history"):
      np.testing.assert_array_equal(np.asarray(getattr(new, attr)),
                                    np.asarray(getattr(old, attr)))
  np.testing.assert_array_equal(
      np.asarray(slim.get_layer("d1").bias),
      np.asarray(m.get_layer("d1").bias)[keep["d1"]])
