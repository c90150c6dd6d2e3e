"""Cost of `tps.cluster_prune` against one forward pass over the same images.

`cluster_prune` clusters each group's channels by their BN-folded filters
(the weights path) or, with `data`, by the moments of their feature maps
(the data path: one streaming pass with a (C, C) Gram matrix per observed
feature map), then materializes the merged slim model. Each run below is
the whole call: the channel graph, the distances and dendrograms, the cut
(`ratio`, or `target_macs` by bisection with MACs re-counted), the surgery
and the merged weights. For scale, `ChannelGraph(model)`, the data path's
feature-map pass alone (its streaming of the batches, Gram matrices
included) and `tps.materialize(model, keep)` alone (the same keep set) are
timed too.

The baseline is one forward pass (tf.function, first trace included, as the
data path's own tf.function is) over the same batches. Both Kerases are
measured in one process: tf_keras, and Keras 3 on TensorFlow with the
tf_keras model's weights copied in; the keep sets must agree (a check that
both timed the same work). In every round the baseline and the runs take
turns, --repeats times; this machine is shared and its timings vary, so the
ratio reported is that of the best (minimum) times, with the medians beside
it. Garbage is collected before each timed call.

Run:  .venv/bin/python benchmarks/cluster_cost.py --repeats 3
Writes benchmarks/results/cluster_cost.{json,md}.
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
MODELS = {"resnet20": "ResNet-20 (32x32)", "tiny": "residual CNN, width 8"}
# The zoo function and its arguments of each model.
ZOO = {"resnet20": ("resnet_cifar", dict(depth=20)),
       "tiny": ("residual_cnn", dict(input_shape=(16, 16, 3), width=8))}
VERSIONS = ("tensorflow", "tf_keras", "keras", "scipy")
# (label, data path?, cluster_prune arguments)
PARTS = ("graph", "feature-map pass", "materialize")
RUNS = (
    ("weights, ratio=0.5", False, dict(ratio=0.5)),
    ("weights, target_macs=0.5", False, dict(target_macs=0.5)),
    ("data, ratio=0.5", True, dict(ratio=0.5, metric="correlation")),
    ("data, target_macs=0.5", True, dict(target_macs=0.5,
                                         metric="correlation")),
)


def measure(model_name, frameworks, ds, repeats):
  """Rows for one architecture; the frameworks take turns."""
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import cluster  # pylint: disable=g-import-not-at-top
  from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top
  zoo_fn, zoo_args = ZOO[model_name]
  models = {fw: common.build(zoo_fn, fw, **zoo_args) for fw in frameworks}
  base = {fw: [] for fw in frameworks}
  runs = {(fw, label): [] for fw in frameworks for label, _, _ in RUNS}
  parts = {(fw, p): [] for fw in frameworks for p in PARTS}
  results = {}
  for _ in range(repeats):
    for fw in frameworks:
      model = models[fw]
      t, _ = common.timed(lambda: common.forward_pass(model, ds))
      base[fw].append(t)
      for label, with_data, kwargs in RUNS:
        data = ds if with_data else None
        t, res = common.timed(
            lambda: tps.cluster_prune(model, data=data, **kwargs))
        runs[(fw, label)].append(t)
        results[(fw, label)] = res
      t, graph = common.timed(lambda: tps.ChannelGraph(model))
      parts[(fw, "graph")].append(t)
      t, _ = common.timed(lambda: cluster._map_stats(  # pylint: disable=protected-access
          model, graph, data_lib.checked(model, ds), None, 0))
      parts[(fw, "feature-map pass")].append(t)
      keep = results[(fw, RUNS[0][0])].keep
      t, _ = common.timed(lambda: tps.materialize(model, keep, graph=graph))
      parts[(fw, "materialize")].append(t)
  rows = []
  for fw in frameworks:
    b = base[fw]
    extra = [(label, runs[(fw, label)], results[(fw, label)])
             for label, _, _ in RUNS]
    extra += [(f"{p} alone", parts[(fw, p)], None) for p in PARTS]
    for label, times, res in extra:
      row = {"model": MODELS[model_name], "framework": fw, "run": label,
             "baseline_s": min(b), "baseline_median_s": statistics.median(b),
             "run_s": min(times), "run_median_s": statistics.median(times),
             "baseline_runs_s": b, "run_runs_s": times}
      row["ratio"] = row["run_s"] / row["baseline_s"]
      row["ratio_of_medians"] = (row["run_median_s"] /
                                 row["baseline_median_s"])
      if res is not None:
        row["macs_reduction"] = res.report.macs_reduction
        row["channels_kept"] = sum(k for _, k, _ in res.report.groups)
        row["channels_total"] = sum(n for _, _, n in res.report.groups)
        ref = results.get((frameworks[0], label))
        row["same_keep_as_" + frameworks[0]] = (
            None if fw == frameworks[0] else
            {g: list(map(int, v)) for g, v in res.keep.items()} ==
            {g: list(map(int, v)) for g, v in ref.keep.items()})
      rows.append(row)
      print(json.dumps({k: v for k, v in row.items()
                        if not k.endswith("_runs_s")}), flush=True)
  return rows


def markdown(rows):
  lines = ["| framework | model | run | forward pass best / median (s) | "
           "run best / median (s) | ratio of best | ratio of medians | "
           "MACs removed | channels kept |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    macs = (f"{r['macs_reduction']:.1%}" if "macs_reduction" in r else "")
    kept = (f"{r['channels_kept']} / {r['channels_total']}"
            if "channels_kept" in r else "")
    lines.append(
        f"| {r['framework']} | {r['model']} | {r['run']} | "
        f"{r['baseline_s']:.2f} / {r['baseline_median_s']:.2f} | "
        f"{r['run_s']:.2f} / {r['run_median_s']:.2f} | {r['ratio']:.2f} | "
        f"{r['ratio_of_medians']:.2f} | {macs} | {kept} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=1024)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--models", default="resnet20",
                      help="comma-separated from " + ", ".join(MODELS))
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  frameworks = common.split_names(parser, args.frameworks, FRAMEWORKS,
                                  "framework")
  models = common.split_names(parser, args.models, MODELS, "model")
  t0 = time.perf_counter()
  load_start = os.getloadavg()
  rows = []
  for m in models:
    shape = (32, 32, 3) if m == "resnet20" else (16, 16, 3)
    x = np.random.default_rng(0).random((args.images,) + shape).astype(
        "float32")
    ds = common.cached_dataset(x, args.batch)
    rows += measure(m, frameworks, ds, args.repeats)
  meta = common.run_meta("cluster_cost.py", argv, t0, load_start, VERSIONS,
                         images=args.images, batch=args.batch,
                         repeats=args.repeats)
  common.write_results(args.out, "cluster_cost", meta, rows, markdown(rows))
  return rows


if __name__ == "__main__":
  main()
