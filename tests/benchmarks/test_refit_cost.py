"""The refit-cost benchmark's plumbing on a tiny model (no timing claims)."""

import json

from tests.benchmarks import load_benchmark


def test_rows_tables_and_refit_quality(tmp_path):
  bench = load_benchmark("refit_cost")
  rows = bench.main(["--model", "tiny", "--images", "64", "--batch", "32",
                     "--repeats", "1", "--out", str(tmp_path)])
  assert [(r["framework"], r["what"]) for r in rows] == [
      (fw, what) for fw in ("tf_keras", "keras3")
      for what in ("thinet", "lasso", "reconstruct")]
  for r in rows:
    assert len(r["time_runs_s"]) == 1 and r["time_s"] > 0
    assert r["ratio"] == r["time_s"] / r["baseline_s"]
    if r["what"] == "reconstruct":
      # On the images it was fitted on, the re-fit lowers the error.
      assert r["mse_refit_fit"] < r["mse_slim_fit"]
      assert 0 < r["macs_ratio"] < 1
  saved = json.loads((tmp_path / "refit_cost.json").read_text())
  assert saved["rows"] == rows
  table = (tmp_path / "refit_cost.md").read_text().splitlines()
  assert len(table) == 2 + 6 and "| reconstruct |" in table[4]
