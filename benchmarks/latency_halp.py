"""HALP's own importance in the latency planner, at equal MACs, trained nets.

`tps.prune(target_latency=...)` keeps the most criterion score per
millisecond, each group's scores divided by their mean (as for global
ranking): the `mean` scale below, the default; `producers` is
`tps.prune(latency_scale='producers')`. HALP (Shen et al. 2022) ranks by the Taylor importance of
Molchanov et al. (2019), (sum of g * w)^2, summed over the layers a group
couples, and compares those raw values across groups: they estimate the
loss change, so no per-group scale is needed. This script asks whether
that importance, planned the same way, gives latency-aware models that are
faster than `target_macs` at equal MACs (issue target: at least 8%).

Each net is trained briefly on Fashion-MNIST (sklearn digits when absent)
at 32x32, its BN statistics re-estimated, as in `latency_trained.py`. Per
importance and cross-group scale (`VARIANTS`):

* latency-aware: `search_latency(target, round_to='auto', weights=...)`
  on the model's measured tables (planned only: no re-plans on measured
  latency, which `tps.prune` adds);
* `tps.prune(target_macs=...)` at the MACs it kept, round_to=1 and 8, on
  the same scores;
* every model timed side by side (float TFLite, 1 thread, XNNPACK);
* one-shot top-1 at 32x32 of the latency-aware model and both MACs-targeted
  ones, BN statistics re-estimated, no fine-tune: a rough view of what each
  keeps.

Scales (each through `search_latency(scale='mean', weights=...)`): `mean`,
`producers` (times the group's producer
count, HALP's sum over coupled layers applied to normalised scores) and
`raw` (weights that undo the per-group normalisation: the criterion's own
values compared across groups, as HALP does).

Run:  .venv/bin/python benchmarks/latency_halp.py
Writes benchmarks/results/latency_halp.{json,md,png}.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_group_scales  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_pruning  # pylint: disable=g-import-not-at-top,wrong-import-position
import latency_trained  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfprune_survey as tps  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.criteria.taylor_fo import TaylorFO  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.metrics.accuracy import evaluate_accuracy  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.metrics.macs_model import MacsModel  # pylint: disable=g-import-not-at-top,wrong-import-position

# (label, importance, cross-group scale).
VARIANTS = (("l1", "l1", "mean"),
            ("l1, producers", "l1", "producers"),
            ("taylor", "taylor", "mean"),
            ("taylor, producers", "taylor", "producers"),
            ("taylor_fo sum", "taylor_fo_sum", "mean"),
            ("HALP: taylor_fo sum, raw", "taylor_fo_sum", "raw"))
SCALES = ("mean", "producers", "raw")


def criterion(name):
  """The criterion of an importance name of `VARIANTS`."""
  if name == "taylor_fo_sum":
    return TaylorFO(reduction="sum")
  return name


def scale_weights(scale, planner):
  """`search_latency`'s `weights` for `scale` (None: the default).

  'mean' and 'producers' are `latency_group_scales.py`'s. 'raw' gives each
  group the mean absolute value of its raw scores (over the mean of
  those), so that normalised score x weight is the raw score up to one
  common factor, which does not change the plan.
  """
  if scale not in SCALES:
    raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
  if scale != "raw":
    return latency_group_scales.scale_weights(scale, planner, None)
  size = {g.id: float(np.abs(np.asarray(planner.scores[g.id],
                                        np.float64)).mean())
          for g in planner.groups}
  mean = np.mean(list(size.values()))
  if mean <= 0:
    return None
  return {gid: max(s / mean, 1e-9) for gid, s in size.items()}


def part(name, size, args, data, cache):
  """Rows of one model: every variant, timed side by side."""
  train_data, test, dataset = data
  trained, top1, train_s, model, lm = latency_trained.trained_and_measured(
      name, size, args, data, cache)
  graph, graph32 = tps.ChannelGraph(model), tps.ChannelGraph(trained)
  macs_model = MacsModel(model, graph)
  macs0 = macs_model.macs({})
  score_data = (train_data[0][:args.score_images],
                train_data[1][:args.score_images])
  recal = train_data[0][:args.recal_images]

  def oneshot(keep):
    """Top-1 at 32x32 of the trained net cut to `keep`, BN re-estimated."""
    slim32 = tps.materialize(trained, keep, graph=graph32)
    tps.recalibrate_bn(slim32, recal)
    return evaluate_accuracy(slim32, test)

  scores_of, slim, rows = {}, {"original": model}, []
  for label, importance, scale in VARIANTS:
    if label not in args.variants:
      continue
    if importance not in scores_of:
      scores_of[importance] = tps.score(trained, criterion(importance),
                                        data=score_data)
    scores = scores_of[importance]
    planner = tps.Planner(graph, scores)
    counts = latency_lib.search_latency(planner, lm, args.target, "auto",
                                        weights=scale_weights(scale, planner),
                                        scale="mean")
    keep = planner.keep_indices(counts)
    slim[(label, "latency-aware")] = tps.materialize(model, keep, graph=graph)
    kept = macs_model.macs(counts) / macs0
    given = latency_trained.Given(scores, label)
    row = {"model": name, "size": size, "variant": label,
           "importance": importance, "scale": scale, "dataset": dataset,
           "train_seconds": train_s, "top1": top1, "macs_fraction": kept,
           "oneshot_top1": {"latency-aware": oneshot(keep)}}
    for rt in (1, 8):
      result = tps.prune(model, given, target_macs=1.0 - kept, round_to=rt)
      slim[(label, f"MACs, round_to={rt}")] = result.model
      row[f"macs_fraction_rt{rt}"] = tps.count_macs(result.model) / macs0
      row["oneshot_top1"][f"round_to={rt}"] = oneshot(result.keep)
    rows.append(row)
  ms = latency_pruning.timed_side_by_side(slim, args.rounds)
  predicted0 = lm.predict()
  for row in rows:
    label = row["variant"]
    ours = ms[(label, "latency-aware")]
    row["latency_fraction"] = ours / ms["original"]
    row["predicted_fraction"] = (lm.predict(slim[(label, "latency-aware")])
                                 / predicted0)
    row["faster_at_its_macs"] = {}
    for rt in (1, 8):
      theirs = ms[(label, f"MACs, round_to={rt}")]
      row[f"latency_fraction_rt{rt}"] = theirs / ms["original"]
      row["faster_at_its_macs"][str(rt)] = theirs / ours - 1
    print(f"{label:26s} MACs x{row['macs_fraction']:.3f} latency "
          f"x{row['latency_fraction']:.3f} (predicted "
          f"x{row['predicted_fraction']:.3f}); faster than target_macs "
          f"{row['faster_at_its_macs']['1']:+.1%} / "
          f"{row['faster_at_its_macs']['8']:+.1%}", flush=True)
  return rows


def markdown(state):
  lines = ["`target_latency` planned with each importance and cross-group "
           "scale (`search_latency`, round_to='auto'), and `target_macs` at "
           "the MACs it kept; latency measured side by side (x the "
           "original's). One-shot top-1: 32x32, BN statistics re-estimated, "
           "no fine-tune.", "",
           "| model | importance, scale | MACs kept | latency | predicted | "
           "faster than `target_macs` at its MACs: round_to=1 / 8 | "
           "one-shot top-1: latency-aware / round_to=1 / 8 |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for r in state["rows"]:
    f, o = r["faster_at_its_macs"], r["oneshot_top1"]
    lines.append(
        f"| {r['model']} {r['size']} (top-1 {r['top1']:.4f}) | "
        f"{r['variant']} | {r['macs_fraction']:.3f} | "
        f"{r['latency_fraction']:.3f} | {r['predicted_fraction']:.3f} | "
        f"{f['1']:+.1%} / {f['8']:+.1%} | {o['latency-aware']:.4f} / "
        f"{o['round_to=1']:.4f} / {o['round_to=8']:.4f} |")
  return "\n".join(lines)


def plot(state, path):
  def draw(ax, rows):
    for i, r in enumerate(rows):
      c = f"C{i}"
      ax.scatter(r["macs_fraction"], r["latency_fraction"], color=c,
                 marker="o", label=f"{r['variant']}: latency-aware")
      for rt, m in ((1, "s"), (8, "^")):
        ax.scatter(r[f"macs_fraction_rt{rt}"], r[f"latency_fraction_rt{rt}"],
                   color=c, marker=m, alpha=0.6,
                   label=f"{r['variant']}: MACs, round_to={rt}")
  common.macs_latency_panels(
      state["rows"],
      lambda name, size: f"{name} at {size}: latency-aware (o) and "
      "target_macs", draw, path, legend_size=5)


def main(argv=None):
  t0, load0 = time.perf_counter(), os.getloadavg()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  latency_trained.add_run_args(parser, "latency_halp", 10000)
  parser.add_argument("--recal-images", type=int, default=2048)
  parser.add_argument("--variants", default=";".join(v[0] for v in VARIANTS),
                      help="labels of `VARIANTS` to run, separated by ';'")
  args = parser.parse_args(argv)
  args.variants = common.split_names(parser, args.variants,
                                     [v[0] for v in VARIANTS], "variant",
                                     sep=";")
  args.models = common.split_names(parser, args.models,
                                   latency_trained.MODELS, "model")
  os.makedirs(args.out, exist_ok=True)
  cache = args.cache_dir or common.scratch_dir("latency_halp_")
  data = latency_trained.load_32(args.fashion_dir, args.train_images)
  state = {"rows": [], "runtime": latency_lib.runtime_info(1, "xnnpack")}
  for name in args.models:
    size = args.mnv2_size if name == "mobilenetv2" else 32
    state["rows"] += part(name, size, args, data, cache)
  state["meta"] = common.run_meta(
      "latency_halp.py", argv, t0, load0,
      ("tensorflow", "keras", "ai-edge-litert"),
      train_images=args.train_images, epochs=args.epochs,
      score_images=args.score_images, recal_images=args.recal_images,
      rounds=args.rounds, target=args.target, seed=args.seed,
      variants=args.variants)
  return common.write_state_report(args.out, args.tag, state, markdown, plot)


if __name__ == "__main__":
  main()
