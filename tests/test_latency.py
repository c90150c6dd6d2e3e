"""tps.latency: LatencyModel tables, prediction, the profile parser, and
`tps.prune(target_latency=...)` allocation on hand-made cost tables."""

import json
import os
import re

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey import latency
from tfprune_survey import latency_plot
from tfprune_survey import planning
from tests.latency_tables import fake_table
from tests.latency_tables import macs_proportional_timer
from tests.latency_tables import small_model
from tests.conftest import callers_pyplot
from tests.conftest import png_size

FRAMEWORKS = ("tf_keras", "keras3")
SAMPLE = os.path.join(os.path.dirname(__file__), "data",
                      "benchmark_profile_sample.csv")


def planner(framework, round_to=1):
  model = small_model(framework)
  graph = tps.ChannelGraph(model)
  scores = {"c1": np.ones(16), "c2": np.ones(16)}
  return model, graph, planning.Planner(graph, scores, round_to, 1)


def test_predict_by_hand():
  lm = fake_table()
  assert lm.predict() == pytest.approx(7.0)
  # c1 at 8: c1 1.0; c2 reads 8 inputs: 3 * 4 / 4 = 3.0; out 1.0.
  assert lm.predict({"c1": 8}) == pytest.approx(5.0)
  # c2 at 8 buys nothing in c2 (flat step) and 0.5 in `out`.
  assert lm.predict({"c2": 8}) == pytest.approx(6.5)
  # Between measured widths, the next measured width above is charged.
  assert lm.predict({"c2": 9}) == pytest.approx(7.0)
  # Both at 8 and c2 at 4: c2 = 3 * 2 / 4 = 1.5.
  assert lm.predict({"c1": 8, "c2": 4}) == pytest.approx(1 + 1.5 + 0.5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_allocation_by_hand(framework):
  lm = fake_table()
  _, _, plan = planner(framework)
  # Goal 5 ms: cutting c1 to 8 saves 2 ms for 8 units of score (4/ms);
  # cutting c2 to 8 saves 0.5 ms for 8 (16/ms). c1 goes first and suffices.
  assert latency.search_latency(plan, lm, 2 / 7) == {"c1": 8, "c2": 16}
  # Goal 6.5 ms: c1 at 8 and c2 at 8 both lose 8; c2 overshoots less. With
  # round_to=1 c2's cut does not stop at 15..9, where the staircase is
  # flat; it goes to 8, the first width that saves.
  assert latency.search_latency(plan, lm, 0.5 / 7) == {"c1": 16, "c2": 8}
  # Goal 4.6 ms: the staircase is not convex, so every group looks past its
  # next step. c2 16 -> 4 alone (c2 = 4 * 2 / 4 = 2, out 0.5: 4.5 ms) loses
  # 12; going step by step, c1 to 8 (4 per ms) then c2 to 8 (4.5 ms too)
  # would lose 16.
  assert latency.search_latency(plan, lm, 0.343) == {"c1": 16, "c2": 4}
  # Goal 3 ms: c2 on to 4 (c2 = 3 * 2 / 4 = 1.5 -> 1 + 1.5 + 0.5 = 3.0).
  assert latency.search_latency(plan, lm, 4 / 7) == {"c1": 8, "c2": 4}
  # With round_to='auto', c2 steps by 4 (its measured grid) and gets there
  # the same way.
  assert latency.search_latency(plan, lm, 4 / 7, "auto") == {"c1": 8,
                                                              "c2": 4}


@pytest.mark.parametrize("sign", (1.0, -1.0))
def test_negative_scores_cut_no_more_than_the_goal_needs(sign):
  # Uniform scores: +1 or -1 (as apoz's -APoZ). Either way the cheapest
  # plan that reaches 5 of 7 ms is c1 at 8 (2 -> 1 ms on c1, 4 -> 3 on
  # c2's input): 8 channels, 5.0 ms. Cutting c2 to 4 (12 channels, 4.5 ms)
  # overshoots; it used to win with negative scores, where each channel
  # removed added score.
  model = small_model("tf_keras")
  graph = tps.ChannelGraph(model)
  plan = planning.Planner(graph, {"c1": sign * np.ones(16),
                                  "c2": sign * np.ones(16)}, 1, 1)
  lm = fake_table()
  counts = latency.search_latency(plan, lm, 2 / 7)
  assert counts == {"c1": 8, "c2": 16}
  assert lm.predict_counts(counts) == pytest.approx(5.0)


def test_allocation_looks_past_a_reaching_cut():
  """Three groups, each setting one layer's output alone (fixed cost 0).

  c1: 4 ms at 16 channels, 0 at 8 (one step). c2 and c3: 2 ms at 16, 1 at
  12, 0 at 8; their 4 lowest channels score 0.2, the next 4 score 1.8.
  Goal: 6 of the 8 ms. Every single cut that reaches it (c1, c2 or c3 to
  8) loses 8; c2 and c3 to 12 each save 1 ms for 0.8 and reach it together
  for 1.6. Ending on the first reaching cut would lose 8.
  """
  def layer(gid, widths, ms):
    return dict(name=gid, in_axis=[], out_axis=[[gid, 16, 1]], in_full=3,
                out_full=16, in_widths=[3], in_ms=[ms[-1]], out_widths=widths,
                out_ms=ms, full_ms=ms[-1])
  lm = latency.LatencyModel(
      [layer("c1", [8, 16], [0.0, 4.0]),
       layer("c2", [8, 12, 16], [0.0, 1.0, 2.0]),
       layer("c3", [8, 12, 16], [0.0, 1.0, 2.0])], fixed_ms=0.0,
      steps={"c1": 8, "c2": 4, "c3": 4})
  keras = frameworks.get("keras3").keras
  inp = keras.Input((8, 8, 3))
  x = inp
  for name in ("c1", "c2", "c3"):
    x = keras.layers.Conv2D(16, 3, padding="same", name=name)(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, keras.layers.Dense(2, name="out")(x))
  cheap = np.concatenate([np.full(4, 0.2), np.full(4, 1.8), np.ones(8)])
  plan = planning.Planner(tps.ChannelGraph(model),
                          {"c1": np.ones(16), "c2": cheap, "c3": cheap})
  assert latency.search_latency(plan, lm, 0.25) == {"c1": 16, "c2": 12,
                                                     "c3": 12}


def test_grouped_conv_groups_keep_whole_blocks():
  """A conv read by a grouped conv (groups=4): its counts are multiples of 4.

  Its table is linear at every width (1/16 ms per channel, step 1), so the
  staircase alone would stop at 11 for a 0.3 cut; 11 is not a whole number
  of blocks, and the model built would keep 12, missing the goal.
  """
  keras = frameworks.get("keras3").keras
  L = keras.layers
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(16, 3, padding="same", name="a")(inp)
  x = L.Conv2D(16, 3, padding="same", groups=4, name="g")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(3, name="out")(x))
  graph = tps.ChannelGraph(model)
  assert graph.group("a").blocks == 4
  widths = list(range(1, 17))
  lm = latency.LatencyModel([dict(
      name="a", in_axis=[], out_axis=[["a", 16, 1]], in_full=3, out_full=16,
      in_widths=[3], in_ms=[1.0], out_widths=widths,
      out_ms=[w / 16 for w in widths], full_ms=1.0)], fixed_ms=0.0)
  plan = planning.Planner(graph, {"a": np.arange(1.0, 17.0)})
  for round_to in ("auto", 1, 2):
    counts = latency.search_latency(plan, lm, 0.3, round_to)
    assert counts["a"] % 4 == 0, (round_to, counts)
    kept = {g: len(k) for g, k in plan.keep_indices(counts).items()}
    assert kept == {"a": counts["a"]}
    assert lm.predict_counts(kept) <= 0.7 + 1e-9
  assert latency.search_latency(plan, lm, 0.3, "auto") == {"a": 8}
  # round_to=3 with 4 blocks: multiples of 12, so at most 0.25 goes.
  with pytest.raises(ValueError, match="largest predicted latency "
                     "reduction is 0.250"):
    latency.search_latency(plan, lm, 0.3, 3)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_allocation_follows_scores_per_ms(framework):
  lm = fake_table()
  _, graph, _ = planner(framework)
  # Scores are normalised per group (mean 1), as for global ranking. c2's
  # lower half scores 0.01: cutting it to 8 loses 0.08 for 0.5 ms (0.16/ms),
  # less than c1's 8 for 2 ms (4/ms), so c2 goes first.
  s2 = np.concatenate([np.full(8, 0.01), np.full(8, 1.99)])
  plan = planning.Planner(graph, {"c1": np.ones(16), "c2": s2})
  assert latency.search_latency(plan, lm, 0.5 / 7) == {"c1": 16, "c2": 8}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_weights_scale_a_groups_score(framework):
  lm = fake_table()
  _, _, plan = planner(framework)
  # Goal 6.5 ms (see test_allocation_by_hand): unweighted, c1 and c2 to 8
  # both lose 8 and c2 overshoots less. Weighted 2, c2's cut loses 16, so
  # c1 goes; c1 weighted 0.5 loses 4 and goes first too.
  assert latency.search_latency(plan, lm, 0.5 / 7) == {"c1": 16, "c2": 8}
  for weights in ({"c2": 2.0}, {"c1": 0.5}):
    assert latency.search_latency(plan, lm, 0.5 / 7,
                                  weights=weights) == {"c1": 8, "c2": 16}
  # Goal 5 ms: unweighted c1 to 8 (8 lost for 2 ms). c1 weighted 10 would
  # lose 80; c2 to 4 saves 2.5 ms (c2 4 -> 2, `out` 1 -> 0.5) for 12.
  assert latency.search_latency(plan, lm, 2 / 7) == {"c1": 8, "c2": 16}
  assert latency.search_latency(plan, lm, 2 / 7,
                                weights={"c1": 10}) == {"c1": 16, "c2": 4}
  with pytest.raises(ValueError, match=r"not planned: \['c9'\]"):
    latency.search_latency(plan, lm, 0.3, weights={"c9": 2.0})
  with pytest.raises(ValueError, match=r"fixed .*does nothing: \['c2'\]"):
    latency.search_latency(plan, lm, 0.3, fixed={"c2": 8},
                           weights={"c1": 2.0, "c2": 2.0})
  for bad in (0, -1.0, float("nan"), float("inf"), "2", True):
    with pytest.raises(ValueError, match=r"`weights\['c1'\]` must be a "
                       "positive number"):
      latency.search_latency(plan, lm, 0.3, weights={"c1": bad})


