"""tps.prune on residual and concat models: consistency, targets, rounding."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import dead_branch_model
from tests.conftest import tied_ranking_model
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.metrics.macs_model import MacsModel

L = keras.layers


def concat_model():
  inp = keras.Input((16, 16, 3))
  a = L.Conv2D(16, 3, padding="same", name="a")(inp)
  a = L.BatchNormalization(name="bn_a")(a)
  a = L.ReLU()(a)
  b = L.Conv2D(24, 1, name="b")(inp)
  b = L.ReLU()(b)
  x = L.Concatenate(name="cat")([a, b])
  x = L.Conv2D(32, 3, padding="same", name="c")(x)
  x = L.ReLU()(x)
  x = L.MaxPooling2D()(x)
  x = L.Flatten()(x)
  x = L.Dense(16, activation="relu", name="fc")(x)
  return keras.Model(inp, L.Dense(3, name="out")(x), name="concat_net")


MODELS = {"residual": lambda: zoo.resnet_cifar(20, input_shape=(16, 16, 3)),
          "concat": concat_model}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
  return MODELS[request.param]()


def _runs(result, model):
  x = np.random.default_rng(0).random((2,) + model.input_shape[1:]).astype(
      "float32")
  out = result.model(x, training=False).numpy()
  assert out.shape == (2,) + model.output_shape[1:]
  assert np.isfinite(out).all()


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("scope", ["global", "local"])
def test_target_macs_within_2_percent(model, target, scope):
  result = tps.prune(model, "l1", target_macs=target, scope=scope)
  before = tps.count_macs(model)
  after = tps.count_macs(result.model)
  assert abs((1 - after / before) - target) <= 0.02
  assert result.report.macs_after == after
  _runs(result, model)


@pytest.mark.parametrize("round_to", [4, 8])
def test_round_to_is_honoured(model, round_to):
  result = tps.prune(model, "l2", target_macs=0.5, round_to=round_to)
  for gid, kept, total in result.report.groups:
    assert kept == total or kept % round_to == 0, (gid, kept)
  _runs(result, model)


def test_local_ratio_removes_the_same_fraction_everywhere(model):
  result = tps.prune(model, "fpgm", ratio=0.25, scope="local")
  for gid, kept, total in result.report.groups:
    assert kept == total - int(np.floor(0.25 * total)), gid


def test_global_ratio_removes_that_fraction_of_channels(model):
  result = tps.prune(model, "l1", ratio=0.4)
  total = sum(t for _, _, t in result.report.groups)
  kept = sum(k for _, k, _ in result.report.groups)
  assert abs((total - kept) - round(0.4 * total)) <= 1


def test_kept_channels_are_the_highest_scored(model):
  result = tps.prune(model, "l1", ratio=0.5, scope="local")
  for gid, idx in result.keep.items():
    s = result.scores[gid]
    dropped = np.setdiff1d(np.arange(len(s)), idx)
    assert s[idx].min() >= s[dropped].max()


def test_macs_model_predicts_materialized_macs(model):
  graph = tps.ChannelGraph(model)
  rng = np.random.default_rng(3)
  counts = {g.id: int(rng.integers(1, g.size + 1))
            for g in graph.prunable_groups}
  keep = {gid: np.arange(n) for gid, n in counts.items()}
  slim = tps.materialize(model, keep, graph=graph)
  assert MacsModel(model, graph).macs(counts) == tps.count_macs(slim)


def test_min_channels_and_ignore(model):
  graph = tps.ChannelGraph(model)
  first = graph.prunable_groups[0]
  result = tps.prune(model, "l1", ratio=0.9, min_channels=3,
                     ignore=[first.producers[0]])
  kept = {gid: k for gid, k, _ in result.report.groups}
  assert kept[first.id] == first.size
  assert all(k >= 3 for k in kept.values())


def test_data_criterion_prunes(model):
  rng = np.random.default_rng(0)
  x = rng.random((16,) + model.input_shape[1:]).astype("float32")
  y = rng.integers(0, model.output_shape[-1], 16)
  result = tps.prune(model, "taylor", data=(x, y), target_macs=0.4)
  assert abs(result.report.macs_reduction - 0.4) <= 0.02
  _runs(result, model)


def test_report_prints_a_table(model):
  text = str(tps.prune(model, "l1", ratio=0.3).report)
  assert "MACs" in text and "params" in text and "kept" in text


def test_input_model_is_not_mutated(model):
  before = [w.copy() for w in model.get_weights()]
  tps.prune(model, "l1", ratio=0.5)
  assert all(np.array_equal(a, b) for a, b in zip(before,
                                                  model.get_weights()))


@pytest.mark.parametrize("kwargs,words", [
    (dict(ratio=1.0), "`ratio`"),
    (dict(ratio=-0.1), "`ratio`"),
    (dict(), "exactly one"),
    (dict(ratio=0.2, target_macs=0.2), "exactly one"),
    (dict(target_macs=1.5), "`target_macs`"),
    (dict(ratio=0.2, scope="nearby"), "`scope`"),
    (dict(ratio=0.2, round_to=0), "`round_to`"),
    (dict(ratio=0.2, min_channels=0), "`min_channels`"),
    (dict(ratio=0.2, ignore=["no_such_layer"]), "no_such_layer"),
    (dict(target_macs=0.999), "largest reachable"),
])
def test_bad_arguments(model, kwargs, words):
  with pytest.raises(ValueError) as info:
    tps.prune(model, "l1", **kwargs)
  assert words in str(info.value)


def test_data_criterion_without_data(model):
  with pytest.raises(ValueError, match="'apoz'"):
    tps.prune(model, "apoz", ratio=0.3)


# ---- argument interplay, on small hand-built models of both Kerases --------

def _small(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inp = k.Input((8, 8, 3))
  x = k.layers.Conv2D(8, 3, padding="same", name="a")(inp)
  x = k.layers.BatchNormalization(name="bn_a")(x)
  x = k.layers.ReLU()(x)
  x = k.layers.Conv2D(12, 3, padding="same", name="b")(x)
  x = k.layers.ReLU()(x)
  x = k.layers.GlobalAveragePooling2D()(x)
  x = k.layers.Dense(5, name="fc")(x)
  return k.Model(inp, k.layers.Dense(3, name="out")(x))


@pytest.fixture(params=["tf_keras", "keras3"])
def small(request):
  return _small(request.param)


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(target_latency=0.5, scope="local"), ValueError, "scope='global'"),
    (dict(target_latency=0.5, latency="lm.json"), TypeError, "`latency`"),
    (dict(target_latency=0.5, latency="table"), ValueError, "`latency`"),
    (dict(ratios={"a": 0.5}, ignore=["bn_a"]), ValueError, "`ignore`"),
    (dict(ratios={"b": 0.5}, ignore="b", target_latency=0.5), ValueError,
     "`ignore`"),
])
def test_argument_errors_come_before_scoring(small, monkeypatch, kwargs, exc,
                                             words):
  from tests import latency_tables  # pylint: disable=g-import-not-at-top
  from tfprune_survey import pruner  # pylint: disable=g-import-not-at-top
  if kwargs.get("latency") == "table":  # a LatencyModel of another model
    kwargs = dict(kwargs, latency=latency_tables.fake_table())

  def scored(*args, **kw):
    raise AssertionError("scored before the arguments were checked")
  monkeypatch.setattr(pruner, "score_fn", scored)
  x = np.zeros((4, 8, 8, 3), "float32")
  with pytest.raises(exc) as info:
    tps.prune(small, "apoz", data=x, **kwargs)
  assert words in str(info.value)


def test_ratios_keyed_by_a_layer_name_the_layers_group(small):
  prunable = "; ratios are keyed by group id (prunable: ['a', 'b', 'fc'])"

  def message(ratios):
    with pytest.raises(ValueError) as info:
      tps.prune(small, "l1", ratios=ratios)
    return str(info.value)

  assert message({"bn_a": 0.5}) == (
      "`ratios` names ['bn_a'], which are not prunable groups: 'bn_a' is a "
      "layer of group 'a'" + prunable)
  assert message({"a": 0.5, "out": 0.5, "nope": 0.5}) == (
      "`ratios` names ['out', 'nope'], which are not prunable groups: 'out' "
      "is a group that cannot be pruned (reaches the model output through "
      "'out'); 'nope' is no group or layer of the model" + prunable)


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ratios_keyed_by_a_merge_or_nested_layer(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  i2 = k.Input((8, 8, 8), name="feat")
  h = k.layers.BatchNormalization(name="ibn")(
      k.layers.Conv2D(10, 3, padding="same", name="ia")(i2))
  inner = k.Model(i2, k.layers.Conv2D(8, 1, name="ib")(h), name="inner")
  inp = k.Input((8, 8, 3))
  a = k.layers.Conv2D(8, 3, padding="same", name="a")(inp)
  c = k.layers.Conv2D(8, 3, padding="same", name="c")(inner(a))
  x = k.layers.Add(name="add")([a, c])
  x = k.layers.Concatenate(name="cat")([x, k.layers.Conv2D(4, 1, name="d")(x)])
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  why = {
      # 'c' is added to 'a': one group, named after its first producer.
      "c": "'c' is a layer of group 'a'",
      "ibn": "'ibn' is a layer of group 'inner/ia'",
      "inner/ibn": "'inner/ibn' is a layer of group 'inner/ia'",
      "add": "'add' is a layer that passes on the channels of group 'a'",
      "cat": "'cat' is a layer that passes on the channels of groups 'a', "
             "'d'",
      "inner": "'inner' is a nested model, whose layers are in groups "
               "['a', 'inner/ia', 'inner/ib']",
      "feat": "'feat' is an input layer, with no channels to prune",
      "inner/feat": "'inner/feat' is an input layer, with no channels to "
                    "prune",
  }
  for name, words in why.items():
    with pytest.raises(ValueError) as info:
      tps.prune(model, "l1", ratios={name: 0.5})
    assert str(info.value) == (
        f"`ratios` names [{name!r}], which are not prunable groups: {words}; "
        "ratios are keyed by group id (prunable: ['a', 'inner/ia', "
        "'inner/ib', 'd'])")


def test_unreachable_target_macs_names_ignore_before_scoring(small,
                                                             monkeypatch):
  from tfprune_survey import pruner  # pylint: disable=g-import-not-at-top
  # ignore='b' leaves 'a' (read by b) and 'b' whole: only 'fc' can shrink,
  # to 1 channel.
  floor = tps.count_macs(tps.materialize(small, {"fc": np.array([0])}))
  best = 1 - floor / tps.count_macs(small)

  def scored(*args, **kw):
    raise AssertionError("scored before the target was checked")
  monkeypatch.setattr(pruner, "score_fn", scored)
  x = np.zeros((4, 8, 8, 3), "float32")
  with pytest.raises(ValueError) as info:
    tps.prune(small, "apoz", data=x, target_macs=0.5, ignore="b")
  msg = str(info.value)
  assert f"largest reachable MACs reduction is {best:.3f}" in msg, msg
  assert "'a' (by `ignore`)" in msg and "'b' (by `ignore`)" in msg, msg
  assert "min_channels=1" in msg and "round_to=1" in msg, msg
  # round_to wider than every group: nothing can be removed.
  with pytest.raises(ValueError, match=r"reduction is 0\.000.*round_to=16"):
    tps.prune(small, "apoz", data=x, target_macs=0.1, round_to=16)
  monkeypatch.undo()
  # Reachable: met within 2% (the 'fc' group alone is too coarse for that).
  result = tps.prune(small, "l1", target_macs=best * 0.99, ignore="b")
  assert result.report.macs_after == tps.count_macs(result.model)
  assert result.report.macs_reduction >= best * 0.99
  kept = {gid: k for gid, k, _ in result.report.groups}
  assert kept["a"] == 8 and kept["b"] == 12


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ignore_a_nested_model_by_name(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  i2 = k.Input((8, 8, 8))
  h = k.layers.Conv2D(10, 3, padding="same", name="ia")(i2)
  h = k.layers.Conv2D(8, 1, name="ib")(k.layers.ReLU()(h))
  inner = k.Model(i2, h, name="inner")
  inp = k.Input((8, 8, 3))
  x = inner(k.layers.Conv2D(8, 3, padding="same", name="a")(inp))
  x = k.layers.Conv2D(6, 3, padding="same", name="b")(x)
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  assert model.get_layer("inner") is inner
  result = tps.prune(model, "l1", ratio=0.5, scope="local", ignore="inner")
  # Every group with a layer inside 'inner' is whole: 'a' (read by
  # inner/ia), 'inner/ia' and 'inner/ib'; 'b' loses half.
  assert result.report.groups == [("a", 8, 8), ("inner/ia", 10, 10),
                                  ("inner/ib", 8, 8), ("b", 3, 6)]
  assert set(result.keep) == {"b"}
  same = tps.prune(model, "l1", ratio=0.5, scope="local",
                   ignore=["inner/ia", "ib"])
  assert same.report.groups == result.report.groups
  with pytest.raises(ValueError, match=r"unknown layers \['inne'\]"):
    tps.prune(model, "l1", ratio=0.5, ignore="inne")


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ignore_a_path_means_that_layer_only(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  i2 = k.Input((8, 8, 8))
  h = k.layers.Conv2D(10, 3, padding="same", name="conv0")(i2)
  inner = k.Model(i2, k.layers.Conv2D(8, 1, name="conv")(h), name="inner")
  inp = k.Input((8, 8, 3))
  x = inner(k.layers.Conv2D(8, 3, padding="same", name="conv")(inp))
  x = k.layers.Conv2D(6, 3, padding="same", name="b")(x)
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  kept = lambda ignore: [kk for _, kk, _ in tps.prune(  # noqa: E731
      model, "l1", ratio=0.5, scope="local", ignore=ignore).report.groups]
  # Groups: conv (top level), inner/conv0, inner/conv, b.
  assert kept("conv") == [8, 5, 4, 3]         # the top-level 'conv' only
  assert kept("inner/conv") == [4, 10, 8, 3]  # the nested one only
  assert kept("conv0") == [8, 10, 4, 3]       # no path: by its own name


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ignore_an_input_layer_leaves_nothing_whole(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  i2 = k.Input((8, 8, 8), name="feat")
  inner = k.Model(i2, k.layers.Conv2D(6, 1, name="ia")(i2), name="inner")
  inp = k.Input((8, 8, 3), name="image")
  x = inner(k.layers.Conv2D(8, 3, padding="same", name="a")(inp))
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  assert model.get_layer("image").name == "image"
  # An InputLayer is a layer of the model, whose channels (the model's
  # input) are never pruned: naming it leaves every group as it was.
  plain = tps.prune(model, "l1", ratio=0.5, scope="local").report.groups
  assert plain == [("a", 4, 8), ("inner/ia", 3, 6)]
  for ignore in ("image", "feat", "inner/feat", ["image", "inner/feat"]):
    assert tps.prune(model, "l1", ratio=0.5, scope="local",
                     ignore=ignore).report.groups == plain
  with pytest.raises(ValueError, match=r"unknown layers \['imag'\]"):
    tps.prune(model, "l1", ratio=0.5, ignore="imag")


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_global_ratio_with_round_to_removes_at_least_the_ratio(framework):
  model = tied_ranking_model(framework)

  def kept(**kw):
    r = tps.prune(model, "l1", **kw)
    assert r.report.macs_after == tps.count_macs(r.model)
    return {gid: n for gid, n, _ in r.report.groups if gid in ("a", "b")}

  # 8 of 32 channels: 4 from each group rounds back up to 16 and 16; the
  # fewest along the ranking that remove 8 after rounding take 'a' to 8.
  assert kept(ratio=0.25, round_to=8) == {"a": 8, "b": 16}
  # 3 of 32 (round(3.2)): one step of 4.
  assert kept(ratio=0.1, round_to=4) == {"a": 12, "b": 16}
  # Without rounding: exactly round(ratio * 32), alternating.
  assert kept(ratio=0.25) == {"a": 12, "b": 12}
  # More than round_to and min_channels allow: all they allow.
  assert kept(ratio=0.9, round_to=8) == {"a": 8, "b": 8}
  assert kept(ratio=0.9, round_to=8, min_channels=9) == {"a": 16, "b": 16}


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_target_latency_with_every_group_ignored(framework, monkeypatch):
  from tests import latency_tables  # pylint: disable=g-import-not-at-top
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  from tfprune_survey import pruner  # pylint: disable=g-import-not-at-top
  model = latency_tables.small_model(framework)

  def measured(*args, **kw):
    raise AssertionError("measured or scored before `ignore` was checked")
  monkeypatch.setattr(pruner, "score_fn", measured)
  monkeypatch.setattr(latency.LatencyModel, "measure", measured)
  # 'c2' reads c1's channels: both groups are left whole.
  for lm in (None, latency_tables.fake_table()):
    with pytest.raises(ValueError, match=r"`ignore` leaves every prunable "
                       r"group whole \(\['c1', 'c2'\]\)"):
      tps.prune(model, "l1", target_latency=0.2, latency=lm, ignore="c2")


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_prune_a_model_of_free_input_size(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inp = k.Input((None, None, 3))
  x = k.layers.Conv2D(8, 3, padding="same", name="a")(inp)
  x = k.layers.Conv2D(8, 3, padding="same", name="b")(x)
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  result = tps.prune(model, "l1", ratio=0.5, scope="local")
  report = result.report
  assert report.groups == [("a", 4, 8), ("b", 4, 8)]
  # a: 3*3*3*4 + 4, b: 3*3*4*4 + 4, out: 4*3 + 3.
  assert report.params_after == 112 + 148 + 15
  assert report.params_before == 224 + 584 + 27
  assert report.macs_before is None and report.macs_after is None
  assert report.macs_reduction is None
  assert "n/a" in str(report)
  masked = tps.mask_channels(model, result.keep)
  for shape in ((2, 11, 7, 3), (1, 5, 5, 3)):
    x = np.random.default_rng(0).random(shape).astype("float32")
    np.testing.assert_allclose(np.asarray(result.model(x)),
                               np.asarray(masked(x)), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="`target_macs` needs the model's MACs"):
    tps.prune(model, "l1", target_macs=0.5)


# ---- residual branches scaled by exactly 0 (SSS), which materialize drops --

def _linear_table(layers, steps=None):
  """A LatencyModel whose ms are MACs / 1e4, linear in each width: one row
  per (name, input group, output group, in, out, MACs) of `layers`."""
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  rows = []
  for name, gin, gout, cin, cout, macs in layers:
    full = macs / 1e4
    rows.append(dict(
        name=name, in_axis=[[gin, cin, 1]] if gin else [],
        out_axis=[[gout, cout, 1]] if gout else [], in_full=cin,
        out_full=cout, in_widths=list(range(1, cin + 1)),
        in_ms=[full * w / cin for w in range(1, cin + 1)],
        out_widths=list(range(1, cout + 1)),
        out_ms=[full * w / cout for w in range(1, cout + 1)], full_ms=full))
  return latency.LatencyModel(rows, fixed_ms=0.0, steps=steps)


def _macs_table():
  """A LatencyModel of dead_branch_model whose ms are MACs / 1e4: a
  layer's time is linear in its input and in its output width."""
  return _linear_table([
      ("stem", None, "stem", 3, 8, 7776), ("b1", "stem", "b1", 8, 6, 15552),
      ("b2", "b1", "stem", 6, 8, 15552), ("c3", "stem", "c3", 8, 8, 20736),
      ("out", "c3", None, 8, 3, 24)])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_target_macs_counts_the_dead_branch_materialize_drops(framework):
  # Dropping b1 and b2 alone removes 31104 / 59640 = 52.2% of the MACs. The
  # search did not count that: target_macs=0.6 removed 78.2%.
  model = dead_branch_model(framework)
  before = tps.count_macs(model)
  assert before == 59640
  result = tps.prune(model, "l1", target_macs=0.6)
  after = tps.count_macs(result.model)
  assert abs((1 - after / before) - 0.6) <= 0.02
  assert result.report.macs_before == before
  assert result.report.macs_after == after
  # Only groups of the slim model are named.
  assert [g for g, _, _ in result.report.groups] == ["stem", "c3"]
  assert sorted(result.keep) == ["c3", "stem"]
  assert sorted(result.scores) == ["c3", "stem"]
  # Below what dropping the branch removes: nothing else is cut (it was
  # 70.6% for 0.3).
  small = tps.prune(model, "l1", target_macs=0.3, scope="local")
  assert small.keep == {}
  assert small.report.macs_after == before - 2 * 15552
  # The dead branch's group and layers are still known names.
  # b2 writes group 'stem' of the model (through the Add): ignoring it
  # leaves stem whole, as for any layer of a group.
  named = tps.prune(model, "l1", ratios={"b1": 0.5, "c3": 0.5},
                    ignore="b2")
  assert named.report.groups == [("stem", 8, 8), ("c3", 4, 8)]


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_target_latency_counts_the_dead_branch_materialize_drops(
    framework, monkeypatch):
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  model = dead_branch_model(framework)
  monkeypatch.setattr(latency, "measure_side_by_side",
                      lambda ms, **kw: [tps.count_macs(m) / 1e4 for m in ms])
  before = tps.count_macs(model)
  result = tps.prune(model, "l1", target_latency=0.6, latency=_macs_table())
  # On this table the predicted ms of the slim model are its MACs / 1e4.
  ratio = tps.count_macs(result.model) / before
  assert result.report.latency_predicted_ratio == pytest.approx(ratio)
  assert result.report.latency_after_ms == pytest.approx(ratio * before / 1e4)
  # Reached, by less than one channel of stem (6% of the MACs) too many.
  assert 0.6 <= 1 - ratio <= 0.65
  assert [g for g, _, _ in result.report.groups] == ["stem", "c3"]
  small = tps.prune(model, "l1", target_latency=0.3, latency=_macs_table())
  assert small.keep == {}
  assert small.report.latency_predicted_ratio == pytest.approx(
      1 - 2 * 15552 / before)
  # At most 1 channel of stem and c3 are left: 1299 MACs of 59640.
  with pytest.raises(ValueError, match=r"`target_latency`=0.99 is unreachable:"
                     r" the largest predicted latency reduction is 0.978"):
    tps.prune(model, "l1", target_latency=0.99, latency=_macs_table())


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ignore_a_split_group_id_says_it_is_a_group_id(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inp = k.Input((6, 6, 3))
  early = k.layers.Conv2D(8, 1, name="early")(inp)
  a = k.layers.Conv2D(4, 3, padding="same", name="late_a")(early)
  b = k.layers.Conv2D(4, 3, padding="same", name="late_b")(early)
  x = k.layers.Add(name="add")([early, k.layers.Concatenate()([a, b])])
  x = k.layers.Conv2D(3, 1, name="head")(x)
  model = k.Model(inp, k.layers.GlobalAveragePooling2D()(x))
  assert [g.id for g in tps.ChannelGraph(model).prunable_groups] == [
      "early", "early:2"]
  # It said only "`ignore` names unknown layers ['early:2']".
  with pytest.raises(ValueError) as info:
    tps.prune(model, "l1", ratio=0.5, ignore=["early:2", "nosuch"])
  assert str(info.value) == (
      "`ignore` names unknown layers ['early:2', 'nosuch']: 'early:2' is a "
      "group id, not a layer name: name its layers ('early', 'late_b'); "
      "'nosuch' is no layer of the model; `ignore` takes layer names or "
      "paths")


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_target_latency_on_a_model_without_prunable_groups_says_so(framework):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inp = k.Input((8, 8, 3))
  x = k.layers.GlobalAveragePooling2D()(inp)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  assert tps.ChannelGraph(model).prunable_groups == []
  # It blamed `ignore`, which was not given: "`ignore` leaves every
  # prunable group whole ([])".
  with pytest.raises(ValueError) as info:
    tps.prune(model, "l1", target_latency=0.5)
  assert "ignore" not in str(info.value)
  assert "the model has no prunable channel group" in str(info.value)


def _dead_first_producer_model(framework):
  """dead_branch_model with a projection: the Add's group is 'b2' (its
  first producer, in the dead branch) in the model, and 'proj' in the model
  without the branch."""
  return dead_branch_model(framework, projection=True)


def _dead_first_producer_table(steps=None):
  """A LatencyModel of _dead_first_producer_model, keyed by its group ids
  ('b2' is b2 + proj); ms are MACs / 1e4, linear in each width."""
  return _linear_table([
      ("stem", None, "stem", 3, 8, 7776), ("b1", "stem", "b1", 8, 6, 15552),
      ("b2", "b1", "b2", 6, 8, 15552), ("proj", "stem", "b2", 8, 8, 2304),
      ("c3", "b2", "c3", 8, 8, 20736), ("out", "c3", None, 8, 3, 24)],
      steps=steps)


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_prune_names_groups_as_the_callers_model_when_a_dead_layer_named_one(
    framework):
  model = _dead_first_producer_model(framework)
  graph = tps.ChannelGraph(model)
  assert [(g.id, g.producers) for g in graph.prunable_groups] == [
      ("stem", ["stem"]), ("b1", ["b1"]), ("b2", ["b2", "proj"]),
      ("c3", ["c3"])]
  x = np.random.default_rng(0).random((2, 6, 6, 3)).astype("float32")
  # It said "`ratios` names ['b2'], which are not prunable groups".
  result = tps.prune(model, "l1", ratios={"b2": 0.5})
  assert result.report.groups == [("stem", 8, 8), ("b2", 4, 8), ("c3", 8, 8)]
  assert sorted(result.keep) == ["b2"]
  # proj's 4 filters of largest L1 norm are kept.
  w = model.get_layer("proj").get_weights()[0]
  l1 = np.abs(w).reshape(-1, 8).sum(0)
  np.testing.assert_array_equal(np.sort(result.keep["b2"]),
                                np.sort(np.argsort(-l1)[:4]))
  # keep was keyed 'proj': materialize(model, keep) said "unknown channel
  # group 'proj'". Now it gives result.model.
  for r in (result, tps.prune(model, "l1", ratio=0.5)):
    assert set(r.keep) <= {g.id for g in graph.prunable_groups}
    assert set(r.scores) <= {g.id for g in graph.prunable_groups}
    again = tps.materialize(model, r.keep)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(r.model(x)),
                               rtol=1e-5, atol=1e-6)
    assert again.get_layer("proj").get_weights()[0].shape == (
        r.model.get_layer("proj").get_weights()[0].shape)
  # b2 is a layer of group 'b2' (with proj): ignore=['b2'] leaves proj
  # whole (it pruned it to 4 of 8).
  whole = tps.prune(model, "l1", ratio=0.5, ignore=["b2"])
  assert ("b2", 8, 8) in whole.report.groups
  assert whole.model.get_layer("proj").get_weights()[0].shape[-1] == 8



