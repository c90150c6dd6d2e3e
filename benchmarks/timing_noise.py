"""How steady are latency ratios: files timed one after the other, or in turn.

Two questions, on this machine, as it is at the time of the run:

1. A model and its slim version (`l1`, `target_macs=0.5`, round_to=8),
   timed `--reps` times each way (float TFLite, batch 1, 1 thread, XNNPACK,
   CPU time of the invoking thread):
   * "one after the other": `time_tflite` of one file (the best of 5
     medians, `--budget-ms` in all), then of the other, as the project's
     timings were taken before;
   * "in turn": `time_side_by_side` of both, their invokes alternating
     (A, B, A, B, ...), the median of each.
   The table gives the range of the original's ms and of the slim/original
   ratio over the repetitions.
2. `LatencyModel.measure` of ResNet-20 at 32x32, twice each way: every
   one-layer file timed alone (`time_tflite`, as before), and in chunks of
   32 files timed in turn (as now). For every measured point of the two
   tables, the relative difference between the two measurements, raw and
   after dividing each table by its own median ratio to the other (a drift
   of the whole machine between the two measurements), and each table's
   prediction of the whole model against the whole model measured in turn
   with it.

Run:  .venv/bin/python benchmarks/timing_noise.py
Writes benchmarks/results/timing_noise.{json,md}.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_pruning  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfprune_survey as tps  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("resnet20", "resnet8", "resnet50", "mobilenetv2")


def pair_rows(name, size, reps, budget_ms):
  """Part 1 for one model: a row per way of timing."""
  import tflite_export  # pylint: disable=g-import-not-at-top
  keras = frameworks.get("keras3").keras
  keras.utils.set_random_seed(0)
  model = latency_pruning.build(name, keras, size)
  slim = tps.prune(model, "l1", target_macs=0.5, round_to=8).model
  tmp = common.scratch_dir("timing_noise_")
  a, b = os.path.join(tmp, "a.tflite"), os.path.join(tmp, "b.tflite")
  tflite_export.convert(model, a)
  tflite_export.convert(slim, b)
  ways = {"one after the other": [], "in turn": []}
  for _ in range(reps):
    ms_a = latency_lib.time_tflite(a, budget_ms=budget_ms, rounds=5)
    ms_b = latency_lib.time_tflite(b, budget_ms=budget_ms, rounds=5)
    ways["one after the other"].append((ms_a, ms_b))
    ways["in turn"].append(tuple(latency_lib.time_side_by_side(
        [a, b], budget_ms=budget_ms)))
  for p in (a, b):
    os.remove(p)
  os.rmdir(tmp)
  rows = []
  for way, pairs in ways.items():
    orig = [p[0] for p in pairs]
    ratio = [p[1] / p[0] for p in pairs]
    rows.append({"model": name, "size": size, "way": way, "reps": reps,
                 "orig_ms": orig, "ratio": ratio,
                 "orig_spread": max(orig) / min(orig) - 1,
                 "ratio_spread": max(ratio) - min(ratio)})
  return rows


def _one_at_a_time(self, models):
  """`_Timer.models_ms` as the tables were timed before: each file alone."""
  return [self.model_ms(m) for m in models]


def _points(lm):
  """Every measured time of a table's layers, in one order."""
  return np.concatenate([np.r_[l.out_ms, l.in_ms] for l in lm.layers])


def table_rows(name, size, reps):
  """Part 2: tables measured `reps` times each way; their agreement."""
  keras = frameworks.get("keras3").keras
  model = latency_pruning.build(name, keras, size)
  in_turn = latency_lib._Timer.models_ms  # pylint: disable=protected-access
  # The tables measured here are written to a scratch folder, removed at
  # exit, not the user's cache (the first way's would stand in for the
  # second's).
  scratch = common.scratch_dir("timing_noise_tables_")
  rows = []
  for way, fn in (("one at a time", _one_at_a_time),
                  ("in chunks, in turn", in_turn)):
    latency_lib._Timer.models_ms = fn  # pylint: disable=protected-access
    try:
      tables = []
      for _ in range(reps):
        t0 = time.perf_counter()
        lm = latency_lib.LatencyModel.measure(model, use_cache=False,
                                              cache_dir=scratch, verbose=0)
        tables.append((lm, time.perf_counter() - t0))
    finally:
      latency_lib._Timer.models_ms = in_turn  # pylint: disable=protected-access
    first = _points(tables[0][0])
    diffs, scaled = [], []
    for lm, _ in tables[1:]:
      rel = _points(lm) / first
      diffs.append(np.abs(rel - 1))
      scaled.append(np.abs(rel / np.median(rel) - 1))
    whole = latency_lib.measure_side_by_side([model])[0]
    rows.append({
        "model": name, "size": size, "way": way, "tables": reps,
        "points": int(first.size),
        "seconds": [t[1] for t in tables],
        "median_abs_diff": float(np.median(np.concatenate(diffs))),
        "p90_abs_diff": float(np.percentile(np.concatenate(diffs), 90)),
        "median_abs_diff_scaled": float(np.median(np.concatenate(scaled))),
        "p90_abs_diff_scaled": float(np.percentile(np.concatenate(scaled),
                                                   90)),
        "predicted_ms": [t[0].predict() for t in tables],
        "whole_ms": whole})
  return rows


