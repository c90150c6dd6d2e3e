"""Cost of data-dependent scoring against one plain pass over the same batches.

Target (DESIGN.md): at most 1.5x one forward pass over the same batches, or
one forward-backward pass for the gradient criteria (taylor, taylor_fo).
`obd` and `kfac_obd` (not in the default criteria) are timed against
a forward-backward pass too when named in `--criteria`.

Both Kerases are measured in one process: tf_keras, and Keras 3 on the
TensorFlow backend (the zoo's `framework="keras3"` build, with the tf_keras
model's weights copied in). On TensorFlow both sides are compiled with
tf.function and include their first trace; the criteria also include
building the channel graph and the probe model. In every round the baseline
and the score run alternately, tf_keras then Keras 3, --repeats times. This
machine is shared and its timings vary by up to 2x from one pass to the
next, so the ratio reported is that of the best (minimum) times, the usual
estimator of the undisturbed cost; the median of the paired ratios (each
score run over the baseline run just before it) and the medians are
reported beside it. Garbage is collected before each timed call.

A Keras backend is fixed per process, so the JAX rows come from a child
process of this script (`--backend jax --json-out FILE`). Its baseline is a
jitted `model.stateless_call` (forward) or `jax.grad` of the loss through it
(forward-backward), a new `jax.jit` per pass, so it includes its compile as
the tf.function side includes its trace. JAX timings are recorded; they have
no target.

Run:  .venv/bin/python benchmarks/scoring_cost.py --repeats 7 --jax-repeats 3
Writes benchmarks/results/scoring_cost.{json,md}.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

DATA_CRITERIA = ("apoz", "entropy", "variance", "taylor", "taylor_fo")
GRAD_CRITERIA = ("taylor", "taylor_fo", "obd", "kfac_obd")
FRAMEWORKS = ("tf_keras", "keras3")
MODELS = ("resnet20", "residual_cnn", "tiny")
TITLES = {"resnet20": "ResNet-20 (32x32)",
          "residual_cnn": "residual CNN (32x32)",
          "tiny": "residual CNN, width 8 (32x32)"}
# The zoo function and its arguments of each model.
ZOO = {"resnet20": ("resnet_cifar", dict(depth=20)),
       "residual_cnn": ("residual_cnn", {}),
       "tiny": ("residual_cnn", dict(width=8))}
VERSIONS = ("tensorflow", "tf_keras", "keras", "jax", "jaxlib")
TARGET = 1.5


# --- baselines: TensorFlow backend (tf_keras, or Keras 3 on TensorFlow) ---


def tf_forward_backward_pass(model, ds):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  keras = frameworks.of(model).keras
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=False))
    return tape.gradient(loss, model.trainable_weights)
  for x, y in ds:
    [g.numpy() for g in step(x, y)]


# --- baselines: Keras 3 on JAX ---


def jax_forward_pass(model, ds):
  import jax  # pylint: disable=g-import-not-at-top
  tv = [v.value for v in model.trainable_variables]
  ntv = [v.value for v in model.non_trainable_variables]
  fn = jax.jit(lambda tv, ntv, x: model.stateless_call(
      tv, ntv, x, training=False)[0])
  for x, _ in ds:
    np.asarray(fn(tv, ntv, np.asarray(x)))


def jax_forward_backward_pass(model, ds):
  import jax  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  tv = [v.value for v in model.trainable_variables]
  ntv = [v.value for v in model.non_trainable_variables]

  def loss_of(tv, ntv, x, y):
    pred, _ = model.stateless_call(tv, ntv, x, training=False)
    return loss_fn(y, pred)
  fn = jax.jit(jax.grad(loss_of))
  for x, y in ds:
    [np.asarray(g) for g in fn(tv, ntv, np.asarray(x), np.asarray(y))]


BASELINES = {
    "tensorflow": {"forward": common.forward_pass,
                   "forward-backward": tf_forward_backward_pass},
    "jax": {"forward": jax_forward_pass,
            "forward-backward": jax_forward_backward_pass},
}
BASELINE_NAMES = {
    "tensorflow": {"forward": "forward (tf.function)",
                   "forward-backward": "forward-backward (tf.function)"},
    "jax": {"forward": "forward (jax.jit stateless_call)",
            "forward-backward": "forward-backward (jax.jit grad)"},
}


def _flat(scores):
  return np.concatenate([np.asarray(scores[k], np.float64).ravel()
                         for k in sorted(scores)])


def _rel_diff(a, b):
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def measure(model_name, frameworks, criteria, ds, repeats, backend,
            ref_scores=None):
  """Rows for one architecture: per criterion, frameworks alternately."""
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  zoo_fn, zoo_args = ZOO[model_name]
  models = {fw: common.build(zoo_fn, fw, **zoo_args) for fw in frameworks}
  rows, scores_out = [], {}
  for crit in criteria:
    kind = "forward-backward" if crit in GRAD_CRITERIA else "forward"
    base = {fw: [] for fw in frameworks}
    mine = {fw: [] for fw in frameworks}
    got = {}
    for _ in range(repeats):
      for fw in frameworks:
        be = "tensorflow" if fw == "tf_keras" else backend
        model = models[fw]
        t, _ = common.timed(lambda: BASELINES[be][kind](model, ds))
        base[fw].append(t)
        t, got[fw] = common.timed(lambda: tps.score(model, crit, ds))
        mine[fw].append(t)
    for fw in frameworks:
      be = "tensorflow" if fw == "tf_keras" else backend
      b, m = base[fw], mine[fw]
      row = {"model": TITLES[model_name], "framework": fw, "backend": be,
             "criterion": crit, "baseline": BASELINE_NAMES[be][kind],
             "baseline_s": min(b), "score_s": min(m),
             "baseline_median_s": statistics.median(b),
             "score_median_s": statistics.median(m),
             "baseline_runs_s": b, "score_runs_s": m,
             "paired_ratio_median": statistics.median(
                 s / t for s, t in zip(m, b))}
      row["ratio"] = row["score_s"] / row["baseline_s"]
      row["ratio_of_medians"] = (row["score_median_s"] /
                                 row["baseline_median_s"])
      row["target_met"] = (bool(row["ratio"] <= TARGET)
                           if be == "tensorflow" else None)
      flat = _flat(got[fw])
      ref = None
      if ref_scores is not None and f"{model_name}/{crit}" in ref_scores:
        ref = ref_scores[f"{model_name}/{crit}"]
      elif fw != "tf_keras" and "tf_keras" in got:
        ref = _flat(got["tf_keras"])
      # Same weights, same data: the scores must agree with tf_keras'
      # (a check that every framework timed the same work).
      row["scores_rel_diff_vs_tf_keras"] = (
          None if ref is None or fw == "tf_keras" else _rel_diff(flat, ref))
      rows.append(row)
      print(json.dumps({k: v for k, v in row.items()
                        if not k.endswith("_runs_s")}), flush=True)
    if "tf_keras" in got:
      scores_out[f"{model_name}/{crit}"] = _flat(got["tf_keras"])
  return rows, scores_out


def run_child(args, backend, ref_path):
  """This script in a fresh process with another Keras 3 backend."""
  return common.run_child(
      __file__, backend,
      ["--backend", backend, "--frameworks", "keras3", "--models",
       args.models, "--criteria", args.criteria, "--images",
       str(args.images), "--batch", str(args.batch), "--repeats",
       str(args.jax_repeats or args.repeats), "--no-jax", "--ref-scores",
       ref_path], shown={"--ref-scores": "REF.npz"})


def markdown(rows):
  lines = ["| framework (backend) | model | criterion | baseline pass | "
           "baseline best / median (s) | score best / median (s) | "
           "ratio of best | median paired ratio | ratio of medians | "
           "target (<= 1.5x) |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    met = {True: "met", False: "**missed**", None: "none (recorded)"}[
        r["target_met"]]
    lines.append(
        f"| {r['framework']} ({r['backend']}) | {r['model']} | "
        f"{r['criterion']} | {r['baseline']} | "
        f"{r['baseline_s']:.2f} / {r['baseline_median_s']:.2f} | "
        f"{r['score_s']:.2f} / {r['score_median_s']:.2f} | "
        f"{r['ratio']:.2f} | {r['paired_ratio_median']:.2f} | "
        f"{r['ratio_of_medians']:.2f} | {met} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=4096)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--jax-repeats", type=int, default=None,
                      help="repeats in the JAX child (default: --repeats)")
  parser.add_argument("--criteria", default=",".join(DATA_CRITERIA))
  parser.add_argument("--models", default="resnet20,residual_cnn",
                      help="comma-separated from " + ", ".join(MODELS))
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                      help="comma-separated, measured in this process: "
                      "tf_keras, keras3")
  parser.add_argument("--backend", default="tensorflow",
                      choices=("tensorflow", "jax"),
                      help="Keras 3 backend of this process")
  parser.add_argument("--no-jax", dest="jax", action="store_false",
                      help="skip the JAX child process")
  parser.add_argument("--ref-scores", default=None,
                      help="npz of tf_keras scores to compare with (child)")
  parser.add_argument("--json-out", default=None,
                      help="write only this JSON file (the child's mode)")
  parser.add_argument("--tag", default="",
                      help="suffix of the result files, e.g. '_8k'")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  frameworks = common.split_names(parser, args.frameworks, FRAMEWORKS,
                                  "framework")
  models = common.split_names(parser, args.models, MODELS, "model")
  criteria = [c for c in args.criteria.split(",") if c]
  common.set_backend(args.backend)
  t0 = time.perf_counter()
  load_start = os.getloadavg()
  rng = np.random.default_rng(0)
  x = rng.random((args.images, 32, 32, 3)).astype("float32")
  y = rng.integers(0, 10, args.images)
  ds = common.cached_dataset((x, y), args.batch)  # autotuning off: see there
  ref_scores = None
  if args.ref_scores:
    with np.load(args.ref_scores) as f:
      ref_scores = dict(f)
  rows, scores = [], {}
  for m in models:
    r, s = measure(m, frameworks, criteria, ds, args.repeats, args.backend,
                   ref_scores)
    rows += r
    scores.update(s)
  meta = common.run_meta("scoring_cost.py", argv, t0, load_start, VERSIONS,
                         images=args.images, batch=args.batch,
                         repeats=args.repeats, backend=args.backend)
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return rows
  children = []
  if args.jax and args.backend != "jax" and "keras3" in frameworks:
    with tempfile.TemporaryDirectory() as tmp:
      ref_path = os.path.join(tmp, "ref_scores.npz")
      np.savez(ref_path, **scores)
      child = run_child(args, "jax", ref_path)
    rows += child["rows"]
    children.append(child["meta"])
  meta["children"] = children
  meta["wall_s_total"] = time.perf_counter() - t0
  common.write_results(args.out, f"scoring_cost{args.tag}", meta, rows,
                       markdown(rows))
  return rows


if __name__ == "__main__":
  main()
