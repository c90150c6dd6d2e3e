"""Training-time channel pruning: wrappers, schedule, callback, strip, save."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.training.api import current_keep

sched = tfmot.sparsity.keras


@pytest.fixture(scope="module")
def xy():
  rng = np.random.default_rng(0)
  return (rng.random((64, 12, 12, 1)).astype("float32"),
          rng.integers(0, 10, 64))


def _model():
  keras.utils.set_random_seed(0)
  return zoo.residual_cnn(input_shape=(12, 12, 1), width=8)


def _compile(m):
  m.compile(keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return m


def _kept_fraction(model):
  graph, keep = current_keep(model)
  groups = graph.prunable_groups
  kept = sum(len(keep.get(g.id, range(g.size))) for g in groups)
  return kept / sum(g.size for g in groups)


def test_masks_follow_polynomial_decay(xy):
  x, y = xy
  base = _model()
  before = [w.copy() for w in base.get_weights()]
  schedule = sched.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6,
                                   frequency=1)
  pm = _compile(tps.prune_channels(base, "l1", schedule))
  fractions = []

  class Probe(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      fractions.append(_kept_fraction(self.model))

  pm.fit(x, y, batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(), Probe()])
  total = sum(g.size for g in tps.ChannelGraph(base).prunable_groups)
  for step, got in enumerate(fractions):
    _, sparsity = schedule(tf.constant(min(step, 6), tf.int64))
    want = 1 - int(round(float(sparsity) * total)) / total
    assert got == pytest.approx(want, abs=1e-9), (step, got, want)
  assert fractions[-1] == pytest.approx(0.5, abs=1 / total)
  assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))


@pytest.mark.parametrize("criterion", tps.criteria.names())
def test_every_criterion_strips_to_the_wrapped_function(xy, criterion):
  x, y = xy
  base = _model()
  # Data criteria read the training batches inside the graph: no `data`.
  data = None
  pm = _compile(tps.prune_channels(
      base, criterion, sched.ConstantSparsity(0.5, 0, frequency=2),
      data=data))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  slim = tps.strip_channel_pruning(pm)
  masked = tps.strip_channel_pruning(pm, materialize=False)
  want = pm(x, training=False).numpy()
  np.testing.assert_allclose(slim(x, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(masked(x, training=False).numpy(), want,
                             rtol=1e-4, atol=1e-5)
  assert tps.count_macs(slim) < 0.6 * tps.count_macs(base)
  assert tps.count_macs(masked) == tps.count_macs(base)
  assert not any(isinstance(l, tps.ChannelPruneWrapper) for l in slim.layers)


def test_data_criterion_without_data_is_a_clear_error(xy):
  x, y = xy
  layer = tps.prune_channels(keras.layers.Conv2D(4, 3, name="c"), "apoz")
  inp = keras.Input((12, 12, 1))
  out = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(
      keras.layers.Conv2D(5, 3)(layer(inp))))
  pm = _compile(keras.Model(inp, out))
  with pytest.raises(ValueError, match="'apoz' needs data"):
    pm.fit(x, y, epochs=1, verbose=0,
           callbacks=[tps.UpdateChannelPruningStep()])


def test_fit_without_callback_raises_clear_error(xy):
  x, y = xy
  pm = _compile(tps.prune_channels(_model(), "l1"))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="UpdateChannelPruningStep"):
    pm.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_save_load_resume(xy, tmp_path, fmt):
  x, y = xy
  pm = _compile(tps.prune_channels(
      _model(), "l1", sched.PolynomialDecay(0.0, 0.5, 0, 8, frequency=1)))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  path = str(tmp_path / ("m" if fmt == "savedmodel" else f"m.{fmt}"))
  pm.save(path, **({"save_format": "tf"} if fmt == "savedmodel" else {}))
  loaded = keras.models.load_model(path)
  _, keep_a = current_keep(pm)
  _, keep_b = current_keep(loaded)
  assert keep_a.keys() == keep_b.keys() and keep_a
  for k in keep_a:
    np.testing.assert_array_equal(keep_a[k], keep_b[k])
  step = [w for w in loaded.layers if isinstance(w, tps.ChannelPruneWrapper)
          ][0].pruning_step.numpy()
  assert step == 3   # 4 batches: steps 0..3
  np.testing.assert_allclose(loaded(x, training=False).numpy(),
                             pm(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-6)
  # Training resumes at the saved step and reaches the final sparsity.
  _compile(loaded).fit(x, y, batch_size=16, epochs=2, verbose=0,
                       callbacks=[tps.UpdateChannelPruningStep()])
  assert _kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)


def test_layer_form_inside_a_model_definition(xy, tmp_path):
  x, y = xy
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((12, 12, 1))
  h = tps.prune_channels(L.Conv2D(8, 3, name="c1"), "l1",
                         sched.ConstantSparsity(0.5, 0, frequency=1))(inp)
  h = L.ReLU()(L.BatchNormalization(name="bn1")(h))
  convs = tps.prune_channels([L.Conv2D(12, 3, padding="same", name="c2"),
                              L.Conv2D(12, 1, name="c3")], "l1",
                             sched.ConstantSparsity(0.5, 0, frequency=1))
  a = convs[0](h)
  b = L.Conv2D(12, 1, name="c4")(h)     # not wrapped: the Add group stays
  h = L.ReLU()(L.Add()([a, b]))
  h = L.GlobalAveragePooling2D()(convs[1](h))
  model = _compile(keras.Model(inp, L.Dense(10, name="out")(h)))
  assert isinstance(convs[0], tps.ChannelPruneWrapper)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="UpdateChannelPruningStep"):
    model.fit(x, y, epochs=1, verbose=0)
  model.fit(x, y, batch_size=16, epochs=2, verbose=0,
            callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(model)
  assert set(keep) == {"c1", "c3"}     # c2's group also needs c4 wrapped
  assert len(keep["c1"]) == 4 and len(keep["c3"]) == 6
  slim = tps.strip_channel_pruning(model)
  np.testing.assert_allclose(slim(x).numpy(), model(x).numpy(), rtol=1e-4,
                             atol=1e-6)
  assert slim.get_layer("c1").filters == 4
  assert slim.get_layer("bn1").gamma.shape[0] == 4
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  _, again = current_keep(loaded)
  assert {k: v.tolist() for k, v in again.items()} == {
      k: v.tolist() for k, v in keep.items()}


def test_prune_channels_errors():
  model = _model()
  with pytest.raises(ValueError, match="a model, a layer or a list"):
    tps.prune_channels([model])
  with pytest.raises(ValueError, match="pruning_policy"):
    tps.prune_channels(model, "l1", pruning_policy=["no_such_layer"])
  with pytest.raises(TypeError, match="PruningSchedule"):
    tps.prune_channels(model, "l1", pruning_schedule=0.5)
  with pytest.raises(ValueError, match="strip|prune_channels"):
    tps.strip_channel_pruning(model)


def test_sparsify_bn_shrinks_gamma(xy):
  x, y = xy
  base = _model()
  reg = tps.sparsify_bn(base, l1=1e-1)
  assert all(l.gamma_regularizer is None for l in base.layers
             if isinstance(l, keras.layers.BatchNormalization))
  plain = keras.models.clone_model(base)
  plain.set_weights(base.get_weights())
  for m in (reg, plain):
    keras.utils.set_random_seed(1)
    m.compile(keras.optimizers.Adam(1e-2),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, batch_size=16, epochs=3, verbose=0)
  def gamma(m):
    return np.concatenate([np.abs(l.gamma.numpy()) for l in m.layers
                           if isinstance(l, keras.layers.BatchNormalization)])
  # 12 Adam steps of 1e-2 against the L1 pull: about 0.1 lower on average.
  assert gamma(reg).mean() < gamma(plain).mean() - 0.05, (
      gamma(reg).mean(), gamma(plain).mean())
  assert "gamma_regularizer" in str(reg.get_config())


def test_summaries_write_kept_fraction_and_macs(xy, tmp_path):
  x, y = xy
  base = _model()
  pm = _compile(tps.prune_channels(
      base, "l1", sched.ConstantSparsity(0.5, 0, frequency=1)))
  pm.fit(x, y, batch_size=32, epochs=2, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(),
                    tps.ChannelPruningSummaries(str(tmp_path))])
  values = {}
  for path in tmp_path.rglob("events.out.tfevents*"):
    for record in tf.data.TFRecordDataset(str(path)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for v in event.summary.value:
        values[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
  slim = tps.strip_channel_pruning(pm)
  full = tps.count_macs(base)
  assert values[("channel_pruning/effective_macs", 1)] == tps.count_macs(slim)
  assert values[("channel_pruning/macs_reduction", 1)] == pytest.approx(
      1 - tps.count_macs(slim) / full, abs=1e-6)
  fractions = [v for (tag, step), v in values.items()
               if tag.startswith("channel_pruning/kept_fraction/") and step == 1]
  assert len(fractions) == len(tps.ChannelGraph(base).prunable_groups)
  assert min(fractions) < 1.0


def test_rewind_copies_exactly_the_kept_slices(xy):
  x, y = xy
  pm = _compile(tps.prune_channels(
      _model(), "l1", sched.ConstantSparsity(0.5, 0, frequency=1)))
  ckpt = tps.RewindCheckpoint(epoch=1)
  pm.fit(x, y, batch_size=32, epochs=3, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(), ckpt])
  slim = tps.strip_channel_pruning(pm)
  trained = [w.copy() for w in slim.get_weights()]
  keep = dict(slim._tps_keep)
  tps.rewind(slim, ckpt)
  source = ckpt.model_at_epoch
  graph = tps.ChannelGraph(source)
  g = graph.group("stem_conv")
  kept = keep[g.id]
  np.testing.assert_array_equal(
      slim.get_layer("stem_conv").kernel.numpy(),
      source.get_layer("stem_conv").kernel.numpy()[..., kept])
  nxt = graph.group("block_conv1")
  np.testing.assert_array_equal(
      slim.get_layer("block_conv1").kernel.numpy(),
      source.get_layer("block_conv1").kernel.numpy()[..., kept, :][
          ..., keep.get(nxt.id, np.arange(nxt.size))])
  assert not all(np.array_equal(a, b) for a, b in
                 zip(trained, slim.get_weights()))
  with pytest.raises(ValueError, match="not recorded"):
    tps.rewind(slim, tps.RewindCheckpoint(epoch=5))
  plain = tps.prune(_model(), "l1", ratio=0.5).model
  del plain._tps_keep
  with pytest.raises(ValueError, match="keep="):
    tps.rewind(plain, ckpt)


_MIRRORED = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tensorflow_model_optimization as tfmot
import tfprune_survey as tps
from tfprune_survey._compat import keras
from tfprune_survey.training.api import current_keep

def build():
  keras.utils.set_random_seed(0)
  inp = keras.Input((10, 10, 1))
  h = keras.layers.Conv2D(12, 3, activation="relu", name="c1")(inp)
  h = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(h)
  h = keras.layers.GlobalAveragePooling2D()(h)
  return keras.Model(inp, keras.layers.Dense(4, name="out")(h))

rng = np.random.default_rng(0)
x = rng.random((64, 10, 10, 1)).astype("float32")
y = rng.integers(0, 4, 64)
result = {}
for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                       ("mirrored", tf.distribute.MirroredStrategy(
                           ["/cpu:0", "/cpu:1"]))):
  with strategy.scope():
    pm = tps.prune_channels(build(), "l1", tfmot.sparsity.keras.PolynomialDecay(
        0.0, 0.5, begin_step=0, end_step=6, frequency=2))
    pm.compile(keras.optimizers.SGD(0.05),
               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  pm.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(pm)
  result[name] = {k: v.tolist() for k, v in keep.items()}
  result[name + "_replicas"] = strategy.num_replicas_in_sync
print("RESULT" + json.dumps(result))
"""


