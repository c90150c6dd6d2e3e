"""thinet and lasso against numpy references on hand-built tensors."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn import linear_model

import tfprune_survey as tps
from tfprune_survey import consumer_patches as cp
from tfprune_survey import frameworks
from tfprune_survey.criteria import lasso as lasso_lib
from tfprune_survey.criteria import thinet as thinet_lib

FRAMEWORKS = ("tf_keras", "keras3")
DEAD = 2   # the producer channel the consumer's weights ignore
# A 3x3 conv and a Dense after Flatten (taps² >= outputs: the contributions'
# Gram directly), and a 1x1 conv (1 < 4 outputs: from the second moments).
CONSUMERS = ("conv", "dense", "pointwise")


def _model(framework, consumer, seed=0, input_name=None):
  """c1 (5 channels, relu) -> consumer reading them; channel DEAD unused."""
  keras = frameworks.get(framework).keras
  rng = np.random.default_rng(seed)
  inp = keras.Input((6, 6, 3), name=input_name)
  a = keras.layers.Conv2D(5, 3, padding="same", activation="relu",
                          name="c1")(inp)
  if consumer == "conv":
    out = keras.layers.Conv2D(4, 3, strides=2, padding="same",
                              name="c2")(a)
  elif consumer == "pointwise":
    out = keras.layers.Conv2D(4, 1, name="c2")(a)
  else:
    out = keras.layers.Dense(4, name="c2")(keras.layers.Flatten()(a))
  model = keras.Model(inp, out)
  w1 = rng.normal(size=(3, 3, 3, 5)).astype("float32")
  b1 = rng.normal(size=5).astype("float32") * 0.1
  model.get_layer("c1").set_weights([w1, b1])
  w2, b2 = [v.copy() for v in model.get_layer("c2").get_weights()]
  w2 = rng.normal(size=w2.shape).astype("float32")
  if consumer in ("conv", "pointwise"):
    w2[:, :, DEAD, :] = 0.0
  else:
    w2.reshape(36, 5, 4)[:, DEAD, :] = 0.0
  model.get_layer("c2").set_weights([w2, b2])
  return model, w1, b1, w2


def _contributions(consumer, x, w1, b1, w2):
  """(equations, C) contributions of each c1 channel to c2's outputs.

  Computed by running c2 on c1's output with every other channel zeroed
  (TensorFlow's own conv for the feature maps), at every output position.
  """
  a = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1).numpy()
  cols = []
  for c in range(a.shape[-1]):
    only = np.zeros_like(a)
    only[..., c] = a[..., c]
    if consumer == "conv":
      z = tf.nn.conv2d(only, w2, 2, "SAME").numpy()
    elif consumer == "pointwise":
      z = tf.nn.conv2d(only, w2, 1, "VALID").numpy()
    else:
      z = only.reshape(len(a), -1) @ w2
    cols.append(z.reshape(-1).astype(np.float64))
  return np.stack(cols, axis=1)


def _greedy_reference(z):
  """ThiNet's greedy order, by the explicit error ||sum_{c in T} z_c||²."""
  left, removed = list(range(z.shape[1])), []
  while left:
    errs = [np.sum(z[:, removed + [c]].sum(axis=1) ** 2) for c in left]
    best = left[int(np.argmin(errs))]
    removed.append(best)
    left.remove(best)
  return removed


def _data(seed=1):
  return np.random.default_rng(seed).normal(size=(12, 6, 6, 3)).astype(
      "float32")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_thinet_matches_the_greedy_reference(framework, consumer):
  model, w1, b1, w2 = _model(framework, consumer)
  x = _data()
  crit = thinet_lib.ThiNet(positions_per_sample=64)  # every position
  scores = tps.score(model, crit, x)["c1"]
  order = list(np.argsort(scores))
  assert order[0] == DEAD  # its contribution is exactly zero
  assert order == _greedy_reference(_contributions(consumer, x, w1, b1, w2))
  np.testing.assert_array_equal(np.sort(scores), np.arange(5))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_lasso_matches_the_lars_reference(framework, consumer):
  model, w1, b1, w2 = _model(framework, consumer)
  x = _data()
  scores = tps.score(model, lasso_lib.Lasso(positions_per_sample=64), x)["c1"]
  z = _contributions(consumer, x, w1, b1, w2)
  alphas, _, coefs = linear_model.lars_path(z, z.sum(axis=1), method="lasso")
  want = np.zeros(5)
  for c in range(5):
    nz = np.flatnonzero(coefs[c])
    if nz.size:
      want[c] = alphas[nz[0] - 1] / alphas[0]
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-9)
  assert scores[DEAD] == 0.0 and (np.delete(scores, DEAD) > 0).all()


