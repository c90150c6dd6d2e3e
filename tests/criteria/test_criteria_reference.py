"""Every criterion against a numpy reference computed here on hand-set weights."""

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey._compat import keras

L = keras.layers
RTOL = 1e-5


def hand_model(seed=0):
  """x(5,5,2) -> c1(4) -> bn1 -> relu -> c2(3) -> gap -> head(2)."""
  inp = keras.Input((5, 5, 2))
  x = L.Conv2D(4, 3, padding="same", name="c1")(inp)
  x = L.BatchNormalization(name="bn1")(x)
  x = L.ReLU(name="relu")(x)
  x = L.Conv2D(3, 1, name="c2")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  out = L.Dense(2, name="head")(x)
  model = keras.Model(inp, out)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    ws = layer.get_weights()
    if not ws:
      continue
    if isinstance(layer, L.BatchNormalization):
      ws = [np.array([0.5, -1.5, 2.0, 0.1], "float32"),
            np.array([0.2, -0.3, 0.0, 0.4], "float32"),
            np.array([0.1, 0.0, -0.2, 0.3], "float32"),
            np.array([1.0, 2.0, 0.5, 1.5], "float32")]
    else:
      ws = [rng.standard_normal(w.shape).astype("float32") for w in ws]
    layer.set_weights(ws)
  return model


@pytest.fixture(scope="module")
def model():
  return hand_model()


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((40, 5, 5, 2)).astype("float32")
  y = rng.integers(0, 2, 40)
  return x, y


def kernel(model, name):
  return model.get_layer(name).get_weights()[0].astype(np.float64)


def feature(model, name, x):
  sub = keras.Model(model.input, model.get_layer(name).output)
  return sub(x, training=False).numpy().astype(np.float64)


def test_l1(model):
  got = tps.score(model, "l1")
  np.testing.assert_allclose(got["c1"], np.abs(kernel(model, "c1")).sum(
      axis=(0, 1, 2)), rtol=RTOL)
  np.testing.assert_allclose(got["c2"], np.abs(kernel(model, "c2")).sum(
      axis=(0, 1, 2)), rtol=RTOL)


def test_l2(model):
  got = tps.score(model, "l2")
  w = kernel(model, "c1")
  np.testing.assert_allclose(got["c1"], np.sqrt((w ** 2).sum(axis=(0, 1, 2))),
                             rtol=RTOL)


def test_fpgm_sum_of_distances_to_other_filters(model):
  got = tps.score(model, "fpgm")
  filters = kernel(model, "c1").reshape(-1, 4).T
  ref = np.array([sum(np.linalg.norm(filters[i] - filters[j])
                      for j in range(4)) for i in range(4)])
  np.testing.assert_allclose(got["c1"], ref, rtol=RTOL)


def test_slimming_reads_abs_gamma(model):
  got = tps.score(model, "slimming")
  np.testing.assert_allclose(got["c1"], [0.5, 1.5, 2.0, 0.1], rtol=RTOL)
  assert "c2" not in got  # no BN: the group is left whole


def test_sss_reads_channel_scale():
  inp = keras.Input((5, 5, 2))
  x = L.Conv2D(3, 3, name="c")(inp)
  x = tps.ChannelScale(name="lam", framework="tf_keras")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  model.get_layer("lam").set_weights([np.array([0.3, -0.0, -2.0], "float32")])
  got = tps.score(model, "sss")
  np.testing.assert_allclose(got["c"], [0.3, 0.0, 2.0], rtol=RTOL)


def test_sss_and_slimming_without_scales_raise():
  inp = keras.Input((5, 5, 2))
  x = L.Conv2D(3, 3, name="c")(inp)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  for name in ("sss", "slimming"):
    with pytest.raises(ValueError, match=name):
      tps.score(model, name)


def test_random_is_seeded(model):
  a = tps.score(model, "random")
  b = tps.score(model, tps.criteria.get("random"))
  c = tps.score(model, tps.criteria.get("random").from_config({"seed": 5}))
  np.testing.assert_array_equal(a["c1"], b["c1"])
  assert not np.array_equal(a["c1"], c["c1"])
  rng = np.random.default_rng(0)
  np.testing.assert_array_equal(a["c1"], rng.random(4))


def test_apoz_fraction_of_zeros_after_relu(model, data):
  x, y = data
  got = tps.score(model, "apoz", (x, y))
  relu = feature(model, "relu", x)
  ref = -(relu <= 0).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(got["c1"], ref, rtol=RTOL)