def test_mirrored_strategy_gives_the_same_masks():
  import json
  import subprocess
  import sys
  out = subprocess.run([sys.executable, "-c", _MIRRORED], capture_output=True,
                       text=True, timeout=600)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
  assert line, out.stderr[-3000:]
  result = json.loads(line[0][len("RESULT"):])
  assert result["mirrored_replicas"] == 2 and result["one_replicas"] == 1
  assert result["one"] and result["one"] == result["mirrored"]


def test_channel_scaling_factors_feed_sss(xy):
  x, _ = xy
  base = _model()
  scaled = tps.add_scaling_factors(base, l1=1e-3, granularity="channel")
  scales = [l for l in scaled.layers if isinstance(l, tps.ChannelScale)]
  assert len(scales) >= 3 and not any(
      isinstance(l, tps.ChannelScale) for l in base.layers)
  np.testing.assert_allclose(scaled(x).numpy(), base(x).numpy(), rtol=1e-5,
                             atol=1e-6)
  assert len(scaled.losses) == len(scales)   # one L1 term per scale layer
  graph = tps.ChannelGraph(scaled)
  assert len(graph.prunable_groups) == len(
      tps.ChannelGraph(base).prunable_groups)
  # The sss criterion reads the scales: a zeroed scale ranks last.
  scales[0].scale.assign(np.r_[0.0, np.ones(scales[0].scale.shape[0] - 1)])
  owner = [g for g in graph.prunable_groups if scales[0].name in g.params]
  assert len(owner) == 1, [g.params for g in graph.prunable_groups]
  s = tps.score(scaled, "sss")[owner[0].id]
  assert s[0] < np.min(s[1:])