def test_lasso_recovers_a_planted_sparse_beta():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(400, 10))
  beta = np.zeros(10)
  support = [1, 4, 8]
  beta[support] = [2.0, -1.5, 1.0]
  y = z @ beta
  alphas, coefs = lasso_lib.lasso_path(z.T @ z, z.T @ y, len(z))
  np.testing.assert_allclose(coefs[:, -1], beta, atol=1e-8)
  lam = lasso_lib.entry_alphas(alphas, coefs)
  assert sorted(np.argsort(-lam)[:3]) == support
  assert (lam[[c for c in range(10) if c not in support]] == 0).all()
  # Along the path, the first knot with three non-zero β has the support.
  k = next(k for k in range(coefs.shape[1])
           if np.count_nonzero(coefs[:, k]) == 3)
  assert sorted(np.flatnonzero(coefs[:, k])) == support


def test_thinet_removal_order_on_a_gram():
  # Channel 2 is the weakest; then channel 1 goes before channel 0 of the
  # same size because it partly cancels channel 2's (removed) contribution.
  z = np.array([[1.0, -1.0, 0.3], [2.0, -2.0, 0.1], [0.5, -0.5, 0.2]])
  order = thinet_lib.removal_order(z.T @ z)
  assert list(order) == [2, 1, 0]
  assert list(order) == _greedy_reference(z)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_thinet_prunes_locally_and_refuses_global(framework, tmp_path):
  model, *_ = _model(framework, "conv")
  x = _data()
  result = tps.prune(model, "thinet", data=x, ratio=0.2, scope="local")
  np.testing.assert_array_equal(result.keep["c1"], [0, 1, 3, 4])
  result = tps.prune(model, "thinet", data=x, ratios={"c1": 0.2})
  np.testing.assert_array_equal(result.keep["c1"], [0, 1, 3, 4])
  with pytest.raises(ValueError, match="'thinet'.*scope='local'"):
    tps.prune(model, "thinet", data=x, ratio=0.2)
  with pytest.raises(ValueError, match="'thinet'"):
    tps.score(model, "thinet")
  # Every entry point that ranks across groups refuses it the same way,
  # before any training.
  local_only = "'thinet' ranks channels within each group only"
  with pytest.raises(ValueError, match=local_only):
    tps.prune_channels(model, "thinet", data=x)
  with pytest.raises(ValueError, match=local_only):
    tps.iterative_prune(model, "thinet", target_macs=0.3, data=x,
                        finetune=lambda m: m)
  with pytest.raises(ValueError, match=local_only):
    tps.lottery.find_channel_ticket(model, (x, np.zeros(len(x), "int32")),
                                    rounds=1, criterion="thinet")
  tps.prune_channels(model, "thinet", data=x, scope="local")
  # target_latency weighs groups against each other, with `ratios` too.
  lm = tps.latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                        verbose=0)
  with pytest.raises(ValueError, match=local_only):
    tps.prune(model, "thinet", data=x, target_latency=0.2, latency=lm,
              ratios={"c1": 0.2})
  with pytest.raises(ValueError, match="positions_per_sample"):
    thinet_lib.ThiNet(positions_per_sample=0)


def test_lasso_prunes_the_dead_channel_first():
  model, *_ = _model("keras3", "dense")
  result = tps.prune(model, "lasso", data=_data(), ratio=0.2)
  np.testing.assert_array_equal(result.keep["c1"], [0, 1, 3, 4])


