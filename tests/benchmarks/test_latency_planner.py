"""benchmarks/latency_planner.py end to end on tiny settings."""

import json
import os
import shutil

import pytest

from tests.benchmarks import ROOT
from tests.benchmarks import load_benchmark
from tests.latency_tables import macs_proportional_timer


@pytest.mark.skipif(shutil.which("git") is None or not os.path.exists(
    os.path.join(ROOT, ".git")), reason="reads the planner with git show")
def test_smoke_compares_the_planner_with_a_revision(tmp_path, monkeypatch):
  macs_proportional_timer(monkeypatch)   # the 0.2 target always reachable
  harness = load_benchmark("latency_planner")
  rows = harness.main([
      "--against", "HEAD", "--models", "resnet8:16", "--targets", "0.2",
      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path),
      "--tag", "t", "--random-tables", "5"])
  *rows, synthetic = rows
  assert [(r["target"], r["round_to"]) for r in rows] == [(0.2, "auto"),
                                                          (0.2, 1)]
  tally = synthetic["random_tables"]
  # Against itself (HEAD), every synthetic case plans the same.
  assert tally["cases"] + tally["unreachable"] == 10
  assert tally["equal"] == tally["cases"] > 0
  for r in rows:
    assert r["now_lost"] > 0 and r["earlier_lost"] > 0
    assert 0 < r["now_predicted"] <= 0.8 + 1e-9
    assert 0 < r["earlier_predicted"] <= 0.8 + 1e-9
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["rows"] == rows + [synthetic]
  assert saved["meta"]["against"] == "HEAD"
  assert "| resnet8 16 | 0.2 | auto |" in (tmp_path / "t.md").read_text()
