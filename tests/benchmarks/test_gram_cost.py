"""benchmarks/gram_cost.py on a tiny model (no timing claims)."""

import json

from tests.benchmarks import load_benchmark
from tfprune_survey import consumer_patches as cp


def test_smoke_both_ways_agree(tmp_path):
  harness = load_benchmark("gram_cost")
  rows = harness.main(["--models", "tiny:16:64", "--repeats", "1",
                       "--out", str(tmp_path), "--tag", "t"])
  assert [r["criterion"] for r in rows] == ["thinet", "lasso"]
  for r in rows:
    assert r["forward_s"] > 0 and r["zzt_s"] > 0 and r["moments_s"] > 0
    # The last residual stream is read by the Dense head (one tap); the
    # groups read only by 3x3 convs are computed the same way both times.
    assert 1 <= r["moment_groups"] < r["groups"]
    assert r["other_groups_identical"]
  # Same ranks, and lasso's scores equal to float32 rounding.
  assert rows[0]["moment_groups_identical"] == rows[0]["moment_groups"]
  assert rows[1]["max_abs_diff"] < 1e-5
  # The rule forced for "Z Zt" is undone afterwards.
  assert cp.uses_moments(1, 10)
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["rows"][0]["criterion"] == "thinet"
  assert "| tiny 16 | 64 | lasso |" in (tmp_path / "t.md").read_text()