def test_producers_scale_counts_a_groups_producers(monkeypatch, tmp_path):
  """HALP's sum over coupled layers: a residual stream that two convs write
  loses twice its normalised score per channel cut."""
  macs_proportional_timer(monkeypatch)   # deterministic tables
  keras = frameworks.get("keras3").keras
  L = keras.layers
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(16, 3, padding="same", activation="relu", name="a")(inp)
  b = L.Conv2D(16, 3, padding="same", activation="relu", name="b")(a)
  c = L.Conv2D(16, 3, padding="same", name="c")(b)
  x = L.GlobalAveragePooling2D(name="gap")(L.Add(name="add")([b, c]))
  model = keras.Model(inp, L.Dense(4, name="out")(x))
  graph = tps.ChannelGraph(model)
  assert {g.id: g.producers for g in graph.prunable_groups} == {
      "a": ["a"], "b": ["b", "c"]}
  lm = latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                    verbose=0)
  # Mean-normalised scores: a's 16 channels all 1, b's lower half 0.75.
  # Cutting either group to 8 removes more than 10% of the predicted time
  # (checked below), so the search takes the reaching cut that loses the
  # least score: b's (6 < 8) on the 'mean' scale (the default); with
  # 'producers' b's cut loses 2 x 6 = 12 > 8, so a's is taken.
  for gid in ("a", "b"):
    assert lm.predict_counts({gid: 8}) < 0.9 * lm.predict_counts({})
  scores = {"a": np.ones(16),
            "b": np.concatenate([np.full(8, 0.75), np.full(8, 1.25)])}
  plan = planning.Planner(graph, scores)
  assert latency.search_latency(plan, lm, 0.1, 8) == {"a": 16, "b": 8}
  assert latency.search_latency(plan, lm, 0.1, 8, scale="producers") == {
      "a": 8, "b": 16}
  # 'producers' is 'mean' with the producer counts as weights.
  assert latency.search_latency(plan, lm, 0.1, 8,
                                weights={"a": 1, "b": 2}) == {"a": 8,
                                                              "b": 16}
  with pytest.raises(ValueError, match=r"`scale` must be one of "
                     r"\('mean', 'producers'\), got 'sum'"):
    latency.search_latency(plan, lm, 0.1, 8, scale="sum")

  class Given(tps.criteria.Criterion):
    name = "given"

    def score(self, ctx):
      return {g.id: scores[g.id] for g in ctx.groups}

  # tps.prune plans on the scale it is given.
  for scale, kept in (("mean", [("a", 16, 16), ("b", 8, 16)]),
                      ("producers", [("a", 8, 16), ("b", 16, 16)])):
    result = tps.prune(model, Given(), target_latency=0.1, latency=lm,
                       round_to=8, latency_scale=scale)
    assert result.report.groups == kept
  with pytest.raises(ValueError, match=r"`latency_scale` must be one of "
                     r"\('mean', 'producers'\), got 'halp'"):
    tps.prune(model, Given(), target_latency=0.1, latency=lm,
              latency_scale="halp")
  with pytest.raises(ValueError, match=r"`latency_scale`='producers' weighs "
                     "groups for `target_latency` only"):
    tps.prune(model, Given(), target_macs=0.3, latency_scale="producers")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ratios_fix_their_groups_and_latency_allocates_the_rest(framework):
  lm = fake_table()
  _, _, plan = planner(framework)
  # Alone, goal 5 ms is met by c1 at 8 (see test_allocation_by_hand). With
  # c2 fixed at 8 (6.5 ms), the search still has to cut c1 to 8: 1 + 3 +
  # 0.5 = 4.5 ms; c2 is neither cut further nor given back.
  assert latency.search_latency(plan, lm, 2 / 7, fixed={"c2": 8}) == {
      "c1": 8, "c2": 8}
  # c1 fixed at 12 buys nothing (the staircase charges 16); goal 6.5 ms
  # needs 0.5 ms, which only c2 can give, and c1 stays at 12.
  assert latency.search_latency(plan, lm, 0.5 / 7, fixed={"c1": 12}) == {
      "c1": 12, "c2": 8}
  # Fixed cuts that reach the goal alone: nothing else is cut.
  assert latency.search_latency(plan, lm, 0.5 / 7, fixed={"c1": 8}) == {
      "c1": 8, "c2": 16}
  # A fixed group cannot be cut to reach the goal: unreachable.
  with pytest.raises(ValueError, match=r"reduction is 0\.286, with .*groups "
                     r"fixed by `ratios`: 'c2' \(keeps 16 of 16\)"):
    latency.search_latency(plan, lm, 4 / 7, fixed={"c2": 16})
  # Through tps.prune: `ratios` takes c2 to exactly half, by its scores.
  model = small_model(framework)
  r = tps.prune(model, "l1", target_latency=2 / 7, latency=lm,
                ratios={"c2": 0.5})
  assert {g: len(k) for g, k in r.keep.items()} == {"c1": 8, "c2": 8}
  alone = tps.prune(model, "l1", ratios={"c2": 0.5})
  assert list(r.keep["c2"]) == list(alone.keep["c2"])
  assert r.report.latency_predicted_ratio == pytest.approx(4.5 / 7)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_prune_with_target_latency_and_fake_table(framework):
  model = small_model(framework)
  lm = fake_table()
  result = tps.prune(model, "l1", target_latency=4 / 7, latency=lm,
                     min_channels=4)
  assert {g: len(k) for g, k in result.keep.items()} == {"c1": 8, "c2": 4}
  assert result.report.latency_predicted_ratio == pytest.approx(3 / 7)
  assert result.report.latency_before_ms > 0
  assert result.report.latency_after_ms > 0
  assert "latency ms" in str(result.report)
  assert type(result.model).__module__.split(".")[0] == (
      type(model).__module__.split(".")[0])
  # min_channels stops c2 above 4: then the goal is out of reach.
  with pytest.raises(ValueError, match="unreachable.*largest predicted"):
    tps.prune(model, "l1", target_latency=4 / 7, latency=lm, min_channels=5)
  # `ignore` of c2's consumer leaves c2 whole: c1 alone gives 7 -> 5.
  with pytest.raises(ValueError, match="unreachable"):
    tps.prune(model, "l1", target_latency=0.4, latency=lm, ignore="out")
  r = tps.prune(model, "l1", target_latency=0.25, latency=lm, ignore="out")
  assert set(r.keep) == {"c1"}
  # reconstruct= re-fits the consumers of the same keep sets.
  x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
  refit = tps.prune(model, "l1", data=x, target_latency=4 / 7, latency=lm,
                    min_channels=4, reconstruct=True)
  assert {g: list(k) for g, k in refit.keep.items()} == {
      g: list(k) for g, k in result.keep.items()}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unreachable_target_latency_names_what_limits_it(framework,
                                                          monkeypatch):
  model = small_model(framework)
  lm = fake_table()
  # Found before any data is scored.
  def no_scoring(*args, **kwargs):
    raise AssertionError("scored before the reachability check")
  monkeypatch.setattr("tfprune_survey.pruner.score_fn", no_scoring)
  # `ignore` of c2's consumer leaves c2 whole: c1 at 8 gives 7 -> 5 ms
  # (c1 1.0 + c2 3.0 + out 1.0), a reduction of 2/7.
  with pytest.raises(ValueError) as e:
    tps.prune(model, "l1", target_latency=0.4, latency=lm, ignore="out")
  assert str(e.value) == (
      "`target_latency`=0.4 is unreachable: the largest predicted latency "
      "reduction is 0.286, with min_channels=1; round_to=1; groups left "
      "whole: 'c2' (by `ignore`)")
  # min_channels=5 stops c2 at 8 (its grid is 4): 1 + 3 + 0.5 = 4.5 ms.
  with pytest.raises(ValueError, match=r"reduction is 0\.357, with "
                     r"min_channels=5; round_to='auto' \(widths on each "
                     r"group's measured grid: 'c1': 8, 'c2': 4\)$"):
    tps.prune(model, "l1", target_latency=4 / 7, latency=lm, min_channels=5,
              round_to="auto")
  # c2 fixed whole by `ratios`: only c1 is cut, to 8 (7 -> 5 ms).
  with pytest.raises(ValueError, match=r"reduction is 0\.286, with "
                     r"min_channels=1; round_to=8; groups fixed by "
                     r"`ratios`: 'c2' \(keeps 16 of 16\)$"):
    tps.prune(model, "l1", target_latency=0.4, latency=lm, round_to=8,
              ratios={"c2": 0.0})
  # Reachable targets are unaffected by the check.
  monkeypatch.undo()
  r = tps.prune(model, "l1", target_latency=0.25, latency=lm, ignore="out")
  assert {g: len(k) for g, k in r.keep.items()} == {"c1": 8}


