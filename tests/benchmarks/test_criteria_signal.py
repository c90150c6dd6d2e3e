"""The keep-highest / keep-lowest signal study, end to end in --smoke mode."""

import json

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey._compat import keras
from tests.benchmarks import load_benchmark


def test_smoke_runs_highest_lowest_and_random(tmp_path, capsys):
  harness = load_benchmark("criteria_signal")
  argv = ["--smoke", "--models", "vgg", "--criteria", "taylor,random",
          "--random-seeds", "2", "--ratios", "0.3,0.5", "--out",
          str(tmp_path), "--tag", "t"]
  state = harness.main(argv)
  runs = state["runs"]
  # taylor: both orders at both ratios; random: 2 seeds, highest only.
  assert len(runs) == 2 * 2 + 2 * 2
  assert {(r["criterion"], r["order"]) for r in runs} == {
      ("taylor", "highest"), ("taylor", "lowest"), ("random", "highest")}
  for r in runs:
    assert 0 <= r["top1_noft"] <= 1 and 0 <= r["top1_ft"] <= 1
    # 'local' removes the same fraction of every group: fewer MACs at 50%.
    assert 0 < r["macs_kept"] < (0.75 if r["ratio"] == 0.3 else 0.5), r
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["runs"] == runs
  md = (tmp_path / "t.md").read_text()
  assert "| random (2 seeds) | 30% |" in md and "| taylor | 50% |" in md
  assert "keep-highest beat keep-lowest" in md
  assert (tmp_path / "t.png").stat().st_size > 5000
  # --resume does nothing again; --redo runs the named criterion again.
  again = harness.main(argv + ["--resume"])
  assert again["runs"] == runs
  redo = harness.main(argv + ["--resume", "--redo", "taylor"])
  assert len(redo["runs"]) == len(runs)
  assert "resuming: 4 runs kept" in capsys.readouterr().out


def test_keep_sets_take_the_top_or_the_bottom_of_each_group():
  harness = load_benchmark("criteria_signal")
  inp = keras.Input((6, 6, 1))
  x = keras.layers.Conv2D(10, 3, name="c1")(inp)
  x = keras.layers.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, keras.layers.Dense(2)(x))
  graph = tps.ChannelGraph(model)
  scores = {"c1": np.array([5., 1., 9., 3., 7., 0., 2., 8., 4., 6.])}
  hi = harness.keep_sets(graph, scores, 0.3, "highest")
  lo = harness.keep_sets(graph, scores, 0.3, "lowest")
  # 3 of 10 removed: keep-highest drops the three lowest (5, 1, 6 ->
  # indices 5, 1, 6), keep-lowest drops the three highest (2, 7, 4).
  assert list(hi["c1"]) == [0, 2, 3, 4, 7, 8, 9]
  assert list(lo["c1"]) == [0, 1, 3, 5, 6, 8, 9]


def test_findings_name_signal_and_late_signal():
  harness = load_benchmark("criteria_signal")
  def run(c, order, noft, ft, seed=None):
    return {"model": "M", "ratio": 0.3, "criterion": c, "order": order,
            "seed": seed, "top1_noft": noft, "top1_ft": ft}
  runs = [run("random", "highest", 0.50, 0.80, 0),
          run("random", "highest", 0.60, 0.82, 1),
          run("a", "highest", 0.70, 0.85), run("a", "lowest", 0.40, 0.80),
          run("b", "highest", 0.40, 0.84), run("b", "lowest", 0.45, 0.81)]
  lines = harness.findings({"runs": runs})
  assert ("- M, without fine-tuning: keep-highest beat keep-lowest at every "
          "ratio for 1 of 2 criteria (a); keep-highest beat random by more "
          "than its spread at every ratio for: a.") in lines
  assert ("- M, after fine-tuning: keep-highest beat keep-lowest at every "
          "ratio for 2 of 2 criteria (a, b); keep-highest beat random by "
          "more than its spread at every ratio for: a, b.") in lines
  assert any(l.startswith("- M: signal only after fine-tuning") and
             l.endswith(": b.") for l in lines)


def test_unknown_names_are_rejected(tmp_path):
  harness = load_benchmark("criteria_signal")
  with pytest.raises(ValueError, match="nope"):
    harness.main(["--smoke", "--criteria", "l1,nope", "--out", str(tmp_path)])
  with pytest.raises(SystemExit):
    harness.main(["--smoke", "--models", "alexnet", "--out", str(tmp_path)])
  with pytest.raises(SystemExit):
    harness.main(["--smoke", "--ratios", "1.5", "--out", str(tmp_path)])


def test_merge_combines_runs_saved_per_model(tmp_path):
  harness = load_benchmark("criteria_signal")
  def part(model, top1):
    return {"settings": {"seed": 0}, "scoring": [],
            "bases": [{"model": model, "top1": 0.9}],
            "runs": [{"model": model, "ratio": 0.3, "criterion": c,
                      "order": o, "seed": None, "top1_noft": top1,
                      "top1_ft": top1} for c in ("l1",)
                     for o in ("highest", "lowest")]}
  (tmp_path / "a.json").write_text(json.dumps(part("A", 0.5)))
  (tmp_path / "b.json").write_text(json.dumps(part("B", 0.6)))
  state = harness.main(["--merge", "a,b", "--out", str(tmp_path), "--tag",
                        "m"])
  assert [b["model"] for b in state["bases"]] == ["A", "B"]
  assert len(state["runs"]) == 4
  md = (tmp_path / "m.md").read_text()
  assert "**A**" in md and "**B**" in md
  (tmp_path / "c.json").write_text(json.dumps(dict(part("C", 0.1),
                                                   settings={"seed": 1})))
  with pytest.raises(ValueError, match="c.json was run with other settings"):
    harness.main(["--merge", "a,c", "--out", str(tmp_path), "--tag", "m"])
