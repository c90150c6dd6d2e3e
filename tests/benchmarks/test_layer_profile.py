"""The per-layer profile benchmark's plumbing, at 32x32 (no timing claims)."""

import json

from tests.benchmarks import load_benchmark


def test_profile_rows_and_files(tmp_path):
  bench = load_benchmark("layer_profile")
  summary = bench.main(["--size", "32", "--rounds", "1", "--runs", "2",
                        "--out", str(tmp_path)])
  with open(tmp_path / "layer_profile.json") as f:
    saved = json.load(f)
  rows = saved["rows"]
  # MobileNetV2: 35 regular convs and 17 depthwise.
  assert len(rows) == 52
  assert sum(r["kind"] == "DepthwiseConv2D" for r in rows) == 17
  for r in rows:
    c_in, c_out, s_in, s_out = r["channels"]
    assert s_out == c_out - c_out // 2
    if r["layer"] == "Conv1":  # the image's 3 channels stay
      assert s_in == c_in == 3 and r["macs_ratio"] == 2.0
    elif r["kind"] == "DepthwiseConv2D":  # MACs scale with channels
      assert s_in == s_out and r["macs_ratio"] == 2.0
    else:  # both sides halved
      assert s_in == c_in // 2 and r["macs_ratio"] == 4.0
    assert r["ms_orig"] > 0 and r["ms_slim"] > 0
    assert r["time_ratio"] == r["ms_orig"] / r["ms_slim"]
  total = sum(r["macs_orig"] for r in rows) / sum(r["macs_slim"]
                                                    for r in rows)
  assert summary == saved["summary"] and summary["macs_ratio"] == total
  table = (tmp_path / "layer_profile.md").read_text().splitlines()
  assert len(table) == 2 + 52 + 1 and "all layers, summed" in table[-1]