def test_plot_panels_by_hand(tmp_path):
  lm = fake_table()
  keep = {"c1": 8, "c2": [0, 1, 2, 3]}
  parts = latency_plot.panels(lm, keep)
  assert [p["name"] for p in parts] == ["c1", "c2", "out"]
  by = {p["name"]: p for p in parts}
  assert by["c2"]["out"] == ([4, 8, 12, 16], [2.0, 4.0, 4.0, 4.0])
  assert by["c2"]["in"] == ([8, 16], [3.0, 4.0])
  assert by["c1"]["kept"] == (3, 8)
  assert by["c2"]["kept"] == (8, 4)
  assert by["out"]["kept"] == (4, 4)
  # c1: 2 * 1 / 2; c2: 3 * 2 / 4; out: 0.5 at 4 inputs (staircase).
  assert [p["kept_ms"] for p in parts] == pytest.approx([1.0, 1.5, 0.5])
  assert sum(p["kept_ms"] for p in parts) == pytest.approx(lm.predict(keep))
  # By default the slowest layers at full width, in model order.
  assert [p["name"] for p in latency_plot.panels(lm, max_layers=2)] == [
      "c1", "c2"]
  assert [p["name"] for p in latency_plot.panels(lm, layers=["out", "c1"])
          ] == ["out", "c1"]
  path = lm.plot(str(tmp_path / "lat.png"), keep)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="nope"):
    lm.plot(str(tmp_path / "x.png"), layers=["nope"])
  with pytest.raises(ValueError, match="max_layers"):
    lm.plot(str(tmp_path / "x.png"), max_layers=0)


