"""Second-order criteria: their cost, and group magnitude against Torch-Pruning.

Part 1, cost (--part cost): scoring `obd` and `kfac_obd` (and `taylor_fo`
for reference) on the ResNet-20-style net (`tps.zoo.resnet_cifar(20)`,
32x32x3, random weights and images: the cost does not depend on them)
over --images images in batches of --batch, against one forward-backward
pass over the same batches (a `tf.function` taking the gradient of the mean
cross-entropy with respect to every trainable weight; its first trace
included, as the criteria include theirs, their channel graph and probe).
Both Kerases (tf_keras, Keras 3 on TensorFlow) with the same weights. Each
round runs the baseline then every criterion, --repeats rounds; the ratio
is of the best (minimum) wall times, the usual estimator of the undisturbed
cost on this shared machine, with the median of the per-round ratios and
the ratio of the best process CPU times (all threads; less sensitive to
other jobs on the machine) beside it.

Part 2, accuracy (--part accuracy): the ResNet-20-style net (28x28x1) is
trained on --train-images Fashion-MNIST training images for --epochs
epochs (Adam 1e-3, batch 64), BN-recalibrated, then for each criterion
pruned at 50% of the channels of every prunable group (`ratio=0.5,
scope='local'`), its BN statistics re-estimated on --recal-images training
images (`tps.recalibrate_bn`), evaluated on --test-images test images, then
fine-tuned one epoch on the same training images (Adam 1e-3) and evaluated
again. Data criteria score on --score-images training images. `name@group`
is the criterion with include='group' (Torch-Pruning's group magnitude).
The same base model is pruned by every criterion.

Run:  .venv/bin/python benchmarks/second_order_cost.py [--seeds 0,1,2]
Writes benchmarks/results/second_order_cost.{json,md} (--out); with
--part cost or --part accuracy, only that part's rows are replaced.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

COST_CRITERIA = ("obd", "kfac_obd", "taylor_fo")
ACC_CRITERIA = ("random", "l1", "l1@group", "l2", "l2@group", "fpgm",
                "fpgm@group", "taylor_fo", "obd", "kfac_obd")
FRAMEWORKS = ("tf_keras", "keras3")


def timed_cpu(fn):
  """(wall seconds, process CPU seconds, result) of fn()."""
  gc.collect()
  t0, c0 = time.perf_counter(), time.process_time()
  out = fn()
  return time.perf_counter() - t0, time.process_time() - c0, out


def criterion(spec):
  """A Criterion from 'name' or 'name@group'."""
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  name, _, include = spec.partition("@")
  if include:
    return tps.criteria.deserialize({"class_name": name,
                                     "config": {"include": include}})
  return tps.criteria.get(name)


def forward_backward(model, ds):
  """One forward-backward pass over `ds` (gradients of every weight)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  fw = frameworks.of(model)
  loss_fn = fw.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  variables = [fw.tf_variable(v) for v in model.trainable_weights]

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      tape.watch(variables)
      loss = loss_fn(y, model(x, training=False))
    return tape.gradient(loss, variables)
  for x, y in ds:
    [g.numpy() for g in step(x, y)]


def run_cost(args):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.random((args.images, 32, 32, 3)).astype("float32")
  y = rng.integers(0, 10, args.images)
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache()
  list(ds)   # fill the cache outside the timings
  rows = []
  for framework in FRAMEWORKS:
    model = common.build("resnet_cifar", framework, depth=20,
                         input_shape=(32, 32, 3), widths=args.widths)
    base, runs = [], {c: [] for c in args.cost_criteria}
    base_cpu, cpu = [], {c: [] for c in args.cost_criteria}
    for _ in range(args.repeats):
      t, c, _ = timed_cpu(lambda: forward_backward(model, ds))
      base.append(t)
      base_cpu.append(c)
      for name in args.cost_criteria:
        t, c, _ = timed_cpu(lambda: tps.score(model, name, ds))
        runs[name].append(t)
        cpu[name].append(c)
    for name in args.cost_criteria:
      paired = [s / b for s, b in zip(runs[name], base)]
      rows.append({
          "criterion": name, "framework": framework, "model": "resnet20",
          "images": args.images, "batch": args.batch,
          "baseline_runs_s": base, "score_runs_s": runs[name],
          "baseline_cpu_runs_s": base_cpu, "score_cpu_runs_s": cpu[name],
          "baseline_s": min(base), "score_s": min(runs[name]),
          "ratio": min(runs[name]) / min(base),
          "median_paired_ratio": statistics.median(paired),
          "cpu_ratio": min(cpu[name]) / min(base_cpu)})
      print(f"{framework:8s} {name:9s} fb {min(base):.2f}s score "
            f"{min(runs[name]):.2f}s ratio {rows[-1]['ratio']:.2f} "
            f"(CPU {rows[-1]['cpu_ratio']:.2f})")
  return rows


def run_accuracy(args):
  rows = []
  for seed in args.seeds:
    rows += run_accuracy_seed(args, seed)
  return rows