@pytest.mark.parametrize("use_tf", (True, False))
@pytest.mark.parametrize("taps,outputs", ((1, 8), (1, 1), (9, 96), (4, 4)))
@pytest.mark.parametrize("offset", (0.0, 3.0))
@pytest.mark.parametrize("reads", (1, 2))
def test_gram_sum_matches_the_contributions_gram(use_tf, taps, outputs,
                                                 offset, reads):
  """GramSum's sum over batches is the contributions' Gram, either way.

  With `offset` the inputs have a large positive mean (as after a ReLU)
  and the 3x3 kernel's taps sum to zero, so that a Gram built from taps²
  second-moment terms would cancel; such consumers keep Z Zᵀ. With two
  reads each group channel sits at two input positions (a Concatenate of
  a tensor with itself) and its contribution sums both.
  """
  rng = np.random.default_rng(taps * outputs)
  channels, index = 5, np.array([4, 0, 2])
  if reads == 2:
    index = np.array([[4, 0, 2], [1, 3, 0]])
  kernel = rng.normal(size=(taps, channels, outputs))
  if offset:
    kernel -= kernel.mean(axis=0)
  kernel = kernel.reshape(taps * channels, outputs)
  batches = [offset + rng.normal(size=(n, taps * channels))
             for n in (30, 1, 17)]
  # Reference: every row's contributions Z_c = sum_t p[t, c] kernel[t, c].
  k = kernel.reshape(taps, channels, outputs)
  p = np.concatenate(batches).reshape(-1, taps, channels)
  z = np.stack([sum(np.einsum("rt,to->ro", p[:, :, c], k[:, c])
                    for c in read).ravel()
                for read in np.atleast_2d(index.T).reshape(3, -1)])
  want = z @ z.T
  acc = cp.GramSum(kernel, [(channels, index)], use_tf)
  assert acc.entries[0].moments == cp.uses_moments(taps * reads, outputs) == (
      taps * reads == 1 and outputs > 1)
  for b in batches:
    acc.add(b)
  (got,) = acc.results()
  scale = np.abs(want).max()
  np.testing.assert_allclose(got, want, rtol=1e-4 if use_tf else 1e-10,
                             atol=(1e-5 if use_tf else 1e-12) * scale)


def test_gram_sum_rejects_a_kernel_of_partial_taps():
  with pytest.raises(ValueError, match="does not hold whole taps of 4"):
    cp.GramSum(np.ones((10, 3)), [(4, np.array([0, 1]))], False)


def _twice_model(framework, kind, seed=0):
  """c1 (3, relu) read twice by one consumer u through a Concatenate.

  'same': Concatenate([r, r]) -> u (3x3); 'residual': Concatenate([r,
  Add([r, c2(r)])]) -> u (3x3), c2 (1x1) and c1 being one group through the
  Add; 'dense': Concatenate([r, r]) -> Flatten -> u (Dense).
  Channel c's contribution to u's outputs sums both places it is read at.
  """
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((5, 5, 2))
  r = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inp)
  if kind == "residual":
    cat = L.Concatenate(name="cat")([r, L.Add(name="add")([
        r, L.Conv2D(3, 1, name="c2")(r)])])
  else:
    cat = L.Concatenate(name="cat")([r, r])
  if kind == "dense":
    out = L.Dense(4, name="u")(L.Flatten(name="flat")(cat))
  else:
    out = L.Flatten(name="flat")(L.Conv2D(4, 3, name="u")(cat))
  model = keras.Model(inp, out)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    ws = layer.get_weights()
    if ws:
      layer.set_weights([rng.normal(size=w.shape).astype("float32")
                         for w in ws])
  return model


def _twice_contributions(model, kind, x):
  """(equations, 3) contributions of each c1 channel to its consumers.

  For u: u's output on its actual input with every channel but the two
  reads of c zeroed, minus u's bias; for 'residual' also c2's (c1's other
  consumer) output on c1's output with every channel but c zeroed.
  """
  keras = frameworks.of(model).keras
  r, cat = [np.asarray(t, np.float32) for t in keras.Model(
      model.input, [model.get_layer("c1").output,
                    model.get_layer("cat").output])(x, training=False)]
  cols = []
  for c in range(3):
    mask = np.zeros(6, "float32")
    mask[[c, 3 + c]] = 1.0
    u_in = cat * mask
    if kind == "dense":
      u_in = u_in.reshape(len(u_in), -1)
    u = model.get_layer("u")
    parts = [np.asarray(u(u_in), np.float64) - u.get_weights()[1]]
    if kind == "residual":
      only = np.zeros_like(r)
      only[..., c] = r[..., c]
      c2 = model.get_layer("c2")
      parts.append(np.asarray(c2(only), np.float64) - c2.get_weights()[1])
    cols.append(np.concatenate([v.ravel() for v in parts]))
  return np.stack(cols, axis=1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ("same", "residual", "dense"))
def test_a_group_read_twice_by_one_consumer_sums_both_reads(framework, kind):
  model = _twice_model(framework, kind)
  x = np.random.default_rng(2).normal(size=(6, 5, 5, 2)).astype("float32")
  z = _twice_contributions(model, kind, x)
  graph = tps.ChannelGraph(model)
  ctx = tps.criteria.context.ScoringContext(model, graph, data=x)
  got, equations = cp.group_grams(ctx, 10**6, 0)["c1"]
  assert equations == len(z)
  np.testing.assert_allclose(got, z.T @ z, rtol=1e-4,
                             atol=1e-6 * np.abs(z.T @ z).max())
  scores = tps.score(model, thinet_lib.ThiNet(positions_per_sample=10**6),
                     x)["c1"]
  assert list(np.argsort(scores)) == _greedy_reference(z)