def test_plot_leaves_pyplot_backend_and_figures_alone(tmp_path):
  """plot writes the PNG without switching pyplot's backend (a notebook's
  inline one) or touching the caller's open figures."""
  lm = fake_table()
  with callers_pyplot():
    path = str(tmp_path / "lat.png")
    assert latency_plot.plot(lm, path, {"c1": 8, "c2": 4}) == path
    assert lm.plot(str(tmp_path / "lat2.png")) == str(tmp_path / "lat2.png")
  # 3 panels in a row of 3.4 x 2.6 in each, at 120 dpi.
  assert png_size(path) == (1224, 312)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kept_widths_of_a_model_match_its_keep(framework):
  model = small_model(framework)
  lm = fake_table()
  keep = {"c1": [0, 2, 4, 6, 8, 10, 12, 14], "c2": [1, 3, 5, 7]}
  slim = tps.materialize(model, keep)
  assert lm.kept_widths(slim) == lm.kept_widths(keep) == {
      "c1": (3, 8), "c2": (8, 4), "out": (4, 4)}
  assert lm.predict(slim) == pytest.approx(lm.predict(keep))
  assert lm.kept_widths() == {"c1": (3, 16), "c2": (16, 16), "out": (16, 4)}


def test_save_load_round_trip(tmp_path):
  lm = fake_table()
  path = tmp_path / "lm.json"
  lm.save(str(path))
  back = latency.LatencyModel.load(str(path))
  assert back.to_dict() == lm.to_dict()
  for counts in ({}, {"c1": 8}, {"c2": 5}, {"c1": 3, "c2": 12}):
    assert back.predict(counts) == lm.predict(counts)


