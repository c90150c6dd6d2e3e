"""Which feature map the activation criteria read, checked against numpy.

The activation criteria read a group's feature map at the last point that
still has the producer's spatial layout: after BN, activations and merges,
before pooling, Flatten, Reshape or Concatenate. Here the ReLU outputs
before a MaxPooling, a GlobalAveragePooling and a Flatten->Dense are taken
from a sub-model, dL/dY from a GradientTape on a hand-written forward pass,
and apoz, variance, entropy and taylor are computed from them in numpy and
compared with `tps.score`, in tf_keras and Keras 3. The training-time path
(`prune_channels` without data) must read the same tensors.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey.criteria import collector
from tfprune_survey.training import controller as controller_lib

FRAMEWORKS = ("tf_keras", "keras3")
RTOL = 1e-5
POINTS = {"c1": "r1", "c2": "r2", "c3": "r3", "d1": "r4"}


def keras_of(framework):
  return frameworks.get(framework).keras


def build(framework):
  """c1-bn1-r1-maxpool-c2-r2-{gap-d1, c3-r3-flatten-d2}-add-r4-out."""
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((8, 8, 2))
  h = L.Conv2D(4, 3, padding="same", name="c1")(inp)
  h = L.BatchNormalization(name="bn1")(h)
  r1 = L.ReLU(name="r1")(h)
  h = L.MaxPooling2D(2, name="mp")(r1)
  h = L.Conv2D(5, 3, padding="same", name="c2")(h)
  r2 = L.ReLU(name="r2")(h)
  a = L.Dense(6, name="d1")(L.GlobalAveragePooling2D(name="gap")(r2))
  h = L.Conv2D(3, 1, name="c3")(r2)
  r3 = L.ReLU(name="r3")(h)
  b = L.Dense(6, name="d2")(L.Flatten(name="flat")(L.Dropout(
      0.5, name="drop")(r3)))
  r4 = L.ReLU(name="r4")(L.Add(name="add")([a, b]))
  model = keras.Model(inp, L.Dense(3, name="out")(r4))
  bn = model.get_layer("bn1")
  bn.set_weights([np.array([1.0, 0.5, 2.0, 1.5], "float32"),
                  np.array([0.3, -0.5, 0.0, 0.2], "float32"),
                  np.array([0.1, 0.0, -0.2, 0.3], "float32"),
                  np.array([1.0, 2.0, 0.5, 1.5], "float32")])
  return model


def forward(model, x, taps):
  """The model by hand, with `taps[i]` added to point i (for dL/dY)."""
  g = model.get_layer
  r1 = g("r1")(g("bn1")(g("c1")(x), training=False)) + taps[0]
  r2 = g("r2")(g("c2")(g("mp")(r1))) + taps[1]
  a = g("d1")(g("gap")(r2))
  r3 = g("r3")(g("c3")(r2)) + taps[2]
  b = g("d2")(g("flat")(r3))
  r4 = g("r4")(a + b) + taps[3]
  return g("out")(r4), [r1, r2, r3, r4]


def references(model, x, y):
  """{group: {criterion: numpy scores}} from the ReLU outputs."""
  keras = frameworks.of(model).keras
  sub = keras.Model(model.inputs, [model.get_layer(n).output
                                   for n in POINTS.values()])
  feats = [np.asarray(f, np.float64) for f in sub(x, training=False)]
  shapes = [(len(x),) + tuple(f.shape[1:]) for f in feats]
  taps = [tf.zeros(s) for s in shapes]
  with tf.GradientTape() as tape:
    tape.watch(taps)
    logits, tapped = forward(model, tf.constant(x), taps)
    loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True))
  grads = [np.asarray(g, np.float64) for g in tape.gradient(loss, taps)]
  for f, t in zip(feats, tapped):   # the hand-written pass is the model's
    np.testing.assert_allclose(np.asarray(t), f, rtol=1e-5, atol=1e-6)
  out = {}
  for gid, f, dy in zip(POINTS, feats, grads):
    f3 = f.reshape(len(x), -1, f.shape[-1])
    dy3 = dy.reshape(f3.shape)
    pooled = f3.mean(axis=1)
    ent = []
    for c in range(f3.shape[-1]):
      col = pooled[:, c]
      if col.max() <= col.min():
        ent.append(0.0)
        continue
      counts, _ = np.histogram(col, bins=8, range=(col.min(), col.max()))
      p = counts[counts > 0] / len(col)
      ent.append(-(p * np.log(p)).sum())
    taylor = np.abs((dy3 * f3).mean(axis=1)).mean(axis=0)
    out[gid] = {
        "apoz": -(f3 <= 0).mean(axis=(0, 1)),
        "variance": np.sqrt((f3 ** 2).sum(axis=1)).var(axis=0),
        "entropy": np.array(ent),
        "taylor": taylor / np.linalg.norm(taylor),
        "zeros": (f3 == 0).mean(axis=(0, 1))}
  return out


@pytest.fixture(scope="module", params=FRAMEWORKS)
def case(request):
  model = build(request.param)
  rng = np.random.default_rng(3)
  x = rng.standard_normal((48, 8, 8, 2)).astype("float32")
  y = rng.integers(0, 3, 48)
  return model, x, y, references(model, x, y)


def test_points_are_the_relu_outputs_before_pooling_and_flatten(case):
  model = case[0]
  points = collector.observation_points(tps.ChannelGraph(model))
  assert sorted(p.name for p in points) == sorted(POINTS.values())
  for p in points:
    assert p.tensor is model.get_layer(p.name).output
    assert p.layout.spatial == 1 and p.layout.width == p.tensor.shape[-1]
    assert p.layer == p.name
  # r2 is read by c3 directly and by d1 through the pooling: one point.
  assert [p.name for p in points].count("r2") == 1


@pytest.mark.parametrize("name", ["apoz", "variance", "entropy", "taylor"])
def test_scores_match_numpy_on_the_relu_outputs(case, name):
  model, x, y, ref = case
  crit = (tps.criteria.get("entropy").from_config({"bins": 8})
          if name == "entropy" else name)
  got = tps.score(model, crit, (x, y))
  assert sorted(got) == sorted(POINTS)
  for gid in POINTS:
    np.testing.assert_allclose(got[gid], ref[gid][name], rtol=1e-4,
                               atol=1e-6, err_msg=f"{name} {gid}")


def test_apoz_counts_the_zeros_of_the_relu_not_of_the_pooled_values(case):
  """The bug this guards against: after GlobalAveragePooling almost no value
  is zero, while the ReLU's output is mostly zeros."""
  model, x, y, ref = case
  got = tps.score(model, "apoz", (x, y))
  np.testing.assert_allclose(-got["c2"], ref["c2"]["zeros"], rtol=RTOL)
  keras = frameworks.of(model).keras
  pooled = np.asarray(keras.Model(model.inputs, model.get_layer(
      "gap").output)(x, training=False))
  assert (-got["c2"] - (pooled <= 0).mean(axis=0)).max() > 0.05


