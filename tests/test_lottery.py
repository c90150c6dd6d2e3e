"""tps.lottery: iterative magnitude pruning with rewinding, and controls."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks

FRAMEWORKS = ("tf_keras", "keras3")


def mlp(framework, seed=0):
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((12,)),
      keras.layers.Dense(16, activation="relu", name="fc1"),
      keras.layers.Dense(8, activation="relu", name="fc2"),
      keras.layers.Dense(3, name="out")])


@pytest.fixture(scope="module")
def xy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, 12)).astype("float32")
  return x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)


def kernels(model):
  return {l.name: np.array(l.kernel.numpy()) for l in model.layers}


def reference_masks(trained, masks, fraction):
  """Global magnitude pruning of `fraction` of the kept weights, in numpy."""
  names = list(masks)
  k = kernels(trained)
  values = np.concatenate([np.abs(k[n])[masks[n]] for n in names])
  count = int(round(fraction * values.size))
  threshold = np.sort(values)[count - 1]
  return {n: masks[n] & (np.abs(k[n]) > threshold) for n in names}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_masks_nest_and_survivors_rewind_to_init(xy, framework):
  model = mlp(framework)
  init = kernels(model)
  init_all = [w.copy() for w in model.get_weights()]
  result = tps.lottery.find_ticket(model, xy, rounds=2, prune_fraction=0.5,
                                   epochs=2, batch_size=32, eval_data=xy,
                                   keep_models=True)
  # The input model is untouched.
  for a, b in zip(init_all, model.get_weights()):
    np.testing.assert_array_equal(a, b)
  total = sum(v.size for v in init.values())
  assert [round(r * total) for r in result.remaining] == [
      total, round(total / 2), round(total / 4)]
  for r in (1, 2):
    prev, now = result.masks[r - 1], result.masks[r]
    for name in now:
      assert not (now[name] & ~prev[name]).any()   # nested
    # Each round prunes the smallest trained magnitudes (numpy reference).
    want = reference_masks(result.models[r - 1], prev, 0.5)
    for name in now:
      np.testing.assert_array_equal(now[name], want[name])
    # Rewound: initial values on the kept entries, zero on the pruned.
    rewound = result.rewound_weights(r)
    for name, mask in now.items():
      np.testing.assert_array_equal(rewound[name][0], init[name] * mask)
      np.testing.assert_array_equal(rewound[name][1],
                                    model.get_layer(name).bias.numpy())
    # Trained with the pruned weights held at zero, the others moved.
    trained = kernels(result.models[r])
    for name, mask in now.items():
      np.testing.assert_array_equal(trained[name][~mask], 0.0)
      assert not np.allclose(trained[name][mask], init[name][mask])
  assert all(0.0 <= a <= 1.0 for a in result.accuracy)
  assert type(result.model).__module__.split(".")[0] == type(
      model).__module__.split(".")[0]
  ticket = result.ticket(2)
  np.testing.assert_array_equal(ticket.get_layer("fc1").kernel.numpy(),
                                init["fc1"] * result.masks[2]["fc1"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_controls_and_layer_scope(xy, framework):
  model = mlp(framework)
  init = kernels(model)
  result = tps.lottery.find_ticket(
      model, xy, rounds=1, scope="layer",
      prune_fraction={"fc1": 0.5, "fc2": 0.5, "out": 0.25}, epochs=1)
  masks = result.masks[1]
  for name, fraction in (("fc1", 0.5), ("fc2", 0.5), ("out", 0.25)):
    assert masks[name].sum() == masks[name].size - round(
        fraction * masks[name].size)
  # Random masks: the same per-layer sparsity, elsewhere; same init.
  rm = tps.lottery.random_mask(result, seed=3)
  assert rm.remaining == pytest.approx(result.remaining[1])
  for name, mask in masks.items():
    assert rm.masks[name].sum() == mask.sum()
    assert not np.array_equal(rm.masks[name], mask)
    np.testing.assert_array_equal(kernels(rm.model)[name][~rm.masks[name]],
                                  0.0)
  # Random re-init: the same masks, other weights.
  rr = tps.lottery.random_reinit(result, seed=3)
  for name, mask in masks.items():
    np.testing.assert_array_equal(rr.masks[name], mask)
    k = kernels(rr.model)[name]
    np.testing.assert_array_equal(k[~mask], 0.0)
    assert not np.allclose(k[mask], init[name][mask], atol=0.05)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rewind_to_a_checkpoint(xy, framework):
  model = mlp(framework)
  init = kernels(model)
  ckpt = tps.RewindCheckpoint(epoch=1)
  result = tps.lottery.find_ticket(model, xy, rounds=1, rewind=ckpt,
                                   epochs=2)
  early = kernels(ckpt.model_at_epoch)
  rewound = result.rewound_weights(1)
  for name, mask in result.masks[1].items():
    np.testing.assert_array_equal(rewound[name][0], early[name] * mask)
    assert not np.allclose(early[name], init[name])
  with pytest.raises(ValueError, match="rewind"):
    tps.lottery.find_ticket(mlp(framework), xy, rounds=1, epochs=1,
                            rewind=tps.RewindCheckpoint(epoch=3))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_channel_ticket_on_a_tiny_conv_net(framework):
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  model = tps.zoo.residual_cnn(input_shape=(8, 8, 1), width=8,
                               framework=framework)
  rng = np.random.default_rng(0)
  x = rng.random((48, 8, 8, 1)).astype("float32")
  y = rng.integers(0, 10, 48)
  result = tps.lottery.find_channel_ticket(
      model, (x, y), rounds=2, prune_fraction=0.25, epochs=1, batch_size=16,
      eval_data=(x, y))
  assert result.keep[0] == {}
  assert result.remaining[0] == 1.0
  assert result.remaining[2] < result.remaining[1] < 1.0
  for gid, kept in result.keep[2].items():
    before = result.keep[1].get(gid)
    if before is not None:
      assert set(kept) <= set(before)
  slim = result.model
  assert tps.count_params(slim) < tps.count_params(model)
  stem = result.keep[2].get("stem_conv")
  if stem is not None:
    assert slim.get_layer("stem_conv").kernel.shape[-1] == len(stem)
  assert len(result.accuracy) == 3 and all(
      0.0 <= a <= 1.0 for a in result.accuracy)


def nested_mlp(framework, shared=False, seed=0):
  """fc1 -> [sub: fc2 -> [deep (Sequential): fc3]] -> out; with `shared`,
  a Dense layer called both by the parent and inside `sub`."""
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(seed)
  dense = keras.layers.Dense
  deep = keras.Sequential([keras.Input((8,)),
                           dense(8, activation="relu", name="fc3")],
                          name="deep")
  shared_layer = dense(8, activation="relu", name="shared")
  sub_in = keras.Input((8,))
  h = dense(8, activation="relu", name="fc2")(sub_in)
  if shared:
    h = shared_layer(h)
  sub = keras.Model(sub_in, deep(h), name="sub")
  inp = keras.Input((12,))
  x = dense(8, activation="relu", name="fc1")(inp)
  if shared:
    x = shared_layer(x)
  return keras.Model(inp, dense(3, name="out")(sub(x)))


def layer_at(model, path):
  for name in path.split("/"):
    model = model.get_layer(name)
  return model


@pytest.mark.parametrize("framework", FRAMEWORKS)
# The shared model is the other plus a shared layer: the plain one is slow.
@pytest.mark.parametrize("shared", [pytest.param(False, marks=pytest.mark.slow),
                                    True])
def test_kernels_of_nested_models_are_pruned(xy, framework, shared):
  model = nested_mlp(framework, shared=shared)
  before = [w.copy() for w in model.get_weights()]
  paths = ["fc1"] + ["shared"] * shared + ["sub/fc2", "sub/deep/fc3", "out"]
  result = tps.lottery.find_ticket(model, xy, rounds=2, prune_fraction=0.5,
                                   epochs=1, keep_models=True)
  for a, b in zip(before, model.get_weights()):   # the input is untouched
    np.testing.assert_array_equal(a, b)
  assert [list(m) for m in result.masks] == [paths] * 3
  # Every kernel counts, a shared one once: 1/2, then 1/4 of them remain.
  init = {p: np.array(layer_at(model, p).kernel.numpy()) for p in paths}
  total = sum(k.size for k in init.values())
  assert [round(r * total) for r in result.remaining] == [
      total, round(total / 2), round(total / 4)]
  rewound = result.rewound_weights(2)
  ticket = result.ticket(2)
  for r in (1, 2):
    trained = result.models[r]
    if shared:   # the trained copies keep the layer shared
      assert layer_at(trained, "sub/shared") is trained.get_layer("shared")
    for path, mask in result.masks[r].items():
      kernel = layer_at(trained, path).kernel.numpy()
      np.testing.assert_array_equal(kernel[~mask], 0.0)
      assert not np.allclose(kernel[mask], init[path][mask])
  for path, mask in result.masks[2].items():
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(rewound[path][0], init[path] * mask)
    np.testing.assert_array_equal(layer_at(ticket, path).kernel.numpy(),
                                  init[path] * mask)
  # The controls mask the nested kernels as well.
  for control in (tps.lottery.random_mask(result, seed=3),
                  tps.lottery.random_reinit(result, seed=3)):
    assert list(control.masks) == paths
    assert control.remaining == pytest.approx(result.remaining[2])
    for path, mask in control.masks.items():
      np.testing.assert_array_equal(
          layer_at(control.model, path).kernel.numpy()[~mask], 0.0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("criterion", ["taylor", "apoz"])
def test_channel_ticket_asks_for_score_data_before_training(
    xy, framework, criterion):
  keras = frameworks.get(framework).keras
  epochs = []

  class Count(keras.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      epochs.append(epoch)
  with pytest.raises(ValueError,
                     match=f"criterion '{criterion}'.*`score_data`"):
    tps.lottery.find_channel_ticket(mlp(framework), xy, rounds=1,
                                    criterion=criterion, epochs=2,
                                    callbacks=[Count()])
  assert epochs == []   # refused before round 0's training


@pytest.mark.parametrize("kwargs, match", [
    ({"prune_fraction": 0.0}, "prune_fraction"),
    ({"prune_fraction": 1.0}, "prune_fraction"),
    ({"prune_fraction": -0.2}, "prune_fraction"),
    ({"prune_fraction": {"fc1": 0.5}}, "scope='layer'"),
    ({"prune_fraction": {"nope": 0.5}, "scope": "layer"}, "nope"),
    ({"prune_fraction": {"fc1": 1.5}, "scope": "layer"}, "prune_fraction"),
    ({"scope": "local"}, "scope"),
    ({"rewind": "final"}, "rewind"),
    ({"rounds": 0}, "rounds"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_arguments(xy, kwargs, match):
  args = {"rounds": 1, **kwargs}
  with pytest.raises(ValueError, match=match):
    tps.lottery.find_ticket(mlp("tf_keras"), xy, **args)


def test_bad_types(xy):
  with pytest.raises(TypeError, match="rewind"):
    tps.lottery.find_ticket(mlp("keras3"), xy, rounds=1, rewind=3)
  with pytest.raises(TypeError, match="data"):
    tps.lottery.find_ticket(mlp("keras3"), "train.csv", rounds=1)
  with pytest.raises(TypeError, match="result"):
    tps.lottery.random_mask("ticket")
  with pytest.raises(ValueError, match="prune_fraction"):
    tps.lottery.find_channel_ticket(mlp("keras3"), xy, rounds=1,
                                    prune_fraction=1.2)


def _output_cases(framework):
  """(model, whether its first output is a softmax) pairs."""
  keras = frameworks.get(framework).keras
  layers = keras.layers
  if framework == "tf_keras":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    op_softmax = tf.nn.softmax
  else:
    op_softmax = keras.ops.softmax

  def head(out_fn):
    inp = keras.Input((4,))
    return keras.Model(inp, out_fn(layers.Dense(3)(inp)))

  cases = {
      "logits": (head(lambda x: layers.Dense(2)(x)), False),
      "dense softmax": (head(
          lambda x: layers.Dense(2, activation="softmax")(x)), True),
      "Activation": (head(lambda x: layers.Activation("softmax")(x)), True),
      "Softmax layer": (head(lambda x: layers.Softmax()(x)), True),
      "op": (head(op_softmax), True),
  }
  sub = keras.Sequential([keras.Input((3,)), layers.Dense(2), layers.Softmax()])
  inp = keras.Input((4,))
  x = layers.Dense(3)(inp)
  probs, aux = sub(x), layers.Dense(5, name="aux")(x)
  # model.layers ends in the logits layer 'aux'; the first output is the
  # nested softmax.
  cases["nested softmax first"] = (keras.Model(inp, [probs, aux]), True)
  cases["nested softmax second"] = (keras.Model(inp, [aux, probs]), False)
  inp = keras.Input((4,))
  logits_sub = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
  cases["nested logits"] = (keras.Model(inp, logits_sub(layers.Dense(3)(inp))),
                            False)
  return cases


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_default_loss_reads_the_layer_that_makes_the_output(framework):
  """find_ticket's default loss is from logits unless the first output is a
  softmax, judged from the layer that makes it (through nested models, and
  a softmax op), not from the last entry of `model.layers`."""
  from tfprune_survey import lottery  # pylint: disable=g-import-not-at-top
  wrong = {}
  for name, (model, softmax) in _output_cases(framework).items():
    from_logits = lottery._default_loss(model).get_config()["from_logits"]
    if from_logits == softmax:
      wrong[name] = from_logits
  assert not wrong, f"from_logits wrong for {wrong}"


def test_masked_rounds_of_a_softmax_model_take_its_probabilities(xy):
  """tf_keras' masked rounds train under tfmot's wrapper, which hides the
  output layer's softmax: the default loss is judged from the plain model,
  so no round treats the probabilities as logits (tf_keras would only warn
  and take the softmax's input), and the loss is the explicit one's."""
  import warnings  # pylint: disable=g-import-not-at-top
  keras = frameworks.get("tf_keras").keras

  def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(16, activation="relu", name="fc1"),
        keras.layers.Dense(3, activation="softmax", name="out")])
  kwargs = dict(rounds=2, prune_fraction=0.5, epochs=2)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    default = tps.lottery.find_ticket(model(), xy, **kwargs)
  assert not [w for w in caught if "from_logits=True" in str(w.message)]
  explicit = tps.lottery.find_ticket(
      model(), xy, loss=keras.losses.SparseCategoricalCrossentropy(
          from_logits=False), **kwargs)
  for got, want in zip(default.histories, explicit.histories):
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layers_whose_kernels_live_in_cells_or_sublayers_are_not_pruned(
    framework):
  """An LSTM's kernels are its cell's, a MultiHeadAttention's its inner
  dense layers': neither layer has a `kernel` of its own, so neither is
  pruned (they were an AttributeError); the Dense kernels are."""
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 4))
  h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inp, inp)
  h = keras.layers.Dense(5, name="proj")(h)
  h = keras.layers.LSTM(5, name="rnn")(h)
  model = keras.Model(inp, keras.layers.Dense(3, name="out")(h))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 6, 4)).astype("float32")
  y = rng.integers(0, 3, 32)
  result = tps.lottery.find_ticket(model, (x, y), rounds=1,
                                   prune_fraction=0.5)
  assert [list(m) for m in result.masks] == [["proj", "out"]] * 2
  assert result.remaining[1] == pytest.approx(0.5, abs=0.02)
  for path, mask in result.masks[1].items():
    kernel = result.model.get_layer(path).kernel.numpy()
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(kernel[~mask], 0.0)
  with pytest.raises(ValueError, match=r"\['rnn'\] that have no kernel"):
    tps.lottery.find_ticket(model, (x, y), rounds=1, scope="layer",
                            prune_fraction={"rnn": 0.5})


def depthwise_net(framework):
  """conv -> depthwise -> pool -> out, with the same weights in either
  Keras (drawn in numpy)."""
  keras = frameworks.get(framework).keras
  layers = keras.layers
  inp = keras.Input((6, 6, 2))
  h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
  h = layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
  h = layers.GlobalAveragePooling2D()(h)
  model = keras.Model(inp, layers.Dense(3, name="out")(h))
  rng = np.random.default_rng(0)
  model.set_weights([rng.normal(size=w.shape).astype("float32")
                     for w in model.get_weights()])
  return model


def test_depthwise_kernels_are_pruned_alike_in_both_kerases():
  # A depthwise kernel is a kernel: Keras 3 (whose DepthwiseConv2D holds
  # `kernel`) pruned it, tf_keras (`depthwise_kernel`) left it whole, so
  # the same model got other masks and remaining fractions.
  rng = np.random.default_rng(1)
  x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 3, 32)
  paths = ["conv", "dw", "out"]
  shapes = {"conv": (3, 3, 2, 4), "dw": (3, 3, 4, 1), "out": (4, 3)}
  init = {}
  found = {}
  for fw in FRAMEWORKS:
    model = depthwise_net(fw)
    w = model.get_weights()
    init[fw] = {"conv": w[0], "dw": w[2], "out": w[4]}
    # Untrained rounds: the masks are those of the same weights.
    found[fw] = tps.lottery.find_ticket(
        model, lambda m, callbacks: None, rounds=2, prune_fraction=0.5)
  for fw in FRAMEWORKS:
    assert [list(m) for m in found[fw].masks] == [paths] * 3, fw
    assert {p: m.shape for p, m in found[fw].masks[2].items()} == shapes
    assert found[fw].remaining == pytest.approx([1.0, 0.5, 0.25]), fw
  # Both Kerases find the numpy reference masks.
  total = sum(int(np.prod(s)) for s in shapes.values())
  values = np.sort(np.concatenate(
      [np.abs(init["keras3"][p]).ravel() for p in paths]))
  threshold = values[total // 2 - 1]
  for fw in FRAMEWORKS:
    np.testing.assert_array_equal(init[fw]["dw"], init["keras3"]["dw"])
    for p in paths:
      np.testing.assert_array_equal(found[fw].masks[1][p],
                                    np.abs(init[fw][p]) > threshold)
  # Trained under the masks, the pruned depthwise weights stay zero.
  for fw in FRAMEWORKS:
    result = tps.lottery.find_ticket(depthwise_net(fw), (x, y), rounds=1,
                                     prune_fraction=0.5, epochs=2)
    dw = result.model.get_layer("dw")
    kernel = np.asarray(dw.weights[0])
    mask = result.masks[1]["dw"]
    assert kernel.shape == mask.shape and 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(kernel[~mask], 0.0)
    assert not np.allclose(kernel[mask], init[fw]["dw"][mask]), fw