def test_save_never_leaves_a_truncated_file(tmp_path, monkeypatch):
  lm = fake_table()
  path = tmp_path / "lm.json"
  lm.save(str(path))
  before = path.read_text()

  def broken():
    raise RuntimeError("interrupted")
  monkeypatch.setattr(lm, "to_dict", broken)
  with pytest.raises(RuntimeError, match="interrupted"):
    lm.save(str(path))
  assert path.read_text() == before
  assert os.listdir(tmp_path) == ["lm.json"]


def test_measure_is_monotone_cached_and_predicts_models(tmp_path):
  model = small_model("keras3", width=24)
  lm = latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                    max_points=3, verbose=0)
  assert [l.name for l in lm.layers] == ["c1", "c2", "out"]
  c2 = lm.layers[1]
  assert c2.out_widths == [8, 16, 24] and c2.in_widths == [8, 16, 24]
  assert lm.runtime["threads"] == 1 and lm.runtime["delegate"] == "xnnpack"
  assert lm.measured_ms > 0 and lm.seconds > 0
  for gid in ("c1", "c2"):
    times = [lm.predict({gid: w}) for w in range(1, 25)]
    assert all(a <= b + 1e-12 for a, b in zip(times, times[1:])), times
  # A slim model is predicted from its own widths, as its keep dict is.
  keep = {"c1": np.arange(16), "c2": np.arange(8)}
  slim = tps.materialize(model, keep)
  assert lm.predict(slim) == pytest.approx(lm.predict(keep))
  # Cached: the same architecture and runtime read the file back.
  files = os.listdir(tmp_path)
  assert len(files) == 1 and files[0].startswith("small-")
  again = latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                       max_points=3, verbose=0)
  assert again.to_dict() == lm.to_dict()
  # So does another build of it under another model name.
  rebuilt = small_model("keras3", width=24)
  rebuilt = frameworks.get("keras3").keras.Model(
      rebuilt.inputs, rebuilt.outputs, name="renamed")
  cached = latency.LatencyModel.measure(rebuilt, cache_dir=str(tmp_path),
                                        max_points=3, verbose=0)
  assert cached.to_dict() == lm.to_dict() and len(os.listdir(tmp_path)) == 1
  # A damaged cache file (e.g. a write cut short) is measured again, with a
  # warning naming it, and replaced.
  path = tmp_path / files[0]
  path.write_text(path.read_text()[:100])
  with pytest.warns(UserWarning, match="measured again.*" + files[0]):
    remeasured = latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                              max_points=3, verbose=0)
  assert [l.out_widths for l in remeasured.layers] == [
      l.out_widths for l in lm.layers]
  assert os.listdir(tmp_path) == files
  assert latency.LatencyModel.load(str(path)).to_dict() == remeasured.to_dict()


def test_measure_at_given_width_fractions(tmp_path):
  model = small_model("tf_keras", width=24)
  lm = latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                    widths=(0.25, 0.5), verbose=0)
  c2 = lm.layers[1]
  # 0.25 x 24 = 6 and 0.5 x 24 = 12, rounded up to multiples of 8; 24 too.
  assert c2.out_widths == [8, 16, 24] and c2.in_widths == [8, 16, 24]
  assert lm.step("c2") == 8
  for bad in ((0.0, 0.5), (1.5,), ()):
    with pytest.raises(ValueError, match="`widths` must be fractions"):
      latency.LatencyModel.measure(model, cache_dir=str(tmp_path),
                                   widths=bad, verbose=0)


def test_profile_csv_parser_on_sample():
  rows = latency.parse_benchmark_profile(SAMPLE)
  assert [r["node type"] for r in rows] == [
      "Convolution (NHWC, F32) IGEMM", "Convolution (NHWC, F32) IGEMM",
      "Mean (ND) Reduce", "Fully Connected (NC, F32) GEMM"]
  assert [float(r["avg_ms"]) for r in rows] == [0.012, 0.030, 0.004, 0.004]
  assert rows[1]["name"] == "Delegate/Convolution (NHWC\t F32) IGEMM:1"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_from_benchmark_profile(framework):
  model = small_model(framework)
  lm = latency.LatencyModel.from_benchmark_profile(SAMPLE, model)
  assert [l.name for l in lm.layers] == ["c1", "c2", "out"]
  assert [l.full_ms for l in lm.layers] == [0.012, 0.030, 0.004]
  assert lm.predict() == pytest.approx(0.046)
  assert lm.measured_ms == pytest.approx(0.050)
  # Linear in each width from one point: halving c1 halves c1's time and
  # c2's (its input).
  assert lm.predict({"c1": 8}) == pytest.approx(0.006 + 0.015 + 0.004)
  lm.check(model)
  with pytest.raises(ValueError, match="conv/Dense ops"):
    latency.LatencyModel.from_benchmark_profile(
        SAMPLE, tps.zoo.residual_cnn(framework=framework))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_rebuilt_architecture_fits_the_same_table(framework):
  # A second build gets other auto-generated input and model names
  # ('input_1' / 'input_2'); the table and its cache key still fit it.
  first = small_model(framework)
  lm = latency.LatencyModel.from_benchmark_profile(SAMPLE, first)
  keras = frameworks.get(framework).keras
  again = small_model(framework)
  again = keras.Model(again.inputs, again.outputs, name="small_again")
  assert first.inputs[0].name != again.inputs[0].name
  key = latency.architecture_key(again)
  assert key.startswith("small_again-")
  assert key.rsplit("-", 1)[1] == lm.arch.rsplit("-", 1)[1]
  lm.check(again)
  result = tps.prune(again, "l1", target_latency=0.3, latency=lm)
  assert result.keep and lm.predict(result.keep) <= 0.7 * lm.predict()
  # The layers keep their own names: the input group is no longer keyed
  # by the input's name.
  assert lm.layers[0].in_axis == [["fixed:0", 3, 1]]