def test_entropy_of_pooled_responses(model, data):
  x, y = data
  got = tps.score(model, tps.criteria.get("entropy").from_config(
      {"bins": 8}), (x, y))
  pooled = feature(model, "relu", x).mean(axis=(1, 2))
  ref = []
  for c in range(4):
    counts, _ = np.histogram(pooled[:, c], bins=8,
                             range=(pooled[:, c].min(), pooled[:, c].max()))
    p = counts[counts > 0] / len(pooled)
    ref.append(-(p * np.log(p)).sum())
  np.testing.assert_allclose(got["c1"], ref, rtol=RTOL)


def test_variance_of_per_sample_norms(model, data):
  x, y = data
  got = tps.score(model, "variance", (x, y))
  relu = feature(model, "relu", x)
  norms = np.sqrt((relu ** 2).sum(axis=(1, 2)))
  np.testing.assert_allclose(got["c1"], norms.var(axis=0), rtol=1e-4)
  # c2 is read before the pooling: its own output, not the pooled vector.
  c2 = feature(model, "c2", x)
  norms2 = np.sqrt((c2 ** 2).sum(axis=(1, 2)))
  np.testing.assert_allclose(got["c2"], norms2.var(axis=0), rtol=1e-4)


def _taylor_reference(model, x, y, layer_name, rest):
  feat = keras.Model(model.input, model.get_layer(layer_name).output)
  y_t = tf.constant(feat(x, training=False))
  with tf.GradientTape() as tape:
    tape.watch(y_t)
    logits = rest(y_t)
    loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True))
  g = tape.gradient(loss, y_t).numpy().astype(np.float64)
  yv = y_t.numpy().astype(np.float64)
  axes = tuple(range(1, yv.ndim - 1))
  per_sample = np.abs((g * yv).mean(axis=axes) if axes else g * yv)
  mean = per_sample.mean(axis=0)
  return mean / np.linalg.norm(mean)


def test_taylor_matches_one_gradient_tape(model, data):
  x, y = data
  got = tps.score(model, "taylor", (x, y))
  c2, gap, head = (model.get_layer(n) for n in ("c2", "gap", "head"))
  ref1 = _taylor_reference(model, x, y, "relu", lambda t: head(gap(c2(t))))
  np.testing.assert_allclose(got["c1"], ref1, rtol=RTOL)
  ref2 = _taylor_reference(model, x, y, "c2", lambda t: head(gap(t)))
  np.testing.assert_allclose(got["c2"], ref2, rtol=RTOL)


def test_taylor_fo_on_bn_and_on_the_conv(model, data):
  x, y = data
  got = tps.score(model, "taylor_fo", (x, y))
  bn, c2 = model.get_layer("bn1"), model.get_layer("c2")
  acc_bn, acc_c2, batches = np.zeros(4), np.zeros(3), 0
  for s in range(0, len(x), 32):
    xb, yb = x[s:s + 32], y[s:s + 32]
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
          yb, model(xb, training=False), from_logits=True))
    gg, gb, gk, gbias = tape.gradient(loss, [bn.gamma, bn.beta, c2.kernel,
                                             c2.bias])
    acc_bn += (gg.numpy() * bn.gamma.numpy() +
               gb.numpy() * bn.beta.numpy()).astype(np.float64) ** 2
    contrib = (gk.numpy() * c2.kernel.numpy()).sum(axis=(0, 1, 2)) + (
        gbias.numpy() * c2.bias.numpy())
    acc_c2 += contrib.astype(np.float64) ** 2
    batches += 1
  np.testing.assert_allclose(got["c1"], acc_bn / batches, rtol=1e-4)
  np.testing.assert_allclose(got["c2"], acc_c2 / batches, rtol=1e-4)


@pytest.mark.parametrize("name", ["apoz", "entropy", "variance", "taylor"])
def test_batching_does_not_change_data_scores(model, data, name):
  x, y = data
  a = tps.score(model, name, (x, y))
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
  b = tps.score(model, name, ds)
  for gid in a:
    np.testing.assert_allclose(a[gid], b[gid], rtol=1e-4, atol=1e-7)


def test_coupled_producers_are_combined_with_the_reduction():
  inp = keras.Input((5, 5, 2))
  a = L.Conv2D(3, 3, padding="same", name="a")(inp)
  b = L.Conv2D(3, 1, name="b")(inp)
  x = L.Add()([a, b])
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2)(x))
  la = np.abs(kernel(model, "a")).sum(axis=(0, 1, 2))
  lb = np.abs(kernel(model, "b")).sum(axis=(0, 1, 2))
  gid = tps.ChannelGraph(model).prunable_groups[0].id
  for red, ref in (("mean", (la + lb) / 2), ("sum", la + lb),
                   ("max", np.maximum(la, lb))):
    crit = tps.criteria.get("l1").from_config({"reduction": red})
    np.testing.assert_allclose(tps.score(model, crit)[gid], ref, rtol=RTOL)


