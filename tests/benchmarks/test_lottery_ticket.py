"""The lottery-ticket benchmark's plumbing on a tiny run (no accuracy claims)."""

import json

import pytest

from tests.benchmarks import load_benchmark


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_tiny_run_writes_every_output(tmp_path, framework):
  bench = load_benchmark("lottery_ticket")
  partial = tmp_path / "rows.json"
  summary = bench.main([
      "--framework", framework, "--seeds", "1", "--rounds", "2",
      "--control-rounds", "2", "--epochs", "1", "--train-samples", "300",
      "--out", str(tmp_path), "--name", "lt", "--partial", str(partial)])
  assert sorted(summary) == [("random_mask", 2), ("random_reinit", 2),
                             ("ticket", 0), ("ticket", 1), ("ticket", 2)]
  # Layer-wise 20% (output 10%) per round: 80% then 64% of fc1 and fc2.
  assert summary[("ticket", 0)]["remaining"] == 1.0
  assert summary[("ticket", 2)]["remaining"] == pytest.approx(0.64, abs=0.01)
  for kind in ("random_mask", "random_reinit"):
    assert summary[(kind, 2)]["remaining"] == pytest.approx(
        summary[("ticket", 2)]["remaining"])
  saved = json.loads((tmp_path / "lt.json").read_text())
  assert len(saved["rows"]) == 5 and saved["args"]["framework"] == framework
  assert all(0.0 <= r["accuracy"] <= 1.0 and r["early_stop_epoch"] == 1
             for r in saved["rows"])
  assert json.loads(partial.read_text()) == saved["rows"]
  table = (tmp_path / "lt.md").read_text().splitlines()
  assert table[-1].startswith("| 2 | 64.")
  assert (tmp_path / "lt.png").stat().st_size > 0
  # The summary can be rebuilt from the partial rows.
  again = bench.main(["--from-partial", str(partial), "--out", str(tmp_path),
                      "--name", "lt2"])
  assert again == summary
