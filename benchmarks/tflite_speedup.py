"""Real TFLite speed-up of channel pruning, against tfmot's weight sparsity.

For each model: prune 50% of the channels of every prunable group with `l1`
(one-shot, `tps.prune(ratio=0.5, scope='local')`), convert the original and
the slim model to float TFLite, and time both (batch 1, 1 thread, XNNPACK) in
the same process, alternating in --rounds rounds. In the same run, tfmot's
`prune_low_magnitude` at 50% sparsity of the same original model, after
`strip_pruning`, is converted and timed too; and, where the architecture has
a width argument, the same net built natively at the slim widths, which
shows what the hardware gives for those MACs without any surgery.

MobileNetV2 also gets a latency-aware row (the same MACs removed, with kept
widths rounded to multiples of 16) and a reference row (Keras'
MobileNetV2(alpha=0.5), not pruned: the half-width net as designed).

  latency_ratio = t_orig / t_slim     macs_ratio = macs_orig / macs_slim
  target:  latency_ratio >= 0.85 * macs_ratio

Times are the median over --runs invokes; each ratio is the median of the
per-round ratios (orig and pruned timed back to back in every round).

Run:  .venv/bin/python benchmarks/tflite_speedup.py
Writes benchmarks/results/tflite_speedup.{json,md,png}.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

import tflite_export
import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 0.85  # latency_ratio >= TARGET * macs_ratio


def tfmot_sparse(model, sparsity=0.5):
  """prune_low_magnitude at `sparsity`, masks applied, then strip_pruning."""
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  sched = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0,
                                                frequency=1)
  clone = keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  pm = tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=sched)
  pm.compile(optimizer=keras.optimizers.SGD(0.0),
             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = np.zeros((2,) + tuple(model.input_shape[1:]), "float32")
  pm.fit(x, np.zeros(2), epochs=1, verbose=0,
         callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  stripped = tfmot.sparsity.keras.strip_pruning(pm)
  kernels = [w for w in stripped.get_weights() if w.ndim == 4]
  zeros = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
  return stripped, float(zeros)


def _channels(model):
  """Output channels of the conv layers (regular and depthwise), summed."""
  return sum(int(layer.output_shape[-1]) for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D,
                                   keras.layers.DepthwiseConv2D)))


def measure(name, model, rounds, runs, tmp, native=None, round_to=1,
            target_macs=None, slim=None):
  """Times original, slim, tfmot-sparse (and native) files side by side.

  The slim model is `l1` with 50% of every group's channels removed, or, with
  `target_macs`, the `l1` ranking cut where that fraction of MACs is gone
  (`scope='local'` either way). A given `slim` (a reference net built
  natively) is timed as it is, without the tfmot file.
  """
  reference = slim is not None
  if slim is None:
    how = (dict(ratio=0.5) if target_macs is None else
           dict(target_macs=target_macs))
    slim = tps.prune(model, "l1", scope="local", round_to=round_to,
                     **how).model
  paths = {}
  models = [("orig", model), ("slim", slim)]
  if not reference:
    sparse, zeros = tfmot_sparse(model)
    models.append(("tfmot", sparse))
  if native is not None:
    assert tps.count_macs(native) == tps.count_macs(slim), name
    models.append(("native", native))
  for key, m in models:
    paths[key] = os.path.join(tmp, f"{key}.tflite")
    tflite_export.convert(m, paths[key])
  x = np.random.default_rng(0).random(
      (16,) + tuple(model.input_shape[1:])).astype("float32")
  agree = tflite_export.verify(slim, paths["slim"], x)
  assert agree.passed, agree
  times = {k: [] for k in paths}
  for _ in range(rounds):
    for key, path in paths.items():
      times[key].append(tflite_export.benchmark(
          path, runs=runs, warmup=20, threads=1).median_ms)
  ratio = lambda k: statistics.median(  # pylint: disable=unnecessary-lambda-assignment
      o / s for o, s in zip(times["orig"], times[k]))
  macs = (tps.count_macs(model), tps.count_macs(slim))
  row = {"model": name, "round_to": round_to, "target_macs": target_macs,
         "reference": reference,
         "macs_orig": macs[0], "macs_slim": macs[1],
         "macs_ratio": macs[0] / macs[1],
         "channels_removed": 1.0 - _channels(slim) / _channels(model),
         "params_orig": tps.count_params(model),
         "params_slim": tps.count_params(slim),
         "bytes_orig": os.path.getsize(paths["orig"]),
         "bytes_slim": os.path.getsize(paths["slim"]),
         "ms_orig": statistics.median(times["orig"]),
         "ms_slim": statistics.median(times["slim"]),
         "latency_ratio": ratio("slim"),
         "rounds_ms": times}
  if not reference:
    row.update(bytes_tfmot=os.path.getsize(paths["tfmot"]),
               ms_tfmot=statistics.median(times["tfmot"]),
               tfmot_latency_ratio=ratio("tfmot"),
               tfmot_kernel_zero_fraction=zeros)
  if native is not None:
    row["ms_native"] = statistics.median(times["native"])
    row["native_latency_ratio"] = ratio("native")
    row["slim_over_native"] = statistics.median(
        s / n for s, n in zip(times["slim"], times["native"]))
  row["fraction_of_macs_ratio"] = row["latency_ratio"] / row["macs_ratio"]
  row["meets_target"] = (None if reference else
                         row["fraction_of_macs_ratio"] >= TARGET)
  return row


def _label(row):
  return (row["model"].replace(" 224x224", "\n224x224").replace(
      " 32x32", "\n32x32").replace(", ", ",\n").replace(" (", "\n("))


def plot(rows, path):
  """Bars of MACs ratio and speed-ups per model, with the target marked."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  pos = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(9.5, 5.5))
  ax.bar(pos - 0.27, [r["macs_ratio"] for r in rows], 0.27, label="MACs ratio")
  ax.scatter([p for p, r in zip(pos, rows) if "native_latency_ratio" in r],
             [r["native_latency_ratio"] for r in rows
              if "native_latency_ratio" in r], marker="*", s=80, color="k",
             zorder=4, label="speed-up of the net built natively at slim widths")
  ax.bar(pos, [r["latency_ratio"] for r in rows], 0.27,
         label="TFLite speed-up, channels removed (ours), or of the "
         "reference net")
  sparse = [(p, r["tfmot_latency_ratio"]) for p, r in zip(pos, rows)
            if "tfmot_latency_ratio" in r]
  ax.bar([p + 0.27 for p, _ in sparse], [v for _, v in sparse], 0.27,
         label="TFLite speed-up, tfmot 50% sparsity")
  ax.scatter(pos - 0.27, [TARGET * r["macs_ratio"] for r in rows],
             marker="_", s=400, color="k", zorder=3,
             label=f"{TARGET} x MACs ratio (the target; for a reference "
             "net, the bar to compare)")
  ax.axhline(1.0, color="grey", lw=0.8)
  ax.set_xticks(pos, [_label(r) for r in rows], fontsize=8)
  ax.set_ylabel("original / pruned")
  ax.set_title("Channels pruned with l1: batch 1, 1 thread, XNNPACK")
  ax.set_ylim(0, 1.15 * max(r["macs_ratio"] for r in rows))
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22),
            ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def write_table(rows, out):
  """Writes tflite_speedup.md; returns the table."""
  lines = ["| model | channels removed | MACs ratio | TFLite ms orig | "
           "ms slim | latency ratio | fraction of MACs ratio (target "
           f"{TARGET}) | tfmot 50% sparse ms | tfmot latency ratio | "
           "native-width latency ratio | slim / native time | "
           "bytes orig / slim |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    verdict = {True: "(met)", False: "(missed)"}.get(r["meets_target"],
                                                     "(reference)")
    lines.append(
        f"| {r['model']} | {r.get('channels_removed', float('nan')):.0%} | "
        f"{r['macs_ratio']:.2f} | {r['ms_orig']:.3f} | "
        f"{r['ms_slim']:.3f} | {r['latency_ratio']:.2f} | "
        f"{r['fraction_of_macs_ratio']:.3f} {verdict} | "
        + (f"{r['ms_tfmot']:.3f} | {r['tfmot_latency_ratio']:.2f} | "
           if "ms_tfmot" in r else "- | - | ")
        + (f"{r['native_latency_ratio']:.2f} | {r['slim_over_native']:.2f} | "
           if "ms_native" in r else "- | - | ")
        + f"{r['bytes_orig'] / r['bytes_slim']:.2f} |")
  table = "\n".join(lines)
  with open(os.path.join(out, "tflite_speedup.md"), "w") as f:
    f.write(table + "\n")
  return table


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--runs", type=int, default=200)
  parser.add_argument("--mobilenet-size", type=int, default=224)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--plot-only", action="store_true",
                      help="redraw the plot and table from the recorded JSON")
  args = parser.parse_args()
  if args.plot_only:
    with open(os.path.join(args.out, "tflite_speedup.json")) as f:
      rows = json.load(f)["rows"]
    plot(rows, os.path.join(args.out, "tflite_speedup.png"))
    print(write_table(rows, args.out))
    return
  size = args.mobilenet_size

  def mobilenet(alpha=1.0):
    return keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=alpha, weights=None, classes=1000)

  mnv2 = f"MobileNetV2 {size}x{size}"
  # MobileNetV2 is measured three ways:
  # - 50% of every group's channels removed, widths as they fall (8, 12, 72,
  #   480, ...);
  # - the same MACs removed, with kept widths rounded to multiples of 16
  #   (XNNPACK's x86 float kernels work in tiles of 8-16 channels; the l1
  #   ranking then cuts more from the wide late layers, which are compute
  #   bound, and less from the narrow early ones, which are memory bound);
  # - Keras' own MobileNetV2(alpha=0.5), no pruning at all: what this
  #   hardware gives a half-width MobileNetV2 designed that way.
  builds = [
      dict(name="residual CNN 32x32", build=zoo.residual_cnn,
           native=lambda: zoo.residual_cnn(width=16)),
      dict(name="VGG-style 32x32", build=zoo.vgg_small,
           native=lambda: zoo.vgg_small(widths=(16, 32, 64), fc=64)),
      dict(name=mnv2, build=mobilenet),
      dict(name=f"{mnv2}, round_to=16, same MACs", build=mobilenet,
           round_to=16, same_macs_as=mnv2),
      dict(name=f"{mnv2}, Keras alpha=0.5 (reference, not pruned)",
           build=mobilenet, slim=lambda: mobilenet(alpha=0.5)),
  ]
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for b in builds:
      t0 = time.perf_counter()
      target_macs = None
      if "same_macs_as" in b:  # the MACs removed by that (earlier) row
        (like,) = [r for r in rows if r["model"] == b["same_macs_as"]]
        target_macs = 1.0 - like["macs_slim"] / like["macs_orig"]
      row = measure(b["name"], b["build"](), args.rounds, args.runs, tmp,
                    native=b["native"]() if "native" in b else None,
                    round_to=b.get("round_to", 1), target_macs=target_macs,
                    slim=b["slim"]() if "slim" in b else None)
      row["seconds"] = time.perf_counter() - t0
      rows.append(row)
      print(json.dumps({k: v for k, v in row.items() if k != "rounds_ms"}),
            flush=True)
  os.makedirs(args.out, exist_ok=True)
  meta = {"command": "python benchmarks/tflite_speedup.py", "rounds":
          args.rounds, "runs": args.runs, "threads": 1, "batch": 1,
          "criterion": "l1", "channel_ratio_removed": 0.5,
          "target": TARGET,
          "tensorflow": tf.__version__}
  with open(os.path.join(args.out, "tflite_speedup.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  table = write_table(rows, args.out)
  plot(rows, os.path.join(args.out, "tflite_speedup.png"))
  print(table)


if __name__ == "__main__":
  main()
