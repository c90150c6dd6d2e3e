"""ChannelScale: serialization round trips and channel-graph support."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey._compat import keras
from tests.conftest import assert_equivalent

L = keras.layers


def scaled_model():
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, name="c")(inp)
  x = tps.ChannelScale(regularizer=keras.regularizers.L1(1e-4),
                       name="lam", framework="tf_keras")(x)
  x = L.ReLU()(x)
  x = L.Conv2D(3, 1, name="d")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  model.get_layer("lam").set_weights([np.array([0.5, -1.0, 0.0, 2.0],
                                               "float32")])
  return model


def test_config_round_trip():
  layer = tps.ChannelScale(initial_value=0.5,
                           regularizer=keras.regularizers.L1(1e-3), name="s",
                           framework="tf_keras")
  clone = tps.ChannelScale.from_config(layer.get_config(),
                                       framework="tf_keras")
  assert clone.get_config() == layer.get_config()
  assert clone.initial_value == 0.5


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_model_with_channel_scale_saves_and_loads(tmp_path, fmt):
  model = scaled_model()
  path = str(tmp_path / f"m.{fmt}")
  model.save(path)
  loaded = keras.models.load_model(path)
  x = np.random.default_rng(0).random((2, 6, 6, 2)).astype("float32")
  np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
  assert isinstance(loaded.get_layer("lam"), tps.ChannelScale)


def test_scales_multiply_channels_and_regularize():
  model = scaled_model()
  x = np.ones((1, 6, 6, 2), "float32")
  conv = keras.Model(model.input, model.get_layer("c").output)(x).numpy()
  scaled = keras.Model(model.input, model.get_layer("lam").output)(x).numpy()
  np.testing.assert_allclose(scaled, conv * [0.5, -1.0, 0.0, 2.0], rtol=1e-6)
  np.testing.assert_allclose(float(sum(model.losses)), 1e-4 * 3.5, rtol=1e-5)


def test_graph_slices_the_scales():
  model = scaled_model()
  graph = tps.ChannelGraph(model)
  assert graph.group("c").params == ["lam"]
  _, slim = assert_equivalent(model, {"c": [0, 3]}, np.random.default_rng(
      0).random((3, 6, 6, 2)).astype("float32"), graph=graph)
  np.testing.assert_allclose(slim.get_layer("lam").get_weights()[0],
                             [0.5, 2.0])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_invalid_arguments_name_the_argument(framework):
  for kwargs, arg in [({"initial_value": "a"}, "initial_value"),
                      ({"initial_value": float("nan")}, "initial_value"),
                      ({"initial_value": float("inf")}, "initial_value"),
                      ({"initial_value": [1.0, 2.0]}, "initial_value"),
                      ({"initial_value": True}, "initial_value"),
                      ({"shared": "no"}, "shared"),
                      ({"shared": 2}, "shared"),
                      ({"shared": None}, "shared")]:
    with pytest.raises(ValueError, match=f"ChannelScale 'bad'.*`{arg}`"):
      tps.ChannelScale(name="bad", framework=framework, **kwargs)
  with pytest.raises(ValueError, match="regularizer.*bogus"):
    tps.ChannelScale(regularizer="bogus", framework=framework)
  layer = tps.ChannelScale(initial_value=np.float32(0.5), shared=np.bool_(1),
                           framework=framework)
  assert (layer.initial_value, layer.shared) == (0.5, True)
  assert type(layer.initial_value) is float and type(layer.shared) is bool


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_shared_scale_needs_no_known_channel_count(framework):
  k = keras if framework == "tf_keras" else pytest.importorskip("keras")
  inp = k.Input((None,))
  out = tps.ChannelScale(shared=True, initial_value=2.0, name="s",
                         framework=framework)(inp)
  model = k.Model(inp, out)
  x = np.array([[1.0, -2.0, 3.0]], "float32")
  np.testing.assert_allclose(np.asarray(model(x)), 2.0 * x)
  assert model.get_layer("s").get_weights()[0].shape == (1,)
  with pytest.raises(ValueError, match="ChannelScale 'p' needs a known "
                     "channel dimension"):
    tps.ChannelScale(name="p", framework=framework)(inp)


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_integer_inputs_are_scaled_not_truncated(framework):
  k = keras if framework == "tf_keras" else pytest.importorskip("keras")
  inp = k.Input((3,), dtype="int32")
  model = k.Model(inp, tps.ChannelScale(initial_value=0.5,
                                        framework=framework)(inp))
  y = np.asarray(model(np.array([[2, 3, -5]], "int32")))
  assert y.dtype == np.float32
  np.testing.assert_allclose(y, [[1.0, 1.5, -2.5]])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_mixed_float16_keeps_float32_scales(framework):
  k = keras if framework == "tf_keras" else pytest.importorskip("keras")
  inp = k.Input((3,))
  layer = tps.ChannelScale(initial_value=0.5, dtype="mixed_float16",
                           name="s", framework=framework)
  model = k.Model(inp, layer(inp))
  y = model(np.array([[2.0, 4.0, -6.0]], "float32"))
  assert str(np.asarray(y).dtype) == "float16"
  np.testing.assert_allclose(np.asarray(y), [[1.0, 2.0, -3.0]])
  assert layer.get_weights()[0].dtype == np.float32
  clone = tps.ChannelScale.from_config(layer.get_config(), framework=framework)
  assert clone.get_config() == layer.get_config()
