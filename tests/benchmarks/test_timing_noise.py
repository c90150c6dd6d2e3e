"""The timing-noise benchmark's plumbing, on ResNet-8 at 16x16 (no timing
claims)."""

import json

from tests.benchmarks import load_benchmark
from tests.latency_tables import macs_proportional_timer


def test_both_parts_write_their_rows(tmp_path, monkeypatch):
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  # The tables' one-layer files cost their MACs, in place of being
  # converted and timed (4 tables); part 1's two files are timed for real.
  macs_proportional_timer(monkeypatch)
  # Those fake tables must not land in the user's cache.
  monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "cache"))
  in_turn = latency._Timer.models_ms  # pylint: disable=protected-access
  bench = load_benchmark("timing_noise")
  state = bench.main(["--pairs", "resnet8:16", "--tables", "resnet8:16",
                      "--reps", "2", "--budget-ms", "5", "--out",
                      str(tmp_path), "--tag", "t"])
  # The way the tables are timed now is put back afterwards.
  assert latency._Timer.models_ms is in_turn  # pylint: disable=protected-access
  pairs = state["pairs"]
  assert [r["way"] for r in pairs] == ["one after the other", "in turn"]
  for r in pairs:
    assert len(r["orig_ms"]) == len(r["ratio"]) == 2
    assert all(v > 0 for v in r["orig_ms"] + r["ratio"])
    assert r["ratio_spread"] == max(r["ratio"]) - min(r["ratio"])
  tables = state["tables"]
  assert [r["way"] for r in tables] == ["one at a time", "in chunks, in turn"]
  for r in tables:
    assert r["tables"] == 2 and len(r["predicted_ms"]) == 2
    assert r["points"] > 20 and r["whole_ms"] > 0
    assert 0 <= r["median_abs_diff"] <= r["p90_abs_diff"]
    assert 0 <= r["median_abs_diff_scaled"] <= r["p90_abs_diff_scaled"]
  assert not (tmp_path / "cache").exists()   # the benchmark keeps none
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["pairs"] == pairs and saved["tables"] == tables
  md = (tmp_path / "t.md").read_text()
  assert "| resnet8 16 | in turn | 2 |" in md
  assert "| resnet8 16 | in chunks, in turn | 2 |" in md