def test_profile_without_the_section_is_refused(tmp_path):
  bad = tmp_path / "p.csv"
  bad.write_text("node type, first, avg_ms\nCONV_2D, 1, 1\n")
  with pytest.raises(ValueError, match="Regular Benchmark Runs"):
    latency.parse_benchmark_profile(str(bad))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_inputs(framework):
  model = small_model(framework)
  lm = fake_table()
  for bad in (0.0, 1.0, 1.5, -0.2):
    with pytest.raises(ValueError, match=r"`target_latency` must be in"):
      tps.prune(model, "l1", target_latency=bad, latency=lm)
  with pytest.raises(TypeError, match="target_latency"):
    tps.prune(model, "l1", target_latency="half", latency=lm)
  for other in ({"target_macs": 0.5}, {"ratio": 0.5},
                {"target_macs": 0.5, "ratios": {"c1": 0.5}}):
    with pytest.raises(ValueError, match="exactly one of.*target_latency"):
      tps.prune(model, "l1", target_latency=0.5, latency=lm, **other)
  with pytest.raises(ValueError,
                     match=r"`ratios` names \['nope'\], which are not"):
    tps.prune(model, "l1", target_latency=0.3, latency=lm,
              ratios={"nope": 0.5})
  with pytest.raises(ValueError, match="'auto'.*needs `target_latency`"):
    tps.prune(model, "l1", target_macs=0.5, round_to="auto")
  with pytest.raises(ValueError, match="scope='global'"):
    tps.prune(model, "l1", target_latency=0.3, latency=lm, scope="local")
  with pytest.raises(TypeError, match="`latency` must be"):
    tps.prune(model, "l1", target_latency=0.3, latency={"c1": 1})
  # A table of another architecture: wider c1, or other layers.
  wider = small_model(framework, width=24)
  with pytest.raises(ValueError, match="another architecture"):
    tps.prune(wider, "l1", target_latency=0.3, latency=lm)
  with pytest.raises(ValueError, match="another architecture"):
    tps.prune(tps.zoo.residual_cnn(framework=framework), "l1",
              target_latency=0.3, latency=lm)
  keyed = latency.LatencyModel.from_dict({**lm.to_dict(), "arch": "x-1"})
  with pytest.raises(ValueError, match="LatencyModel of another architect"):
    tps.prune(model, "l1", target_latency=0.3, latency=keyed)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_round_to_errors_name_auto(framework):
  model = small_model(framework)
  lm = fake_table()
  allowed = (r"`round_to` must be an int >= 1, or 'auto' \(with "
             r"`target_latency`: each group's step from the LatencyModel\)")
  for kwargs in (dict(target_latency=0.3, latency=lm), dict(ratio=0.5)):
    for bad in ("Auto", "AUTO", "8", ""):
      with pytest.raises(ValueError, match=f"{allowed}, got {bad!r}$"):
        tps.prune(model, "l1", round_to=bad, **kwargs)
  with pytest.raises(TypeError, match=f"{allowed}, got 2.5 of type float"):
    tps.prune(model, "l1", target_latency=0.3, latency=lm, round_to=2.5)
  # Without target_latency 'auto' is not allowed, and not offered.
  with pytest.raises(TypeError, match=r"^`round_to` must be an int >= 1, "
                     "got 2.5 of type float$"):
    tps.prune(model, "l1", ratio=0.5, round_to=2.5)
  r = tps.prune(model, "l1", target_latency=2 / 7, latency=lm,
                round_to="auto")
  assert r.report.latency_predicted_ratio <= 5 / 7 + 1e-9


def _bad_table(edit):
  """fake_table()'s dict with `edit(d)` applied (layers[1] is 'c2')."""
  d = fake_table().to_dict()
  edit(d)
  return d


def _set(path, value):
  def edit(d):
    *keys, last = path
    for k in keys:
      d = d[k]
    d[last] = value
  return edit


def _drop(path):
  def edit(d):
    *keys, last = path
    for k in keys:
      d = d[k]
    del d[last]
  return edit