def test_concatenate_inputs_are_points_with_their_part_of_the_layout():
  keras = keras_of("keras3")
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  a = L.ReLU(name="ra")(L.Conv2D(3, 3, padding="same", name="ca")(inp))
  b = L.ReLU(name="rb")(L.Conv2D(2, 1, name="cb")(inp))
  h = L.Concatenate(name="cat")([L.MaxPooling2D(name="pa")(a),
                                 L.MaxPooling2D(name="pb")(b)])
  model = keras.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D(
      )(L.Conv2D(4, 1, name="mix")(h))))
  graph = tps.ChannelGraph(model)
  points = {p.name: p for p in collector.observation_points(graph)}
  assert set(points) == {"ra", "rb", "mix"}
  assert points["ra"].layout.width == 3 and points["rb"].layout.width == 2
  assert graph.group_of_var(points["rb"].layout.segments[0].var).id == "cb"
  rng = np.random.default_rng(0)
  x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
  got = tps.score(model, "apoz", x)
  for gid, layer in (("ca", "ra"), ("cb", "rb")):
    f = np.asarray(keras.Model(inp, model.get_layer(layer).output)(x))
    np.testing.assert_allclose(got[gid], -(f <= 0).mean(axis=(0, 1, 2)),
                               rtol=RTOL)


