"""One-shot pruning of a trained CNN on real Fashion-MNIST, every criterion.

1. Train tfprune_survey.zoo.residual_cnn (BN, one residual block, width 32,
   max-pooled stem) on
   Fashion-MNIST (Debian's dataset-fashion-mnist) to >= 90% test accuracy;
   its BN statistics are re-estimated on training data before it is judged.
2. For every criterion (random with 3 seeds) prune one shot to 30%, 50% and
   70% MACs reduction, without fine-tuning; data criteria score on 1024
   training images.
3. Record test accuracy straight after pruning, and after re-estimating the
   BN statistics on 2048 training images (as for the unpruned model).

Run:  .venv/bin/python benchmarks/criteria_oneshot.py
Writes benchmarks/results/criteria_oneshot.{json,md,png}.
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

HERE = os.path.dirname(os.path.abspath(__file__))


def accuracy(model, x, y):
  logits = model.predict(x, batch_size=512, verbose=0)
  return float((logits.argmax(-1) == y).mean())


def train(x, y, x_test, y_test, epochs, seed, width):
  keras.utils.set_random_seed(seed)
  model = zoo.residual_cnn(input_shape=x.shape[1:], width=width,
                           stem_pool=True)
  model.compile(optimizer=keras.optimizers.Adam(2e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  model.fit(x, y, batch_size=128, epochs=epochs, verbose=2,
            validation_data=(x_test, y_test))
  return model


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--epochs", type=int, default=6)
  parser.add_argument("--width", type=int, default=32)
  parser.add_argument("--targets", default="0.3,0.5,0.7")
  parser.add_argument("--score-samples", type=int, default=1024)
  parser.add_argument("--recal-samples", type=int, default=2048)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--scopes", default="global,local",
                      help="ranking scopes to compare (tps.prune scope=)")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args()
  (x, y), (xt, yt) = data_lib.load_fashion_mnist()
  t0 = time.time()
  base = train(x, y, xt, yt, args.epochs, args.seed, args.width)
  train_s = time.time() - t0
  acc_raw = accuracy(base, xt, yt)
  tps.recalibrate_bn(base, x[:args.recal_samples])
  acc_base = accuracy(base, xt, yt)
  print(f"base: {acc_raw:.4f} before BN re-estimation, {acc_base:.4f} after",
        flush=True)
  score_data = (x[:args.score_samples], y[:args.score_samples])
  runs = [(n, tps.criteria.get(n)) for n in tps.criteria.names()
          if n != "random"]
  runs += [(f"random(seed={s})", tps.criteria.get("random").from_config(
      {"seed": s})) for s in range(3)]
  rows = []
  for scope, target, (label, crit) in [
      (sc, float(t), run) for sc in args.scopes.split(",")
      for t in args.targets.split(",") for run in runs]:
    t1 = time.time()
    result = tps.prune(base, crit, data=score_data, target_macs=target,
                       scope=scope)
    prune_s = time.time() - t1
    acc_pruned = accuracy(result.model, xt, yt)
    tps.recalibrate_bn(result.model, x[:args.recal_samples])
    acc_recal = accuracy(result.model, xt, yt)
    row = {"criterion": label, "family": label.split("(")[0],
           "scope": scope, "target_macs": target,
           "macs_reduction": result.report.macs_reduction,
           "params_reduction": result.report.params_reduction,
           "top1_no_recal": acc_pruned, "top1": acc_recal,
           "prune_s": prune_s}
    rows.append(row)
    print(json.dumps(row), flush=True)
  os.makedirs(args.out, exist_ok=True)
  meta = {"base_top1": acc_base, "base_top1_before_bn_recal": acc_raw,
          "train_s": train_s, "epochs": args.epochs,
          "command": "python benchmarks/criteria_oneshot.py"}
  with open(os.path.join(args.out, "criteria_oneshot.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  scopes = args.scopes.split(",")
  table = "\n\n".join(
      f"### scope='{sc}'\n\n" + markdown([r for r in rows if r["scope"] == sc],
                                          acc_base) for sc in scopes)
  with open(os.path.join(args.out, "criteria_oneshot.md"), "w") as f:
    f.write(table + "\n")
  plot(rows, acc_base, scopes, os.path.join(args.out, "criteria_oneshot.png"))
  print(table)


def markdown(rows, base):
  targets = sorted({r["target_macs"] for r in rows})
  fams = []
  for r in rows:
    if r["family"] not in fams:
      fams.append(r["family"])
  head = "| criterion | " + " | ".join(
      f"{t:.0%} MACs: top-1 (no BN re-est.)" for t in targets) + " |"
  lines = [f"Unpruned top-1: {base:.4f}", "", head,
           "|---|" + "---:|" * len(targets)]
  for fam in fams:
    cells = []
    for t in targets:
      sel = [r for r in rows if r["family"] == fam and r["target_macs"] == t]
      acc = np.mean([r["top1"] for r in sel])
      raw = np.mean([r["top1_no_recal"] for r in sel])
      spread = (f" ±{np.std([r['top1'] for r in sel]):.3f}"
                if len(sel) > 1 else "")
      cells.append(f"{acc:.4f}{spread} ({raw:.4f})")
    name = fam + (" (3 seeds, mean ± sd)" if fam == "random" else "")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(rows, base, scopes, path):
  """Accuracy against MACs reduction, one line per criterion, a panel a scope."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(scopes), figsize=(6.5 * len(scopes), 4.8),
                           sharey=True, squeeze=False)
  for ax, scope in zip(axes[0], scopes):
    sub = [r for r in rows if r["scope"] == scope]
    for fam in sorted({r["family"] for r in sub}):
      xs, ys = [], []
      for t in sorted({r["target_macs"] for r in sub}):
        sel = [r for r in sub if r["family"] == fam and r["target_macs"] == t]
        xs.append(100 * np.mean([r["macs_reduction"] for r in sel]))
        ys.append(100 * np.mean([r["top1"] for r in sel]))
      style = dict(color="black", linestyle="--", linewidth=2) if (
          fam == "random") else {}
      ax.plot(xs, ys, marker="o", label=fam, **style)
    ax.axhline(100 * base, color="gray", linewidth=0.8, label="unpruned")
    ax.set_xlabel("MACs reduction (%)")
    ax.set_title(f"scope='{scope}'")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("test top-1 (%), BN re-estimated, no fine-tuning")
  axes[0][-1].legend(fontsize=8, ncol=2)
  fig.suptitle("One-shot pruning of a residual CNN on Fashion-MNIST")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


if __name__ == "__main__":
  main()
