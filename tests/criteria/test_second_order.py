"""obd and kfac_obd against references computed here, in both Kerases.

The references run the same networks as plain TensorFlow ops on the
models' weights, one sample at a time under a `tf.GradientTape` (per-sample
gradients of that sample's cross-entropy), with numpy im2col and numpy
reductions, so they share no code with the criteria.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey import frameworks

RTOL = 1e-4
FRAMEWORKS = ("tf_keras", "keras3")


def _set_random_weights(model, seed):
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    ws = layer.get_weights()
    if not ws:
      continue
    if type(layer).__name__ == "BatchNormalization":
      n = ws[0].shape[0]
      ws = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
            rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)]
    else:
      ws = [rng.normal(0, 0.6, w.shape) for w in ws]
    layer.set_weights([np.asarray(w, "float32") for w in ws])


def conv_model(framework, seed=0):
  """c1 (stride 2) -> bn1 -> relu -> c2 (relu) -> c3 (tanh) + residual -> head.

  Groups: 'c1' = c1, bn1 and c3 (joined by the add); 'c2'.
  """
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, strides=2, padding="same", name="c1")(inp)
  x = L.BatchNormalization(name="bn1")(x)
  r = L.ReLU(name="r1")(x)
  y = L.Conv2D(3, 3, padding="same", activation="relu", name="c2")(r)
  y = L.Conv2D(4, 1, activation="tanh", name="c3")(y)
  x = L.Add(name="add")([r, y])
  x = L.GlobalAveragePooling2D(name="gap")(x)
  out = L.Dense(3, name="head")(x)
  model = keras.Model(inp, out)
  _set_random_weights(model, seed)
  return model


def dense_model(framework, seed=0):
  """x(5) -> d1(6, relu) -> d2(4, tanh) -> head(3)."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((5,))
  x = L.Dense(6, activation="relu", name="d1")(inp)
  x = L.Dense(4, activation="tanh", name="d2")(x)
  out = L.Dense(3, name="head")(x)
  model = keras.Model(inp, out)
  _set_random_weights(model, seed)
  return model


def weights(model):
  """{(layer, short name): np.float64 array}."""
  out = {}
  for layer in model.layers:
    for w, v in zip(layer.weights, layer.get_weights()):
      out[(layer.name, w.name.split("/")[-1].split(":")[0])] = v
  return out


def _conv(x, k, b, stride=1):
  return tf.nn.conv2d(x, k, stride, "SAME") + b


def conv_forward(w, x):
  """Logits and pre-activations {layer: z} of conv_model, in plain TF."""
  z1 = _conv(x, w[("c1", "kernel")], w[("c1", "bias")], 2)
  bn = ((z1 - w[("bn1", "moving_mean")]) /
        tf.sqrt(w[("bn1", "moving_variance")] + 1e-3) * w[("bn1", "gamma")] +
        w[("bn1", "beta")])
  r = tf.nn.relu(bn)
  z2 = _conv(r, w[("c2", "kernel")], w[("c2", "bias")])
  z3 = _conv(tf.nn.relu(z2), w[("c3", "kernel")], w[("c3", "bias")])
  h = tf.reduce_mean(r + tf.tanh(z3), axis=(1, 2))
  logits = h @ w[("head", "kernel")] + w[("head", "bias")]
  return logits, {"c1": z1, "c2": z2, "c3": z3}, {"c1": x, "c2": r,
                                                   "c3": tf.nn.relu(z2)}


def dense_forward(w, x):
  z1 = x @ w[("d1", "kernel")] + w[("d1", "bias")]
  z2 = tf.nn.relu(z1) @ w[("d2", "kernel")] + w[("d2", "bias")]
  logits = tf.tanh(z2) @ w[("head", "kernel")] + w[("head", "bias")]
  return logits, {"d1": z1, "d2": z2}, {"d1": x, "d2": tf.nn.relu(z1)}


