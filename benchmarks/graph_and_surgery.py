"""Cost of the channel graph and of materialize, against clone_model.

Targets (DESIGN.md): ChannelGraph on ResNet50 under 1 s; materialize at most
2x the same Keras' own `clone_model` of the same model (ResNet50,
MobileNetV2). Measured for both Kerases in one process: tf_keras and Keras 3
(`keras.applications` builds, TensorFlow backend). In every round the two
frameworks' clone_model and materialize run alternately, so the machine's
load hits both alike, in the reverse order every other round; garbage is
collected before each timed call. Each figure is reported as the median and
the minimum of --repeats runs (the machine is shared; the minimum estimates
the undisturbed cost), and the ratio of each, with the median of the
paired ratios (each round's materialize over the clone_model timed next to
it); the target is read on the ratio of medians. "first materialize" is the
first call, which on JAX compiles the new shapes' weight initializers.

A Keras backend is fixed per process, so the JAX rows come from a child
process of this script (`--backend jax --json-out FILE`), whose rows are
merged into the same files. JAX timings are recorded; they have no target.

Run:  .venv/bin/python benchmarks/graph_and_surgery.py --repeats 15
Writes benchmarks/results/graph_and_surgery.{json,md}.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

FRAMEWORKS = ("tf_keras", "keras3")
MODELS = ("resnet50", "mobilenetv2", "tiny")
TITLES = {"resnet50": "ResNet50 (224)", "mobilenetv2": "MobileNetV2 (224)",
          "tiny": "residual CNN, width 8 (32x32)"}
TARGET_RATIO = 2.0
TARGET_GRAPH_S = 1.0
VERSIONS = ("tensorflow", "tf_keras", "keras", "jax", "jaxlib")


def build(framework, model):
  """The model `model` (a name of MODELS) built in `framework`'s Keras."""
  if model == "tiny":
    from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
    return zoo.residual_cnn(width=8, framework=framework)
  if framework == "tf_keras":
    import tf_keras as k  # pylint: disable=g-import-not-at-top
  else:
    import keras as k  # pylint: disable=g-import-not-at-top
  if model == "resnet50":
    return k.applications.ResNet50(weights=None)
  return k.applications.MobileNetV2(weights=None)


def _stats(prefix, runs):
  return {f"{prefix}_s": statistics.median(runs),
          f"{prefix}_min_s": min(runs),
          f"{prefix}_first_s": runs[0],
          f"{prefix}_runs_s": runs}


