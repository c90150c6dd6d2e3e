"""The lottery ticket on LeNet-300-100 / Fashion-MNIST (Frankle and Carbin 2019).

LeNet-300-100 (Dense 300-100-10, ReLU, Glorot init) on Fashion-MNIST
(Debian's dataset-fashion-mnist; 55k train, the last 5k of the training
set for validation, 10k test). As in the paper: Adam 1.2e-3, batch 60,
layer-wise magnitude pruning of 20% of the remaining weights per round
(10% for the output layer), survivors rewound to their initial values.
Each round trains --epochs epochs (the paper trains 50k iterations, ~55
epochs; we cannot afford it here, see RESULTS.md).

Rows: the winning ticket (tps.lottery.find_ticket) at every round, and at
the --control-rounds (default 3, 7, 12: ~51%, 21%, 7% of the weights)
its two controls, each trained the same way: random re-init (same mask,
tps.reinitialize weights) and random mask (same per-layer sparsity, same
initial weights). --seeds seeds each (model init, batch order, controls).

Reported per row: test accuracy after the last epoch, and the early-stop
epoch (the epoch of minimum validation loss; models are not checkpointed
per epoch, so the accuracy is always the last epoch's).

Run:  .venv/bin/python benchmarks/lottery_ticket.py
Writes benchmarks/results/lottery_ticket.{json,md,png}.
"""

import argparse
import json
import os
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import frameworks

HERE = os.path.dirname(os.path.abspath(__file__))


def lenet_300_100(framework, seed):
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Flatten(name="flatten"),
      keras.layers.Dense(300, activation="relu", name="fc1"),
      keras.layers.Dense(100, activation="relu", name="fc2"),
      keras.layers.Dense(10, name="out")])


def load(train_samples):
  (x, y), test = tps.data.load_fashion_mnist()
  val = (x[-5000:], y[-5000:])
  train = (x[:-5000][:train_samples], y[:-5000][:train_samples])
  return train, val, test


def early_stop(history):
  """(epoch of minimum validation loss, 1-based; that loss)."""
  losses = history["val_loss"]
  i = int(np.argmin(losses))
  return i + 1, float(losses[i])


def run(args):
  train, val, test = load(args.train_samples)
  fractions = {"fc1": 0.2, "fc2": 0.2, "out": 0.1}
  rows = []
  for seed in range(args.seeds):
    t0 = time.time()
    model = lenet_300_100(args.framework, seed)
    result = tps.lottery.find_ticket(
        model, train, rounds=args.rounds, scope="layer",
        prune_fraction=fractions, epochs=args.epochs,
        batch_size=args.batch_size, validation_data=val, eval_data=test,
        seed=seed)
    for r in range(args.rounds + 1):
      epoch, vloss = early_stop(result.histories[r])
      rows.append({"kind": "ticket", "seed": seed, "round": r,
                   "remaining": result.remaining[r],
                   "accuracy": result.accuracy[r],
                   "early_stop_epoch": epoch, "min_val_loss": vloss})
    for r in args.control_rounds:
      if r > args.rounds:
        continue
      for kind, fn in (("random_reinit", tps.lottery.random_reinit),
                       ("random_mask", tps.lottery.random_mask)):
        control = fn(result, r, seed=1000 + seed)
        epoch, vloss = early_stop(control.history)
        rows.append({"kind": kind, "seed": seed, "round": r,
                     "remaining": control.remaining,
                     "accuracy": control.accuracy,
                     "early_stop_epoch": epoch, "min_val_loss": vloss})
    if args.partial:   # what is done so far, in case the run is cut short
      with open(args.partial, "w") as f:
        json.dump(rows, f)
    print(f"seed {seed}: {time.time() - t0:.0f} s; ticket accuracy by round "
          f"{[round(a, 4) for a in result.accuracy]}", flush=True)
  return rows