def markdown(state):
  lines = ["Part 1: a model and its slim version (`l1`, target_macs=0.5, "
           "round_to=8), timed repeatedly each way.", "",
           "| model | way | reps | original ms (min to max) | spread | "
           "slim / original (min to max) | spread |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for r in state["pairs"]:
    lines.append(
        f"| {r['model']} {r['size']} | {r['way']} | {r['reps']} | "
        f"{min(r['orig_ms']):.3f} to {max(r['orig_ms']):.3f} | "
        f"{r['orig_spread']:.1%} | {min(r['ratio']):.3f} to "
        f"{max(r['ratio']):.3f} | {r['ratio_spread']:.3f} |")
  lines += ["", "Part 2: per-layer tables measured repeatedly each way; "
            "each point of a later table against the first.", "",
            "| model | way | tables | points | measuring s | median / p90 "
            "abs. difference | the same after each table's median scale | "
            "predicted whole ms | whole ms measured |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in state["tables"]:
    lines.append(
        f"| {r['model']} {r['size']} | {r['way']} | {r['tables']} | "
        f"{r['points']} | "
        + ", ".join(f"{s:.0f}" for s in r["seconds"]) + " | "
        f"{r['median_abs_diff']:.1%} / {r['p90_abs_diff']:.1%} | "
        f"{r['median_abs_diff_scaled']:.1%} / "
        f"{r['p90_abs_diff_scaled']:.1%} | "
        + ", ".join(f"{p:.3f}" for p in r["predicted_ms"]) + " | "
        f"{r['whole_ms']:.3f} |")
  return "\n".join(lines)


def main(argv=None):
  t0, load0 = time.perf_counter(), os.getloadavg()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--pairs", default="resnet20:32,mobilenetv2:224",
                      help="model:size list for part 1")
  parser.add_argument("--tables", default="resnet20:32",
                      help="model:size list for part 2 ('' for none)")
  parser.add_argument("--reps", type=int, default=6)
  parser.add_argument("--table-reps", type=int, default=2)
  parser.add_argument("--budget-ms", type=float, default=1000.0)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="timing_noise")
  args = parser.parse_args(argv)
  if args.reps < 1 or args.table_reps < 2:
    parser.error("--reps must be >= 1 and --table-reps >= 2")

  def specs(text):
    out = []
    for item in filter(None, text.split(",")):
      name, _, size = item.partition(":")
      if name not in MODELS:
        parser.error(f"unknown model {name!r}; expected one of {MODELS}")
      out.append((name, int(size or 32)))
    return out

  state = {"pairs": [], "tables": [],
           "runtime": latency_lib.runtime_info(1, "xnnpack")}
  for name, size in specs(args.pairs):
    state["pairs"] += pair_rows(name, size, args.reps, args.budget_ms)
  for name, size in specs(args.tables):
    state["tables"] += table_rows(name, size, args.table_reps)
  state["meta"] = common.run_meta(
      "timing_noise.py", argv, t0, load0, ("tensorflow", "keras",
                                           "ai-edge-litert"),
      reps=args.reps, table_reps=args.table_reps, budget_ms=args.budget_ms)
  os.makedirs(args.out, exist_ok=True)
  common.save_state(os.path.join(args.out, args.tag + ".json"), state)
  md = markdown(state)
  with open(os.path.join(args.out, args.tag + ".md"), "w") as f:
    f.write(md + "\n")
  print(md)
  return state


if __name__ == "__main__":
  main()
