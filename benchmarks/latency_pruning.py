"""Latency-aware pruning (`tps.prune(target_latency=...)`) against MACs.

Part 1, per model (ResNet-20 at 32x32 from `tps.zoo`, MobileNetV2 at 224 from
`keras.applications`, weights=None; Keras 3 on TensorFlow):

* `LatencyModel.measure`: how long it took, how many one-layer files, and
  its prediction of the whole model against the whole model measured;
* `l1` with `target_latency=0.5` (round_to='auto'): the slim model's measured
  latency as a fraction of the original's (target 0.44 to 0.56);
* `l1` with `target_macs` set to the MACs the latency-aware model removed
  (equal MACs), round_to=1 and round_to=8: measured latency of each (target:
  the latency-aware model at least 8% faster);
* the prediction error of every slim model;
* a criterion-blind allocation that cuts where the predicted time saved
  per MAC removed is largest (`ms_per_mac_greedy`), at the same MACs and
  at half: how much faster than MACs-targeted pruning any allocation gets
  at equal MACs on these tables.

Every latency is float TFLite, batch 1, 1 thread, XNNPACK: the median of
batch-1 invokes, the models' invokes taken in turn
(`tps.latency.time_side_by_side`, about 200 ms per model per `--rounds`),
so that a slow moment of the shared machine does not land on one model
only.

Part 2 (Fashion-MNIST; sklearn digits when absent): the demo's residual CNN
trained briefly, once per seed (`--seeds`); `l1` at several `target_latency`
and several `target_macs` (round_to=8), all timed side by side and
fine-tuned the same way: top-1 against measured latency for both families,
and each latency-targeted model against the MACs-targeted one nearest in
measured latency.

Run:  .venv/bin/python benchmarks/latency_pruning.py
Writes benchmarks/results/latency_pruning.{json,md,png}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey import latency as latency_lib
from tfprune_survey import zoo
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.metrics.accuracy import evaluate_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))


def timed_side_by_side(models, rounds):
  """{name: ms}: medians of invokes, the models' invokes taken in turn
  (`tps.latency.time_side_by_side`), about 200 ms per model per round."""
  ms = latency_lib.measure_side_by_side(list(models.values()),
                                        budget_ms=200.0 * rounds)
  return dict(zip(models, ms))


def ms_per_mac_greedy(planner, lm, macs_model, goal, floor=0.25):
  """Kept counts at `goal` MACs, cutting where ms saved per MAC is largest.

  Criterion-blind: each step takes, over all groups, the next step of the
  group's measured grid (`lm.step`) whose predicted milliseconds saved per
  MAC removed is largest (the last step, among those that reach `goal`,
  the one closest to it); no group goes below `floor` of its width. It
  shows how much faster than MACs-targeted pruning any allocation can be
  at equal MACs on these tables, whatever it keeps.
  """
  counts = {g.id: g.size for g in planner.groups}
  now_ms, now_macs = lm.predict_counts(counts), macs_model.macs(counts)
  while now_macs > goal:
    best = None
    for g in planner.groups:
      # The next point of the group's measured grid below its count.
      step = lm.step(g.id)
      w = (counts[g.id] - 1) // step * step
      if w < max(1, floor * g.size):
        continue
      trial = {**counts, g.id: w}
      t_ms, t_macs = lm.predict_counts(trial), macs_model.macs(trial)
      if t_macs < now_macs:
        # Among the cuts that reach the goal, the one closest to it.
        key = ((0, goal - t_macs) if t_macs <= goal else
               (1, -(now_ms - t_ms) / (now_macs - t_macs)))
        if best is None or key < best[0]:
          best = (key, g.id, w, t_ms, t_macs)
    if best is None:
      print(f"ms/MAC greedy: the floor stops it at {now_macs / 1e6:.1f}M "
            f"MACs, above the goal of {goal / 1e6:.1f}M", flush=True)
      break
    _, gid, counts[gid], now_ms, now_macs = best
  return counts


def half_macs_plan(planner, lm, macs_model):
  """(target_latency, counts) whose MACs come closest to half the model's.

  A sweep of target_latency from 0.15 to 0.75 by 0.05, planned only
  (nothing is timed to choose it).
  """
  macs0 = macs_model.macs({})
  best = None
  for t in np.arange(0.15, 0.76, 0.05):
    try:
      counts = latency_lib.search_latency(planner, lm, float(t), "auto")
    except ValueError:
      continue
    gap = abs(macs_model.macs(counts) / macs0 - 0.5)
    if best is None or gap < best[0]:
      best = (gap, round(float(t), 2), counts)
  if best is None:
    raise ValueError("no target_latency from 0.15 to 0.75 can be reached")
  return best[1], best[2]


def build(name, keras, size, classes=None):
  """The untrained model; `classes` (applications only) defaults to 1000."""
  apps = {} if classes is None else {"classes": classes}
  if name == "resnet20":
    return zoo.resnet_cifar(20, input_shape=(size, size, 3),
                            framework="keras3")
  if name == "resnet8":
    return zoo.resnet_cifar(8, input_shape=(size, size, 3),
                            framework="keras3")
  if name == "resnet50":
    return keras.applications.ResNet50(input_shape=(size, size, 3),
                                       weights=None, **apps)
  if name == "mobilenetv2":
    return keras.applications.MobileNetV2(input_shape=(size, size, 3),
                                          weights=None, **apps)
  raise ValueError(f"unknown model {name!r}")


def part1(name, size, args, cache_dir):
  keras = frameworks.get("keras3").keras
  keras.utils.set_random_seed(0)
  model = build(name, keras, size)
  print(f"\n== {name} at {size}x{size}: measure per-layer tables ==",
        flush=True)
  lm = latency_lib.LatencyModel.measure(model, cache_dir=cache_dir,
                                        use_cache=args.reuse,
                                        verbose=args.verbose)
  measure_s = lm.seconds  # the measuring run's own time, cached or not
  files = sum(len(l.in_widths) + len(l.out_widths) for l in lm.layers)
  t0 = time.perf_counter()
  lat = tps.prune(model, "l1", target_latency=args.target, latency=lm,
                  round_to="auto")
  plan_s = time.perf_counter() - t0
  equal = lat.report.macs_reduction
  macs0 = tps.count_macs(model)
  slim = {"original": model, "latency-aware": lat.model}
  for rt in (1, 8):
    slim[f"MACs, round_to={rt}"] = tps.prune(
        model, "l1", target_macs=equal, round_to=rt).model
  # The other way round: MACs-targeted at half the MACs, and the
  # latency-aware model whose MACs are closest to that (a sweep of
  # target_latency, planned only; nothing is timed to choose it).
  for rt in (1, 8):
    slim[f"MACs 0.5, round_to={rt}"] = tps.prune(
        model, "l1", target_macs=0.5, round_to=rt).model
  graph = tps.ChannelGraph(model)
  planner = tps.Planner(graph, tps.score(model, "l1", graph=graph))
  macs_model = MacsModel(model, graph)
  t_half, counts = half_macs_plan(planner, lm, macs_model)
  slim["latency-aware at MACs 0.5"] = tps.materialize(
      model, planner.keep_indices(counts), graph=graph)
  # How much faster than MACs-targeted any allocation can be at equal MACs,
  # by the tables: one that ignores the criterion and cuts where the
  # predicted time saved per MAC removed is largest.
  for tag, macs_goal in (("its MACs", 1 - equal), ("MACs 0.5", 0.5)):
    slim[f"ms/MAC greedy, {tag}"] = tps.materialize(
        model, planner.keep_indices(ms_per_mac_greedy(
            planner, lm, macs_model, macs_goal * macs0)), graph=graph)
  ms = timed_side_by_side(slim, args.rounds)
  rows = []
  for n, m in slim.items():
    pred = lm.predict(m)
    rows.append({"model": name, "size": size, "variant": n,
                 "macs": tps.count_macs(m),
                 "macs_fraction": tps.count_macs(m) / macs0,
                 "ms": ms[n], "latency_fraction": ms[n] / ms["original"],
                 "predicted_ms": pred,
                 "predicted_fraction": pred / lm.predict(),
                 "prediction_error": pred / ms[n] - 1})
  by = {r["variant"]: r for r in rows}
  summary = {
      "model": name, "size": size, "measure_seconds": measure_s,
      "plan_seconds": plan_s, "one_layer_files": files,
      "layers": len(lm.layers), "groups_kept": lat.report.groups,
      "reached": by["latency-aware"]["latency_fraction"],
      "reached_in_range": 0.44 <= by["latency-aware"]["latency_fraction"]
                          <= 0.56,
      "faster_than_macs": {k: by[k]["ms"] / by["latency-aware"]["ms"] - 1
                           for k in by if k.startswith("MACs,")},
      "faster_than_macs_at_half": {
          k: by[k]["ms"] / by["latency-aware at MACs 0.5"]["ms"] - 1
          for k in by if k.startswith("MACs 0.5")},
      "greedy_faster_than_macs": {
          k: by[k]["ms"] / by["ms/MAC greedy, its MACs"]["ms"] - 1
          for k in by if k.startswith("MACs,")},
      "greedy_faster_than_macs_at_half": {
          k: by[k]["ms"] / by["ms/MAC greedy, MACs 0.5"]["ms"] - 1
          for k in by if k.startswith("MACs 0.5")},
      "target_for_half_macs": t_half,
      "staircase": {l.name: [l.out_widths, l.out_ms] for l in lm.layers[:8]
                    if len(l.out_widths) > 2},
  }
  for r in rows:
    print(f"{r['variant']:22s} MACs x{r['macs_fraction']:.3f} measured "
          f"{r['ms']:.3f} ms (x{r['latency_fraction']:.3f}) predicted "
          f"{r['predicted_ms']:.3f} ms ({r['prediction_error']:+.1%})",
          flush=True)
  print(f"measured the tables in {measure_s:.0f} s ({files} one-layer "
        f"files); planned in {plan_s:.1f} s", flush=True)
  return rows, summary


def part2(args, cache_dir):
  """Accuracy against measured latency, one trained base per seed."""
  ((x, y), (xt, yt)), dataset, _ = _data(args)
  order = np.random.default_rng(0).permutation(len(x))
  x, y = x[order], y[order]
  xb, yb = x[:args.train_images], y[:args.train_images]
  xf = x[args.train_images:args.train_images + args.ft_images]
  yf = y[args.train_images:args.train_images + args.ft_images]
  if len(xf) < args.ft_images:
    xf, yf = x[:args.ft_images], y[:args.ft_images]
  print(f"\n== accuracy against measured latency on {dataset} ==", flush=True)
  rows, pairs, base_acc = [], [], []
  for seed in args.seeds:
    r, p, top1 = _part2_seed(seed, args, cache_dir, (xb, yb), (xf, yf),
                             (xt, yt), x, y)
    rows += r
    pairs += p
    base_acc.append(top1)
  gains = [p["top1_gain"] for p in pairs]
  return {"dataset": dataset, "base_top1": base_acc, "rows": rows,
          "pairs": pairs, "seeds": list(args.seeds),
          "pairs_won": sum(g > 0 for g in gains), "pairs_total": len(gains),
          "mean_gain": float(np.mean(gains)) if gains else None,
          "std_gain": float(np.std(gains)) if gains else None,
          "train_images": len(xb), "ft_images": len(xf),
          "epochs": args.epochs, "width": args.width}


def train_base(seed, train, recal, width, epochs):
  """The demo's residual CNN (tf_keras) trained on `train` with `seed`."""
  keras = frameworks.get("tf_keras").keras
  keras.utils.set_random_seed(seed)
  base = zoo.residual_cnn(input_shape=train[0].shape[1:], width=width,
                          stem_pool=True)
  base.compile(keras.optimizers.Adam(2e-3), _loss(keras))
  base.fit(*train, batch_size=128, epochs=epochs, verbose=0)
  tps.recalibrate_bn(base, recal)
  return base


