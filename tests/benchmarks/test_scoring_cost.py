"""The scoring-cost benchmark's plumbing on a tiny model (no timing claims)."""

import json

from tests.benchmarks import load_benchmark

FAST = ["--models", "tiny", "--images", "64", "--batch", "32",
        "--repeats", "1", "--criteria", "variance,taylor"]


def _check_row(r, repeats):
  for part in ("baseline", "score"):
    runs = r[f"{part}_runs_s"]
    assert len(runs) == repeats and all(t > 0 for t in runs)
    assert r[f"{part}_s"] == min(runs)
  assert r["ratio"] == r["score_s"] / r["baseline_s"]
  want = "forward-backward" if r["criterion"] == "taylor" else "forward"
  assert r["baseline"].startswith(want + " (")


def test_both_kerases_side_by_side(tmp_path):
  bench = load_benchmark("scoring_cost")
  rows = bench.main(FAST + ["--no-jax", "--out", str(tmp_path)])
  assert [(r["criterion"], r["framework"], r["backend"]) for r in rows] == [
      ("variance", "tf_keras", "tensorflow"),
      ("variance", "keras3", "tensorflow"),
      ("taylor", "tf_keras", "tensorflow"),
      ("taylor", "keras3", "tensorflow")]
  for r in rows:
    _check_row(r, 1)
    assert isinstance(r["target_met"], bool)
    if r["framework"] == "tf_keras":
      assert r["scores_rel_diff_vs_tf_keras"] is None
    else:  # the same weights were copied in: the same scores
      assert r["scores_rel_diff_vs_tf_keras"] < 1e-4
  saved = json.loads((tmp_path / "scoring_cost.json").read_text())
  assert saved["rows"] == rows and saved["meta"]["children"] == []
  table = (tmp_path / "scoring_cost.md").read_text().splitlines()
  assert len(table) == 2 + 4
  assert "| keras3 (tensorflow) |" in table[3]


def test_jax_child_rows_are_merged(tmp_path, monkeypatch):
  """The parent runs itself with KERAS_BACKEND=jax and merges the rows.

  The child process is replaced by one in-process Keras 3 run relabelled as
  JAX: starting JAX in a fresh process would take most of this test's time,
  and the JAX scoring path itself is tested in tests/frameworks.
  """
  bench = load_benchmark("scoring_cost")
  calls = []

  def fake_run(cmd, check, env):
    assert check and env["KERAS_BACKEND"] == "jax"
    argv = cmd[2:]
    assert argv[:2] == ["--backend", "jax"] and "--no-jax" in argv
    assert argv[argv.index("--frameworks") + 1] == "keras3"
    assert argv[argv.index("--repeats") + 1] == "1"
    argv[1] = "tensorflow"  # this process's backend
    rows = bench.main(argv)
    # The child compared its scores with the parent's tf_keras ones.
    assert all(r["scores_rel_diff_vs_tf_keras"] < 1e-4 for r in rows)
    out = argv[argv.index("--json-out") + 1]
    with open(out) as f:
      child = json.load(f)
    for r in child["rows"]:
      r.update(backend="jax", target_met=None)
    with open(out, "w") as f:
      json.dump(child, f)
    calls.append(argv)

  monkeypatch.setattr(bench.common.subprocess, "run", fake_run)
  rows = bench.main(FAST + ["--frameworks", "tf_keras,keras3", "--criteria",
                            "variance", "--jax-repeats", "1",
                            "--out", str(tmp_path)])
  assert len(calls) == 1
  assert [(r["framework"], r["backend"]) for r in rows] == [
      ("tf_keras", "tensorflow"), ("keras3", "tensorflow"), ("keras3", "jax")]
  saved = json.loads((tmp_path / "scoring_cost.json").read_text())
  (child,) = saved["meta"]["children"]
  assert child["command"].startswith("KERAS_BACKEND=jax python ")
  assert "REF.npz" in child["command"]
  table = (tmp_path / "scoring_cost.md").read_text()
  assert "| keras3 (jax) |" in table and "none (recorded)" in table
