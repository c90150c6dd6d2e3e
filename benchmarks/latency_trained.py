"""Latency-aware pruning of trained nets at equal MACs: `l1` and HALP's `taylor`.

`benchmarks/latency_pruning.py` plans on untrained weights, whose `l1`
scores are about the same for every channel, so its plans follow the
cross-group scale rather than any criterion. Here each net is first trained
briefly on Fashion-MNIST (sklearn digits when absent), resized to 32x32
with its gray channel repeated three times, 2 epochs of 30,000 images by
default, and its BN statistics re-estimated. Then, per criterion (`l1`, and
`taylor`, the importance HALP uses), on the same scores:

* latency-aware: `tps.prune(target_latency=0.5, round_to='auto')`;
* `tps.prune(target_macs=...)` at the MACs the latency-aware model kept,
  round_to=1 (the default) and 8;
* at half the MACs: `target_macs=0.5` (round_to=1 and 8), and the
  `target_latency` (0.15 to 0.75 by 0.05, planned only) whose MACs come
  closest to half;
* `frontier`: criterion-blind, the lowest predicted latency an annealing
  search finds over the widths of each group's measured grid with at least
  the latency-aware model's MACs. It shows how fast any allocation gets at
  those MACs by the tables, whatever it keeps; it is not a pruning method.

Every model is built and timed side by side (float TFLite, batch 1, 1
thread, XNNPACK, the median of invokes, the models' invokes taken in turn).

Models: the zoo's ResNet-20 at 32x32 and Keras 3's MobileNetV2 (10
classes). MobileNetV2 is trained and scored at 32x32 (where it was
trained), and its weights, which do not depend on the input size, are
copied into the same architecture at `--mnv2-size` (224) for the latency
tables and the slim models.

Run:  .venv/bin/python benchmarks/latency_trained.py
Writes benchmarks/results/latency_trained.{json,md,png}.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_pruning  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfprune_survey as tps  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.criteria.base import Criterion  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.metrics.accuracy import evaluate_accuracy  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.metrics.macs_model import MacsModel  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("resnet20", "resnet8", "mobilenetv2")
CRITERIA = ("l1", "taylor")


class Given(Criterion):
  """The scores of another model of the same architecture (`{gid: array}`).

  MobileNetV2 is scored at the input size it was trained at and pruned at
  the size it is timed at; its groups, named by layer, are the same.
  """

  name = "given"

  def __init__(self, scores, label):
    super().__init__()
    self.scores, self.label = scores, label

  def score(self, ctx):
    return {g.id: self.scores[g.id] for g in ctx.groups if g.id in self.scores}

  def get_config(self):
    return {"label": self.label}


def load_32(fashion_dir, images):
  """(train, test, name): 32x32x3 images, gray repeated on 3 channels."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  ((x, y), (xt, yt)), name, _ = demo.load_demo_data(fashion_dir)

  def prep(a):
    a = tf.image.resize(np.asarray(a, np.float32), (32, 32)).numpy()
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a
  return (prep(x[:images]), y[:images]), (prep(xt[:2000]), yt[:2000]), name


def train(name, train_data, test, epochs, seed):
  """The model at 32x32, trained, BN re-estimated; and its top-1."""
  keras = frameworks.get("keras3").keras
  keras.utils.set_random_seed(seed)
  model = latency_pruning.build(name, keras, 32, classes=10)
  logits = name != "mobilenetv2"   # applications end in a softmax
  model.compile(keras.optimizers.Adam(2e-3),
                keras.losses.SparseCategoricalCrossentropy(
                    from_logits=logits))
  model.fit(*train_data, batch_size=128, epochs=epochs, verbose=0)
  tps.recalibrate_bn(model, train_data[0][:2048])
  return model, evaluate_accuracy(model, test)