def finetune_top1(slim, seed, finetune, recal, test):
  """Top-1 of `slim` after one epoch on `finetune`, BN re-estimated."""
  keras = frameworks.get("tf_keras").keras
  keras.utils.set_random_seed(seed + 1)
  slim.compile(keras.optimizers.Adam(1e-3), _loss(keras))
  slim.fit(*finetune, batch_size=128, epochs=1, verbose=0)
  tps.recalibrate_bn(slim, recal)
  return evaluate_accuracy(slim, test)


def _loss(keras):
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _part2_seed(seed, args, cache_dir, train, finetune, test, x, y):
  score, recal = (x[:1024], y[:1024]), x[:2048]
  base = train_base(seed, train, recal, args.width, args.epochs)
  base_acc = evaluate_accuracy(base, test)
  lm = latency_lib.LatencyModel.measure(base, cache_dir=cache_dir,
                                        verbose=0)
  # Two families over a range of targets, every model timed side by side,
  # fine-tuned the same way; compared where their measured latencies meet.
  cands = {}
  targets = ([("latency", t, dict(target_latency=t, latency=lm,
                                  round_to="auto"))
              for t in args.latency_targets] +
             [("macs", t, dict(target_macs=t, round_to=8))
              for t in args.macs_targets])
  for family, t, kwargs in targets:
    try:
      cands[f"{family} {t}"] = tps.prune(base, "l1", data=score,
                                         recalibrate=recal, **kwargs)
    except ValueError as e:   # an unreachable target: say so, go on
      print(f"seed {seed}: {family} {t} skipped: {e}", flush=True)
  ms = timed_side_by_side({"original": base,
                           **{k: r.model for k, r in cands.items()}},
                          args.rounds)
  out = []
  for k, r in cands.items():
    slim = r.model
    out.append({"seed": seed, "variant": k, "family": k.split()[0],
                "top1": finetune_top1(slim, seed, finetune, recal, test),
                "macs_fraction": tps.count_macs(slim) / tps.count_macs(base),
                "latency_fraction": ms[k] / ms["original"], "ms": ms[k]})
    print(f"seed {seed} {k:12s} top-1 {out[-1]['top1']:.4f} MACs "
          f"x{out[-1]['macs_fraction']:.3f} latency "
          f"x{out[-1]['latency_fraction']:.3f}", flush=True)
  # Each latency-targeted model against the MACs-targeted one nearest in
  # measured latency.
  macs_rows = [r for r in out if r["family"] == "macs"]
  pairs = []
  for r in out:
    if r["family"] == "latency" and macs_rows:
      near = min(macs_rows, key=lambda m: abs(m["latency_fraction"] -
                                              r["latency_fraction"]))
      pairs.append({"seed": seed, "latency": r["variant"],
                    "macs": near["variant"],
                    "latency_gap": near["latency_fraction"] -
                                   r["latency_fraction"],
                    "top1_gain": r["top1"] - near["top1"]})
  return out, pairs, base_acc