@pytest.mark.parametrize("framework, name", [
    ("tf_keras", "apoz"), ("tf_keras", "taylor"), ("keras3", "variance"),
    ("keras3", "taylor")])
def test_training_time_statistics_read_the_same_points(framework, name):
  keras = keras_of(framework)
  model = build(framework)
  # Frozen BN runs in inference mode in fit too, as scoring reads it.
  model.get_layer("bn1").trainable = False
  rng = np.random.default_rng(4)
  x = rng.standard_normal((64, 8, 8, 2)).astype("float32")
  y = rng.integers(0, 3, 64)
  never = tps.schedules.ConstantSparsity(0.5, begin_step=10 ** 6,
                                         frequency=1)
  pm = tps.prune_channels(model, name, never)
  at = {w.layer.name: w.observe_at for w in pm.layers
        if isinstance(w, tps.ChannelPruneWrapper) and w.observe}
  assert at == {"r1": "output", "r2": "output", "r3": "output",
                "r4": "output"}
  pm.compile(keras.optimizers.SGD(0.0), keras.losses.
             SparseCategoricalCrossentropy(from_logits=True))
  # Dropout is active in training: no dropout here, so the batches match.
  pm.get_layer("drop").rate = 0.0
  pm.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  got = controller_lib.make_controller(pm)._in_graph_scores()  # pylint: disable=protected-access
  want = tps.score(model, name, (x, y))
  assert sorted(got) == sorted(want) == sorted(POINTS)
  for gid in want:
    np.testing.assert_allclose(got[gid], want[gid], rtol=1e-4, atol=1e-6,
                               err_msg=gid)


def test_a_keras3_operation_is_read_and_training_falls_back_to_the_input():
  keras = keras_of("keras3")
  L = keras.layers
  inp = keras.Input((6, 6, 2))
  h = keras.ops.relu(L.Conv2D(4, 3, padding="same", name="c")(inp))
  model = keras.Model(inp, L.Dense(2, name="out")(
      L.GlobalAveragePooling2D(name="gap")(h)))
  graph = tps.ChannelGraph(model)
  (point,) = collector.observation_points(graph)
  assert point.tensor is h and point.layer is None
  assert collector.stream_points(graph) == [
      collector.StreamPoint("out", "input", point.layout)]
  rng = np.random.default_rng(0)
  x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
  f = np.asarray(keras.Model(inp, h)(x))
  np.testing.assert_allclose(tps.score(model, "apoz", x)["c"],
                             -(f <= 0).mean(axis=(0, 1, 2)), rtol=RTOL)
  # In training no wrapper can hold the operation: the consumer's input
  # (the pooled values) is observed instead, as documented.
  never = tps.schedules.ConstantSparsity(0.5, begin_step=10 ** 6,
                                         frequency=1)
  pm = tps.prune_channels(model, "apoz", never)
  assert pm.get_layer("chprune_out").observe_at == "input"
  pm.compile(keras.optimizers.SGD(0.0), keras.losses.
             SparseCategoricalCrossentropy(from_logits=True))
  pm.fit(x, np.zeros(16, "int64"), batch_size=8, epochs=1, shuffle=False,
         verbose=0, callbacks=[tps.UpdateChannelPruningStep()])
  got = controller_lib.make_controller(pm)._in_graph_scores()  # pylint: disable=protected-access
  pooled = np.asarray(keras.Model(inp, model.get_layer("gap").output)(x))
  np.testing.assert_allclose(got["c"], -(pooled <= 0).mean(axis=0),
                             rtol=RTOL)


