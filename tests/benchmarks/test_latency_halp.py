"""benchmarks/latency_halp.py on tiny settings (no timing claims)."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.benchmarks import load_benchmark
from tests.latency_tables import fake_table
from tests.latency_tables import macs_proportional_timer
from tests.latency_tables import small_model


def test_raw_scale_compares_the_criterions_own_values():
  """Normalised score x weight is the raw score over one common factor, so
  the plan is the one planned on raw scores; 'mean' leaves the default."""
  harness = load_benchmark("latency_halp")
  model = small_model("keras3")
  graph = tps.ChannelGraph(model)
  raw = {"c1": np.linspace(1.0, 4.0, 16), "c2": np.linspace(10.0, 40.0, 16)}
  planner = tps.Planner(graph, raw)
  weights = harness.scale_weights("raw", planner)
  ratio = [planner.normalized[g] * weights[g] / raw[g] for g in ("c1", "c2")]
  factor = ratio[0][0]
  for r in ratio:
    np.testing.assert_allclose(r, factor, rtol=1e-12)
  # c2's raw scores are 10x c1's: raw weights spare c2, the default does not.
  assert weights["c2"] == pytest.approx(10 * weights["c1"])
  assert harness.scale_weights("mean", planner) is None
  producers = harness.scale_weights("producers", planner)
  assert producers == {"c1": 1, "c2": 1}
  with pytest.raises(ValueError, match="unknown scale 'sum'"):
    harness.scale_weights("sum", planner)
  # On the hand-made table (see fake_table), removing 1/7 of the 7 ms
  # (1 ms) takes one of two cuts: c1 16 -> 8 saves 2 ms (1 in c1, 1 in c2's
  # input) and drops 8 channels; c2 16 -> 4 saves 2.5 ms (2 in c2, 0.5 in
  # out's input) and drops 12 (c2 16 -> 8 saves only 0.5 ms). With scores
  # equal within each group, the default counts every channel alike and
  # drops the fewer, c1's 8; raw scores 10 on c1 and 1 on c2 price those 8
  # at 80 against 12, so c2 is cut to 4 instead.
  flat = {"c1": 10 * np.ones(16), "c2": np.ones(16)}
  flat_planner = tps.Planner(graph, flat)
  lm = fake_table()
  assert tps.latency.search_latency(flat_planner, lm, 1 / 7, "auto") == {
      "c1": 8, "c2": 16}
  assert tps.latency.search_latency(
      flat_planner, lm, 1 / 7, "auto",
      weights=harness.scale_weights("raw", flat_planner)) == {
          "c1": 16, "c2": 4}


def test_smoke_writes_every_variant(tmp_path, monkeypatch):
  macs_proportional_timer(monkeypatch)   # latency targets always reachable
  harness = load_benchmark("latency_halp")
  state = harness.main([
      "--models", "resnet8", "--train-images", "256", "--epochs", "1",
      "--score-images", "32", "--recal-images", "64", "--rounds", "1",
      "--target", "0.3", "--fashion-dir", str(tmp_path / "absent"),
      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path),
      "--tag", "t", "--verbose", "0"])
  assert [r["variant"] for r in state["rows"]] == [
      v[0] for v in harness.VARIANTS]
  for r in state["rows"]:
    assert 0 < r["macs_fraction"] < 1
    for rt in ("1", "8"):
      lat = r[f"latency_fraction_rt{rt}"]
      assert r["faster_at_its_macs"][rt] == pytest.approx(
          lat / r["latency_fraction"] - 1)
    assert set(r["oneshot_top1"]) == {"latency-aware", "round_to=1",
                                      "round_to=8"}
    assert all(0 <= v <= 1 for v in r["oneshot_top1"].values())
  # The timer is MACs-proportional: the plans hold the target (0.3 of the
  # predicted latency removed) on measured latency too, within a step.
  for r in state["rows"]:
    assert r["predicted_fraction"] <= 0.7 + 1e-9
  for ext in ("json", "md", "png"):
    assert (tmp_path / f"t.{ext}").stat().st_size > 0
  assert "| HALP: taylor_fo sum, raw |" in (tmp_path / "t.md").read_text()