def summarize(rows):
  """{(kind, round): {remaining, mean, std, n, early_stop}}."""
  table = {}
  for row in rows:
    table.setdefault((row["kind"], row["round"]), []).append(row)
  out = {}
  for key, group in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    acc = np.array([g["accuracy"] for g in group])
    out[key] = {"remaining": float(np.mean([g["remaining"] for g in group])),
                "mean": float(acc.mean()), "std": float(acc.std()),
                "n": len(group),
                "early_stop": float(np.mean([g["early_stop_epoch"]
                                             for g in group]))}
  return out


def markdown(summary, args, seconds):
  lines = [
      f"LeNet-300-100 on Fashion-MNIST ({args.framework}), "
      f"{args.train_samples} training images, {args.epochs} epochs per round, "
      f"batch {args.batch_size}, Adam 1.2e-3; layer-wise 20% per round "
      f"(output 10%); {args.seeds} seeds (mean +- std of test accuracy); "
      f"{seconds:.0f} s in all.", "",
      "| round | weights left | winning ticket | random re-init | "
      "random mask | ticket early-stop epoch |",
      "|---:|---:|---:|---:|---:|---:|"]
  rounds = sorted({r for _, r in summary})
  for r in rounds:
    cells = []
    for kind in ("ticket", "random_reinit", "random_mask"):
      s = summary.get((kind, r))
      cells.append("" if s is None else
                   f"{100 * s['mean']:.2f} +- {100 * s['std']:.2f}")
    t = summary[("ticket", r)]
    lines.append(f"| {r} | {100 * t['remaining']:.1f}% | " + " | ".join(cells)
                 + f" | {t['early_stop']:.1f} |")
  return "\n".join(lines) + "\n"


def plot(summary, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top,unused-import
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  labels = {"ticket": "winning ticket", "random_reinit": "random re-init",
            "random_mask": "random mask"}
  for kind, marker in (("ticket", "o"), ("random_reinit", "s"),
                       ("random_mask", "^")):
    keys = sorted((k for k in summary if k[0] == kind), key=lambda k: k[1])
    if not keys:
      continue
    xs = [100 * summary[k]["remaining"] for k in keys]
    ys = [100 * summary[k]["mean"] for k in keys]
    es = [100 * summary[k]["std"] for k in keys]
    ax.errorbar(xs, ys, yerr=es, marker=marker, capsize=3, label=labels[kind])
  ax.set_xscale("log")
  ticks = [100, 50, 20, 10, 5, 2, 1]
  low = min(100 * v["remaining"] for v in summary.values())
  ax.set_xticks([t for t in ticks if t >= 0.8 * low])
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  ax.invert_xaxis()
  ax.set_xlabel("% of weights remaining (log scale)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title("LeNet-300-100, Fashion-MNIST: lottery ticket vs controls")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--framework", default="tf_keras",
                      choices=frameworks.NAMES)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--rounds", type=int, default=12)
  parser.add_argument("--control-rounds", type=int, nargs="*",
                      default=[3, 7, 12])
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--batch-size", type=int, default=60)
  parser.add_argument("--train-samples", type=int, default=55000)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--name", default="lottery_ticket")
  parser.add_argument("--partial", default=None,
                      help="a JSON file where the rows are saved after each "
                      "seed")
  parser.add_argument("--from-partial", default=None,
                      help="summarize the rows of this --partial file "
                      "instead of running")
  args = parser.parse_args(argv)
  t0 = time.time()
  if args.from_partial:
    with open(args.from_partial) as f:
      rows = json.load(f)
    args.seeds = len({r["seed"] for r in rows})
  else:
    rows = run(args)
  seconds = time.time() - t0
  summary = summarize(rows)
  os.makedirs(args.out, exist_ok=True)
  base = os.path.join(args.out, args.name)
  with open(base + ".json", "w") as f:
    json.dump({"args": vars(args), "seconds": seconds, "rows": rows,
               "summary": [{"kind": k, "round": r, **v}
                           for (k, r), v in summary.items()]}, f, indent=1)
  text = markdown(summary, args, seconds)
  with open(base + ".md", "w") as f:
    f.write(text)
  plot(summary, base + ".png")
  print(text)
  return summary


if __name__ == "__main__":
  main()
