"""The TFLite speed-up benchmark's plumbing, on a tiny net (no timing claims)."""

import numpy as np

from tests.benchmarks import load_benchmark
import tfprune_survey as tps
from tfprune_survey import zoo


def test_rows_table_and_plot(tmp_path):
  bench = load_benchmark("tflite_speedup")
  build = lambda: zoo.vgg_small(input_shape=(16, 16, 3), widths=(8, 16, 24),  # pylint: disable=unnecessary-lambda-assignment
                                fc=16)
  model = build()
  weights = [w.copy() for w in model.get_weights()]
  common = dict(rounds=2, runs=3, tmp=str(tmp_path))
  half = bench.measure("half", model, **common,
                       native=zoo.vgg_small(input_shape=(16, 16, 3),
                                            widths=(4, 8, 12), fc=8))
  same = bench.measure("same MACs", model, **common, round_to=4,
                       target_macs=1.0 - half["macs_slim"] / half["macs_orig"])
  ref = bench.measure("reference", model, **common,
                      slim=zoo.vgg_small(input_shape=(16, 16, 3),
                                         widths=(8, 8, 8), fc=16))
  # The model passed in is untouched.
  for a, b in zip(weights, model.get_weights()):
    np.testing.assert_array_equal(a, b)
  macs = tps.count_macs(model)
  assert half["macs_orig"] == macs and half["macs_slim"] < macs / 3
  assert half["channels_removed"] == 0.5
  assert 0.45 < half["tfmot_kernel_zero_fraction"] < 0.55
  assert half["bytes_tfmot"] == half["bytes_orig"] > half["bytes_slim"]
  for row in (half, same, ref):
    assert len(row["rounds_ms"]["orig"]) == 2
    assert np.isclose(row["fraction_of_macs_ratio"],
                      row["latency_ratio"] / row["macs_ratio"])
  assert half["meets_target"] == (half["fraction_of_macs_ratio"] >= 0.85)
  assert "native_latency_ratio" in half and "native" not in same["rounds_ms"]
  # round_to=4 at the same MACs: the MACs removed are within the search's
  # 2% tolerance of the unrounded row's.
  assert abs(same["macs_slim"] - half["macs_slim"]) <= 0.02 * macs
  # A reference net is timed as given, with no tfmot file and no verdict.
  assert ref["meets_target"] is None and "ms_tfmot" not in ref
  assert ref["macs_slim"] == tps.count_macs(zoo.vgg_small(
      input_shape=(16, 16, 3), widths=(8, 8, 8), fc=16))
  table = bench.write_table([half, same, ref], str(tmp_path))
  lines = table.splitlines()
  assert len(lines) == 5
  assert "(reference)" in lines[4] and "| - | - |" in lines[4]
  assert ("(met)" in lines[2]) == half["meets_target"]
  bench.plot([half, same, ref], str(tmp_path / "p.png"))
  assert (tmp_path / "p.png").stat().st_size > 10_000
  assert (tmp_path / "tflite_speedup.md").read_text().strip() == table
