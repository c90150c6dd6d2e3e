"""Cost of data-dependent scoring against one plain pass over the same batches.

Target (DESIGN.md): at most 1.5x one forward pass over the same batches, or
one forward-backward pass for the gradient criteria (taylor, taylor_fo).
Both sides are compiled with tf.function and include their first trace; the
criteria also include building the channel graph and the probe model.
Measured alternately in one process, --repeats times each. This machine is
shared and its timings jump by up to 2x from one pass to the next, so the
ratio reported is that of the best (minimum) times, the usual estimator of
the undisturbed cost; the median of the paired ratios (each score run over
the baseline run just before it) is reported beside it.

Run:  .venv/bin/python benchmarks/scoring_cost.py
Writes benchmarks/results/scoring_cost.{json,md}.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_CRITERIA = ("apoz", "entropy", "variance", "taylor", "taylor_fo")


def forward_pass(model, ds):
  fn = tf.function(lambda x: model(x, training=False))
  for x, _ in ds:
    fn(x).numpy()


def forward_backward_pass(model, ds):
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=False))
    return tape.gradient(loss, model.trainable_weights)
  for x, y in ds:
    [g.numpy() for g in step(x, y)]


def timed(fn):
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=4096)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--criteria", default=",".join(DATA_CRITERIA))
  parser.add_argument("--tag", default="",
                      help="suffix of the result files, e.g. '_8k'")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x = rng.random((args.images, 32, 32, 3)).astype("float32")
  y = rng.integers(0, 10, args.images)
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache()
  list(ds)  # materialize the cache once
  rows = []
  for name, build in (("ResNet-20 (32x32)", lambda: zoo.resnet_cifar(20)),
                      ("residual CNN (32x32)", zoo.residual_cnn)):
    model = build()
    for crit in args.criteria.split(","):
      grad = crit in ("taylor", "taylor_fo")
      base_fn = forward_backward_pass if grad else forward_pass
      base, mine = [], []
      for _ in range(args.repeats):
        base.append(timed(lambda: base_fn(model, ds)))
        mine.append(timed(lambda: tps.score(model, crit, ds)))
      row = {"model": name, "criterion": crit,
             "baseline": "forward-backward" if grad else "forward",
             "baseline_s": min(base), "score_s": min(mine),
             "baseline_runs_s": base, "score_runs_s": mine,
             "paired_ratio_median": statistics.median(
                 m / b for m, b in zip(mine, base))}
      row["ratio"] = row["score_s"] / row["baseline_s"]
      rows.append(row)
      print(json.dumps(row), flush=True)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"scoring_cost{args.tag}.json"), "w") as f:
    json.dump({"meta": {"images": args.images, "batch": args.batch,
                        "repeats": args.repeats,
                        "command": "python benchmarks/scoring_cost.py"},
               "rows": rows}, f, indent=2)
  lines = ["| model | criterion | baseline pass | baseline, best (s) | "
           "score, best (s) | ratio of best | median paired ratio |",
           "|---|---|---|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['criterion']} | {r['baseline']} | "
                 f"{r['baseline_s']:.2f} | {r['score_s']:.2f} | "
                 f"{r['ratio']:.2f} | {r['paired_ratio_median']:.2f} |")
  table = "\n".join(lines)
  with open(os.path.join(args.out, f"scoring_cost{args.tag}.md"), "w") as f:
    f.write(table + "\n")
  print(table)


if __name__ == "__main__":
  main()
