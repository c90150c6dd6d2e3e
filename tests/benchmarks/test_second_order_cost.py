"""The second-order benchmark's plumbing on tiny settings (no timing claims)."""

import json

from tests.benchmarks import load_benchmark

TINY = ["--widths", "4,4,8", "--images", "32", "--batch", "16",
        "--repeats", "1", "--cost-criteria", "kfac_obd",
        "--train-images", "128", "--epochs", "1", "--test-images", "64",
        "--recal-images", "64", "--score-images", "32",
        "--acc-criteria", "l2@group,obd"]


def test_both_parts_write_their_rows(tmp_path):
  bench = load_benchmark("second_order_cost")
  cost, acc = bench.main(TINY + ["--out", str(tmp_path)])
  assert [(r["criterion"], r["framework"]) for r in cost] == [
      ("kfac_obd", "tf_keras"), ("kfac_obd", "keras3")]
  for r in cost:
    assert r["baseline_s"] == min(r["baseline_runs_s"]) > 0
    assert r["ratio"] == r["score_s"] / r["baseline_s"]
  assert [r["criterion"] for r in acc] == ["l2@group", "obd"]
  for r in acc:
    assert 0.0 <= r["top1_bn"] <= 1.0 and 0.0 <= r["top1_ft1"] <= 1.0
    assert 0.5 < r["macs_reduction"] < 1.0   # half the channels of each group
  saved = json.loads((tmp_path / "second_order_cost.json").read_text())
  assert saved["cost"] == cost and saved["accuracy"] == acc
  table = (tmp_path / "second_order_cost.md").read_text()
  assert "| l2@group |" in table and "| kfac_obd | keras3 |" in table


def test_group_spec_builds_the_group_criterion():
  bench = load_benchmark("second_order_cost")
  assert bench.criterion("fpgm@group").get_config()["include"] == "group"
  assert bench.criterion("obd").name == "obd"
