"""benchmarks/latency_group_scales.py on tiny settings (no timing claims)."""

import json

import numpy as np
import pytest

import tfprune_survey as tps
from tests.benchmarks import load_benchmark
from tests.latency_tables import macs_proportional_timer
from tfprune_survey import frameworks
from tfprune_survey.metrics.macs_model import MacsModel


def test_scale_weights_by_hand():
  harness = load_benchmark("latency_group_scales")
  keras = frameworks.get("keras3").keras
  L = keras.layers
  inp = keras.Input((8, 8, 3))
  a = L.Conv2D(8, 3, padding="same", name="a")(inp)
  b = L.Conv2D(8, 3, padding="same", name="b")(a)
  x = L.Add(name="add")([a, b])
  x = L.Conv2D(16, 1, name="c")(x)
  x = L.GlobalAveragePooling2D()(x)
  model = keras.Model(inp, L.Dense(2, name="out")(x))
  graph = tps.ChannelGraph(model)
  planner = tps.Planner(graph, {g.id: np.ones(g.size)
                                for g in graph.groups if g.prunable})
  macs = MacsModel(model, graph)
  assert harness.scale_weights("mean", planner, macs) is None
  # The add's group is written by a and b; c's by c alone.
  assert harness.scale_weights("producers", planner, macs) == {"a": 2,
                                                                "c": 1}
  assert harness.scale_weights("sum", planner, macs) == {"a": 1 / 8,
                                                          "c": 1 / 16}
  # One channel of a: a's output (9*3 MACs per position), b's input and
  # output (9*8 + 9*7) and c's input (16), at 64 positions; of c: c's
  # output (8) and out's input (2, once). Divided by their mean.
  share_a = 64 * (27 + 72 + 63 + 16)
  share_c = 64 * 8 + 2
  mean = (share_a + share_c) / 2
  w = harness.scale_weights("macs", planner, macs)
  assert w == pytest.approx({"a": share_a / mean, "c": share_c / mean},
                            rel=1e-6)
  with pytest.raises(ValueError, match="unknown scale 'x'"):
    harness.scale_weights("x", planner, macs)


def test_smoke_writes_rows_and_accuracy(tmp_path, monkeypatch):
  macs_proportional_timer(monkeypatch)   # latency targets always reachable
  harness = load_benchmark("latency_group_scales")
  state = harness.main([
      "--models", "resnet8:16", "--target", "0.1", "--rounds", "1",
      "--scales", "mean,sum", "--fashion-dir", str(tmp_path / "absent"),
      "--train-images", "300", "--ft-images", "100", "--width", "16",
      "--latency-targets", "0.1", "--macs-targets", "0.3", "--seeds", "0",
      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path),
      "--tag", "t"])
  assert [r["scale"] for r in state["rows"]] == ["mean", "sum"]
  for r in state["rows"]:
    assert r["predicted_fraction"] <= 0.9 + 1e-9
    assert 0 < r["macs_fraction"] < 1 and r["latency_fraction"] > 0
    assert r["score_lost"] > 0
    # target_macs at the plan's MACs lands within its 2% tolerance.
    assert abs(r["macs_rt1_fraction"] - r["macs_fraction"]) <= 0.021
  acc = state["accuracy"]
  assert acc["dataset"] == "sklearn digits (fallback)"
  assert [r["variant"] for r in acc["rows"]] == ["mean 0.1", "sum 0.1",
                                                 "MACs rt8 0.3"]
  assert all(0 <= r["top1"] <= 1 for r in acc["rows"])
  saved = json.loads((tmp_path / "t.json").read_text())
  assert saved["rows"] == state["rows"]
  md = (tmp_path / "t.md").read_text()
  assert "| resnet8 16 | sum |" in md and "| MACs rt8 | 0.3 |" in md
  by = {r["variant"]: r for r in acc["rows"]}
  assert by["mean 0.1"]["predicted_fraction"] <= 0.9 + 1e-9
  assert by["MACs rt8 0.3"]["predicted_fraction"] is None
  assert (tmp_path / "t.png").stat().st_size > 0
