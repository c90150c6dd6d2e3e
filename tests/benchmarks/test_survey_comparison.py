"""The survey comparison harness, end to end in --smoke mode."""

import json

import pytest

from tests.benchmarks import load_benchmark

# A data criterion, the one trained with a sparsity penalty and random (the
# baseline with seeds); weight criteria run in the families' test below.
CRITERIA = ["taylor", "sss", "random"]


def test_smoke_runs_the_whole_pipeline(tmp_path, capsys):
  harness = load_benchmark("survey_comparison")
  argv = ["--smoke", "--models", "vgg", "--criteria", ",".join(CRITERIA),
          "--random-seeds", "2", "--budgets", "0.5", "--out", str(tmp_path),
          "--tag", "t"]
  state = harness.main(argv)
  runs = state["runs"]
  # 2 criteria + random x 2 seeds, each one-shot and iterative.
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
  assert f"resuming: {len(runs)} runs" in capsys.readouterr().out


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
  monkeypatch.setattr(harness, "load_cifar10", lambda: (fake(64), fake(64)))
  state = harness.main(["--dataset", "cifar10", "--models", "vgg16",
                        "--smoke", "--criteria", "l1", "--budgets", "0.5",
                        "--schedules", "oneshot", "--bench-runs", "0",
                        "--out", str(tmp_path)])
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


FAMILIES = ["l2@group", "l1+reconstruct", "cluster:mean", "fpgm:soft",
            "lottery:ticket", "lottery:reinit"]


def test_smoke_runs_the_survey_families(tmp_path):
  harness = load_benchmark("survey_comparison")
  missing = [m for m in FAMILIES if harness.unavailable(m)]
  if missing:
    pytest.skip(f"not in this checkout: {missing}")
  state = harness.main(["--smoke", "--models", "vgg", "--criteria",
                        ",".join(FAMILIES), "--budgets", "0.5",
                        "--schedules", "oneshot,iterative", "--bench-runs",
                        "0", "--out", str(tmp_path), "--tag", "f"])
  runs = {r["criterion"]: r for r in state["runs"]}
  # The families run once each (no iterative schedule), soft as 'soft'.
  assert sorted(runs) == sorted(FAMILIES) and len(state["runs"]) == 6
  assert runs["fpgm:soft"]["schedule"] == "soft"
  # The ticket and its control share one slim architecture.
  ticket, control = runs["lottery:ticket"], runs["lottery:reinit"]
  assert ticket["schedule"] == control["schedule"] == "lottery"
  assert ticket["params_reduction_pct"] == control["params_reduction_pct"]
  assert abs(ticket["macs_reduction_pct"] - 50) <= 5.0
  assert 0 < ticket["lottery_fraction"] < 0.95
  assert 0 < runs["fpgm:soft"]["soft_ratio"] < 0.95
  assert "oneshot_top1" not in runs["fpgm:soft"]
  for name in ("l2@group", "l1+reconstruct", "cluster:mean"):
    r = runs[name]
    assert r["schedule"] == "oneshot" and 0 <= r["oneshot_top1"] <= 1
    assert abs(r["macs_reduction_pct"] - 50) <= 2.0, r
  for r in state["runs"]:
    assert r["tflite_ms"] is None and r["latency_ratio"] is None
  md = (tmp_path / "f.md").read_text()
  assert "| fpgm:soft | soft | -50% | n/a |" in md
  assert "| n/a |" in md   # no latency measured with --bench-runs 0


def test_rows_are_gated_and_named(capsys):
  harness = load_benchmark("survey_comparison")
  assert harness.unavailable("l1") is None
  with pytest.raises(ValueError, match="nope"):
    harness.unavailable("nope")
  with pytest.raises(ValueError, match="reconstruct"):
    harness.unavailable("l1+refit")
  with pytest.raises(ValueError, match="cluster"):
    harness.unavailable("cluster:median")
  # random rows (with or without re-fit) run once per seed.
  assert harness.criteria_runs(["l1", "random", "random+reconstruct"], 2) == [
      ("l1", None), ("random", 0), ("random", 1), ("random+reconstruct", 0),
      ("random+reconstruct", 1)]
  crit = harness.criterion_of("random+reconstruct", 3)
  assert crit.seed == 3
  assert harness.criterion_of("l1+reconstruct", None) == "l1"