def frontier(planner, lm, macs_model, min_macs, iters, seed):
  """Kept counts of the lowest predicted latency found with >= `min_macs`.

  Simulated annealing over each group's measured grid (multiples of
  `lm.step`, at least one step), from widths scaled by sqrt of the MACs
  fraction. A move changes one or two groups, each by one step or (one
  time in three) to any width of its grid; the temperature starts at the
  mean cost change of random moves and falls linearly. Criterion-blind.
  """
  rng = np.random.default_rng(seed)
  full = {g.id: g.size for g in planner.groups}
  steps = {g: max(1, lm.step(g)) for g in full}
  ids = list(full)
  macs0, t0 = macs_model.macs({}), lm.predict_counts({})

  def cost(counts):
    macs = macs_model.macs(counts)
    # A shortfall of MACs costs more than any time it saves.
    return (lm.predict_counts(counts) / t0 +
            5.0 * max(0.0, (min_macs - macs) / macs0)), macs

  def move(counts):
    out = dict(counts)
    for _ in range(rng.integers(1, 3)):
      g = ids[rng.integers(len(ids))]
      if rng.random() < 1 / 3:
        out[g] = steps[g] * int(rng.integers(1, full[g] // steps[g] + 1))
      else:
        out[g] = int(np.clip(out[g] + steps[g] * rng.choice((-1, 1)),
                             steps[g], full[g]))
    return out

  share = np.sqrt(min_macs / macs0)
  counts = {g: int(np.clip(round(full[g] * share / steps[g]) * steps[g],
                           steps[g], full[g])) for g in ids}
  now, macs = cost(counts)
  best = (now, dict(counts)) if macs >= min_macs else (np.inf, None)
  temp0 = max(np.mean([abs(cost(move(counts))[0] - now) for _ in range(32)]),
              1e-6)
  for it in range(iters):
    temp = temp0 * (1 - it / iters) + 1e-9
    cand = move(counts)
    c, m = cost(cand)
    if c < now or rng.random() < np.exp((now - c) / temp):
      counts, now = cand, c
      if c < best[0] and m >= min_macs:
        best = (c, dict(cand))
  if best[1] is None:
    raise ValueError(f"no widths with at least {min_macs:.0f} MACs found")
  return best[1]


def trained_and_measured(name, size, args, data, cache):
  """(trained net at 32x32, its top-1, training seconds, the same weights
  at `size`, that model's LatencyModel)."""
  train_data, test, dataset = data
  t0 = time.perf_counter()
  trained, top1 = train(name, train_data, test, args.epochs, args.seed)
  train_s = time.perf_counter() - t0
  keras = frameworks.get("keras3").keras
  model = trained
  if size != 32:
    model = latency_pruning.build(name, keras, size, classes=10)
    model.set_weights(trained.get_weights())
  print(f"\n== {name}: trained at 32x32 on {dataset} in {train_s:.0f} s, "
        f"top-1 {top1:.4f}; timed at {size}x{size} ==", flush=True)
  lm = latency_lib.LatencyModel.measure(model, cache_dir=cache,
                                        verbose=args.verbose)
  return trained, top1, train_s, model, lm


def part(name, size, args, data, cache):
  """Rows and summaries of one model: every criterion, timed side by side."""
  train_data, _, dataset = data
  trained, top1, train_s, model, lm = trained_and_measured(name, size, args,
                                                           data, cache)
  graph = tps.ChannelGraph(model)
  macs_model = MacsModel(model, graph)
  macs0 = tps.count_macs(model)
  score_data = (train_data[0][:args.score_images],
                train_data[1][:args.score_images])
  slim, meta = {"original": model}, {}
  for crit in args.criteria:
    scores = tps.score(trained, crit, data=score_data)
    given = Given(scores, crit)
    lat = tps.prune(model, given, target_latency=args.target, latency=lm,
                    round_to="auto")
    equal = lat.report.macs_reduction
    slim[(crit, "latency-aware")] = lat.model
    for rt in (1, 8):
      slim[(crit, f"MACs, round_to={rt}")] = tps.prune(
          model, given, target_macs=equal, round_to=rt).model
      slim[(crit, f"MACs 0.5, round_to={rt}")] = tps.prune(
          model, given, target_macs=0.5, round_to=rt).model
    planner = tps.Planner(graph, scores)
    t_half, counts = latency_pruning.half_macs_plan(planner, lm, macs_model)
    slim[(crit, "latency-aware at MACs 0.5")] = tps.materialize(
        model, planner.keep_indices(counts), graph=graph)
    best = frontier(planner, lm, macs_model, (1 - equal) * macs0,
                    args.frontier_iters, args.seed)
    slim[(crit, "frontier, its MACs")] = tps.materialize(
        model, planner.keep_indices(best), graph=graph)
    meta[crit] = {"target_for_half_macs": t_half}
  ms = latency_pruning.timed_side_by_side(slim, args.rounds)
  rows = []
  for key, m in slim.items():
    crit, variant = key if isinstance(key, tuple) else ("-", key)
    rows.append({"model": name, "size": size, "criterion": crit,
                 "variant": variant,
                 "macs_fraction": tps.count_macs(m) / macs0,
                 "ms": ms[key], "latency_fraction": ms[key] / ms["original"],
                 "predicted_fraction": lm.predict(m) / lm.predict()})
  summaries = []
  for crit in args.criteria:
    def faster(base, ours, crit=crit):
      return ms[(crit, base)] / ms[(crit, ours)] - 1
    summaries.append({
        "model": name, "size": size, "criterion": crit,
        "dataset": dataset, "train_seconds": train_s, "top1": top1,
        "reached": ms[(crit, "latency-aware")] / ms["original"],
        "faster_at_its_macs": {
            rt: faster(f"MACs, round_to={rt}", "latency-aware")
            for rt in (1, 8)},
        "faster_at_half": {
            rt: faster(f"MACs 0.5, round_to={rt}",
                       "latency-aware at MACs 0.5") for rt in (1, 8)},
        "frontier_faster_at_its_macs": {
            rt: faster(f"MACs, round_to={rt}", "frontier, its MACs")
            for rt in (1, 8)},
        **meta[crit]})
  for r in rows:
    print(f"{r['criterion']:7s} {r['variant']:26s} MACs "
          f"x{r['macs_fraction']:.3f} latency x{r['latency_fraction']:.3f} "
          f"(predicted x{r['predicted_fraction']:.3f})", flush=True)
  return rows, summaries


def markdown(state):
  lines = ["Measured latency (x the original's), side by side per model.", "",
           "| model | criterion | variant | MACs (x orig) | latency | "
           "predicted |", "|---|---|---|---:|---:|---:|"]
  for r in state["rows"]:
    lines.append(f"| {r['model']} {r['size']} | {r['criterion']} | "
                 f"{r['variant']} | {r['macs_fraction']:.3f} | "
                 f"{r['latency_fraction']:.3f} | "
                 f"{r['predicted_fraction']:.3f} |")
  lines += ["", "How much faster the latency-aware model is than "
            "`target_macs` at equal MACs (target: at least 8%).", "",
            "| model | criterion | trained top-1 | reached (target "
            "0.44-0.56) | at its MACs: round_to=1 / 8 | at half the MACs: "
            "round_to=1 / 8 (target_latency used) | frontier at its MACs: "
            "round_to=1 / 8 |", "|---|---|---:|---:|---:|---:|---:|"]
  for s in state["summaries"]:
    a, h, f = (s["faster_at_its_macs"], s["faster_at_half"],
               s["frontier_faster_at_its_macs"])
    lines.append(
        f"| {s['model']} {s['size']} | {s['criterion']} | {s['top1']:.4f} | "
        f"{s['reached']:.3f} | {a['1']:+.1%} / {a['8']:+.1%} | "
        f"{h['1']:+.1%} / {h['8']:+.1%} ({s['target_for_half_macs']}) | "
        f"{f['1']:+.1%} / {f['8']:+.1%} |")
  return "\n".join(lines)


def plot(state, path):
  markers = {"latency-aware": "o", "latency-aware at MACs 0.5": "o",
             "MACs, round_to=1": "s", "MACs 0.5, round_to=1": "s",
             "MACs, round_to=8": "^", "MACs 0.5, round_to=8": "^",
             "frontier, its MACs": "x"}
  colours = {c: f"C{i}" for i, c in enumerate(
      dict.fromkeys(r["criterion"] for r in state["rows"]))}

  def draw(ax, rows):
    for r in rows:
      if r["criterion"] != "-":
        ax.scatter(r["macs_fraction"], r["latency_fraction"],
                   marker=markers[r["variant"]],
                   color=colours[r["criterion"]],
                   label=f"{r['criterion']}: {r['variant']}")
  common.macs_latency_panels(
      state["rows"],
      lambda name, size: f"{name} at {size}: trained, pruned, timed side by "
      "side", draw, path)


def add_run_args(parser, tag, train_images):
  """The arguments of a run on trained nets (this script's and
  `latency_halp.py`'s): models, sizes, target, training, data, files."""
  parser.add_argument("--models", default="resnet20,mobilenetv2")
  parser.add_argument("--mnv2-size", type=int, default=224)
  parser.add_argument("--target", type=float, default=0.5)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--train-images", type=int, default=train_images)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--score-images", type=int, default=512)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--fashion-dir", default=data_lib.FASHION_MNIST_DIR)
  parser.add_argument("--cache-dir", default=None,
                      help="latency tables' folder (default: a new one)")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default=tag)
  parser.add_argument("--verbose", type=int, default=1)