def test_block_scale_at_zero_removes_the_branch():
  keras.utils.set_random_seed(0)
  base = zoo.resnet_cifar(8)
  scaled = tps.add_scaling_factors(base, l1=1e-4, granularity="block")
  adds = [l for l in base.layers if isinstance(l, keras.layers.Add)]
  blocks = [l for l in scaled.layers
            if isinstance(l, tps.ChannelScale) and l.shared]
  assert len(blocks) == len(adds) >= 3
  x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
  np.testing.assert_allclose(scaled(x).numpy(), base(x).numpy(), rtol=1e-5,
                             atol=1e-6)
  # Every branch starts on the long path: its scale's input is a BN, not
  # the identity shortcut.
  for b in blocks:
    assert isinstance(b.inbound_nodes[0].inbound_layers,
                      keras.layers.BatchNormalization), b.name
  blocks[1].scale.assign([0.003])
  assert tps.zero_small_block_scales(scaled, 0.01) == [blocks[1].name]
  slim = tps.materialize(scaled, {})
  assert len(slim.layers) < len(scaled.layers) - 4
  assert not any(l.name == blocks[1].name for l in slim.layers)
  assert tps.count_macs(slim) < tps.count_macs(scaled)
  want = scaled(x).numpy()
  np.testing.assert_allclose(slim(x).numpy(), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(tps.mask_channels(scaled, {})(x).numpy(), want,
                             rtol=1e-5, atol=1e-6)
  # Channel pruning and branch removal together.
  graph = tps.ChannelGraph(scaled)
  keep = {g.id: np.arange(0, g.size, 2) for g in graph.prunable_groups}
  both = tps.materialize(scaled, keep)
  np.testing.assert_allclose(
      both(x).numpy(), tps.mask_channels(scaled, keep)(x).numpy(), rtol=1e-4,
      atol=1e-5)
  with pytest.raises(ValueError, match="granularity"):
    tps.add_scaling_factors(base, granularity="layer")


def _no_bn_model():
  keras.utils.set_random_seed(0)
  inp = keras.Input((12, 12, 1))
  h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
  h = keras.layers.Conv2D(8, 3, padding="same", name="c2")(h)
  h = keras.layers.ReLU(name="r2")(h)
  h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
  return keras.Model(inp, keras.layers.Dense(10, name="out")(h))


@pytest.mark.parametrize("criterion", ["apoz", "variance", "taylor",
                                       "entropy", "taylor_fo"])
def test_in_graph_statistics_match_a_scoring_pass(xy, criterion):
  from tfprune_survey.training.api import Controller
  from tfprune_survey.criteria.entropy import Entropy
  rng = np.random.default_rng(1)
  x = rng.random((256, 12, 12, 1)).astype("float32")
  y = rng.integers(0, 10, 256)
  base = _no_bn_model()
  never = sched.ConstantSparsity(0.5, begin_step=10 ** 6, frequency=1)
  if criterion == "entropy":
    criterion = Entropy(bins=8)
  pm = tps.prune_channels(base, criterion, never)
  assert any(w.observe or w.observe_output for w in pm.layers
             if isinstance(w, tps.ChannelPruneWrapper))
  pm.compile(keras.optimizers.SGD(0.0), keras.losses.
             SparseCategoricalCrossentropy(from_logits=True))
  pm.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  got = Controller(pm)._in_graph_scores()
  # The same batches in the same order (taylor_fo squares per-batch sums).
  want = tps.score(base, criterion,
                   tf.data.Dataset.from_tensor_slices((x, y)).batch(64))
  assert got.keys() == want.keys() and got
  for gid in want:
    if not isinstance(criterion, str):  # entropy: edges from the 1st batch
      np.testing.assert_allclose(got[gid], want[gid], atol=0.25)
      assert np.argmin(got[gid]) == np.argmin(want[gid]), (got, want)
    else:
      np.testing.assert_allclose(got[gid], want[gid], rtol=1e-4, atol=1e-6)


def test_sequential_and_nested_models_strip_exactly():
  L = keras.layers
  keras.utils.set_random_seed(0)
  seq = keras.Sequential([keras.Input((10, 10, 3)), L.Conv2D(8, 3),
                          L.BatchNormalization(), L.ReLU(),
                          L.Conv2D(12, 3, activation="relu"), L.Flatten(),
                          L.Dense(5)])
  inner = keras.Sequential([keras.Input((8, 8, 8)),
                            L.Conv2D(8, 1, name="in_conv"), L.ReLU()],
                           name="inner")
  i = keras.Input((10, 10, 3))
  h = inner(L.Conv2D(8, 3, name="a")(i))
  h = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, name="b")(h))
  nested = keras.Model(i, L.Dense(5)(h))
  rng = np.random.default_rng(0)
  x = rng.random((32, 10, 10, 3)).astype("float32")
  y = rng.integers(0, 5, 32)
  for model in (seq, nested):
    pm = _compile(tps.prune_channels(
        model, "l1", sched.ConstantSparsity(0.5, 0, frequency=1)))
    pm.fit(x, y, epochs=1, batch_size=8, verbose=0,
           callbacks=[tps.UpdateChannelPruningStep()])
    slim = tps.strip_channel_pruning(pm)
    np.testing.assert_allclose(slim(x).numpy(), pm(x).numpy(), rtol=1e-4,
                               atol=1e-6)
    assert tps.count_macs(slim) < tps.count_macs(model)
  # The group that reaches into the nested model stays whole.
  _, keep = current_keep(pm)
  assert "a" not in keep and "b" in keep
