"""The coverage benchmark: its definition on a hand-built model, its files."""

import json

import pytest

from tests.benchmarks import load_benchmark
from tfprune_survey import frameworks


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_coverage_counts_producer_channels(framework):
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((6, 6, 3))
  x = L.Conv2D(8, 1, name="a")(inp)
  x = L.Permute((2, 1, 3), name="odd")(x)    # not modelled: blocks 'a'
  x = L.Conv2D(4, 1, name="b")(x)
  x = L.GlobalAveragePooling2D()(x)
  x = L.Dense(3, name="logits")(x)           # the output: never prunable
  row = load_benchmark("coverage").coverage(keras.Model(inp, x))
  assert row["producer_channels"] == 8 + 4 + 3
  assert row["covered_channels"] == 4
  assert row["coverage"] == 4 / 15
  # groups: input 3, a 8, Permute's output 8, b 4, logits 3
  assert row["group_channels"] == 26 and row["group_coverage"] == 4 / 26
  assert (row["groups"], row["prunable_groups"]) == (5, 1)
  kinds = dict(row["blockers"])
  assert kinds["'*' (Permute) is not a layer the channel analysis models"] == 8


def test_files_and_before_column(tmp_path):
  bench = load_benchmark("coverage")
  before = tmp_path / "before.json"
  bench.main(["--models", "resnext_small", "--json-out", str(before)])
  saved = json.loads(before.read_text())
  saved["rows"][0]["coverage"] = 0.25   # stands for an older commit's figure
  before.write_text(json.dumps(saved))
  rows = bench.main(["--models", "resnext_small", "--before", str(before),
                     "--out", str(tmp_path)])
  (row,) = rows
  assert row["coverage"] >= 0.8
  result = json.loads((tmp_path / "coverage.json").read_text())
  assert result["rows"] == rows
  assert result["mean"]["coverage"] == row["coverage"]
  assert result["mean"]["coverage_before"] == 0.25
  table = (tmp_path / "coverage.md").read_text().splitlines()
  assert len(table) == 2 + 1 + 1
  assert table[2].startswith("| resnext_small | ")
  assert f"| 0.250 | {row['coverage']:.3f} |" in table[2]
  assert table[3].startswith("| **mean of 1** |")
  # --rows-from writes the same table from saved rows, building nothing
  after = tmp_path / "after.json"
  after.write_text(json.dumps({"meta": {"commit": "abc", "command": "c"},
                               "rows": rows}))
  again = bench.main(["--rows-from", str(after), "--before", str(before),
                      "--out", str(tmp_path / "again")])
  assert again == rows
  assert (tmp_path / "again" / "coverage.md").read_text().splitlines() == (
      table)
  meta = json.loads((tmp_path / "again" / "coverage.json").read_text())
  assert meta["meta"]["commit"] == "abc"
