"""prune(ratios=, recalibrate=) and per-group sensitivity (Li et al., 2017),
in tf_keras and Keras 3."""

# `digits` and `trained` (the digits CNN, once per Keras) are fixtures of
# tests/conftest.py.

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import same_weights as _same
from tests.conftest import weights_of as _weights
from tfprune_survey.metrics.accuracy import evaluate_accuracy
from tfprune_survey.sensitivity import depth_order
from tests.conftest import two_input_arrays
from tests.conftest import two_input_model
from tests.conftest import callers_pyplot
from tests.conftest import png_size



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
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  bn = [w for w in recal.weights if "moving_mean" in w.name][0]
  untouched = [w for w in tps.prune(trained, "l1", target_macs=0.5).model.weights
               if "moving_mean" in w.name][0]
  assert not np.allclose(bn, untouched)


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



def test_plot_leaves_pyplot_backend_and_figures_alone(tmp_path):
  """plot writes the PNG without switching pyplot's backend (a notebook's
  inline one) or touching the caller's open figures."""
  result = tps.SensitivityResult(
      criterion="l1", metric="accuracy", baseline=0.9, ratios=(0.2, 0.5),
      table={"a": [0.8, 0.5], "b": [0.9, 0.7]}, sizes={"a": 4, "b": 8},
      kept={"a": [4, 2], "b": [7, 4]})
  with callers_pyplot():
    path = result.plot(str(tmp_path / "sens.png"))
  assert png_size(path) == (840, 504)   # 7x4.2 in, 120 dpi


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


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_accuracy_of_a_model_with_two_inputs(framework):
  # x as a list or a dict of arrays, as Keras' fit takes it.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  keras = frameworks.get(framework).keras
  a = keras.Input((3,), name="a")
  b = keras.Input((3,), name="b")
  out = keras.layers.Subtract()([a, b])   # swapped inputs would differ
  model = keras.Model([a, b], out)
  rng = np.random.default_rng(0)
  xa = rng.standard_normal((40, 3)).astype("float32")
  xb = rng.standard_normal((40, 3)).astype("float32")
  y = np.argmax(xa - xb, axis=-1)
  y[:10] = (y[:10] + 1) % 3  # 30 of 40 right
  assert evaluate_accuracy(model, ([xa, xb], y)) == pytest.approx(0.75)
  # A dict is matched by input name, not by its order.
  assert evaluate_accuracy(model, ({"b": xb, "a": xa}, y)) == pytest.approx(
      0.75)
  assert evaluate_accuracy(model, ([xb, xa], y)) < 0.5