MALFORMED = [
    (_set(("format",), "tfprune_survey.LatencyModel/2"),
     r"'format' is 'tfprune_survey.LatencyModel/2', expected "
     r"'tfprune_survey.LatencyModel/1'"),
    (_drop(("layers",)), r"expected a dict with 'layers'"),
    (_set(("fixed_MS",), 1.0), r"unknown keys \['fixed_MS'\]"),
    (_set(("layers",), 5), r"'layers' must be a list .*got int"),
    (_set(("layers",), "ab"), r"'layers' must be a list .*got str"),
    (_set(("layers", 1), "c2"), r"layers\[1\] must be a dict .*got str"),
    (_set(("fixed_ms",), "0.1"), r"'fixed_ms' must be a finite number"),
    (_set(("fixed_ms",), None), r"'fixed_ms' must be a finite number"),
    (_set(("fixed_ms",), -0.1), r"'fixed_ms' must be a finite number >= 0"),
    (_set(("measured_ms",), float("nan")), r"'measured_ms' must be a finite"),
    (_set(("seconds",), True), r"'seconds' must be a finite number"),
    (_set(("arch",), 3), r"'arch' must be a string or null"),
    (_set(("runtime",), ["cpu"]), r"'runtime' must be a dict or null"),
    (_set(("steps",), [8]), r"'steps' must be a dict"),
    (_set(("steps", "c2"), 0), r"'steps'\['c2'\] must be a positive int"),
    (_set(("steps", "c2"), 4.0), r"'steps'\['c2'\] must be a positive int"),
    (_drop(("layers", 1, "in_ms")), r"layers\[1\] \('c2'\) lacks \['in_ms'\]"),
    (_set(("layers", 1, "in_msec"), [1.0]),
     r"layers\[1\] \('c2'\) has unknown keys \['in_msec'\]"),
    (_set(("layers", 1, "name"), ""), r"layers\[1\]: 'name' must be a "
     "non-empty string"),
    (_set(("layers", 1, "in_full"), 16.0), r"\('c2'\): 'in_full' must be a "
     "positive int, got 16.0"),
    (_set(("layers", 1, "out_full"), 0), r"'out_full' must be a positive int"),
    (_set(("layers", 1, "multiplier"), -1), r"'multiplier' must be an int"),
    (_set(("layers", 1, "full_ms"), "4"), r"\('c2'\): 'full_ms' must be a "
     "finite number"),
    (_set(("layers", 1, "in_axis"), "c1"), r"'in_axis' must be a list"),
    (_set(("layers", 1, "in_axis"), [["c1", 16]]),
     r"\('c2'\): 'in_axis'\[0\] must be \[group id \(str\), size"),
    (_set(("layers", 1, "in_axis"), [["c1", 0, 1]]), r"'in_axis'\[0\] must"),
    (_set(("layers", 1, "out_axis"), [[7, 16, 1]]), r"'out_axis'\[0\] must"),
    (_set(("layers", 2, "in_axis"), [["c2", 24, 1]]),
     r"layers\[2\] \('out'\): 'in_axis' gives group 'c2' 24 channels where "
     "an earlier layer gives it 16"),
    (_set(("layers", 1, "in_ms"), []), r"\('c2'\): 'in_ms' must be a list of "
     r"one time per width in 'in_widths' \(2\)"),
    (_set(("layers", 1, "out_widths"), []), r"\('c2'\): 'out_widths' must be "
     "a non-empty list"),
    (_set(("layers", 1, "in_widths"), [8.5, 16]),
     r"'in_widths' must hold ints in \[1, in_full=16\], got \[8.5\]"),
    (_set(("layers", 1, "in_widths"), [0, 16]), r"'in_widths' must hold ints"),
    (_set(("layers", 1, "in_widths"), [8, 32]), r"in_full=16\], got \[32\]"),
    (_set(("layers", 1, "out_widths"), [4, 12, 8, 16]),
     r"\('c2'\): 'out_widths' must be strictly ascending"),
    (_set(("layers", 1, "out_widths"), [4, 8, 8, 16]),
     r"'out_widths' must be strictly ascending \(no repeats\)"),
    (_set(("layers", 1, "out_ms"), [2.0, "4", 4.0, 4.0]),
     r"\('c2'\): 'out_ms' must hold finite numbers >= 0 \(ms\), got \['4'\]"),
    (_set(("layers", 1, "in_ms"), [-3.0, 4.0]), r"'in_ms' must hold finite"),
    (_set(("layers", 1, "in_ms"), [3.0, float("inf")]), r"'in_ms' must hold"),
]


@pytest.mark.parametrize("edit,match", MALFORMED,
                         ids=[f"bad{i}" for i in range(len(MALFORMED))])
def test_from_dict_and_load_refuse_malformed_tables(tmp_path, edit, match):
  d = _bad_table(edit)
  with pytest.raises(ValueError, match=match):
    latency.LatencyModel.from_dict(d)
  path = tmp_path / "bad.json"
  path.write_text(json.dumps(d))
  with pytest.raises(ValueError, match=re.escape(repr(str(path))) + ": .*"
                     + match):
    latency.LatencyModel.load(str(path))


def test_load_names_a_file_that_is_no_table(tmp_path):
  path = tmp_path / "lm.json"
  path.write_text('{"layers": [')
  with pytest.raises(ValueError, match=re.escape(repr(str(path))) +
                     " is not a LatencyModel JSON file"):
    latency.LatencyModel.load(str(path))
  path.write_text('{"rows": []}')
  with pytest.raises(ValueError, match=r"lm.json': not a LatencyModel: "
                     r"expected a dict with 'layers'.*\['rows'\]"):
    latency.LatencyModel.load(str(path))
  for bad in (None, [1], "layers"):
    with pytest.raises(ValueError, match="not a LatencyModel"):
      latency.LatencyModel.from_dict(bad)


def test_from_dict_accepts_what_save_writes_and_minimal_tables(tmp_path):
  lm = fake_table()
  d = lm.to_dict()
  assert d["format"] == "tfprune_survey.LatencyModel/1"
  # Through JSON, as `save` writes it.
  back = latency.LatencyModel.from_dict(json.loads(json.dumps(d)))
  assert back.to_dict() == d
  # Hand-written tables: no 'format' and only 'layers' (defaults for the
  # rest), axes as tuples, no 'multiplier', null optional fields, and
  # fixed groups keyed by an input's name (as tables saved before the
  # 'fixed:0' ids were).
  layers = [dict(l) for l in d["layers"]]
  for l in layers:
    del l["multiplier"]
  layers[0]["in_axis"] = [("input_1", 3, 1)]
  minimal = latency.LatencyModel.from_dict({"layers": layers})
  assert minimal.predict() == pytest.approx(7.0)
  assert minimal.predict({"c1": 8}) == pytest.approx(5.0)
  nulls = latency.LatencyModel.from_dict({**d, "arch": None, "runtime": None,
                                          "steps": None, "measured_ms": None,
                                          "seconds": None})
  assert nulls.step("c2") == 1
  # A table with no timed layers (a model without conv or Dense).
  assert latency.LatencyModel.from_dict({"layers": [], "fixed_ms": 0.25
                                         }).predict() == pytest.approx(0.25)
  # A saved `from_benchmark_profile` table (a staircase of step 1) loads;
  # tables `measure` saves are read back in test_measure_is_monotone_cached.
  profiled = latency.LatencyModel.from_benchmark_profile(
      SAMPLE, small_model("keras3"))
  path = tmp_path / "p.json"
  profiled.save(str(path))
  assert latency.LatencyModel.load(str(path)).to_dict() == profiled.to_dict()