def run_accuracy_seed(args, seed):
  """The accuracy rows of one seed (training images, weights, fine-tuning)."""
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  (xtr, ytr), (xte, yte) = tps.data.load_fashion_mnist()
  rng = np.random.default_rng(seed)
  tr = rng.choice(len(xtr), args.train_images, replace=False)
  te = np.random.default_rng(0).choice(len(xte), args.test_images,
                                       replace=False)
  xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
  model = common.build("resnet_cifar", args.framework, seed, depth=20,
                       input_shape=(28, 28, 1), widths=args.widths)
  keras = frameworks.of(model).keras
  keras.utils.set_random_seed(seed)

  def compile_(m):
    m.compile(keras.optimizers.Adam(1e-3),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m
  compile_(model).fit(xtr, ytr, batch_size=64, epochs=args.epochs,
                      verbose=0)
  tps.recalibrate_bn(model, xtr[:args.recal_images])
  base_acc = tps.metrics.evaluate_accuracy(model, (xte, yte))
  macs = tps.count_macs(model)
  print(f"base top-1 {base_acc:.3f}")
  score_data = (xtr[:args.score_images], ytr[:args.score_images])
  rows = []
  for spec in args.acc_criteria:
    crit = criterion(spec)
    keras.utils.set_random_seed(seed + 1)
    t, result = common.timed(lambda: tps.prune(
        model, crit, data=score_data if crit.requires_data else None,
        ratio=0.5, scope="local"))
    slim = result.model
    tps.recalibrate_bn(slim, xtr[:args.recal_images])
    acc_bn = tps.metrics.evaluate_accuracy(slim, (xte, yte))
    compile_(slim).fit(xtr, ytr, batch_size=64, epochs=1, verbose=0)
    acc_ft = tps.metrics.evaluate_accuracy(slim, (xte, yte))
    rows.append({"criterion": spec, "framework": args.framework,
                 "seed": seed, "test_images": args.test_images,
                 "macs_reduction": 1.0 - tps.count_macs(slim) / macs,
                 "top1_bn": acc_bn, "top1_ft1": acc_ft, "prune_s": t,
                 "base_top1": base_acc})
    print(f"{spec:11s} top-1 after BN {acc_bn:.3f}, after 1 epoch "
          f"{acc_ft:.3f} (MACs -{rows[-1]['macs_reduction']:.1%})")
  return rows


def markdown(cost, acc):
  lines = []
  if cost:
    lines += ["| criterion | Keras | forward-backward (s) | scoring (s) | "
              "ratio (best wall) | ratio (median paired wall) | "
              "ratio (best CPU time) |",
              "|---|---|---|---|---|---|---|"]
    for r in cost:
      lines.append(f"| {r['criterion']} | {r['framework']} | "
                   f"{r['baseline_s']:.2f} | {r['score_s']:.2f} | "
                   f"{r['ratio']:.2f}x | {r['median_paired_ratio']:.2f}x | "
                   f"{r['cpu_ratio']:.2f}x |")
    lines.append("")
  if acc:
    seeds = sorted({r.get("seed", 0) for r in acc})
    bases = {r.get("seed", 0): r["base_top1"] for r in acc}
    lines += ["Base top-1 per seed: " + ", ".join(
        f"{bases[s]:.3f}" for s in seeds) +
              f" ({acc[0].get('test_images')} test images). Mean over seeds "
              f"{seeds}, each seed's value in brackets.", "",
              "| criterion | MACs removed | top-1 after BN re-estimation | "
              "top-1 after 1 epoch | prune time (s) |",
              "|---|---|---|---|---|"]
    names = list(dict.fromkeys(r["criterion"] for r in acc))
    for name in names:
      rs = [r for r in acc if r["criterion"] == name]

      def cell(key, rs=rs):
        vals = [r[key] for r in rs]
        each = ", ".join(f"{v:.3f}" for v in vals)
        return f"{np.mean(vals):.3f} ({each})" if len(vals) > 1 else (
            f"{vals[0]:.3f}")
      lines.append(f"| {name} | {rs[0]['macs_reduction']:.1%} | "
                   f"{cell('top1_bn')} | {cell('top1_ft1')} | "
                   f"{np.mean([r['prune_s'] for r in rs]):.1f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--part", choices=("cost", "accuracy", "both"),
                      default="both")
  parser.add_argument("--images", type=int, default=1024)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--cost-criteria", default=",".join(COST_CRITERIA))
  parser.add_argument("--framework", default="tf_keras",
                      choices=FRAMEWORKS, help="Keras of the accuracy part")
  parser.add_argument("--train-images", type=int, default=4096)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--test-images", type=int, default=2000)
  parser.add_argument("--recal-images", type=int, default=1024)
  parser.add_argument("--score-images", type=int, default=512)
  parser.add_argument("--acc-criteria", default=",".join(ACC_CRITERIA))
  parser.add_argument("--seeds", default="0",
                      help="accuracy part: one run per seed (training "
                      "images, initial weights, fine-tuning order)")
  parser.add_argument("--widths", default="16,32,64",
                      help="ResNet-20's stage widths")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  args.widths = tuple(int(w) for w in args.widths.split(","))
  args.cost_criteria = [c for c in args.cost_criteria.split(",") if c]
  args.acc_criteria = [c for c in args.acc_criteria.split(",") if c]
  args.seeds = [int(v) for v in args.seeds.split(",") if v]
  cost = run_cost(args) if args.part in ("cost", "both") else []
  acc = run_accuracy(args) if args.part in ("accuracy", "both") else []
  meta = {"argv": argv, "platform": platform.platform(),
          "cpus": os.cpu_count(), "test_images": args.test_images,
          "args": {k: v for k, v in vars(args).items() if k != "out"}}
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "second_order_cost.json")
  saved = {"meta": {}, "cost": [], "accuracy": []}
  if args.part != "both" and os.path.exists(path):
    with open(path) as f:   # one part re-run: keep the other part's rows
      saved = json.load(f)
  saved["meta"][args.part] = meta
  if args.part != "accuracy":
    saved["cost"] = cost
  if args.part != "cost":
    saved["accuracy"] = acc
  cost, acc = saved["cost"], saved["accuracy"]
  with open(path, "w") as f:
    json.dump(saved, f, indent=1)
  with open(os.path.join(args.out, "second_order_cost.md"), "w") as f:
    f.write(markdown(cost, acc))
  return cost, acc


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  main()