def main(argv=None):
  t0, load0 = time.perf_counter(), os.getloadavg()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_run_args(parser, "latency_trained", 30000)
  parser.add_argument("--criteria", default=",".join(CRITERIA))
  parser.add_argument("--frontier-iters", type=int, default=40000)
  args = parser.parse_args(argv)
  args.models = common.split_names(parser, args.models, MODELS, "model")
  args.criteria = common.split_names(parser, args.criteria, CRITERIA,
                                     "criterion")
  os.makedirs(args.out, exist_ok=True)
  cache = args.cache_dir or common.scratch_dir("latency_trained_")
  data = load_32(args.fashion_dir, args.train_images)
  state = {"rows": [], "summaries": [],
           "runtime": latency_lib.runtime_info(1, "xnnpack")}
  for name in args.models:
    size = args.mnv2_size if name == "mobilenetv2" else 32
    rows, summaries = part(name, size, args, data, cache)
    state["rows"] += rows
    state["summaries"] += summaries
  # JSON keys are strings.
  for s in state["summaries"]:
    for k in ("faster_at_its_macs", "faster_at_half",
              "frontier_faster_at_its_macs"):
      s[k] = {str(rt): v for rt, v in s[k].items()}
  state["meta"] = common.run_meta(
      "latency_trained.py", argv, t0, load0,
      ("tensorflow", "keras", "ai-edge-litert"),
      train_images=args.train_images, epochs=args.epochs,
      score_images=args.score_images, rounds=args.rounds,
      frontier_iters=args.frontier_iters, seed=args.seed)
  return common.write_state_report(args.out, args.tag, state, markdown, plot)


if __name__ == "__main__":
  main()