def test_predict_refuses_group_ids_the_tables_do_not_time(tmp_path):
  lm = fake_table()
  # A misspelt id was read as "unpruned": 7 ms, as if nothing were cut.
  for keep, unknown in (({"c1x": 2}, r"\['c1x'\]"),
                        ({"c1": 8, "zz": 3, "c9": [0, 1]}, r"\['c9', 'zz'\]")):
    with pytest.raises(ValueError, match=r"`model_or_keep` names group ids "
                       r"these latency tables do not time: " + unknown +
                       r"; known group ids \(2\): 'c1', 'c2'$"):
      lm.predict(keep)
    with pytest.raises(ValueError, match="do not time"):
      lm.kept_widths(keep)
    with pytest.raises(ValueError, match="do not time"):
      lm.plot(str(tmp_path / "x.png"), keep)
  # Known ids, partial dicts and the unpruned model still predict.
  assert lm.predict({"c1": 8}) == pytest.approx(5.0)
  assert lm.predict({}) == lm.predict() == pytest.approx(7.0)
  # predict_counts, which the planner calls with every planned group (some
  # of which may time no layer), still takes any id.
  assert lm.predict_counts({"c1": 8, "other": 3}) == pytest.approx(5.0)
  # A keep from tps.prune with these tables predicts.
  r = tps.prune(small_model("keras3"), "l1", target_latency=2 / 7,
                latency=lm)
  assert lm.predict(r.keep) == pytest.approx(5.0)


def test_plot_refuses_empty_or_unknown_layers(tmp_path):
  lm = fake_table()
  path = str(tmp_path / "x.png")
  # An empty list divided by zero columns.
  for empty in ([], ()):
    with pytest.raises(ValueError, match=r"`layers` is empty: name at least "
                       r"one layer.*timed: \['c1', 'c2', 'out'\]$"):
      lm.plot(path, layers=empty)
    with pytest.raises(ValueError, match="`layers` is empty"):
      latency_plot.panels(lm, layers=empty)
  with pytest.raises(ValueError, match=r"`layers` names layers these tables "
                     r"do not time: \['c3', 7\]; timed: \['c1', 'c2', 'out'\]$"):
    lm.plot(path, layers=["c1", "c3", 7])
  with pytest.raises(ValueError, match=r"`layers` must be a layer name or a "
                     "list of layer names, got 5"):
    lm.plot(path, layers=5)
  with pytest.raises(ValueError, match="time no layer: there is nothing to "
                     "plot"):
    latency.LatencyModel([], fixed_ms=0.1).plot(path)
  assert not os.path.exists(path)
  # A generator of names and a single name still draw.
  assert [p["name"] for p in latency_plot.panels(
      lm, layers=(n for n in ("c2", "out")))] == ["c2", "out"]
  assert lm.plot(path, layers="c2") == path and os.path.exists(path)


def test_time_tflite_refuses_a_file_of_free_input_size(tmp_path):
  keras = frameworks.get("keras3").keras
  inp = keras.Input((None, None, 3))
  model = keras.Model(inp, keras.layers.Conv2D(4, 3)(inp))
  import tflite_export  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "free.tflite")
  tflite_export.convert(model, path)
  with pytest.raises(ValueError, match="free size.*input_shape"):
    latency.time_tflite(path)


def test_time_tflite_errors_name_its_own_arguments(tmp_path, monkeypatch):
  import tflite_export  # pylint: disable=g-import-not-at-top
  missing = str(tmp_path / "nope.tflite")
  with pytest.raises(FileNotFoundError,
                     match=re.escape(f"path '{missing}' is not a file")) as e:
    latency.time_tflite(missing)
  assert "tflite_path" not in str(e.value)
  with pytest.raises(FileNotFoundError) as e:
    tflite_export.describe(missing)
  assert str(e.value) == f"path '{missing}' is not a file"
  keras = frameworks.get("keras3").keras
  inp = keras.Input((4,))
  path = str(tmp_path / "m.tflite")
  tflite_export.convert(keras.Model(inp, keras.layers.Dense(3)(inp)), path)
  # Checked before the file is opened (rounds=0 divided by zero, a delegate
  # or clock it does not know was timed without a word).
  opened = []
  monkeypatch.setattr("tflite_export.inspect_model.interpreter",
                      lambda *a, **k: opened.append(a))
  for kwargs, error, text in [
      ({"rounds": 0}, ValueError, "`rounds` must be an int >= 1, got 0"),
      ({"rounds": 2.0}, TypeError, "`rounds` must be an int >= 1, got 2.0"),
      ({"threads": None}, TypeError,
       "`threads` must be an int >= 1, got None"),
      ({"threads": 0}, ValueError, "`threads` must be an int >= 1, got 0"),
      ({"budget_ms": 0}, ValueError,
       "`budget_ms` must be a finite number > 0, got 0"),
      ({"budget_ms": float("nan")}, ValueError,
       "`budget_ms` must be a finite number > 0, got nan"),
      ({"delegate": "gpu"}, ValueError,
       "`delegate` must be one of ('xnnpack', 'none'), got 'gpu'"),
      ({"clock": "process"}, ValueError,
       "`clock` must be one of ('auto', 'cpu', 'wall'), got 'process'"),
  ]:
    with pytest.raises(error, match=re.escape("time_tflite: " + text)):
      latency.time_tflite(path, **kwargs)
  assert not opened
  monkeypatch.undo()
  ms = latency.time_tflite(path, rounds=np.int64(1), budget_ms=1,
                           delegate="none", clock="wall")
  assert 0 < ms < 1e3
