"""Accuracy recovery: prune(ratios=, recalibrate=), sensitivity, iterative and
layer-wise schedules, distillation and re-initialisation."""

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.data import load_digits
from tfprune_survey.metrics.accuracy import evaluate_accuracy
from tfprune_survey.sensitivity import depth_order


@pytest.fixture(scope="module")
def digits():
  return load_digits()


@pytest.fixture(scope="module")
def trained(digits):
  """A small residual CNN trained on sklearn's digits (about 95% top-1)."""
  (x, y), _ = digits
  keras.utils.set_random_seed(0)
  model = zoo.residual_cnn(input_shape=(8, 8, 1), width=16)
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  model.fit(x, y, epochs=8, batch_size=32, verbose=0)
  tps.recalibrate_bn(model, x)
  return model


def _weights(model):
  return [w.copy() for w in model.get_weights()]


def _same(a, b):
  return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# --- prune(ratios=..., recalibrate=...) -------------------------------------


def test_prune_ratios_cut_only_the_named_group(trained):
  graph = tps.ChannelGraph(trained)
  gid = graph.prunable_groups[0].id
  size = graph.group(gid).size
  result = tps.prune(trained, "l1", ratios={gid: 0.5})
  kept = {g: k for g, k, _ in result.report.groups}
  assert kept[gid] == size - size // 2
  for g in graph.prunable_groups:
    if g.id != gid:
      assert kept[g.id] == g.size
  # The kept channels are the highest-scored ones of that group.
  scores = np.asarray(result.scores[gid])
  assert scores[result.keep[gid]].min() >= np.sort(scores)[size // 2 - 1]


@pytest.mark.parametrize("kwargs, words", [
    (dict(ratios={"no_such_group": 0.5}), "no_such_group"),
    (dict(ratios={"stem_conv": 1.0}), "[0, 1)"),
    (dict(ratios={"stem_conv": 0.5}, ratio=0.2), "exactly one"),
    (dict(ratios=[0.5]), "dict"),
])
def test_prune_ratios_errors(trained, kwargs, words):
  # A wrong type (a list for the dict) is a TypeError, a wrong value a
  # ValueError: one exception type per kind of mistake.
  kind = TypeError if isinstance(kwargs.get("ratios"), list) else ValueError
  with pytest.raises(kind) as info:
    tps.prune(trained, "l1", **kwargs)
  assert words in str(info.value)


def test_prune_recalibrate_reestimates_bn_of_the_slim_model(trained, digits):
  (x, _), _ = digits
  plain = tps.prune(trained, "l1", target_macs=0.5).model
  recal = tps.prune(trained, "l1", target_macs=0.5, recalibrate=x[:256]).model
  expected = tps.recalibrate_bn(plain, x[:256])
  for a, b in zip(recal.weights, expected.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  bn = [w for w in recal.weights if "moving_mean" in w.name][0]
  untouched = [w for w in tps.prune(trained, "l1", target_macs=0.5).model.weights
               if "moving_mean" in w.name][0]
  assert not np.allclose(bn.numpy(), untouched.numpy())


# --- sensitivity ----------------------------------------------------------------


def test_sensitivity_table_shape_ordering_and_values(trained, digits, tmp_path):
  (x, _), (xt, yt) = digits
  before = _weights(trained)
  ratios = (0.25, 0.5, 0.75, 0.9)
  result = tps.sensitivity(trained, "l1", ratios=ratios, eval_data=(xt, yt),
                           verbose=0)
  assert _same(before, _weights(trained))
  graph = tps.ChannelGraph(trained)
  assert list(result.table) == [g.id for g in depth_order(graph)]
  assert all(len(v) == len(ratios) for v in result.table.values())
  assert result.baseline == pytest.approx(evaluate_accuracy(trained, (xt, yt)))
  assert result.baseline > 0.85
  # Accuracy falls, on average over groups, as more channels go.
  means = np.mean(list(result.table.values()), axis=0)
  assert all(b <= a + 0.02 for a, b in zip(means, means[1:])), means
  assert means[-1] < means[0] - 0.05, means
  # One point recomputed independently: mask that group's lowest-l1 half.
  g = depth_order(graph)[1]
  scores = tps.score(trained, "l1")[g.id]
  keep = np.sort(np.argsort(-scores, kind="stable")[:g.size - g.size // 2])
  masked = tps.mask_channels(trained, {g.id: keep})
  assert result.table[g.id][1] == pytest.approx(
      evaluate_accuracy(masked, (xt, yt)))
  assert str(result).count("\n") == len(result.table) + 1
  path = result.plot(str(tmp_path / "sens.png"))
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_ratios_from_sensitivity_picks_the_largest_safe_ratio():
  result = tps.SensitivityResult(
      criterion="l1", metric="accuracy", baseline=0.9,
      ratios=(0.2, 0.4, 0.6, 0.8),
      table={"a": [0.9, 0.89, 0.80, 0.5],     # drops .00 .01 .10 .40
             "b": [0.7, 0.9, 0.9, 0.9],       # first ratio already too bad
             "c": [0.9, 0.9, 0.895, 0.88]},   # all within 0.02
      sizes={"a": 8, "b": 8, "c": 8})
  assert tps.ratios_from_sensitivity(result, max_drop=0.02) == {
      "a": 0.4, "c": 0.8}
  assert tps.ratios_from_sensitivity(result, max_drop=0.0) == {
      "a": 0.2, "c": 0.4}
  with pytest.raises(ValueError, match="max_drop"):
    tps.ratios_from_sensitivity(result, max_drop=-1)


def test_sensitivity_ratios_feed_prune(trained, digits):
  _, (xt, yt) = digits
  result = tps.sensitivity(trained, "l2", ratios=(0.25, 0.5), eval_data=(
      xt, yt), verbose=0)
  ratios = tps.ratios_from_sensitivity(result, max_drop=1.0)
  assert ratios and set(ratios.values()) == {0.5}
  slim = tps.prune(trained, "l2", ratios=ratios)
  assert slim.report.macs_after < slim.report.macs_before
  with pytest.raises(ValueError, match="eval_data"):
    tps.sensitivity(trained, "l1", eval_data=xt, verbose=0)
  with pytest.raises(ValueError, match="ratios"):
    tps.sensitivity(trained, "l1", ratios=(0.5, 1.0), eval_data=(xt, yt))


# --- iterative and layer-wise -------------------------------------------------


@pytest.mark.parametrize("mode", ["global", "layerwise"])
def test_iterative_prune_reaches_target(trained, digits, mode):
  (x, y), (xt, yt) = digits
  before = _weights(trained)
  calls = []

  def finetune(model):
    calls.append(tps.count_macs(model))
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)

  result = tps.iterative_prune(trained, "l1", target_macs=0.5, rounds=3,
                               finetune=finetune, mode=mode,
                               eval_data=(xt, yt), verbose=0)
  assert _same(before, _weights(trained))
  macs0 = tps.count_macs(trained)
  got = 1 - tps.count_macs(result.model) / macs0
  assert abs(got - 0.5) <= 0.02, got
  assert len(calls) == len(result.history)
  assert all(h["metric"] is not None for h in result.history)
  reductions = [h["macs_reduction"] for h in result.history]
  assert reductions == sorted(reductions)
  if mode == "global":
    assert len(result.history) == 3
    assert reductions[0] == pytest.approx(0.5 / 3, abs=0.02)
    assert result.visited == []
  else:
    graph = tps.ChannelGraph(trained)
    order = [g.id for g in depth_order(graph)]
    assert result.visited == [g for g in order if g in result.visited]
    assert len(result.visited) == len(graph.prunable_groups)
    layer_pos = {l.name: i for i, l in enumerate(trained.layers)}
    first = [min(layer_pos[p] for p in graph.group(g).producers)
             for g in result.visited]
    assert first == sorted(first)   # visited in order of depth


def test_iterative_prune_with_fit_dict_and_errors(trained, digits):
  (x, y), _ = digits
  result = tps.iterative_prune(
      trained, "l1", target_macs=0.3, rounds=2, verbose=0,
      finetune={"x": x[:128], "y": y[:128], "epochs": 1, "batch_size": 64})
  assert abs(result.macs_reduction - 0.3) <= 0.02
  assert "step" in str(result)
  with pytest.raises(ValueError, match="mode"):
    tps.iterative_prune(trained, "l1", target_macs=0.3, finetune={},
                        mode="sideways")
  with pytest.raises(TypeError, match="finetune"):
    tps.iterative_prune(trained, "l1", target_macs=0.3, finetune=3)
  with pytest.raises(ValueError, match="target_macs"):
    tps.iterative_prune(trained, "l1", target_macs=1.2, finetune={})


# --- distillation ----------------------------------------------------------------


def _np_distill_loss(y, s, t, temp, alpha):
  def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
  hard = -np.log(softmax(s)[np.arange(len(y)), y])
  pt, ps = softmax(t / temp), softmax(s / temp)
  kl = (pt * (np.log(pt) - np.log(ps))).sum(-1)
  return float(np.mean((1 - alpha) * hard + alpha * temp ** 2 * kl))


def test_distillation_train_step_loss_matches_formula(trained, digits, tmp_path):
  (x, y), _ = digits
  student = tps.prune(trained, "l1", target_macs=0.5).model
  xb, yb = x[:64], y[:64]
  s = student(xb, training=True).numpy().astype(np.float64)
  t = trained(xb, training=False).numpy().astype(np.float64)
  want = _np_distill_loss(yb, s, t, 3.0, 0.7)
  teacher_before = _weights(trained)
  dm = tps.DistillationModel(student, trained, temperature=3.0, alpha=0.7)
  dm.compile(keras.optimizers.SGD(0.0))
  got = dm.train_on_batch(xb, yb, return_dict=True)["loss"]
  assert got == pytest.approx(want, rel=1e-4)
  # A real step trains the student only.
  student_before = _weights(student)
  dm.compile(keras.optimizers.SGD(0.1), metrics=["accuracy"])
  logs = dm.fit(xb, yb, epochs=1, batch_size=32, verbose=0).history
  assert "accuracy" in logs and "loss" in logs
  assert not _same(student_before, _weights(student))
  assert _same(teacher_before, _weights(trained))
  assert trained.trainable and all(l.trainable for l in trained.layers)
  # Saving writes the student alone: it loads with no custom objects.
  path = str(tmp_path / "student.keras")
  dm.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(loaded(xb).numpy(), student(xb).numpy(),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="alpha"):
    tps.DistillationModel(student, trained, alpha=1.5)
  with pytest.raises(ValueError, match="outputs"):
    tps.DistillationModel(zoo.residual_cnn((8, 8, 1), classes=3), trained)


def test_distillation_handles_softmax_outputs():
  rng = np.random.default_rng(0)
  logits = tf.constant(rng.standard_normal((5, 4)), tf.float32)
  from tfprune_survey.distill import distillation_loss
  y = tf.constant([0, 1, 2, 3, 0])
  ref = distillation_loss(y, logits, logits * 2, 4.0, 0.5).numpy()
  shifted = tf.math.log(tf.nn.softmax(logits))  # what a softmax model gives
  got = distillation_loss(y, shifted, tf.math.log(tf.nn.softmax(logits * 2)),
                          4.0, 0.5).numpy()
  assert got == pytest.approx(ref, rel=1e-5)


# --- reinitialize ---------------------------------------------------------------


def test_reinitialize_keeps_architecture_changes_weights(trained):
  before = _weights(trained)
  fresh = tps.reinitialize(trained, seed=1)
  assert _same(before, _weights(trained))
  assert [l.name for l in fresh.layers] == [l.name for l in trained.layers]
  assert [w.shape for w in fresh.weights] == [w.shape for w in trained.weights]
  assert tps.count_macs(fresh) == tps.count_macs(trained)
  kernels = [(a.numpy(), b.numpy()) for a, b in
             zip(trained.weights, fresh.weights) if "kernel" in a.name]
  assert kernels and all(not np.allclose(a, b) for a, b in kernels)
  again = tps.reinitialize(trained, seed=1)
  other = tps.reinitialize(trained, seed=2)
  assert _same(_weights(fresh), _weights(again))
  assert not _same(_weights(fresh), _weights(other))