@pytest.mark.parametrize("ops_name", ["keras.ops", "TFOps"])
def test_batch_stats_in_either_ops_namespace_match_numpy(ops_name):
  """`batch_stats` is written in keras.ops; `TFOps` is its TensorFlow
  stand-in for tf_keras models under a Keras 3 on another backend."""
  import keras  # pylint: disable=g-import-not-at-top
  from tfprune_survey.criteria import activation  # pylint: disable=g-import-not-at-top
  assert activation.stat_ops("tensorflow") is keras.ops   # this process
  ops = keras.ops if ops_name == "keras.ops" else activation.TFOps
  rng = np.random.default_rng(5)
  y = rng.standard_normal((6, 10, 3)).astype("float32")
  y[y < -0.5] = 0.0
  g = rng.standard_normal(y.shape).astype("float32")
  want = {
      "apoz": {"zeros": (y <= 0).sum(axis=(0, 1)), "count": 60.0},
      "entropy": {"pooled": y.mean(axis=1)},
      "variance": {"norms": np.sqrt((y ** 2).sum(axis=1))},
      "taylor": {"sum": np.abs((g * y).mean(axis=1)).sum(axis=0),
                 "count": 6.0}}
  for name, ref in want.items():
    got = tps.criteria.get(name).batch_stats(tf.constant(y), tf.constant(g),
                                             ops)
    assert sorted(got) == sorted(ref), name
    for k, v in ref.items():
      np.testing.assert_allclose(np.asarray(got[k]), v, rtol=1e-5,
                                 err_msg=f"{name} {k}")


def nested_base_model(framework):
  """x -> base[b1 (relu) -> b2 (relu)] -> gap -> head; base is a nested
  Functional model. Group 'base/b1' is read only by b2, inside base."""
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  bi = keras.Input((6, 6, 2))
  h = L.Conv2D(4, 3, padding="same", activation="relu", name="b1")(bi)
  h = L.Conv2D(5, 3, padding="same", activation="relu", name="b2")(h)
  base = keras.Model(bi, h, name="base")
  inp = keras.Input((6, 6, 2))
  out = L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(
      base(inp)))
  return keras.Model(inp, out), base


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", ["apoz", "variance", "entropy", "taylor"])
def test_a_group_read_only_inside_a_nested_model_is_named_in_a_warning(
    framework, name):
  model, base = nested_base_model(framework)
  rng = np.random.default_rng(5)
  x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
  y = rng.integers(0, 2, 16)
  with pytest.warns(UserWarning, match=(
      f"criterion '{name}' cannot read feature maps inside nested models: "
      "group 'base/b1' is read there by layer 'base/b2', so it gets no "
      "scores and is left whole")):
    got = tps.score(model, name, (x, y))
  assert set(got) == {"base/b2"}
  if name == "apoz":   # the group read at the top level is scored as usual
    b2 = np.asarray(keras_of(framework).Model(base.input, base.output)(x))
    np.testing.assert_allclose(got["base/b2"],
                               -(b2 <= 0).reshape(-1, 5).mean(axis=0))


def _unsized(x, y, batch=32):
  """(x, y) as a dataset of batches whose count tf.data does not know."""
  def gen():
    for i in range(0, len(x), batch):
      yield x[i:i + batch], y[i:i + batch]
  return tf.data.Dataset.from_generator(gen, output_signature=(
      tf.TensorSpec((None,) + x.shape[1:], tf.float32),
      tf.TensorSpec((None,), tf.int64)))


@pytest.mark.parametrize("feed,steps,shown", [("numpy", 10, "2/2"),
                                              ("unsized", None, "2/Unknown")])
@pytest.mark.parametrize("name", ["apoz", "obd", "taylor_fo", "thinet"])
def test_progress_bar_ends_its_line_at_the_batches_read(case, name, feed,
                                                        steps, shown, capsys):
  # 48 samples are 2 batches of 32. The data passes of the activation
  # criteria (apoz), the curvature ones (obd), taylor_fo and the
  # reconstruction ones (thinet) each drew their own bar, which without
  # `steps` (or with more) never reached its target: it stayed at
  # "1/Unknown" or "1/10" and whatever was printed next continued its line.
  # Numpy data has a known batch count, which is the bar's target (it
  # showed "2/10"); a generator's is unknown until it is read.
  model, x, y, _ = case
  data = (x, y) if feed == "numpy" else _unsized(x, y.astype("int64"))
  capsys.readouterr()
  tps.score(model, name, data, steps=steps, verbose=1)
  out = capsys.readouterr().out
  assert out.endswith("\n"), repr(out[-80:])
  last = out.rstrip("\n").split("\n")[-1].split("\r")[-1]
  assert shown in last, repr(out)
  assert "/10" not in out and (feed == "unsized" or "Unknown" not in out), (
      repr(out))


