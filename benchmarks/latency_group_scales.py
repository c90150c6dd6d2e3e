"""How the latency planner's cross-group score scale changes what it builds.

`tps.prune(target_latency=...)` keeps the most criterion score for the time
it removes. This script plans the same targets with several cross-group
scales of the scores, through `search_latency(scale='mean', weights=...)`
on the same tables and `l1` scores:

* `mean`: each group's scores divided by their mean, as for global
  ranking (the planner's default; with near-uniform scores it removes the
  fewest channels, which sends it to narrow groups shared by many layers);
* `producers`: times the group's producer count (HALP sums a coupled
  group's importance over its layers; `tps.prune(latency_scale=
  'producers')`);
* `sum`: divided by the group's width as well (each group's scores sum
  to 1, so a cut loses the fraction of the group it removes);
* `macs`: times the MACs one channel of the group carries (relative to
  the mean over groups), so that with uniform scores the planner keeps the
  most MACs for its time.

Part 1, ResNet-20 at 32x32 and MobileNetV2 at 224 (Keras 3, weights=None):
`target_latency` (default 0.5) with each scale, and `target_macs` at each
plan's MACs with round_to=1 and 8; every model built and timed side by
side (float TFLite, 1 thread, XNNPACK): MACs kept, measured latency, and
how much faster the latency-aware model is than the MACs-targeted ones at
its MACs.

Part 2, accuracy (`--accuracy`, on by default): the demo's residual CNN
trained briefly on Fashion-MNIST (sklearn digits when absent), one base per
seed; each scale at several `target_latency`, and `target_macs` with
round_to=8, all timed side by side, BN re-estimated and fine-tuned the same
way: top-1 against measured latency.

Run:  .venv/bin/python benchmarks/latency_group_scales.py
Writes benchmarks/results/latency_group_scales.{json,md,png}.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_planner  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_pruning  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfprune_survey as tps  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import latency_planning  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.metrics.macs_model import MacsModel  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
SCALES = ("mean", "producers", "sum", "macs")


def scale_weights(scale, planner, macs_model):
  """`search_latency(scale='mean')`'s `weights` for `scale` (None for
  'mean')."""
  groups = planner.groups
  if scale == "mean":
    return None
  if scale == "producers":
    return latency_planning.producer_counts(planner)
  if scale == "sum":
    return {g.id: 1.0 / g.size for g in groups}
  if scale == "macs":
    full = macs_model.macs({})
    share = {g.id: full - macs_model.macs({g.id: g.size - 1})
             for g in groups}
    mean = np.mean(list(share.values()))
    return {gid: max(s, 1e-9 * mean) / mean for gid, s in share.items()}
  raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")


def plan(model, graph, planner, lm, target, weights):
  """(kept counts, slim model) of `search_latency` with `weights` on the
  'mean' scale (every group's normalised scores alike)."""
  counts = latency_lib.search_latency(planner, lm, target, "auto",
                                      weights=weights, scale="mean")
  return counts, tps.materialize(model, planner.keep_indices(counts),
                                 graph=graph)


def part1(name, size, args):
  keras = frameworks.get("keras3").keras
  keras.utils.set_random_seed(0)
  model = latency_pruning.build(name, keras, size)
  lm = latency_lib.LatencyModel.measure(model, cache_dir=args.cache_dir,
                                        verbose=0)
  graph = tps.ChannelGraph(model)
  planner = tps.Planner(graph, tps.score(model, "l1", graph=graph))
  macs_model = MacsModel(model, graph)
  macs0 = tps.count_macs(model)
  models, plans = {"original": model}, {}
  for scale in args.scales:
    counts, slim = plan(model, graph, planner, lm, args.target,
                        scale_weights(scale, planner, macs_model))
    kept = tps.count_macs(slim) / macs0
    plans[scale] = {"counts": counts, "macs_fraction": kept,
                    "score_lost": latency_planner.score_lost(planner, counts),
                    "predicted_fraction": lm.predict_counts(counts) /
                                          lm.predict()}
    models[scale] = slim
    for rt in (1, 8):
      models[f"{scale}: MACs, round_to={rt}"] = tps.prune(
          model, "l1", target_macs=1 - kept, round_to=rt).model
  print(f"{name}: timing {len(models)} models side by side", flush=True)
  ms = latency_pruning.timed_side_by_side(models, args.rounds)
  rows = []
  for scale, p in plans.items():
    row = {"model": name, "size": size, "scale": scale,
           "macs_fraction": p["macs_fraction"],
           "latency_fraction": ms[scale] / ms["original"],
           "predicted_fraction": p["predicted_fraction"],
           "score_lost": p["score_lost"]}
    for rt in (1, 8):
      other = models[f"{scale}: MACs, round_to={rt}"]
      row[f"macs_rt{rt}_fraction"] = tps.count_macs(other) / macs0
      row[f"faster_than_rt{rt}"] = ms[f"{scale}: MACs, round_to={rt}"] / \
          ms[scale] - 1
    rows.append(row)
    print(row, flush=True)
  return rows


def part2(args):
  """Top-1 against measured latency on the demo net, per scale and seed."""
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  ((x, y), (xt, yt)), dataset, _ = demo.load_demo_data(args.fashion_dir)
  order = np.random.default_rng(0).permutation(len(x))
  x, y = x[order], y[order]
  n = args.train_images
  train, finetune = (x[:n], y[:n]), (x[n:n + args.ft_images],
                                     y[n:n + args.ft_images])
  if len(finetune[0]) < args.ft_images:
    finetune = (x[:args.ft_images], y[:args.ft_images])
  rows, recal = [], x[:2048]
  for seed in args.seeds:
    base = latency_pruning.train_base(seed, train, recal, args.width,
                                      args.epochs)
    lm = latency_lib.LatencyModel.measure(base, cache_dir=args.cache_dir,
                                          verbose=0)
    graph = tps.ChannelGraph(base)
    planner = tps.Planner(graph, tps.score(base, "l1", graph=graph))
    macs_model = MacsModel(base, graph)
    cands, predicted = {}, {}
    for scale in args.scales:
      weights = scale_weights(scale, planner, macs_model)
      for t in args.latency_targets:
        try:
          counts, cands[f"{scale} {t}"] = plan(base, graph, planner, lm, t,
                                               weights)
          predicted[f"{scale} {t}"] = lm.predict_counts(counts) / lm.predict()
        except ValueError as e:   # an unreachable target: say so, go on
          print(f"seed {seed}: {scale} {t} skipped: {e}", flush=True)
    for t in args.macs_targets:
      cands[f"MACs rt8 {t}"] = tps.prune(base, "l1", target_macs=t,
                                         round_to=8).model
    ms = latency_pruning.timed_side_by_side({"original": base, **cands},
                                            args.rounds)
    for k, slim in cands.items():
      rows.append({"seed": seed, "variant": k,
                   "family": k.rsplit(" ", 1)[0],
                   "top1": latency_pruning.finetune_top1(
                       slim, seed, finetune, recal, (xt, yt)),
                   "macs_fraction": tps.count_macs(slim) /
                                    tps.count_macs(base),
                   "latency_fraction": ms[k] / ms["original"],
                   "predicted_fraction": predicted.get(k)})
      print(rows[-1], flush=True)
  return {"dataset": dataset, "rows": rows, "seeds": list(args.seeds)}


def markdown(state):
  lines = [f"`target_latency={state['target']}`, `l1`, round_to='auto', with "
           "each cross-group scale; `target_macs` at the same MACs. Latency "
           "measured side by side (x orig); score lost is counted the "
           "default way (each group's scores over their mean).", "",
           "| model | scale | MACs kept | latency | predicted | score lost "
           "| faster than MACs-targeted, round_to=1 / 8 |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for r in state["rows"]:
    lines.append(f"| {r['model']} {r['size']} | {r['scale']} | "
                 f"{r['macs_fraction']:.3f} | {r['latency_fraction']:.3f} | "
                 f"{r['predicted_fraction']:.3f} | {r['score_lost']:.1f} | "
                 f"{r['faster_than_rt1']:+.1%} / {r['faster_than_rt8']:+.1%}"
                 " |")
  acc = state.get("accuracy")
  if acc:
    lines += ["", f"Top-1 after the same fine-tune ({acc['dataset']}), mean "
              f"over seeds {acc['seeds']} (min to max), against measured "
              "latency (x orig, mean):", "",
              "| pruned with | target | latency | predicted | MACs kept | "
              "top-1 |", "|---|---:|---:|---:|---:|---:|"]
    for variant, rs in _by_variant(acc["rows"]):
      top = [r["top1"] for r in rs]
      pred = [r["predicted_fraction"] for r in rs
              if r.get("predicted_fraction") is not None]
      lines.append(
          f"| {rs[0]['family']} | {variant.rsplit(' ', 1)[1]} | "
          f"{np.mean([r['latency_fraction'] for r in rs]):.3f} | "
          f"{f'{np.mean(pred):.3f}' if pred else '-'} | "
          f"{np.mean([r['macs_fraction'] for r in rs]):.3f} | "
          f"{np.mean(top):.4f} ({min(top):.4f} to {max(top):.4f}) |")
  return "\n".join(lines)


def _by_variant(rows):
  """[(variant, its rows over seeds)], by family then target."""
  out = {}
  for r in rows:
    out.setdefault(r["variant"], []).append(r)
  return sorted(out.items(), key=lambda kv: (kv[1][0]["family"],
                                             float(kv[0].rsplit(" ", 1)[1])))


def plot(state, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  acc = state.get("accuracy")
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  if acc:
    families = {}
    for variant, rs in _by_variant(acc["rows"]):
      families.setdefault(rs[0]["family"], []).append(
          (np.mean([r["latency_fraction"] for r in rs]),
           np.mean([r["top1"] for r in rs])))
    for family, pts in families.items():
      pts.sort()
      ax.plot(*zip(*pts), marker="o", label=family)
    ax.set_xlabel("measured latency (x original), mean over seeds")
    ax.set_ylabel("top-1 after fine-tune, mean over seeds")
    ax.set_title("Latency planner: cross-group score scales")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="resnet20:32,mobilenetv2:224")
  parser.add_argument("--scales", default=",".join(SCALES))
  parser.add_argument("--target", type=float, default=0.5)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--accuracy", action=argparse.BooleanOptionalAction,
                      default=True)
  parser.add_argument("--train-images", type=int, default=20000)
  parser.add_argument("--ft-images", type=int, default=10000)
  parser.add_argument("--width", type=int, default=48)
  parser.add_argument("--epochs", type=int, default=1,
                      help="part 2: the base's training epochs")
  parser.add_argument("--latency-targets", default="0.3,0.4,0.5,0.6")
  parser.add_argument("--macs-targets", default="0.3,0.4,0.5,0.55,0.6,0.65,"
                      "0.7")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--fashion-dir", default=data_lib.FASHION_MNIST_DIR)
  parser.add_argument("--cache-dir", default=None,
                      help="latency tables' folder (default: the usual "
                      "cache)")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="latency_group_scales")
  args = parser.parse_args(argv)
  args.scales = common.split_names(parser, args.scales, SCALES, "scale")
  args.latency_targets = [float(t) for t in args.latency_targets.split(",")]
  args.macs_targets = [float(t) for t in args.macs_targets.split(",")]
  args.seeds = [int(s) for s in args.seeds.split(",")]
  t0, load = time.perf_counter(), os.getloadavg()
  state = {"target": args.target, "scales": list(args.scales), "rows": []}
  for spec in filter(None, args.models.split(",")):
    name, size = spec.split(":")
    state["rows"] += part1(name, int(size), args)
  if args.accuracy:
    state["accuracy"] = part2(args)
  state["meta"] = common.run_meta(
      "latency_group_scales.py", argv, t0, load,
      ("tensorflow", "tf-keras", "keras", "ai-edge-litert"),
      target=args.target, scales=list(args.scales))
  os.makedirs(args.out, exist_ok=True)
  return common.write_state_report(args.out, args.tag, state, markdown, plot)


if __name__ == "__main__":
  main()