def per_sample(model, forward, x, y):
  """[(param grads {key: array}, pre-activation grads, layer inputs)]."""
  w = {k: tf.constant(v) for k, v in weights(model).items()}
  logits, _, _ = forward(w, tf.constant(x))
  # The reference network is the model itself.
  np.testing.assert_allclose(logits.numpy(), np.asarray(model(
      x, training=False)), rtol=1e-4, atol=1e-5)
  out = []
  for i in range(len(x)):
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(list(w.values()))
      logits, zs, ins = forward(w, tf.constant(x[i:i + 1]))
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.constant(y[i:i + 1]), logits)[0]
    grads = tape.gradient(loss, w)
    dz = tape.gradient(loss, zs)
    out.append(({k: g.numpy().astype(np.float64) for k, g in grads.items()},
                {k: g.numpy()[0].astype(np.float64) for k, g in dz.items()},
                {k: v.numpy()[0].astype(np.float64) for k, v in ins.items()}))
  return out


def obd_reference(model, samples, groups):
  """{group: 1/2 sum over its params of mean(g^2) w^2}; groups: {id: [keys]}."""
  w = weights(model)
  fisher = {k: np.mean([s[0][k] ** 2 for s in samples], axis=0) for k in w}
  return {gid: sum((0.5 * fisher[k] * w[k].astype(np.float64) ** 2)
                   .reshape(-1, w[k].shape[-1]).sum(axis=0) for k in keys)
          for gid, keys in groups.items()}