_ENTROPY_MIRRORED = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey.criteria.entropy import Entropy
from tfprune_survey.training import controller as controller_lib

rng = np.random.default_rng(1)
x = rng.random((128, 8, 8, 1)).astype("float32")
y = rng.integers(0, 4, 128)
result = {}
for fw, crit in (("tf_keras", "entropy"), ("keras3", "entropy"),
                 ("tf_keras", "variance")):
  keras = frameworks.get(fw).keras
  for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                         ("mirrored", tf.distribute.MirroredStrategy(
                             ["/cpu:0", "/cpu:1"]))):
    keras.utils.set_random_seed(0)
    with strategy.scope():
      inp = keras.Input((8, 8, 1))
      h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
      h = keras.layers.GlobalAveragePooling2D()(h)
      pm = tps.prune_channels(
          keras.Model(inp, keras.layers.Dense(4, name="out")(h)),
          Entropy(bins=8) if crit == "entropy" else crit,
          tps.schedules.ConstantSparsity(
              0.5, begin_step=10 ** 6, frequency=1))
      pm.compile(keras.optimizers.SGD(0.0), keras.losses.
                 SparseCategoricalCrossentropy(from_logits=True))
    try:
      pm.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
             callbacks=[tps.UpdateChannelPruningStep()])
      got = controller_lib.make_controller(pm)._in_graph_scores()
      result[f"{fw}_{crit}_{name}"] = {k: v.tolist() for k, v in got.items()}
    except Exception as e:  # reported, so the test shows the error
      result[f"{fw}_{crit}_{name}"] = f"{type(e).__name__}: {e}"[:300]
print("RESULT" + json.dumps(result))
"""


def test_training_statistics_under_mirrored_strategy_match_one_device():
  # Entropy's histogram edges and variance's shift are set on the first
  # batch. Under a MirroredStrategy the wrapper's statistics are summed
  # across replicas: the edges used to be set by `assign` (the same
  # constant from every replica cannot be summed: a ValueError); both must
  # come from the whole batch, over every replica's shard.
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  out = subprocess.run([sys.executable, "-c", _ENTROPY_MIRRORED],
                       capture_output=True, text=True, timeout=600)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
  assert line, out.stderr[-3000:]
  result = json.loads(line[0][len("RESULT"):])
  for run in ("tf_keras_entropy", "keras3_entropy", "tf_keras_variance"):
    one, mirrored = result[run + "_one"], result[run + "_mirrored"]
    assert isinstance(one, dict) and list(one) == ["c1"], one
    assert isinstance(mirrored, dict), mirrored
    np.testing.assert_allclose(mirrored["c1"], one["c1"], rtol=1e-5,
                               err_msg=run)
    assert len(set(np.round(one["c1"], 6))) > 1   # the channels differ


def test_variance_training_statistics_keep_a_small_variance_of_large_norms():
  # Channels whose norm hardly varies are the ones variance prunes first.
  # Raw float32 sums of squared norms cancel their variance to rounding
  # (E[x^2] - E[x]^2 of norms near 32 over 16000 samples); the running sums
  # are taken around the first batch's mean, so it is kept.
  from tfprune_survey.criteria.variance import Variance  # pylint: disable=g-import-not-at-top
  crit = Variance()
  rng = np.random.default_rng(0)
  stds = np.array([0.003, 0.01, 0.03, 0.1])
  variables = {k: tf.Variable(np.full(shape, value, np.float32))
               for k, (shape, value) in crit.stream_spec(4).items()}
  update = tf.function(lambda y: crit.stream_update(variables, y, None))
  norms = []
  for _ in range(250):
    level = 8.0 + stds * rng.standard_normal((64, 4))   # per sample, channel
    y = np.repeat(level[:, None, :], 16, axis=1).astype(np.float32)
    update(tf.constant(y))
    norms.append(np.sqrt((y.astype(np.float64) ** 2).sum(axis=1)))
  got = crit.stream_finalize({k: v.numpy() for k, v in variables.items()})
  want = np.var(np.concatenate(norms), axis=0)
  np.testing.assert_allclose(got, want, rtol=1e-3)
  assert list(np.argsort(got)) == [0, 1, 2, 3]
