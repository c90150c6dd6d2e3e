"""The survey comparison harness, end to end in --smoke mode."""

import json

import pytest

from tests.benchmarks import load_benchmark

CRITERIA = ["l1", "fpgm", "taylor", "slimming", "sss", "random"]


def test_smoke_runs_the_whole_pipeline(tmp_path, capsys):
  harness = load_benchmark("survey_comparison")
  argv = ["--smoke", "--models", "vgg", "--criteria", ",".join(CRITERIA),
          "--random-seeds", "2", "--budgets", "0.5", "--out", str(tmp_path),
          "--tag", "t"]
  state = harness.main(argv)
  runs = state["runs"]
  # 5 criteria + random x 2 seeds, each one-shot and iterative.
  assert len(runs) == (len(CRITERIA) + 1) * 2
  assert {(r["criterion"], r["seed"]) for r in runs} == (
      {(c, None) for c in CRITERIA if c != "random"} |
      {("random", 0), ("random", 1)})
  assert {r["schedule"] for r in runs} == {"oneshot", "iterative"}
  (base,) = state["bases"]
  assert base["model"] == "VGG-style" and base["dataset"] == "fashion_mnist"
  for r in runs:
    # target_macs is met within its 2% tolerance by both schedules.
    assert abs(r["macs_reduction_pct"] - 50) <= 2.0, r
    assert 0 < r["params_reduction_pct"] < 100
    assert abs(r["delta_top1"] - 100 * (r["top1"] - base["top1"])) < 1e-9
    assert r["latency_ratio"] == pytest.approx(base["tflite_ms"] /
                                               r["tflite_ms"])
    assert r["wall_s"] > 0
    assert ("oneshot_top1" in r) == (r["schedule"] == "oneshot")
  # Two random seeds give two different pruned networks.
  rnd = [r for r in runs if r["criterion"] == "random" and
         r["schedule"] == "oneshot"]
  assert rnd[0]["params_reduction_pct"] != rnd[1]["params_reduction_pct"] \
      or rnd[0]["top1"] != rnd[1]["top1"]
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["runs"] == runs and saved["settings"]["smoke"]
  md = (tmp_path / "t.md").read_text()
  assert "| random (2 seeds) | oneshot | -50% |" in md
  assert md.count("| sss |") == 2
  assert "iterative beat one-shot for" in md and "random" in md
  assert (tmp_path / "t.png").stat().st_size > 10000
  # --resume with the same settings does no run again.
  again = harness.main(argv + ["--resume"])
  assert again["runs"] == runs
  assert "resuming: 14 runs" in capsys.readouterr().out


def test_findings_compare_with_random_and_schedules():
  harness = load_benchmark("survey_comparison")
  def run(c, schedule, delta, seed=None):
    return {"model": "M", "schedule": schedule, "target_macs_pct": 50.0,
            "criterion": c, "seed": seed, "delta_top1": delta,
            "macs_reduction_pct": 50, "params_reduction_pct": 40,
            "latency_ratio": 1.5, "wall_s": 1}
  runs = [run("random", "oneshot", -3.0, 0), run("random", "oneshot", -1.0, 1),
          run("l1", "oneshot", 0.5), run("apoz", "oneshot", -5.0),
          run("fpgm", "oneshot", -2.5),
          run("l1", "iterative", 1.0), run("apoz", "iterative", -6.0)]
  lines = harness.findings({"runs": runs})
  # random: mean -2 +/- 1; l1 above, apoz below, fpgm within the spread.
  assert ("- M, oneshot, -50% MACs: random -2.00 +/- 1.00; above random by "
          "more than its spread: l1; below: apoz.") in lines
  assert ("- M, -50% MACs: iterative beat one-shot for 1 of 2 criteria "
          "(mean difference -0.25 points).") in lines


def test_unknown_names_are_rejected(tmp_path):
  harness = load_benchmark("survey_comparison")
  with pytest.raises(ValueError, match="nope"):
    harness.main(["--smoke", "--criteria", "l1,nope", "--out", str(tmp_path)])
  with pytest.raises(SystemExit):
    harness.main(["--smoke", "--models", "alexnet", "--out", str(tmp_path)])


def test_cifar10_mode_runs_with_the_full_scale_recipe(tmp_path, monkeypatch):
  # No download here: random 32x32x3 images stand in for CIFAR-10, so the
  # SGD schedule, weight decay, augmentation and the VGG-16 model all run.
  import numpy as np
  harness = load_benchmark("survey_comparison")
  rng = np.random.default_rng(0)
  fake = lambda n: (rng.normal(size=(n, 32, 32, 3)).astype("float32"),
                    rng.integers(0, 10, n))
  monkeypatch.setattr(harness, "load_cifar10", lambda: (fake(300), fake(300)))
  state = harness.main(["--dataset", "cifar10", "--models", "vgg16",
                        "--smoke", "--criteria", "l1", "--budgets", "0.5",
                        "--schedules", "oneshot", "--out", str(tmp_path)])
  (run,) = state["runs"]
  assert state["bases"][0]["model"] == "VGG16"
  assert run["dataset"] == "cifar10" and abs(run["macs_reduction_pct"] - 50) <= 2
  args = type("A", (), {"dataset": "cifar10", "smoke": False,
                        "epochs_set": False, "epochs": 160})
  spec = harness.recipe(args, "resnet56", "base")
  assert spec["sgd"] and spec["epochs"] == 160 and spec["lr"] == 0.1
  assert spec["weight_decay"] == 1e-4 and spec["augment"]
  assert harness.recipe(args, "vgg16", "finetune")["weight_decay"] == 5e-4
  assert harness.recipe(args, "vgg16", "finetune")["epochs"] == 40