def two_input_models(seed=0):
  """A two-input model and its single-input twin on stacked channels.

  two: a(6,6,2) -> ca(3, relu), b(6,6,2) -> cb(3, relu); concat -> c2(4,
  relu) -> gap -> head(3). one: the same layers on x(6,6,4) = [a, b]
  stacked on channels, ca's kernel reading channels 0-1 (zeros on 2-3) and
  cb's 2-3, so both compute the same function with the same groups, and
  every criterion gives them the same scores (the zero weights add nothing
  to weight-gradient products or saliencies).
  """
  rng = np.random.default_rng(seed)
  a, b = keras.Input((6, 6, 2), name="a"), keras.Input((6, 6, 2), name="b")
  s = keras.Input((6, 6, 4))
  layers = {}

  def build(xa, xb):
    ha = L.Conv2D(3, 3, padding="same", activation="relu", name="ca")(xa)
    hb = L.Conv2D(3, 3, padding="same", activation="relu", name="cb")(xb)
    h = L.Concatenate(name="cat")([ha, hb])
    h = L.Conv2D(4, 3, activation="relu", name="c2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return L.Dense(3, name="head")(h)
  two = keras.Model([a, b], build(a, b))
  one = keras.Model(s, build(s, s))
  for layer in two.layers:
    ws = [rng.standard_normal(w.shape).astype("float32")
          for w in layer.get_weights()]
    if ws:
      layer.set_weights(ws)
      layers[layer.name] = ws
  for name, ws in layers.items():
    if name in ("ca", "cb"):
      k = np.zeros((3, 3, 4, 3), "float32")
      k[:, :, (0 if name == "ca" else 2):][:, :, :2] = ws[0]
      ws = [k, ws[1]]
    one.get_layer(name).set_weights(ws)
  return two, one


DATA_CRITERIA = ["apoz", "entropy", "variance", "taylor", "taylor_fo", "obd",
                 "kfac_obd", "thinet", "lasso"]


def test_two_input_model_scores_equal_its_single_input_twin():
  two, one = two_input_models()
  rng = np.random.default_rng(3)
  x1, x2 = rng.standard_normal((2, 40, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 3, 40)
  stacked = np.concatenate([x1, x2], axis=-1)
  np.testing.assert_allclose(two([x1, x2]).numpy(), one(stacked).numpy(),
                             rtol=1e-4, atol=1e-5)
  forms = {"numpy list": ([x1, x2], y),
           # by name, not in the dict's order
           "numpy dict": ({"b": x2, "a": x1}, y),
           "dataset": tf.data.Dataset.from_tensor_slices(
               ((x1, x2), y)).batch(32)}   # as numpy is batched
  for name in DATA_CRITERIA:
    ref = tps.score(one, name, (stacked, y))
    assert set(ref) == {"ca", "cb", "c2"}
    for form, data in forms.items():
      if form != "numpy list" and name not in ("apoz", "taylor_fo", "obd",
                                               "thinet"):
        continue
      got = tps.score(two, name, data)
      assert set(got) == set(ref), (name, form)
      for gid in ref:
        np.testing.assert_allclose(got[gid], ref[gid], rtol=1e-4,
                                   atol=1e-8, err_msg=f"{name} {form} {gid}")
  # Unlabelled two-input data for a criterion without labels.
  got = tps.score(two, "apoz", ([x1, x2],))
  np.testing.assert_allclose(got["ca"], tps.score(one, "apoz", stacked)["ca"])
  # x of the wrong structure is named as `data`, with the model's inputs.
  for bad, words in ((stacked, "one input array"),
                     (([x1, x2, x1],), "3 input arrays"),
                     ({"a": x1, "c": x2}, "no ['b']"),
                     (([x1, stacked], y),
                      "input 'b' of shape (32, 6, 6, 4)")):
    with pytest.raises(ValueError) as info:
      tps.score(two, "apoz", bad)
    assert "`data`" in str(info.value) and words in str(info.value), (
        str(info.value))


def test_two_input_model_is_reconstructed_as_its_single_input_twin():
  two, one = two_input_models(seed=1)
  rng = np.random.default_rng(4)
  x1, x2 = rng.standard_normal((2, 48, 6, 6, 2)).astype("float32")
  stacked = np.concatenate([x1, x2], axis=-1)
  keep = {"ca": [0, 2], "cb": [1]}
  fits = []
  for model, data in ((two, tf.data.Dataset.from_tensor_slices(
      ((x1, x2), np.zeros(48, "int64"))).batch(16)), (one, stacked)):
    slim = tps.reconstruct(tps.materialize(model, keep), model, data,
                           keep=keep, samples=None)
    fits.append(slim.get_layer("c2").get_weights())
  assert fits[0][0].shape == (3, 3, 3, 4)
  for a, b in zip(*fits):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
