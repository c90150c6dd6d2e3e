"""benchmarks/latency_pruning.py end to end on tiny settings (no timing claims)."""

import json

from tests.benchmarks import load_benchmark
from tests.latency_tables import macs_proportional_timer


def test_smoke_writes_rows_summaries_and_accuracy(tmp_path, monkeypatch):
  macs_proportional_timer(monkeypatch)   # latency targets always reachable
  harness = load_benchmark("latency_pruning")
  state = harness.main([
      "--models", "resnet8:16", "--target", "0.1", "--rounds", "1",
      "--fashion-dir", str(tmp_path / "absent"), "--train-images", "300",
      "--ft-images", "100", "--width", "16", "--macs-targets", "0.3,0.5",
      "--latency-targets", "0.1,0.2", "--seeds", "0",
      "--out", str(tmp_path), "--tag", "t", "--verbose", "0"])
  variants = [r["variant"] for r in state["rows"]]
  assert variants == ["original", "latency-aware", "MACs, round_to=1",
                      "MACs, round_to=8", "MACs 0.5, round_to=1",
                      "MACs 0.5, round_to=8", "latency-aware at MACs 0.5",
                      "ms/MAC greedy, its MACs", "ms/MAC greedy, MACs 0.5"]
  by = {r["variant"]: r for r in state["rows"]}
  assert by["original"]["macs_fraction"] == 1.0
  # Equal MACs: the MACs-targeted models remove what the latency-aware one
  # did, within target_macs' 2% tolerance (round_to=8 may fall short).
  lat = by["latency-aware"]["macs_fraction"]
  assert abs(by["MACs, round_to=1"]["macs_fraction"] - lat) <= 0.021
  assert by["latency-aware"]["predicted_fraction"] <= 0.9 + 1e-9
  for r in state["rows"]:
    assert r["ms"] > 0 and r["predicted_ms"] > 0
  (summary,) = state["summaries"]
  assert summary["one_layer_files"] > summary["layers"]
  assert set(summary["faster_than_macs"]) == {"MACs, round_to=1",
                                              "MACs, round_to=8"}
  assert set(summary["faster_than_macs_at_half"]) == {
      "MACs 0.5, round_to=1", "MACs 0.5, round_to=8"}
  assert 0.15 <= summary["target_for_half_macs"] <= 0.75
  # The criterion-blind greedy stops at (or just past) the MACs it is given.
  assert by["ms/MAC greedy, MACs 0.5"]["macs_fraction"] <= 0.5 + 1e-9
  assert by["ms/MAC greedy, its MACs"]["macs_fraction"] <= lat + 1e-9
  assert set(summary["greedy_faster_than_macs_at_half"]) == {
      "MACs 0.5, round_to=1", "MACs 0.5, round_to=8"}
  acc = state["accuracy"]
  assert acc["dataset"] == "sklearn digits (fallback)"
  assert [r["variant"] for r in acc["rows"]] == [
      "latency 0.1", "latency 0.2", "macs 0.3", "macs 0.5"]
  assert all(0 <= r["top1"] <= 1 for r in acc["rows"])
  # Each latency-targeted model is paired with the nearest MACs one.
  assert [p["latency"] for p in acc["pairs"]] == ["latency 0.1",
                                                  "latency 0.2"]
  assert acc["pairs_total"] == 2 and 0 <= acc["pairs_won"] <= 2
  assert all(r["seed"] == 0 for r in acc["rows"])
  rows = {r["variant"]: r for r in acc["rows"]}
  for p in acc["pairs"]:
    gap = abs(p["latency_gap"])
    assert all(gap <= abs(rows[m]["latency_fraction"] -
                          rows[p["latency"]]["latency_fraction"]) + 1e-12
               for m in ("macs 0.3", "macs 0.5"))
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["rows"] == state["rows"]
  md = (tmp_path / "t.md").read_text()
  assert "| resnet8 16 | latency-aware |" in md and "Accuracy against measured" in md
  assert (tmp_path / "t.png").stat().st_size > 5000
