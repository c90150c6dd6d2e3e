"""The cluster-cost benchmark's plumbing on a tiny model (no timing claims)."""

import json

from tests.benchmarks import load_benchmark


def test_both_kerases_every_run(tmp_path):
  bench = load_benchmark("cluster_cost")
  rows = bench.main(["--models", "tiny", "--images", "64", "--batch", "32",
                     "--repeats", "1", "--out", str(tmp_path)])
  labels = [label for label, _, _ in bench.RUNS] + [
      "graph alone", "feature-map pass alone", "materialize alone"]
  assert [(r["framework"], r["run"]) for r in rows] == [
      (fw, label) for fw in ("tf_keras", "keras3") for label in labels]
  for r in rows:
    assert len(r["run_runs_s"]) == 1 and r["run_s"] > 0
    assert r["ratio"] == r["run_s"] / r["baseline_s"]
    if "target_macs" in r["run"]:
      assert 0.5 <= r["macs_reduction"] <= 0.56
    if r["run"].startswith(("weights", "data")):
      assert r["channels_kept"] < r["channels_total"]
      # The same weights: Keras 3 merges exactly the channels tf_keras does.
      if r["framework"] == "keras3":
        assert r["same_keep_as_tf_keras"] is True
  saved = json.loads((tmp_path / "cluster_cost.json").read_text())
  assert saved["rows"] == rows and saved["meta"]["images"] == 64
  table = (tmp_path / "cluster_cost.md").read_text().splitlines()
  assert len(table) == 2 + len(rows)
  assert "| keras3 | residual CNN, width 8 | data, ratio=0.5 |" in table[-5]