def test_the_no_skip_resnet_has_the_same_convs_and_no_merges():
  import tfprune_survey as tps
  harness = load_benchmark("survey_comparison")
  plain = harness.build("resnet20_noskip", (28, 28, 1))
  res = harness.build("resnet20", (28, 28, 1))
  kinds = lambda m: [type(l).__name__ for l in m.layers]
  assert "Add" not in kinds(plain)
  convs = lambda m: [l.name for l in m.layers if type(l).__name__ == "Conv2D"]
  # The same 3x3 convs; the ResNet adds two 1x1 shortcut convs.
  assert convs(plain) == [c for c in convs(res) if not c.endswith("_short")]
  assert len(convs(res)) - len(convs(plain)) == 2
  # Without merges, every conv's output channels are a group of their own.
  groups = tps.ChannelGraph(plain).prunable_groups
  assert len(groups) == len(convs(plain))
  assert len(tps.ChannelGraph(res).prunable_groups) < len(groups)


def test_family_findings_answer_the_questions():
  harness = load_benchmark("survey_comparison")
  def run(c, delta, before, model="ResNet-20-style", seed=None):
    return {"model": model, "schedule": "oneshot", "target_macs_pct": 50.0,
            "criterion": c, "seed": seed, "delta_top1": delta,
            "top1": 0.9 + delta / 100, "oneshot_top1": before,
            "macs_reduction_pct": 50, "params_reduction_pct": 40,
            "latency_ratio": None, "wall_s": 1}
  runs = [run("l1", -1.0, 0.50), run("l1+reconstruct", -0.5, 0.60),
          run("random+reconstruct", -2.0, 0.40, seed=0),
          run("random+reconstruct", -1.0, 0.44, seed=1),
          run("thinet", -1.2, 0.45), run("lasso", -3.0, 0.30),
          run("random", -3.0, 0.3, seed=0), run("random", -1.0, 0.3, seed=1),
          run("cluster:mean", -2.5, 0.2),
          run("l1", -2.0, 0.40, model="ResNet-20-style, no skips")]
  lines = harness.family_findings({"runs": runs})
  text = "\n".join(lines)
  assert "reconstruction gains +10.0 points before fine-tuning (target +3: " \
      "met) and +0.5 after" in text
  assert any("thinet" in l and l.endswith("no worse within random's spread:"
                                          " yes.") for l in lines)
  assert any("lasso" in l and l.endswith("spread: no.") for l in lines)
  assert any("cluster:mean" in l and l.endswith("no worse than random: yes.")
             for l in lines)
  assert ("- skips, -50% MACs, l1: with skips delta -1.00 (before FT 0.5000)"
          ", without -2.00 (before FT 0.4000).") in lines


def test_merge_puts_models_run_apart_in_one_table(tmp_path):
  harness = load_benchmark("survey_comparison")
  def part(model, settings=None):
    run = {"model": model, "schedule": "oneshot", "target_macs_pct": 50.0,
           "criterion": "l1", "seed": None, "delta_top1": -1.0, "top1": 0.8,
           "oneshot_top1": 0.5, "macs_reduction_pct": 50,
           "params_reduction_pct": 40, "latency_ratio": None, "wall_s": 1,
           "dataset": "fashion_mnist"}
    return {"settings": settings or {"seed": 0},
            "bases": [{"model": model, "dataset": "fashion_mnist",
                       "top1": 0.81, "macs": 10, "params": 5,
                       "tflite_ms": None}], "runs": [run]}
  (tmp_path / "a.json").write_text(json.dumps(part("ResNet-20-style")))
  (tmp_path / "b.json").write_text(json.dumps(
      part("ResNet-20-style, no skips")))
  state = harness.main(["--merge", "a,b", "--out", str(tmp_path), "--tag",
                        "m"])
  assert len(state["runs"]) == 2 and len(state["bases"]) == 2
  md = (tmp_path / "m.md").read_text()
  assert "- skips, -50% MACs, l1: with skips delta -1.00" in md
  (tmp_path / "c.json").write_text(json.dumps(part("X", {"seed": 1})))
  with pytest.raises(ValueError, match="other settings"):
    harness.main(["--merge", "a,c", "--out", str(tmp_path), "--tag", "m"])
  # More rows for a model already merged: added beside, from the same base.
  more = part("ResNet-20-style")
  more["runs"][0]["criterion"] = "thinet+reconstruct"
  (tmp_path / "d.json").write_text(json.dumps(more))
  state = harness.main(["--merge", "a,b,d", "--out", str(tmp_path), "--tag",
                        "m"])
  assert sorted(r["criterion"] for r in state["runs"]) == [
      "l1", "l1", "thinet+reconstruct"]
  more["bases"][0]["top1"] = 0.5
  (tmp_path / "e.json").write_text(json.dumps(more))
  with pytest.raises(ValueError, match="another base"):
    harness.main(["--merge", "a,e", "--out", str(tmp_path), "--tag", "m"])
