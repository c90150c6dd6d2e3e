"""Cost of the channel graph and of materialize, against clone_model.

Targets (DESIGN.md): ChannelGraph on ResNet50 under 1 s; materialize at most
2x tf_keras.models.clone_model of the same model (ResNet50, MobileNetV2).
Each figure is the median of --repeats runs, materialize and clone_model
measured alternately in the same process.

Run:  .venv/bin/python benchmarks/graph_and_surgery.py
Writes benchmarks/results/graph_and_surgery.{json,md}.
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey._compat import keras

HERE = os.path.dirname(os.path.abspath(__file__))


def _time(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def measure(name, build, repeats):
  model = build()
  graph_times = [_time(lambda: tps.ChannelGraph(model)) for _ in range(repeats)]
  graph = tps.ChannelGraph(model)
  keep = {g.id: np.arange(max(1, g.size // 2)) for g in graph.prunable_groups}
  mat, clone, mat_total = [], [], []
  for _ in range(repeats):
    clone.append(_time(lambda: keras.models.clone_model(model)))
    mat.append(_time(lambda: tps.materialize(model, keep, graph=graph)))
    mat_total.append(_time(lambda: tps.materialize(model, keep)))
  slim = tps.materialize(model, keep, graph=graph)
  row = {
      "model": name,
      "layers": len(model.layers),
      "prunable_groups": len(graph.prunable_groups),
      "groups": len(graph.groups),
      "graph_s": statistics.median(graph_times),
      "materialize_s": statistics.median(mat),
      "materialize_with_graph_s": statistics.median(mat_total),
      "clone_model_s": statistics.median(clone),
      "macs_before": tps.count_macs(model),
      "macs_after": tps.count_macs(slim),
  }
  row["materialize_over_clone"] = row["materialize_s"] / row["clone_model_s"]
  row["materialize_with_graph_over_clone"] = (
      row["materialize_with_graph_s"] / row["clone_model_s"])
  print(json.dumps(row), flush=True)
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args()
  rows = [
      measure("ResNet50 (224)", lambda: keras.applications.ResNet50(
          weights=None), args.repeats),
      measure("MobileNetV2 (224)", lambda: keras.applications.MobileNetV2(
          weights=None), args.repeats),
  ]
  os.makedirs(args.out, exist_ok=True)
  meta = {"machine": platform.platform(), "cpus": os.cpu_count(),
          "repeats": args.repeats,
          "command": "python benchmarks/graph_and_surgery.py"}
  with open(os.path.join(args.out, "graph_and_surgery.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  lines = ["| model | ChannelGraph (s) | materialize (s) | clone_model (s) | "
           "materialize / clone | incl. graph / clone | MACs before -> after |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(
        f"| {r['model']} | {r['graph_s']:.3f} | {r['materialize_s']:.2f} | "
        f"{r['clone_model_s']:.2f} | {r['materialize_over_clone']:.2f} | "
        f"{r['materialize_with_graph_over_clone']:.2f} | "
        f"{r['macs_before'] / 1e9:.2f} G -> {r['macs_after'] / 1e9:.2f} G |")
  table = "\n".join(lines)
  with open(os.path.join(args.out, "graph_and_surgery.md"), "w") as f:
    f.write(table + "\n")
  print(table)


if __name__ == "__main__":
  main()
