"""Training-time pruning: wrapper overhead, and Network Slimming on real data.

overhead: steady-state training step time of the same model (residual CNN,
  32x32, batch 128) plain, wrapped by tps.prune_channels, and wrapped by
  tfmot's prune_low_magnitude, all with frequency=100 schedules; and the
  same plain / tps.prune_channels pair in Keras 3 (TensorFlow backend).
  Epochs of --steps steps run in turn (every model) for --rounds rounds
  after one warm-up epoch each; each figure is the median per-step time,
  and each ratio the median of the per-round ratios against the plain
  model of the same Keras. Target: ours <= 1.10x plain.

slimming: Fashion-MNIST (Debian's dataset-fashion-mnist), residual CNN
  (width 32, max-pooled stem). (a) Network Slimming: train --epochs with
  tps.sparsify_bn(l1=--l1), prune to 50% fewer MACs (2x) with `slimming`;
  (b) the same model trained without the regularizer, pruned with `l1`.
  Both: BN re-estimated, then fine-tuned 2 epochs, BN re-estimated again.

Run:  .venv/bin/python benchmarks/training_pruning.py [--part overhead|slimming]
Writes benchmarks/results/training_{overhead,slimming}.{json,md}.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.sensitivity import evaluate_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def step_timer(callback_base):
  """A callback of the given Keras' base class that times each batch."""

  class StepTimer(callback_base):

    def __init__(self):
      super().__init__()
      self.times, self._t = [], None

    def on_train_batch_begin(self, batch, logs=None):
      self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      self.times.append(time.perf_counter() - self._t)
  return StepTimer()


def overhead(args):
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  sp = tfmot.sparsity.keras
  rng = np.random.default_rng(0)
  n = args.steps * 128
  x = rng.random((n, 32, 32, 3)).astype("float32")
  y = rng.integers(0, 10, n)
  base = zoo.residual_cnn()
  plain = keras.models.clone_model(base)
  ours = tps.prune_channels(base, "l1", sp.ConstantSparsity(
      0.5, begin_step=0, frequency=100))
  theirs = sp.prune_low_magnitude(keras.models.clone_model(base),
                                  pruning_schedule=sp.ConstantSparsity(
                                      0.5, begin_step=0, frequency=100))
  import keras as keras3  # pylint: disable=g-import-not-at-top
  base3 = zoo.residual_cnn(framework="keras3")
  plain3 = keras3.models.clone_model(base3)
  ours3 = tps.prune_channels(base3, "l1", tps.schedules.ConstantSparsity(
      0.5, begin_step=0, frequency=100))
  models = {"plain": (plain, []),
            "tps.prune_channels": (ours, [tps.UpdateChannelPruningStep()]),
            "tfmot prune_low_magnitude": (theirs, [sp.UpdatePruningStep()]),
            "Keras 3 plain": (plain3, []),
            "Keras 3 tps.prune_channels": (ours3,
                                           [tps.UpdateChannelPruningStep()])}
  for m, _ in models.values():
    k = keras3 if m in (plain3, ours3) else keras
    m.compile(k.optimizers.Adam(1e-3),
              k.losses.SparseCategoricalCrossentropy(from_logits=True))
  times = {k: [] for k in models}
  for rnd in range(args.rounds + 1):
    for name, (m, callbacks) in models.items():
      timer = step_timer((keras3 if name.startswith("Keras 3") else
                          keras).callbacks.Callback)
      m.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False,
            callbacks=callbacks + [timer])
      if rnd > 0:   # round 0 traces and warms up
        times[name].append(statistics.median(timer.times[1:]))
  rows = []
  for name in models:
    ref = "Keras 3 plain" if name.startswith("Keras 3") else "plain"
    rows.append({"model": name, "step_ms": 1e3 * statistics.median(
        times[name]), "ratio_to_plain": statistics.median(
            t / p for t, p in zip(times[name], times[ref])),
                 "rounds_s": times[name]})
    print(json.dumps(rows[-1]), flush=True)
  lines = ["| training | median step (ms) | ratio to plain |", "|---|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['step_ms']:.1f} | "
                 f"{r['ratio_to_plain']:.3f} |")
  return {"steps": args.steps, "rounds": args.rounds, "batch": 128}, rows, lines


def slimming(args):
  (x, y), (xt, yt) = data_lib.load_fashion_mnist()
  recal = x[:4096]
  rows = []
  for label, crit, l1 in (("Network Slimming (sparsify_bn + slimming)",
                           "slimming", args.l1),
                          ("no regularizer + l1", "l1", None)):
    t0 = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    model = zoo.residual_cnn(input_shape=x.shape[1:], width=32,
                             stem_pool=True)
    if l1 is not None:
      model = tps.sparsify_bn(model, l1=l1)
    model.compile(keras.optimizers.Adam(2e-3), _loss())
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2)
    tps.recalibrate_bn(model, recal)
    base = evaluate_accuracy(model, (xt, yt))
    gammas = np.concatenate([np.abs(l.gamma.numpy()) for l in model.layers
                             if isinstance(l, keras.layers.BatchNormalization)])
    result = tps.prune(model, crit, target_macs=0.5, recalibrate=recal)
    slim = result.model
    pruned = evaluate_accuracy(slim, (xt, yt))
    slim.compile(keras.optimizers.Adam(1e-3), _loss())
    slim.fit(x, y, batch_size=128, epochs=2, verbose=2)
    tps.recalibrate_bn(slim, recal)
    tuned = evaluate_accuracy(slim, (xt, yt))
    rows.append({"recipe": label, "criterion": crit, "l1": l1,
                 "top1_trained": base, "top1_pruned": pruned,
                 "top1_finetuned": tuned,
                 "macs_reduction": result.report.macs_reduction,
                 "gamma_below_1e-2": float((gammas < 1e-2).mean()),
                 "seconds": time.perf_counter() - t0})
    print(json.dumps(rows[-1]), flush=True)
  lines = ["| recipe | trained top-1 | pruned (BN re-est.) | after 2-epoch "
           "fine-tune | MACs reduction | BN gammas < 0.01 |",
           "|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['recipe']} | {r['top1_trained']:.4f} | "
                 f"{r['top1_pruned']:.4f} | {r['top1_finetuned']:.4f} | "
                 f"{r['macs_reduction']:.1%} | {r['gamma_below_1e-2']:.1%} |")
  return {"epochs": args.epochs, "l1": args.l1, "seed": args.seed}, rows, lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--part", default="all",
                      choices=["all", "overhead", "slimming"])
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--l1", type=float, default=1e-3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  parts = ["overhead", "slimming"] if args.part == "all" else [args.part]
  for part in parts:
    meta, rows, lines = (overhead if part == "overhead" else slimming)(args)
    meta["command"] = f"python benchmarks/training_pruning.py --part {part}"
    with open(os.path.join(args.out, f"training_{part}.json"), "w") as f:
      json.dump({"meta": meta, "rows": rows}, f, indent=2)
    with open(os.path.join(args.out, f"training_{part}.md"), "w") as f:
      f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
  main()
