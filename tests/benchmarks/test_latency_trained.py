"""benchmarks/latency_trained.py on tiny settings (no timing claims)."""

import itertools

import numpy as np

import tfprune_survey as tps
from tests.benchmarks import load_benchmark
from tests.latency_tables import fake_table
from tests.latency_tables import macs_proportional_timer
from tests.latency_tables import small_model
from tfprune_survey.metrics.macs_model import MacsModel


def test_frontier_finds_the_fastest_widths_with_the_macs():
  """Against every width pair of the fake table's grid (c1: 8 or 16, c2: 4
  to 16 by 4): the lowest predicted time among those with enough MACs."""
  harness = load_benchmark("latency_trained")
  model = small_model("keras3")
  graph = tps.ChannelGraph(model)
  planner = tps.Planner(graph, {"c1": np.ones(16), "c2": np.ones(16)})
  lm, macs = fake_table(), MacsModel(model, graph)
  grid = [{"c1": a, "c2": b} for a, b in itertools.product((8, 16),
                                                           (4, 8, 12, 16))]
  goals = sorted({macs.macs(c) for c in grid})
  for goal in goals[1:-1]:
    want = min(lm.predict_counts(c) for c in grid if macs.macs(c) >= goal)
    got = harness.frontier(planner, lm, macs, goal, iters=400, seed=0)
    assert macs.macs(got) >= goal
    assert lm.predict_counts(got) == want, goal


def test_given_scores_rank_the_channels():
  harness = load_benchmark("latency_trained")
  model = small_model("keras3")
  scores = {"c1": np.arange(16.0)[::-1], "c2": np.arange(16.0)}
  result = tps.prune(model, harness.Given(scores, "hand"), ratio=0.25,
                     scope="local")
  np.testing.assert_array_equal(result.keep["c1"], np.arange(12))
  np.testing.assert_array_equal(result.keep["c2"], np.arange(4, 16))
  assert result.report.criterion == "given"


def test_smoke_writes_both_criteria(tmp_path, monkeypatch):
  macs_proportional_timer(monkeypatch)   # latency targets always reachable
  harness = load_benchmark("latency_trained")
  state = harness.main([
      "--models", "resnet8", "--train-images", "256", "--epochs", "1",
      "--score-images", "32", "--frontier-iters", "200", "--rounds", "1",
      "--target", "0.3", "--fashion-dir", str(tmp_path / "absent"),
      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path),
      "--tag", "t", "--verbose", "0"])
  assert [s["criterion"] for s in state["summaries"]] == ["l1", "taylor"]
  variants = {(r["criterion"], r["variant"]) for r in state["rows"]}
  for crit in ("l1", "taylor"):
    for v in ("latency-aware", "MACs, round_to=1", "MACs, round_to=8",
              "latency-aware at MACs 0.5", "frontier, its MACs"):
      assert (crit, v) in variants
  by = {(r["criterion"], r["variant"]): r for r in state["rows"]}
  for crit in ("l1", "taylor"):
    lat = by[(crit, "latency-aware")]
    assert lat["predicted_fraction"] <= 0.7 + 1e-9
    # Equal MACs: target_macs stops within 2% of the model's MACs.
    assert abs(by[(crit, "MACs, round_to=1")]["macs_fraction"] -
               lat["macs_fraction"]) <= 0.02 + 1e-9
    assert (by[(crit, "frontier, its MACs")]["macs_fraction"] >=
            lat["macs_fraction"] - 1e-9)
  assert state["summaries"][0]["dataset"] == "sklearn digits (fallback)"
  for ext in ("json", "md", "png"):
    assert (tmp_path / f"t.{ext}").exists()