@pytest.mark.parametrize("name", ["thinet", "lasso"])
def test_consumers_inside_a_nested_model_are_named_in_a_warning(name):
  """c1 is read by c2 at the top level and by ic inside a nested model:
  scored from c2 alone (with a warning); inner group 'inner/ic' is read
  only inside (no scores, a warning)."""
  keras = frameworks.get("tf_keras").keras
  L = keras.layers
  keras.utils.set_random_seed(0)
  inner = keras.Sequential([keras.Input((6, 6, 5)),
                            L.Conv2D(3, 3, activation="relu", name="ic"),
                            L.Conv2D(2, 1, name="ic2")], name="inner")
  inp = keras.Input((6, 6, 3))
  a = L.Conv2D(5, 3, padding="same", activation="relu", name="c1")(inp)
  b = L.GlobalAveragePooling2D()(inner(a))
  c = L.Flatten()(L.Conv2D(4, 3, strides=2, padding="same", name="c2")(a))
  model = keras.Model(inp, L.Concatenate()([b, c]))
  x = _data()
  with pytest.warns(UserWarning) as record:
    got = tps.score(model, name, x)
  text = "\n".join(str(w.message) for w in record)
  assert (f"criterion '{name}' cannot read the consumers' outputs inside "
          "nested models: group 'c1' is read there by layer 'inner/ic', so "
          "it is scored without them") in text
  assert ("group 'inner/ic' is read there by layer 'inner/ic2', so it gets "
          "no scores and is left whole") in text
  assert "inner/ic" not in got
  # c1's scores: c2's contributions alone, as for a model without inner.
  plain = keras.Model(inp, c)
  np.testing.assert_allclose(got["c1"], tps.score(plain, name, x)["c1"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_single_input_model_takes_x_by_name_or_in_a_list(framework):
  # As Keras' fit does: {input name: x}, [x] and (x,) are x.
  model, *_ = _model(framework, "conv", input_name="img")
  name = "img"
  x = _data()
  y = np.zeros(len(x))
  for crit in ("thinet", "lasso"):
    want = tps.score(model, crit, x)["c1"]
    for given in ({name: x}, [x], (x,)):
      got = tps.score(model, crit, (given, y))["c1"]
      np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=crit)
    got = tps.score(model, crit, tf.data.Dataset.from_tensor_slices(
        {name: x}).batch(5))["c1"]
    np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=crit)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_single_input_model_given_a_bad_structure_names_the_input(
    framework):
  # Checked as the inputs of a model of several inputs are, before any
  # work, in words naming `data` and the input (not in Keras' words).
  model, *_ = _model(framework, "conv", input_name="img")
  name = "img"
  x = _data()
  bad = [({"wrong": x}, f"gives inputs \\['wrong'\\].*one input, '{name}'"),
         ([x, x], f"gives 2 input arrays.*one input, '{name}'"),
         ({name: x[:, :5]}, f"has input '{name}' of shape .*expects "
                            r"\(batch, 6, 6, 3\)"),
         ([x[..., :2]], f"has input '{name}' of shape .*expects "
                        r"\(batch, 6, 6, 3\)")]
  for given, match in bad:
    # (A dataset would stack a list into one tensor: dicts only there.)
    datasets = [tf.data.Dataset.from_tensor_slices(given).batch(4)] if (
        isinstance(given, dict)) else []
    for data in [(given,)] + datasets:
      for crit in ("thinet", "lasso", "apoz"):
        with pytest.raises(ValueError, match="`data` " + match):
          tps.score(model, crit, data)
      with pytest.raises(ValueError, match="`data` " + match):
        tps.prune(model, "l1", data=data, ratio=0.2, scope="local",
                  reconstruct=True)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", ["thinet", "lasso"])
def test_a_model_without_a_consumer_they_read_is_a_value_error(framework,
                                                               name):
  # Conv3D consumers only: they would score nothing and prune nothing.
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((4, 4, 4, 2))
  x = L.Conv3D(5, 2, activation="relu", name="c1")(inp)
  x = L.Conv3D(4, 2, activation="relu", name="c2")(x)
  model = keras.Model(inp, L.Conv3D(2, 2, name="c3")(x))
  x = np.random.default_rng(9).normal(size=(6, 4, 4, 4, 2)).astype("float32")
  words = (f"criterion '{name}' reads the outputs of top-level Conv1D, "
           "Conv2D or Dense consumers .*has none in a prunable group")
  with pytest.raises(ValueError, match=words):
    tps.score(model, name, x)
  with pytest.raises(ValueError, match=words):
    tps.prune(model, name, data=x, ratio=0.5, scope="local")
