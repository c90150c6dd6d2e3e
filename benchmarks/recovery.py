"""How accuracy comes back after pruning: seven recipes at one budget.

Fashion-MNIST (Debian's dataset-fashion-mnist), the small residual CNN of
tfprune_survey.zoo (width 32, max-pooled stem), trained --epochs epochs and
BN-recalibrated. Every row removes 50% of its MACs with the criterion
named, and every row that fine-tunes gets the same budget: --ft-images
training images seen once (batch 128, Adam 1e-3), split evenly between
rounds or groups where there are several.

  oneshot, no recal      tps.prune; nothing else
  oneshot + recal        tps.prune(recalibrate=...)
  oneshot + finetune     + the fine-tune budget
  iterative (3 rounds)   tps.iterative_prune(mode='global', rounds=3)
  layer-wise             tps.iterative_prune(mode='layerwise')
  finetune + distill     one-shot + recal, fine-tuned as a DistillationModel
                         student of the unpruned model (T=4, alpha=0.9)
  scratch (same budget)  tps.reinitialize(slim) trained on the same budget

Every row except the first is BN-recalibrated on --recal-samples training
images before it is evaluated on the 10k test images.

Run:  .venv/bin/python benchmarks/recovery.py
Writes benchmarks/results/recovery.{json,md,png}.
"""

import argparse
import json
import os
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.sensitivity import evaluate_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 0.5


def loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class Budget:
  """Hands out disjoint slices of the fine-tune images, `parts` in all."""

  def __init__(self, x, y, parts):
    self.chunks = list(zip(np.array_split(x, parts), np.array_split(y, parts)))

  def finetune(self, model):
    x, y = self.chunks.pop(0)
    model.compile(keras.optimizers.Adam(1e-3), loss())
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--ft-images", type=int, default=30000)
  parser.add_argument("--score-samples", type=int, default=1024)
  parser.add_argument("--recal-samples", type=int, default=4096)
  parser.add_argument("--criteria", default="l1,taylor")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args()
  (x, y), (xt, yt) = data_lib.load_fashion_mnist()
  keras.utils.set_random_seed(args.seed)
  base = zoo.residual_cnn(input_shape=x.shape[1:], width=32, stem_pool=True)
  base.compile(keras.optimizers.Adam(2e-3), loss(), metrics=["accuracy"])
  t0 = time.perf_counter()
  base.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2)
  train_s = time.perf_counter() - t0
  recal = x[:args.recal_samples]
  tps.recalibrate_bn(base, recal)
  base_acc = evaluate_accuracy(base, (xt, yt))
  print(f"base: top-1 {base_acc:.4f}, trained in {train_s:.0f} s", flush=True)
  rng = np.random.default_rng(args.seed)
  order = rng.permutation(len(x))
  ft_x, ft_y = x[order[:args.ft_images]], y[order[:args.ft_images]]
  score = (x[:args.score_samples], y[:args.score_samples])
  rows = []

  def record(crit, method, model, started, recalibrate=True):
    if recalibrate:
      tps.recalibrate_bn(model, recal)
    acc = evaluate_accuracy(model, (xt, yt))
    row = {"criterion": crit, "method": method, "top1": acc,
           "delta_top1": acc - base_acc,
           "macs_reduction": 1 - tps.count_macs(model) / tps.count_macs(base),
           "params_reduction":
               1 - tps.count_params(model) / tps.count_params(base),
           "seconds": time.perf_counter() - started}
    rows.append(row)
    print(json.dumps(row), flush=True)

  for crit in args.criteria.split(","):
    t = time.perf_counter()
    slim = tps.prune(base, crit, data=score, target_macs=TARGET).model
    record(crit, "oneshot, no recal", slim, t, recalibrate=False)

    t = time.perf_counter()
    slim = tps.prune(base, crit, data=score, target_macs=TARGET,
                     recalibrate=recal).model
    record(crit, "oneshot + recal", slim, t)

    t = time.perf_counter()
    slim = tps.prune(base, crit, data=score, target_macs=TARGET,
                     recalibrate=recal).model
    Budget(ft_x, ft_y, 1).finetune(slim)
    record(crit, "oneshot + finetune", slim, t)

    t = time.perf_counter()
    result = tps.iterative_prune(base, crit, target_macs=TARGET, rounds=3,
                                 data=score, recalibrate=recal,
                                 finetune=Budget(ft_x, ft_y, 3).finetune,
                                 mode="global", verbose=0)
    record(crit, "iterative (3 rounds)", result.model, t)

    t = time.perf_counter()
    groups = len(tps.ChannelGraph(base).prunable_groups)
    result = tps.iterative_prune(base, crit, target_macs=TARGET, data=score,
                                 recalibrate=recal,
                                 finetune=Budget(ft_x, ft_y, groups).finetune,
                                 mode="layerwise", verbose=0)
    record(crit, f"layer-wise ({len(result.visited)} groups)", result.model, t)

    t = time.perf_counter()
    slim = tps.prune(base, crit, data=score, target_macs=TARGET,
                     recalibrate=recal).model
    dm = tps.DistillationModel(slim, base, temperature=4.0, alpha=0.9)
    dm.compile(keras.optimizers.Adam(1e-3))
    dm.fit(ft_x, ft_y, batch_size=128, epochs=1, verbose=0)
    record(crit, "finetune + distill", slim, t)

    t = time.perf_counter()
    fresh = tps.reinitialize(slim, seed=args.seed)
    Budget(ft_x, ft_y, 1).finetune(fresh)
    record(crit, "scratch (same budget)", fresh, t)

  os.makedirs(args.out, exist_ok=True)
  meta = {"command": "python benchmarks/recovery.py", "base_top1": base_acc,
          "base_macs": tps.count_macs(base), "epochs": args.epochs,
          "ft_images": args.ft_images, "target_macs": TARGET,
          "score_samples": args.score_samples,
          "recal_samples": args.recal_samples, "train_seconds": train_s}
  with open(os.path.join(args.out, "recovery.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  lines = [f"Base top-1 {base_acc:.4f} (Fashion-MNIST test, BN recalibrated); "
           f"every row at {TARGET:.0%} MACs reduction; fine-tune budget "
           f"{args.ft_images} images.", "",
           "| criterion | method | top-1 | delta top-1 | MACs reduction | "
           "params reduction | wall (s) |", "|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['criterion']} | {r['method']} | {r['top1']:.4f} | "
                 f"{100 * r['delta_top1']:+.2f} | {r['macs_reduction']:.1%} | "
                 f"{r['params_reduction']:.1%} | {r['seconds']:.0f} |")
  table = "\n".join(lines)
  with open(os.path.join(args.out, "recovery.md"), "w") as f:
    f.write(table + "\n")
  plot(rows, base_acc, os.path.join(args.out, "recovery.png"))
  print(table)


def plot(rows, base_acc, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  crits = list(dict.fromkeys(r["criterion"] for r in rows))
  methods = list(dict.fromkeys(r["method"].split(" (")[0] for r in rows))
  fig, ax = plt.subplots(figsize=(8, 4))
  width = 0.8 / len(crits)
  for i, c in enumerate(crits):
    values = [next(100 * r["delta_top1"] for r in rows if r["criterion"] == c
                   and r["method"].split(" (")[0] == m) for m in methods]
    ax.bar(np.arange(len(methods)) + i * width, values, width, label=c)
  ax.axhline(0, color="k", lw=0.8)
  ax.set_xticks(np.arange(len(methods)) + 0.4 - width / 2, methods,
                rotation=20, ha="right", fontsize=8)
  ax.set_ylabel("delta top-1 (points)")
  ax.set_title(f"Recovery at 50% MACs reduction (base {base_acc:.1%})")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


if __name__ == "__main__":
  main()
