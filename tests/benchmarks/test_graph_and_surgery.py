"""The graph-and-surgery benchmark's plumbing, tiny model (no timing claims)."""

import json

from tests.benchmarks import load_benchmark

TIMES = ("graph", "materialize", "materialize_with_graph", "clone_model")


def _check_row(r, repeats):
  for part in TIMES:
    runs = r[f"{part}_runs_s"]
    assert len(runs) == repeats and all(t > 0 for t in runs)
    assert r[f"{part}_min_s"] == min(runs) and r[f"{part}_first_s"] == runs[0]
  assert r["materialize_over_clone"] == (r["materialize_s"] /
                                         r["clone_model_s"])
  assert r["materialize_over_clone_min"] == (r["materialize_min_s"] /
                                             r["clone_model_min_s"])
  assert r["materialize_over_clone_paired_median"] > 0
  assert 0 < r["macs_after"] < r["macs_before"]


def test_both_kerases_side_by_side(tmp_path):
  bench = load_benchmark("graph_and_surgery")
  rows = bench.main(["--models", "tiny", "--repeats", "2", "--no-jax",
                     "--out", str(tmp_path)])
  assert [(r["framework"], r["backend"]) for r in rows] == [
      ("tf_keras", "tensorflow"), ("keras3", "tensorflow")]
  for r in rows:
    _check_row(r, 2)
    assert isinstance(r["target_met"], bool)
  # The same architecture in both Kerases: same groups, same MACs.
  a, b = rows
  for key in ("prunable_groups", "groups", "macs_before", "macs_after"):
    assert a[key] == b[key]
  with open(tmp_path / "graph_and_surgery.json") as f:
    saved = json.load(f)
  assert saved["rows"] == rows and saved["meta"]["children"] == []
  table = (tmp_path / "graph_and_surgery.md").read_text().splitlines()
  assert len(table) == 2 + 2
  assert "tf_keras (tensorflow)" in table[2] and "keras3 (tensorflow)" in (
      table[3])


def test_child_mode_writes_only_its_json(tmp_path):
  """--json-out is what the parent reads back from its JAX child."""
  bench = load_benchmark("graph_and_surgery")
  out = tmp_path / "rows.json"
  rows = bench.main(["--models", "tiny", "--repeats", "1", "--frameworks",
                     "keras3", "--json-out", str(out), "--out",
                     str(tmp_path / "unused")])
  saved = json.loads(out.read_text())
  assert saved["rows"] == rows and len(rows) == 1
  assert saved["meta"]["backend"] == "tensorflow"
  assert not (tmp_path / "unused").exists()
  md = bench.markdown([dict(rows[0], backend="jax", target_met=None)])
  assert "keras3 (jax)" in md and "none (recorded)" in md


def test_jax_child_rows_are_merged(tmp_path, monkeypatch):
  """The parent runs itself with KERAS_BACKEND=jax and merges the rows.

  The child process is replaced by one in-process run whose rows are relabelled
  as JAX ones: starting JAX in a fresh process would take most of this test's
  time, and the JAX path itself is tested in tests/frameworks.
  """
  bench = load_benchmark("graph_and_surgery")
  calls = []

  def fake_run(cmd, check, env):
    assert check and env["KERAS_BACKEND"] == "jax"
    argv = cmd[2:]
    assert argv[:2] == ["--backend", "jax"] and "--no-jax" in argv
    assert argv[argv.index("--frameworks") + 1] == "keras3"
    argv[1] = "tensorflow"  # this process's backend
    bench.main(argv)
    out = argv[argv.index("--json-out") + 1]
    with open(out) as f:
      child = json.load(f)
    for r in child["rows"]:
      r.update(backend="jax", target_met=None)
    with open(out, "w") as f:
      json.dump(child, f)
    calls.append(argv)

  monkeypatch.setattr(bench.common.subprocess, "run", fake_run)
  rows = bench.main(["--models", "tiny", "--repeats", "1", "--out",
                     str(tmp_path)])
  assert len(calls) == 1
  assert [(r["framework"], r["backend"]) for r in rows] == [
      ("tf_keras", "tensorflow"), ("keras3", "tensorflow"), ("keras3", "jax")]
  saved = json.loads((tmp_path / "graph_and_surgery.json").read_text())
  (child,) = saved["meta"]["children"]
  assert child["command"].startswith("KERAS_BACKEND=jax python ")
  assert child["wall_s"] > 0
  table = (tmp_path / "graph_and_surgery.md").read_text()
  assert "| keras3 (jax) |" in table and "none (recorded)" in table
