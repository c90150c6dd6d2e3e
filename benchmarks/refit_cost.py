"""Cost of the thinet and lasso criteria and of the least-squares re-fit.

Each is timed against one forward pass over the same data (a new
`tf.function` per pass, so that it includes its first trace, as the
criteria and the re-fit include building their probes):

- `tps.score(model, 'thinet' | 'lasso', x)`: one pass through the model,
  patches at 10 positions per image, a C x C Gram matrix per group, then
  the greedy order (thinet) or the LARS path (lasso).
- `tps.reconstruct(slim, model, x, keep=keep)`: one pass per set of
  consumers reading the same tensor, each through both models up to that
  layer, then a least-squares solve per consumer. The slim model is
  `tps.materialize(model, keep)` with `keep` from l1 at 50% of every
  group's channels (scope='local').

Besides the times, the re-fit's effect is recorded: the mean squared error
of the slim model's logits against the original's, before and after the
re-fit, on the fitting images and on as many held-out ones. The network is
randomly initialised (costs do not depend on training), so these errors say
only that the fit works, not what accuracy it restores.

tf_keras and Keras 3 (TensorFlow backend, the tf_keras model's weights
copied in) run in one process, alternately, --repeats times; the times
reported are the minimum (this machine is shared), with the medians beside.

Run:  .venv/bin/python benchmarks/refit_cost.py --repeats 3
Writes benchmarks/results/refit_cost.{json,md}.
"""

import argparse
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

FRAMEWORKS = ("tf_keras", "keras3")
TITLES = {"resnet20": "ResNet-20 (32x32)",
          "tiny": "residual CNN, width 8 (16x16)"}
SHAPES = {"resnet20": (32, 32, 3), "tiny": (16, 16, 3)}
# The zoo function and its arguments of each model.
ZOO = {"resnet20": ("resnet_cifar", dict(depth=20)),
       "tiny": ("residual_cnn", dict(input_shape=SHAPES["tiny"], width=8))}


def _outputs(model, x):
  return np.concatenate([np.asarray(model(x[i:i + 256], training=False))
                         for i in range(0, len(x), 256)])


def _mse(a, b):
  return float(np.mean((a - b) ** 2))


def measure(model_name, frameworks, x, x_test, repeats, batch):
  """Rows per framework: forward, thinet, lasso and reconstruct times."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices(x).batch(batch).cache()
  list(ds)  # fill the cache
  zoo_fn, zoo_args = ZOO[model_name]
  models = {fw: common.build(zoo_fn, fw, **zoo_args) for fw in frameworks}
  plans = {}
  for fw, model in models.items():
    graph = tps.ChannelGraph(model)
    keep = tps.prune(model, "l1", ratio=0.5, scope="local").keep
    plans[fw] = (keep, tps.materialize(model, keep, graph=graph))
  runs = {fw: {k: [] for k in ("forward", "thinet", "lasso", "reconstruct")}
          for fw in frameworks}
  fitted = {}
  for _ in range(repeats):
    for fw in frameworks:
      model = models[fw]
      keep, slim = plans[fw]
      t, _ = common.timed(lambda: common.forward_pass(model, ds))
      runs[fw]["forward"].append(t)
      for crit in ("thinet", "lasso"):
        t, _ = common.timed(lambda: tps.score(model, crit, ds))
        runs[fw][crit].append(t)
      t, fitted[fw] = common.timed(lambda: tps.reconstruct(
          slim, model, ds, keep=keep, samples=len(x)))
      runs[fw]["reconstruct"].append(t)
  rows = []
  for fw in frameworks:
    model = models[fw]
    keep, slim = plans[fw]
    base = runs[fw]["forward"]
    ref, ref_test = _outputs(model, x), _outputs(model, x_test)
    quality = {
        "mse_slim_fit": _mse(_outputs(slim, x), ref),
        "mse_refit_fit": _mse(_outputs(fitted[fw], x), ref),
        "mse_slim_heldout": _mse(_outputs(slim, x_test), ref_test),
        "mse_refit_heldout": _mse(_outputs(fitted[fw], x_test), ref_test),
        "macs_ratio": tps.count_macs(slim) / tps.count_macs(model)}
    for what in ("thinet", "lasso", "reconstruct"):
      mine = runs[fw][what]
      rows.append({
          "model": TITLES[model_name], "framework": fw, "what": what,
          "baseline_s": min(base), "time_s": min(mine),
          "ratio": min(mine) / min(base),
          "baseline_median_s": statistics.median(base),
          "time_median_s": statistics.median(mine),
          "baseline_runs_s": base, "time_runs_s": mine,
          **(quality if what == "reconstruct" else {})})
  return rows


def write(rows, meta, out_dir):
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "refit_cost.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=1)
  lines = ["| model | Keras | step | forward pass (s) | step (s) | ratio | "
           "logits MSE, no re-fit -> re-fit (fit / held-out) |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    mse = (f"{r['mse_slim_fit']:.3g} -> {r['mse_refit_fit']:.3g} / "
           f"{r['mse_slim_heldout']:.3g} -> {r['mse_refit_heldout']:.3g}"
           if r["what"] == "reconstruct" else "")
    lines.append(f"| {r['model']} | {r['framework']} | {r['what']} | "
                 f"{r['baseline_s']:.2f} | {r['time_s']:.2f} | "
                 f"{r['ratio']:.1f}x | {mse} |")
  with open(os.path.join(out_dir, "refit_cost.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", choices=sorted(TITLES), default="resnet20")
  parser.add_argument("--images", type=int, default=1024)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, os.path.dirname(HERE))
  rng = np.random.default_rng(0)
  shape = SHAPES[args.model]
  x = rng.random((args.images,) + shape).astype("float32")
  x_test = rng.random((args.images,) + shape).astype("float32")
  frameworks = tuple(args.frameworks.split(","))
  t0 = time.perf_counter()
  rows = measure(args.model, frameworks, x, x_test, args.repeats, args.batch)
  meta = {"command": common.command("refit_cost.py", argv),
          "images": args.images, "batch": args.batch,
          "repeats": args.repeats, "wall_s": time.perf_counter() - t0,
          "machine": platform.platform(), "cpus": os.cpu_count()}
  write(rows, meta, args.out)
  return rows


if __name__ == "__main__":
  main()