def _grouped_conv_model(keras):
  """c1 (8 channels) read by a conv of 2 groups: its group has 2 blocks.

  Block 0's filters are 10x larger, so a ranking that ignores the blocks
  would keep block 0 alone.
  """
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 6, 3))
  x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
  x = keras.layers.Conv2D(4, 3, groups=2, padding="same", name="gc")(x)
  out = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(x))
  model = keras.Model(inp, out)
  kernel, bias = model.get_layer("c1").get_weights()
  kernel[..., :4] *= 10.0
  model.get_layer("c1").set_weights([kernel, bias])
  return model


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_sensitivity_evaluates_what_prune_keeps_for_grouped_convs(framework):
  # Each point is the model tps.prune(ratios={group: ratio}) makes: a group
  # split in blocks by a grouped conv keeps a multiple of its blocks, the
  # best of each block. Rounded counts that repeat, or keep the whole group,
  # are not evaluated again.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  model = _grouped_conv_model(frameworks.get(framework).keras)
  assert tps.ChannelGraph(model).group("c1").blocks == 2
  x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
  ref = np.asarray(model(x, training=False))
  calls = []

  def metric(m, data):
    calls.append(1)
    return -float(np.mean((np.asarray(m(data[0], training=False)) - ref)**2))

  # Remove 0, 2, 3 and 4 of 8 channels: 8 (all), 6, 5 -> 6, 4 kept.
  ratios = (0.1, 0.25, 0.375, 0.5)
  result = tps.sensitivity(model, "l1", eval_data=(x, np.zeros(8)),
                           metric=metric, ratios=ratios, groups=["c1"],
                           verbose=0)
  values = result.table["c1"]
  evaluated = len(calls)
  for r, value in zip(ratios, values):
    pruned = tps.prune(model, "l1", ratios={"c1": r}).model
    assert value == pytest.approx(metric(pruned, (x,)), rel=1e-5, abs=1e-6)
  assert result.kept == {"c1": [8, 6, 6, 4]}
  assert evaluated == 3  # the baseline, 6 and 4 kept
  assert values[0] == result.baseline and values[1] == values[2]
  # A ratio that removes nothing once rounded is not worth returning.
  assert values[1] < result.baseline
  assert tps.ratios_from_sensitivity(result, max_drop=0.0) == {}
  assert tps.ratios_from_sensitivity(result, max_drop=1e9) == {"c1": 0.5}


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_sensitivity_rounds_as_prune_will(framework):
  # With the round_to / min_channels that pruning will use, each point is
  # the model tps.prune(ratios=..., round_to=..., min_channels=...) makes.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 6, 3))
  x = keras.layers.Conv2D(12, 3, padding="same", name="c1")(inp)
  out = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(x))
  model = keras.Model(inp, out)
  x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
  ref = np.asarray(model(x, training=False))

  def metric(m, data):
    return -float(np.mean((np.asarray(m(data[0], training=False)) - ref)**2))

  ratios = (0.25, 0.5, 0.9)
  result = tps.sensitivity(model, "l1", eval_data=(x, np.zeros(8)),
                           metric=metric, ratios=ratios, round_to=4,
                           min_channels=3, verbose=0)
  # 12 - 3 = 9 -> 12, 12 - 6 = 6 -> 8, 12 - 10 = 2 -> at least 3 -> 4.
  assert result.kept == {"c1": [12, 8, 4]}
  for r, value in zip(ratios, result.table["c1"]):
    pruned = tps.prune(model, "l1", ratios={"c1": r}, round_to=4,
                       min_channels=3).model
    assert value == pytest.approx(metric(pruned, (x,)), rel=1e-5, abs=1e-6)
  for bad in ({"round_to": 0}, {"min_channels": 2.5}):
    with pytest.raises((ValueError, TypeError), match=next(iter(bad))):
      tps.sensitivity(model, "l1", eval_data=(x, np.zeros(8)), metric=metric,
                      verbose=0, **bad)


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_sensitivity_skips_groups_the_criterion_does_not_score(framework):
  # 'apoz' reads feature maps, and c2's are read only inside a nested model:
  # tps.score leaves c2 unscored (with a warning) and tps.prune leaves it
  # whole; sensitivity leaves it out, and refuses it by name when asked.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 6, 3))
  x = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same",
                                              name="c1")(inp))
  x = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, padding="same",
                                              name="c2")(x))
  sub_in = keras.Input((6, 6, 4))
  sub = keras.Model(sub_in, keras.layers.Conv2D(3, 1, name="sc")(sub_in),
                    name="sub")
  x = keras.layers.GlobalAveragePooling2D()(sub(x))
  model = keras.Model(inp, keras.layers.Dense(3, name="out")(x))
  xs = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
  ys = np.arange(8) % 3
  with pytest.warns(UserWarning, match="c2"):
    scored = set(tps.score(model, "apoz", xs))
  assert "c2" not in scored and "c1" in scored
  with pytest.warns(UserWarning, match="c2"):
    result = tps.sensitivity(model, "apoz", xs, eval_data=(xs, ys),
                             ratios=(0.5,), verbose=0)
  assert list(result.table) == [g.id for g in depth_order(
      tps.ChannelGraph(model)) if g.id in scored]
  with pytest.warns(UserWarning, match="c2"), pytest.raises(
      ValueError, match=r"`groups` names \['c2'\].*'apoz'"):
    tps.sensitivity(model, "apoz", xs, eval_data=(xs, ys), ratios=(0.5,),
                    groups=["c1", "c2"], verbose=0)


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("case", ["recalibrate_list", "recalibrate_dataset",
                                  "eval_data_short", "eval_data_dict"])
def test_malformed_data_of_a_two_input_model_fails_before_scoring(
    framework, case, monkeypatch):
  # eval_data and recalibrate meet the model only after the scoring: their
  # x must be checked first (one array per input, in order or by name), in
  # an error naming them, not Keras' from inside the first evaluation.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  model = two_input_model(frameworks.get(framework).keras)
  xa, xb = two_input_arrays()
  y = np.arange(8) % 3
  kwargs, words = {
      # Read as x=xa, y=xb: one array for two inputs.
      "recalibrate_list": (dict(recalibrate=[xa, xb]),
                           "`recalibrate` gives one input array"),
      "recalibrate_dataset": (dict(recalibrate=tf.data.Dataset.
                                   from_tensor_slices((xa, y)).batch(4)),
                              "`recalibrate` gives one input array"),
      "eval_data_short": (dict(eval_data=([xa], y)),
                          "`eval_data` gives 1 input arrays"),
      "eval_data_dict": (dict(eval_data=({"a": xa, "c": xb}, y)),
                         "`eval_data` gives inputs ['a', 'c']"),
  }[case]
  kwargs.setdefault("eval_data", ([xa, xb], y))
  crit = tps.criteria.get("l1")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  with pytest.raises(ValueError, match=words.replace("[", r"\[")):
    tps.sensitivity(model, crit, ratios=(0.5,), verbose=0, **kwargs)