def measure(model_name, frameworks, repeats, backend):
  """Rows (one per framework) for one architecture, measured alternately."""
  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps
  from tfprune_survey import frameworks as fws
  # pylint: enable=g-import-not-at-top
  models = {fw: build(fw, model_name) for fw in frameworks}
  graph_t = {fw: [] for fw in frameworks}
  for _ in range(repeats):
    for fw in frameworks:
      graph_t[fw].append(
          common.timed(lambda: tps.ChannelGraph(models[fw]))[0])
  graphs = {fw: tps.ChannelGraph(m) for fw, m in models.items()}
  keeps = {fw: {g.id: np.arange(max(1, g.size // 2))
                for g in graphs[fw].prunable_groups} for fw in frameworks}
  clone_t, mat_t, total_t = ({fw: [] for fw in frameworks} for _ in range(3))
  for i in range(repeats):
    for fw in frameworks:
      model, keep = models[fw], keeps[fw]
      clone = fws.of(model).keras.models.clone_model
      steps = [
          (clone_t[fw], lambda: clone(model)),
          (mat_t[fw], lambda: tps.materialize(
              model, keep, graph=graphs[fw])),
          (total_t[fw], lambda: tps.materialize(model, keep)),
      ]
      if i % 2:  # every other round the other way round, against order effects
        steps.reverse()
      for times, fn in steps:
        times.append(common.timed(fn)[0])
  rows = []
  for fw in frameworks:
    model = models[fw]
    slim = tps.materialize(model, keeps[fw], graph=graphs[fw])
    row = {"model": TITLES[model_name], "framework": fw,
           "backend": "tensorflow" if fw == "tf_keras" else backend,
           "layers": len(model.layers),
           "prunable_groups": len(graphs[fw].prunable_groups),
           "groups": len(graphs[fw].groups),
           "macs_before": tps.count_macs(model),
           "macs_after": tps.count_macs(slim)}
    row.update(_stats("graph", graph_t[fw]))
    row.update(_stats("materialize", mat_t[fw]))
    row.update(_stats("materialize_with_graph", total_t[fw]))
    row.update(_stats("clone_model", clone_t[fw]))
    for part in ("materialize", "materialize_with_graph"):
      row[f"{part}_over_clone"] = row[f"{part}_s"] / row["clone_model_s"]
      row[f"{part}_over_clone_min"] = (row[f"{part}_min_s"] /
                                       row["clone_model_min_s"])
      # Each round's materialize over the clone_model timed next to it.
      row[f"{part}_over_clone_paired_median"] = statistics.median(
          m / c for m, c in zip(row[f"{part}_runs_s"],
                                row["clone_model_runs_s"]))
    if row["backend"] == "tensorflow":
      row["target_met"] = bool(
          row["materialize_over_clone"] <= TARGET_RATIO and
          (model_name != "resnet50" or row["graph_s"] < TARGET_GRAPH_S))
    else:
      row["target_met"] = None  # JAX: recorded, no target
    print(json.dumps({k: v for k, v in row.items()
                      if not k.endswith("_runs_s")}), flush=True)
    rows.append(row)
  return rows


def run_child(args, backend):
  """This script in a fresh process with another Keras 3 backend."""
  return common.run_child(
      __file__, backend,
      ["--backend", backend, "--frameworks", "keras3", "--models",
       args.models, "--repeats", str(args.repeats), "--no-jax"])


def _macs(n):
  return f"{n / 1e9:.2f} G" if n >= 1e8 else f"{n / 1e6:.2f} M"


def markdown(rows):
  lines = ["| framework (backend) | model | ChannelGraph median / min (s) | "
           "materialize median / min (s) | clone_model median / min (s) | "
           "materialize / clone: medians | minima | median paired | "
           "incl. graph / clone, medians | first materialize (s) | "
           "MACs before -> after | target (<= 2x, graph < 1 s) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    met = {True: "met", False: "**missed**", None: "none (recorded)"}[
        r["target_met"]]
    lines.append(
        f"| {r['framework']} ({r['backend']}) | {r['model']} | "
        f"{r['graph_s']:.3f} / {r['graph_min_s']:.3f} | "
        f"{r['materialize_s']:.2f} / {r['materialize_min_s']:.2f} | "
        f"{r['clone_model_s']:.2f} / {r['clone_model_min_s']:.2f} | "
        f"{r['materialize_over_clone']:.2f} | "
        f"{r['materialize_over_clone_min']:.2f} | "
        f"{r['materialize_over_clone_paired_median']:.2f} | "
        f"{r['materialize_with_graph_over_clone']:.2f} | "
        f"{r['materialize_first_s']:.2f} | "
        f"{_macs(r['macs_before'])} -> {_macs(r['macs_after'])} | "
        f"{met} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                      help="comma-separated, measured in this process: "
                      "tf_keras, keras3")
  parser.add_argument("--models", default="resnet50,mobilenetv2",
                      help="comma-separated from " + ", ".join(MODELS))
  parser.add_argument("--backend", default="tensorflow",
                      choices=("tensorflow", "jax"),
                      help="Keras 3 backend of this process")
  parser.add_argument("--no-jax", dest="jax", action="store_false",
                      help="skip the JAX child process")
  parser.add_argument("--json-out", default=None,
                      help="write only this JSON file (the child's mode)")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  frameworks = common.split_names(parser, args.frameworks, FRAMEWORKS,
                                  "framework")
  models = common.split_names(parser, args.models, MODELS, "model")
  common.set_backend(args.backend)
  t0 = time.perf_counter()
  load_start = os.getloadavg()
  rows = []
  for m in models:
    rows += measure(m, frameworks, args.repeats, args.backend)
  meta = common.run_meta("graph_and_surgery.py", argv, t0, load_start,
                         VERSIONS, repeats=args.repeats, backend=args.backend)
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return rows
  children = []
  if args.jax and args.backend != "jax" and "keras3" in frameworks:
    child = run_child(args, "jax")
    rows += child["rows"]
    children.append(child["meta"])
  meta["children"] = children
  meta["wall_s_total"] = time.perf_counter() - t0
  common.write_results(args.out, "graph_and_surgery", meta, rows,
                       markdown(rows))
  return rows


if __name__ == "__main__":
  main()