@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_ratios_error_names_the_group_as_the_caller_did(framework):
  model = _dead_first_producer_model(framework)
  # It said "`ratios` names group 'proj'", an id the caller never used.
  with pytest.raises(ValueError, match=r"^`ratios` names group 'b2', which "
                     r"is left whole by `ignore`$"):
    tps.prune(model, "l1", ratios={"b2": 0.5}, ignore=["proj"])


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_target_latency_plans_the_group_a_dead_layer_named(framework,
                                                           monkeypatch):
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  model = _dead_first_producer_model(framework)
  before = tps.count_macs(model)
  assert before == 61944
  monkeypatch.setattr(latency, "measure_side_by_side",
                      lambda ms, **kw: [tps.count_macs(m) / 1e4 for m in ms])
  table = _dead_first_producer_table()
  # The planner named proj's group 'proj', which the tables do not time:
  # it cost nothing to keep, and 0.95 was "unreachable" (0.938 at best).
  result = tps.prune(model, "l1", target_latency=0.95, latency=table)
  groups = dict((g, kept) for g, kept, _ in result.report.groups)
  assert sorted(groups) == ["b2", "c3", "stem"]
  assert groups["b2"] < 8
  ratio = tps.count_macs(result.model) / before
  assert result.report.latency_predicted_ratio == pytest.approx(ratio)
  assert 1 - ratio >= 0.95


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_unreachable_target_names_groups_as_the_callers_model(framework):
  model = _dead_first_producer_model(framework)
  # It said "groups left whole: 'proj' (by `ignore`)"; the model has no
  # group 'proj'. Proj's group whole, the rest at 1 channel: 0.938.
  with pytest.raises(ValueError, match=r"^`target_macs`=0.95 is unreachable: "
                     r"the largest reachable MACs reduction is 0.938, with "
                     r"min_channels=1; round_to=1; groups left whole: 'b2' "
                     r"\(by `ignore`\)$"):
    tps.prune(model, "l1", target_macs=0.95, ignore=["b2"])
  # The step of the model's group 'b2' (proj's) is read from the tables.
  table = _dead_first_producer_table(steps={"stem": 2, "b2": 4, "c3": 2})
  with pytest.raises(ValueError, match=r"round_to='auto' \(widths on each "
                     r"group's measured grid: 'stem': 2, 'b2': 4, 'c3': 2\)$"):
    tps.prune(model, "l1", target_latency=0.95, latency=table,
              round_to="auto")


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_unreachable_messages_rename_group_ids_only(framework):
  # The live group named after proj (here a layer 'auto') is 'b2' in the
  # caller's model. Messages were rewritten by replacing every quoted word
  # that is a live id, so round_to='auto' read round_to='b2'; and the
  # every-group-ignored message gave the live ids.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  L = k.layers
  inp = k.Input((6, 6, 3))
  s = L.Conv2D(8, 3, padding="same", name="stem")(inp)
  b = L.Conv2D(6, 3, padding="same", name="b1")(s)
  b = L.Conv2D(8, 3, padding="same", name="b2")(b)
  b = tps.ChannelScale(0.0, shared=True, framework=framework, name="sss")(b)
  x = L.Add(name="add")([b, L.Conv2D(8, 1, name="auto")(s)])
  x = L.Conv2D(8, 3, padding="same", name="c3")(x)
  model = k.Model(inp, L.Dense(3, name="out")(
      L.GlobalAveragePooling2D()(x)))
  table = _linear_table([
      ("stem", None, "stem", 3, 8, 7776), ("b1", "stem", "b1", 8, 6, 15552),
      ("b2", "b1", "b2", 6, 8, 15552), ("auto", "stem", "b2", 8, 8, 2304),
      ("c3", "b2", "c3", 8, 8, 20736), ("out", "c3", None, 8, 3, 24)],
      steps={"stem": 2, "b2": 4, "c3": 2})
  with pytest.raises(ValueError) as info:
    tps.prune(model, "l1", target_latency=0.99, latency=table,
              round_to="auto")
  text = str(info.value)
  assert text.startswith("`target_latency`=0.99 is unreachable: the largest "
                         "predicted latency reduction is ")
  assert text.endswith(" (the residual branches scaled by 0, which are "
                       "dropped, included), with min_channels=1; "
                       "round_to='auto' (widths on each group's measured "
                       "grid: 'stem': 2, 'b2': 4, 'c3': 2)")
  with pytest.raises(ValueError, match=r"`ignore` leaves every prunable "
                     r"group whole \(\['b2', 'c3', 'stem'\]\)$"):
    tps.prune(model, "l1", target_latency=0.5, latency=table,
              ignore=["stem", "auto", "c3"])