def im2col_same(a, k, stride):
  """(T, k*k*C) patches of one (H, W, C) map, TF 'same' padding."""
  h, wd, c = a.shape
  oh, ow = -(-h // stride), -(-wd // stride)
  ph = max((oh - 1) * stride + k - h, 0)
  pw = max((ow - 1) * stride + k - wd, 0)
  p = np.pad(a, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  rows = [p[i * stride:i * stride + k, j * stride:j * stride + k].ravel()
          for i in range(oh) for j in range(ow)]
  return np.array(rows)


def kfac_reference(model, samples, layer, patches_of):
  """1/2 (w_c^T A w_c) S_cc of producer `layer` (A summed over positions)."""
  w = weights(model)
  kernel = w[(layer, "kernel")].astype(np.float64)
  cols = np.concatenate([kernel.reshape(-1, kernel.shape[-1]),
                         w[(layer, "bias")][None]])
  a_sum, s_sum, count = 0.0, 0.0, 0
  for _, dz, ins in samples:
    p = patches_of(ins[layer])
    p = np.concatenate([p, np.ones((len(p), 1))], axis=1)
    a_sum = a_sum + p.T @ p
    d = dz[layer].reshape(-1, kernel.shape[-1])
    s_sum = s_sum + (d ** 2).sum(axis=0)
    count += len(d)
  a = a_sum / len(samples)
  s = s_sum / count
  return 0.5 * np.einsum("fc,fg,gc->c", cols, a, cols) * s


@pytest.fixture(scope="module")
def conv_data():
  rng = np.random.default_rng(1)
  return (rng.standard_normal((40, 6, 6, 2)).astype("float32"),
          rng.integers(0, 3, 40))


@pytest.fixture(scope="module")
def dense_data():
  rng = np.random.default_rng(2)
  return (rng.standard_normal((40, 5)).astype("float32"),
          rng.integers(0, 3, 40))


CONV_GROUPS = {"c1": [("c1", "kernel"), ("c1", "bias"), ("bn1", "gamma"),
                      ("bn1", "beta"), ("c3", "kernel"), ("c3", "bias")],
               "c2": [("c2", "kernel"), ("c2", "bias")]}
DENSE_GROUPS = {"d1": [("d1", "kernel"), ("d1", "bias")],
                "d2": [("d2", "kernel"), ("d2", "bias")]}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_obd_conv_matches_per_sample_reference(framework, conv_data):
  model = conv_model(framework)
  before = [w.copy() for w in model.get_weights()]
  samples = per_sample(model, conv_forward, *conv_data)
  ref = obd_reference(model, samples, CONV_GROUPS)
  got = tps.score(model, "obd", conv_data)   # batches of 32 and 8
  assert set(got) == set(ref)
  for gid in ref:
    np.testing.assert_allclose(got[gid], ref[gid], rtol=RTOL)
  assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_obd_dense_matches_per_sample_reference(framework, dense_data):
  model = dense_model(framework)
  samples = per_sample(model, dense_forward, *dense_data)
  ref = obd_reference(model, samples, DENSE_GROUPS)
  got = tps.score(model, "obd", dense_data)
  for gid in ref:
    np.testing.assert_allclose(got[gid], ref[gid], rtol=RTOL)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kfac_obd_conv_matches_reference(framework, conv_data):
  model = conv_model(framework)
  samples = per_sample(model, conv_forward, *conv_data)
  c1 = kfac_reference(model, samples, "c1", lambda a: im2col_same(a, 3, 2))
  c3 = kfac_reference(model, samples, "c3", lambda a: im2col_same(a, 1, 1))
  c2 = kfac_reference(model, samples, "c2", lambda a: im2col_same(a, 3, 1))
  got = tps.score(model, "kfac_obd", conv_data)
  np.testing.assert_allclose(got["c1"], c1 + c3, rtol=RTOL)   # 'sum'
  np.testing.assert_allclose(got["c2"], c2, rtol=RTOL)
  mean = tps.score(model, tps.criteria.deserialize(
      {"class_name": "kfac_obd", "config": {"reduction": "mean"}}), conv_data)
  np.testing.assert_allclose(mean["c1"], (c1 + c3) / 2, rtol=RTOL)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kfac_obd_dense_matches_reference(framework, dense_data):
  model = dense_model(framework)
  samples = per_sample(model, dense_forward, *dense_data)
  got = tps.score(model, "kfac_obd", dense_data)
  for layer in ("d1", "d2"):
    ref = kfac_reference(model, samples, layer, lambda a: a[None])
    np.testing.assert_allclose(got[layer], ref, rtol=RTOL)


def scale_model(framework, seed=0):
  """c1 -> ChannelScale -> PReLU (per channel) -> gap -> head.

  ChannelScale and PReLU take obd's generic per-sample path
  (`tf.vectorized_map` of the layer's own gradient).
  """
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((5, 5, 2))
  x = L.Conv2D(3, 3, padding="valid", name="c1")(inp)
  x = tps.ChannelScale(name="lam", framework=framework)(x)
  x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  out = L.Dense(3, name="head")(x)
  model = keras.Model(inp, out)
  _set_random_weights(model, seed)
  return model


def scale_forward(w, x):
  z1 = tf.nn.conv2d(x, w[("c1", "kernel")], 1, "VALID") + w[("c1", "bias")]
  s = z1 * w[("lam", "scale")]
  alpha = tf.reshape(w[("prelu", "alpha")], [-1])
  a = tf.nn.relu(s) - alpha * tf.nn.relu(-s)
  logits = tf.reduce_mean(a, axis=(1, 2)) @ w[("head", "kernel")] + w[
      ("head", "bias")]
  return logits, {"c1": z1}, {"c1": x}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_obd_generic_layers_match_per_sample_reference(framework, conv_data):
  model = scale_model(framework)
  x, y = conv_data[0][:24, :5, :5], conv_data[1][:24]
  samples = per_sample(model, scale_forward, x, y)
  ref = obd_reference(model, samples, {"c1": [
      ("c1", "kernel"), ("c1", "bias"), ("lam", "scale"),
      ("prelu", "alpha")]})
  got = tps.score(model, "obd", (x, y))
  np.testing.assert_allclose(got["c1"], ref["c1"], rtol=RTOL)


def test_obd_is_batch_size_invariant_and_streams_a_dataset(conv_data):
  model = conv_model("keras3", seed=3)
  x, y = conv_data
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
  a = tps.score(model, "obd", (x, y))
  b = tps.score(model, "obd", ds)
  for gid in a:
    np.testing.assert_allclose(a[gid], b[gid], rtol=RTOL)


@pytest.mark.parametrize("name", ["obd", "kfac_obd"])
def test_without_labels_is_a_value_error_naming_the_criterion(name,
                                                               dense_data):
  model = dense_model("tf_keras")
  with pytest.raises(ValueError, match=f"'{name}'"):
    tps.score(model, name, dense_data[0])
  with pytest.raises(ValueError, match=f"'{name}'"):
    tps.score(model, name)


def causal_model(framework, seed=0):
  """x(11, 3) -> c1 (Conv1D causal, stride 3, tanh) -> c2 (same, relu) -> head.

  Keras pads a causal conv by (k - 1) * dilation on the left only, whatever
  the stride: here 2 zeros, so the 4 outputs read positions -2..0, 1..3,
  4..6 and 7..9 (position 10 is never read).
  """
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((11, 3))
  x = L.Conv1D(4, 3, strides=3, padding="causal", activation="tanh",
               name="c1")(inp)
  x = L.Conv1D(5, 2, padding="same", activation="relu", name="c2")(x)
  x = L.GlobalAveragePooling1D(name="gap")(x)
  out = L.Dense(3, name="head")(x)
  model = keras.Model(inp, out)
  _set_random_weights(model, seed)
  return model


def causal_forward(w, x):
  xp = tf.pad(x, [[0, 0], [2, 0], [0, 0]])
  z1 = tf.nn.conv1d(xp, w[("c1", "kernel")], 3, "VALID") + w[("c1", "bias")]
  a1 = tf.tanh(z1)
  z2 = tf.nn.conv1d(a1, w[("c2", "kernel")], 1, "SAME") + w[("c2", "bias")]
  logits = tf.reduce_mean(tf.nn.relu(z2), axis=1) @ w[("head", "kernel")] + w[
      ("head", "bias")]
  return logits, {"c1": z1, "c2": z2}, {"c1": x, "c2": a1}


def im2col_causal(a, k, stride):
  """(T, k*C) patches of one (L, C) sequence, Keras 'causal' padding."""
  p = np.pad(a, ((k - 1, 0), (0, 0)))
  out = -(-a.shape[0] // stride)
  return np.array([p[i * stride:i * stride + k].ravel() for i in range(out)])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_obd_and_kfac_causal_strided_conv1d_match_reference(framework):
  rng = np.random.default_rng(4)
  x = rng.standard_normal((20, 11, 3)).astype("float32")
  y = rng.integers(0, 3, 20)
  model = causal_model(framework)
  samples = per_sample(model, causal_forward, x, y)
  ref = obd_reference(model, samples, {
      "c1": [("c1", "kernel"), ("c1", "bias")],
      "c2": [("c2", "kernel"), ("c2", "bias")]})
  got = tps.score(model, "obd", (x, y))
  for gid in ref:
    np.testing.assert_allclose(got[gid], ref[gid], rtol=RTOL)
  got = tps.score(model, "kfac_obd", (x, y))
  np.testing.assert_allclose(got["c1"], kfac_reference(
      model, samples, "c1", lambda a: im2col_causal(a, 3, 3)), rtol=RTOL)


# ---- the compiled loss, labels of rank 1 -------------------------------------


def sigmoid_model(framework, seed=0):
  """x(6,6,2) -> c1(4, relu) -> c2(3, relu) -> gap -> head(1, sigmoid)."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  x = L.Conv2D(4, 3, activation="relu", name="c1")(inp)
  x = L.Conv2D(3, 3, padding="same", activation="relu", name="c2")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  out = L.Dense(1, activation="sigmoid", name="head")(x)
  model = keras.Model(inp, out)
  _set_random_weights(model, seed)
  return model


def _loss_of(framework, kind):
  keras = frameworks.get(framework).keras
  return {"mse": "mse", "bce": "binary_crossentropy",
          "mae_fn": keras.losses.mean_absolute_error,
          "mse_obj": keras.losses.MeanSquaredError()}[kind]


def _numpy_loss(kind, y, p):
  """Per-sample loss of outputs p (N,) and labels y (N,), in float64."""
  if kind in ("mse", "mse_obj"):
    return (p - y) ** 2
  if kind == "mae_fn":
    return np.abs(p - y)
  return -(y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ["mse", "bce", "mae_fn", "mse_obj"])
def test_per_sample_loss_takes_labels_of_rank_one_as_fit_does(framework,
                                                                kind):
  # Keras' fit brings labels (N,) and outputs (N, 1) to one rank; the loss
  # of the gradient criteria must too: one value per sample, not an (N, N)
  # broadcast (tf_keras 'mse') nor a rank error (Keras 3 'binary_crossentropy').
  from tfprune_survey.losses import per_sample_loss  # pylint: disable=g-import-not-at-top
  model = sigmoid_model(framework)
  model.compile("sgd", _loss_of(framework, kind))
  rng = np.random.default_rng(5)
  x = rng.standard_normal((6, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 2, 6).astype("float32")
  p = model(x, training=False)
  ref = _numpy_loss(kind, y.astype(np.float64),
                    np.asarray(p, np.float64)[:, 0])
  fn = per_sample_loss(model)
  for labels in (y, y[:, None]):
    got = np.asarray(fn(tf.constant(labels), p))
    assert got.shape == (6,), got.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_gradient_criteria_score_labels_n_as_labels_n_by_1(framework, kind):
  model = sigmoid_model(framework, seed=1)
  model.compile("sgd", _loss_of(framework, kind))
  rng = np.random.default_rng(6)
  x = rng.standard_normal((12, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 2, 12).astype("float32")
  for name in ("taylor", "taylor_fo", "obd", "kfac_obd"):
    a = tps.score(model, name, (x, y))
    b = tps.score(model, name, (x, y[:, None]))
    assert set(a) == set(b) and a, name
    for gid in a:
      assert np.all(np.isfinite(a[gid])), (name, gid)
      np.testing.assert_allclose(a[gid], b[gid], rtol=1e-5, atol=1e-12,
                                 err_msg=name)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_loss_that_reduces_the_batch_is_a_value_error(framework):
  keras = frameworks.get(framework).keras
  model = sigmoid_model(framework)
  model.compile("sgd", lambda y, p: keras.losses.mean_squared_error(y, p)[0])
  rng = np.random.default_rng(7)
  x = rng.standard_normal((8, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 2, 8).astype("float32")
  with pytest.raises(ValueError, match="one loss per sample"):
    tps.score(model, "taylor", (x, y))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kfac_obd_without_a_producer_it_reads_is_a_value_error(framework):
  # Conv3D producers only: it would score nothing and prune nothing.
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((4, 4, 4, 2))
  x = L.Conv3D(5, 2, activation="relu", name="c1")(inp)
  x = L.Conv3D(4, 2, activation="relu", name="c2")(x)
  model = keras.Model(inp, L.Dense(3, name="head")(L.Flatten()(x)))
  rng = np.random.default_rng(8)
  data = (rng.standard_normal((6, 4, 4, 4, 2)).astype("float32"),
          rng.integers(0, 3, 6))
  words = ("criterion 'kfac_obd' reads the kernels of Dense, Conv1D or "
           "Conv2D producers.*has none in a prunable group")
  with pytest.raises(ValueError, match=words):
    tps.score(model, "kfac_obd", data)
  with pytest.raises(ValueError, match=words):
    tps.prune(model, "kfac_obd", data=data, ratio=0.5)
  assert set(tps.score(model, "obd", data)) == {"c1", "c2"}