def _data(args):
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  return demo.load_demo_data(args.fashion_dir)


def write(state, out, tag):
  with open(os.path.join(out, f"{tag}.json"), "w") as f:
    json.dump(state, f, indent=1)
  lines = ["| model | variant | MACs (x orig) | measured ms | latency (x "
           "orig) | predicted ms | prediction error |",
           "|---|---|---:|---:|---:|---:|---:|"]
  for r in state["rows"]:
    lines.append(f"| {r['model']} {r['size']} | {r['variant']} | "
                 f"{r['macs_fraction']:.3f} | {r['ms']:.3f} | "
                 f"{r['latency_fraction']:.3f} | {r['predicted_ms']:.3f} | "
                 f"{r['prediction_error']:+.1%} |")
  lines += ["", "| model | tables measured in | one-layer files | reached "
            "(target 0.44-0.56) | latency-aware faster than MACs-targeted "
            "at its MACs (round_to=1 / 8) | at half the MACs (round_to=1 / "
            "8; target_latency used) | ms/MAC greedy faster than "
            "MACs-targeted, at its MACs / at half (round_to=1 / 8) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
  for s in state["summaries"]:
    f, h = s["faster_than_macs"], s["faster_than_macs_at_half"]
    gf, gh = s["greedy_faster_than_macs"], s["greedy_faster_than_macs_at_half"]
    lines.append(f"| {s['model']} {s['size']} | {s['measure_seconds']:.0f} s "
                 f"| {s['one_layer_files']} | {s['reached']:.3f} | "
                 f"{f['MACs, round_to=1']:+.1%} / {f['MACs, round_to=8']:+.1%}"
                 f" | {h['MACs 0.5, round_to=1']:+.1%} / "
                 f"{h['MACs 0.5, round_to=8']:+.1%} "
                 f"({s['target_for_half_macs']}) | "
                 f"{gf['MACs, round_to=1']:+.1%} / "
                 f"{gf['MACs, round_to=8']:+.1%}; "
                 f"{gh['MACs 0.5, round_to=1']:+.1%} / "
                 f"{gh['MACs 0.5, round_to=8']:+.1%} |")
  acc = state.get("accuracy")
  if acc:
    first = acc["seeds"][0]
    bases = ", ".join(f"{b:.4f}" for b in acc["base_top1"])
    lines += ["", f"Accuracy against measured latency ({acc['dataset']}, "
              f"seeds {acc['seeds']}, base top-1 {bases}; "
              f"{acc['ft_images']:,} fine-tune images). Seed {first}:", "",
              "| pruned to | top-1 | MACs (x orig) | latency (x orig) |",
              "|---|---:|---:|---:|"]
    for r in sorted((r for r in acc["rows"] if r["seed"] == first),
                    key=lambda r: r["latency_fraction"]):
      lines.append(f"| {r['variant']} | {r['top1']:.4f} | "
                   f"{r['macs_fraction']:.3f} | {r['latency_fraction']:.3f} |")
    lines += ["", "| seed | latency-targeted | nearest MACs-targeted by "
              "measured latency | its latency minus ours | top-1 gain |",
              "|---:|---|---|---:|---:|"]
    for p in acc["pairs"]:
      lines.append(f"| {p['seed']} | {p['latency']} | {p['macs']} | "
                   f"{p['latency_gap']:+.3f} | {p['top1_gain']:+.4f} |")
    if acc["pairs_total"]:
      lines += ["", f"Latency-targeted ahead in {acc['pairs_won']} of "
                f"{acc['pairs_total']} pairs; top-1 gain "
                f"{acc['mean_gain']:+.4f} +- {acc['std_gain']:.4f} (mean +- "
                "std over pairs)."]
  with open(os.path.join(out, f"{tag}.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  plot(state, os.path.join(out, f"{tag}.png"))
  return "\n".join(lines)


def plot(state, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  summaries = state["summaries"]
  acc = state.get("accuracy")
  panels = 1 + len(summaries) + bool(acc)
  fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4.8))
  axes = np.atleast_1d(axes)
  stairs = summaries[-1]["staircase"]
  for name, (widths, ms) in list(stairs.items())[:5]:
    # A width costs what the next measured width up costs.
    axes[0].step(widths, np.asarray(ms) * 1e3, where="pre", label=name)
  axes[0].set_xlabel("output channels")
  axes[0].set_ylabel("layer alone (us)")
  axes[0].set_title(f"measured staircase, {summaries[-1]['model']}")
  axes[0].legend(fontsize=7)
  for ax, s in zip(axes[1:], summaries):
    rows = [r for r in state["rows"] if r["model"] == s["model"]
            and r["variant"] != "original"]
    names = [r["variant"] for r in rows]
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["macs_fraction"] for r in rows], 0.4, label="MACs")
    ax.bar(xs + 0.2, [r["latency_fraction"] for r in rows], 0.4,
           label="measured latency")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("fraction of the original")
    ax.set_title(f"{s['model']} {s['size']}")
    ax.legend(fontsize=7)
  if acc:
    ax = axes[-1]
    for family, marker in (("latency", "o"), ("macs", "s")):
      rows = sorted((r for r in acc["rows"] if r["family"] == family and
                     r["seed"] == acc["seeds"][0]),
                    key=lambda r: r["latency_fraction"])
      ax.plot([r["latency_fraction"] for r in rows],
              [r["top1"] for r in rows], marker=marker,
              label=f"target_{family}" if family == "latency" else
              "target_macs (round_to=8)")
    ax.set_xlabel("measured latency (fraction of the original)")
    ax.set_ylabel("top-1 after fine-tuning")
    ax.set_title(f"{acc['dataset']}: accuracy against latency, seed "
                 f"{acc['seeds'][0]}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="resnet20:32,mobilenetv2:224")
  parser.add_argument("--target", type=float, default=0.5)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--accuracy", action=argparse.BooleanOptionalAction,
                      default=True)
  parser.add_argument("--train-images", type=int, default=20000)
  parser.add_argument("--ft-images", type=int, default=10000)
  parser.add_argument("--epochs", type=int, default=1)
  parser.add_argument("--width", type=int, default=48)
  parser.add_argument("--macs-targets", default="0.3,0.4,0.5,0.55,0.6,0.65,"
                      "0.7,0.75")
  parser.add_argument("--latency-targets", default="0.3,0.4,0.5,0.6")
  parser.add_argument("--seeds", default="0,1,2",
                      help="part 2: one trained base per seed")
  parser.add_argument("--fashion-dir", default=data_lib.FASHION_MNIST_DIR)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="latency_pruning")
  parser.add_argument("--verbose", type=int, default=1)
  parser.add_argument("--cache-dir", default=None,
                      help="latency tables' folder (default: a new one)")
  parser.add_argument("--reuse", action="store_true",
                      help="read tables cached in --cache-dir")
  args = parser.parse_args(argv)
  args.macs_targets = [float(t) for t in args.macs_targets.split(",")]
  args.latency_targets = [float(t) for t in args.latency_targets.split(",")]
  args.seeds = [int(t) for t in args.seeds.split(",")]
  os.makedirs(args.out, exist_ok=True)
  cache = args.cache_dir or common.scratch_dir("latency_cache_")
  state = {"command": "benchmarks/latency_pruning.py " + " ".join(
      argv if argv is not None else []), "rows": [], "summaries": [],
           "runtime": latency_lib.runtime_info(1, "xnnpack")}
  t0 = time.perf_counter()
  for spec in args.models.split(","):
    name, size = spec.split(":")
    rows, summary = part1(name, int(size), args, cache)
    state["rows"] += rows
    state["summaries"].append(summary)
  if args.accuracy:
    state["accuracy"] = part2(args, cache)
  state["seconds"] = time.perf_counter() - t0
  state["cpu_seconds"] = time.process_time()
  print("\n" + write(state, args.out, args.tag))
  return state


if __name__ == "__main__":
  main()
