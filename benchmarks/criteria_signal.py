"""Does a criterion carry signal? Keep the highest-scored channels or the lowest.

A criterion that ranks channels by importance should lose less accuracy when
its top-scored channels are kept than when its bottom-scored ones are. This
benchmark checks that directly, for every registered criterion:

  1. Train a base once per model (Fashion-MNIST, a few thousand images, with
     Network Slimming's light L1 on BN gammas so `slimming` has scales to
     read); its weights are cached on disk beside the results.
  2. Score it once per criterion on --score-images training images
     (`tps.score`); `sss` first gets `tps.add_scaling_factors` trained for one
     pass, as in `survey_comparison.py`.
  3. For each ratio (the same fraction of every group's channels removed,
     scope 'local', through `tps.Planner`), keep the highest-scored channels,
     then the lowest (the scores negated), and materialize each; `random`
     with --random-seeds seeds is the control.
  4. Re-estimate BN (`tps.recalibrate_bn`) and evaluate on --test-images test
     images: that is the no-fine-tuning figure. Then fine-tune for
     --ft-epochs passes over --ft-images other training images, re-estimate
     BN and evaluate again.

A criterion carries signal when keep-highest beats keep-lowest; it is useful
when keep-highest also beats random by more than random's spread.

Run:  .venv/bin/python benchmarks/criteria_signal.py
Writes benchmarks/results/criteria_signal.{json,md,png} (--out, --tag);
--resume keeps the runs already saved (same settings); --redo names criteria
whose saved runs are dropped and run again (e.g. after a criterion changed);
--merge a,b writes one table (--tag) from runs saved under several tags.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.metrics import evaluate_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

MODELS = {"resnet20": "ResNet-20-style", "vgg": "VGG-style"}
ORDERS = ("highest", "lowest")
SLIMMING_L1 = 1e-4
SSS_L1 = 1e-4


def build(name, input_shape):
  if name == "resnet20":
    return zoo.resnet_cifar(20, input_shape=input_shape)
  if name == "vgg":
    return zoo.vgg_small(input_shape=input_shape)
  raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")


def fit(model, x, y, epochs, lr, eager=False):
  """Adam on logits, batch 128, verbose 0; trains in place."""
  if epochs <= 0 or not len(x):
    return model
  model.compile(keras.optimizers.Adam(lr),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                run_eagerly=eager)
  model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
  return model


def revision():
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                          capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def keep_sets(graph, scores, ratio, order):
  """{group_id: kept indices}: each group keeps its highest or lowest."""
  if order == "lowest":
    scores = {g: -np.asarray(s, np.float64) for g, s in scores.items()}
  planner = tps.Planner(graph, scores)
  return planner.keep_indices(planner.counts_local(ratio))


def criterion_jobs(criteria, seeds):
  """(criterion, seed, orders): random once per seed, keep-highest only."""
  out = []
  for c in criteria:
    if c == "random":
      out += [("random", s, ("highest",)) for s in range(seeds)]
    else:
      out.append((c, None, ORDERS))
  return out


def run_key(r):
  return (r["model"], r["criterion"], r["seed"], r["order"], r["ratio"])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="resnet20,vgg")
  parser.add_argument("--criteria", default=",".join(tps.criteria.names()))
  parser.add_argument("--ratios", default="0.3,0.5",
                      help="fractions of every group's channels removed")
  parser.add_argument("--random-seeds", type=int, default=3)
  parser.add_argument("--train-images", type=int, default=4000)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--score-images", type=int, default=1024)
  parser.add_argument("--recal-images", type=int, default=1024)
  parser.add_argument("--ft-images", type=int, default=2000)
  parser.add_argument("--ft-epochs", type=int, default=1)
  parser.add_argument("--test-images", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--smoke", action="store_true",
                      help="a few hundred images, 1 epoch: the pipeline only")
  parser.add_argument("--resume", action="store_true")
  parser.add_argument("--redo", default="",
                      help="comma-separated criteria to run again on resume")
  parser.add_argument("--merge", default="",
                      help="comma-separated tags: combine their saved runs "
                      "into --tag's JSON/MD/PNG and run nothing")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="criteria_signal")
  args = parser.parse_args(argv)
  if args.merge:
    return merge(args.out, args.merge.split(","), args.tag)
  if args.smoke:
    args.train_images, args.ft_images, args.test_images = 256, 128, 256
    args.score_images = args.recal_images = 64
    args.epochs = 1
  models = args.models.split(",")
  for m in models:
    if m not in MODELS:
      parser.error(f"unknown model {m!r}; choose from {sorted(MODELS)}")
  criteria = [c for c in args.criteria.split(",") if c]
  for c in criteria:
    tps.criteria.get(c)  # a ValueError naming an unknown criterion
  ratios = [float(r) for r in args.ratios.split(",")]
  for r in ratios:
    if not 0 < r < 1:
      parser.error(f"--ratios must lie in (0, 1), got {r}")
  os.makedirs(args.out, exist_ok=True)
  json_path = os.path.join(args.out, args.tag + ".json")
  settings = {k: v for k, v in vars(args).items()
              if k not in ("resume", "redo", "out", "tag", "models",
                           "criteria", "ratios", "merge")}
  state = {"settings": settings, "bases": [], "runs": [], "scoring": []}
  if args.resume and os.path.exists(json_path):
    with open(json_path) as f:
      old = json.load(f)
    if old.get("settings") == settings:
      state = old
      redo = set(args.redo.split(",")) - {""}
      state["runs"] = [r for r in state["runs"] if r["criterion"] not in redo]
      state["scoring"] = [s for s in state["scoring"]
                          if s["criterion"] not in redo]
      print(f"resuming: {len(state['runs'])} runs kept from {json_path}")
    else:
      print("--resume: settings differ from the saved file; starting afresh")
  done = {run_key(r) for r in state["runs"]}
  rev = revision()

  (x, y), (xt, yt) = data_lib.load_fashion_mnist()
  order = np.random.default_rng(args.seed).permutation(len(x))
  x, y = x[order], y[order]
  n = args.train_images
  train = (x[:n], y[:n])
  finetune = (x[n:n + args.ft_images], y[n:n + args.ft_images])
  score = (x[:args.score_images], y[:args.score_images])
  recal = x[:args.recal_images]
  test = (xt[:args.test_images], yt[:args.test_images])
  jobs = criterion_jobs(criteria, args.random_seeds)
  t_all = time.perf_counter()
  for model_name in models:
    keras.utils.set_random_seed(args.seed)
    base = tps.sparsify_bn(build(model_name, x.shape[1:]), SLIMMING_L1)
    base_path = os.path.join(args.out,
                             f".{args.tag}_{model_name}_base.weights.h5")
    have = [b for b in state["bases"] if b["model"] == MODELS[model_name]]
    if have and os.path.exists(base_path):
      base.load_weights(base_path)
      info = have[0]
      print(f"{info['model']}: base reloaded (top-1 {info['top1']:.4f})")
    else:
      t0 = time.perf_counter()
      fit(base, *train, args.epochs, 2e-3, eager=args.smoke)
      tps.recalibrate_bn(base, recal)
      base.save_weights(base_path)
      info = {"model": MODELS[model_name], "top1": evaluate_accuracy(base, test),
              "train_s": time.perf_counter() - t0}
      state["bases"] = [b for b in state["bases"]
                        if b["model"] != info["model"]] + [info]
      print(f"{info['model']}: base top-1 {info['top1']:.4f} "
            f"({info['train_s']:.0f} s)", flush=True)
    for criterion, seed, orders in jobs:
      todo = [(o, r) for o in orders for r in ratios
              if run_key({"model": info["model"], "criterion": criterion,
                          "seed": seed, "order": o, "ratio": r}) not in done]
      if not todo:
        continue
      t0 = time.perf_counter()
      source, crit = base, criterion
      if criterion == "random":
        crit = tps.criteria.get("random").__class__(seed=seed)
      elif criterion == "sss":
        source = tps.add_scaling_factors(base, l1=SSS_L1)
        fit(source, *train, 1, 1e-3, eager=args.smoke)
      graph = tps.ChannelGraph(source)
      scores = tps.score(source, crit, data=score, graph=graph)
      score_s = time.perf_counter() - t0
      state["scoring"].append({"model": info["model"], "criterion": criterion,
                               "seed": seed, "score_s": score_s})
      for o, ratio in todo:
        t1 = time.perf_counter()
        keep = keep_sets(graph, scores, ratio, o)
        slim = tps.materialize(source, keep, graph=graph)
        tps.recalibrate_bn(slim, recal)
        rec = {"model": info["model"], "criterion": criterion, "seed": seed,
               "order": o, "ratio": ratio, "revision": rev,
               "base_top1": info["top1"],
               "macs_kept": tps.count_macs(slim) / tps.count_macs(source),
               "top1_noft": evaluate_accuracy(slim, test)}
        fit(slim, *finetune, args.ft_epochs, 1e-3, eager=args.smoke)
        tps.recalibrate_bn(slim, recal)
        rec["top1_ft"] = evaluate_accuracy(slim, test)
        rec["wall_s"] = time.perf_counter() - t1
        state["runs"].append(rec)
        done.add(run_key(rec))
        common.save_state(json_path, state)
        name = criterion + (f" (seed {seed})" if seed is not None else "")
        print(f"{info['model']} {name} keep-{o} -{100 * ratio:.0f}%: "
              f"{rec['top1_noft']:.4f} without fine-tuning, "
              f"{rec['top1_ft']:.4f} after ({rec['wall_s']:.0f} s)",
              flush=True)
  state["wall_s"] = time.perf_counter() - t_all
  common.save_state(json_path, state)
  md = markdown(state)
  with open(os.path.join(args.out, args.tag + ".md"), "w") as f:
    f.write(md + "\n")
  plot(state, os.path.join(args.out, args.tag + ".png"))
  print("\n" + md)
  return state


def merge(folder, tags, tag):
  """One result set from runs saved under several tags (e.g. per model)."""
  state = {"settings": None, "bases": [], "runs": [], "scoring": [],
           "merged_from": tags}
  for t in tags:
    with open(os.path.join(folder, t + ".json")) as f:
      part = json.load(f)
    if state["settings"] is None:
      state["settings"] = part["settings"]
    elif part["settings"] != state["settings"]:
      raise ValueError(f"--merge: {t}.json was run with other settings")
    names = {b["model"] for b in part["bases"]}
    state["bases"] = [b for b in state["bases"] if b["model"] not in names]
    state["bases"] += part["bases"]
    state["runs"] = [r for r in state["runs"] if r["model"] not in names]
    state["runs"] += [r for r in part["runs"] if r["model"] in names]
    state["scoring"] += part.get("scoring", [])
  return common.write_state_report(folder, tag, state, markdown, plot)


# ---------------------------------------------------------------- reporting


def summarize(runs):
  """{(model, ratio, criterion): {highest, lowest, random: (noft, ft)}}.

  random's entry is (mean, std) of each column over its seeds.
  """
  out = {}
  for r in runs:
    key = (r["model"], r["ratio"], r["criterion"])
    out.setdefault(key, {}).setdefault(r["order"], []).append(
        (r["top1_noft"], r["top1_ft"]))
  table = {}
  for key, orders in out.items():
    entry = {}
    for o, vals in orders.items():
      a = np.array(vals)
      entry[o] = {"noft": float(a[:, 0].mean()), "ft": float(a[:, 1].mean()),
                  "noft_std": float(a[:, 0].std()),
                  "ft_std": float(a[:, 1].std()), "n": len(vals)}
    table[key] = entry
  return table


def verdicts(table):
  """Per (model, ratio, criterion, phase): signal and beats-random flags."""
  out = {}
  for (model, ratio, crit), e in table.items():
    if crit == "random" or "highest" not in e or "lowest" not in e:
      continue
    rnd = table.get((model, ratio, "random"), {}).get("highest")
    for phase in ("noft", "ft"):
      hi, lo = e["highest"][phase], e["lowest"][phase]
      beats = None
      if rnd is not None:
        beats = hi > rnd[phase] + rnd[phase + "_std"]
      out[(model, ratio, crit, phase)] = {"signal": hi > lo,
                                          "gap": hi - lo,
                                          "beats_random": beats}
  return out


def findings(state):
  table = summarize(state["runs"])
  v = verdicts(table)
  lines = []
  for model in sorted({k[0] for k in table}):
    crits = sorted({k[2] for k in v if k[0] == model})
    for phase, words in (("noft", "without fine-tuning"),
                         ("ft", "after fine-tuning")):
      both = [c for c in crits if all(
          v[k]["signal"] for k in v if k[0] == model and k[2] == c and
          k[3] == phase)]
      useful = [c for c in crits if all(
          v[k]["beats_random"] for k in v if k[0] == model and k[2] == c and
          k[3] == phase)]
      lines.append(f"- {model}, {words}: keep-highest beat keep-lowest at "
                   f"every ratio for {len(both)} of {len(crits)} criteria "
                   f"({', '.join(both) or 'none'}); keep-highest beat random "
                   f"by more than its spread at every ratio for: "
                   f"{', '.join(useful) or 'none'}.")
    late = [c for c in crits if all(
        not v[k]["signal"] for k in v if k[0] == model and k[2] == c and
        k[3] == "noft") and all(
            v[k]["signal"] for k in v if k[0] == model and k[2] == c and
            k[3] == "ft")]
    lines.append(f"- {model}: signal only after fine-tuning (reversed or "
                 f"tied at every ratio before, right at every ratio after): "
                 f"{', '.join(late) or 'none'}.")
  return lines


def markdown(state):
  table = summarize(state["runs"])
  v = verdicts(table)
  out = []
  for b in state["bases"]:
    model = b["model"]
    out.append(f"**{model}** on Fashion-MNIST: base top-1 {b['top1']:.4f}.\n")
    out.append("| criterion | removed | keep-highest, no FT | keep-lowest, no "
               "FT | gap | keep-highest, FT | keep-lowest, FT | gap |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted((k for k in table if k[0] == model),
                  key=lambda k: (k[1], k[2] == "random", k[2]))
    for k in keys:
      e = table[k]
      if k[2] == "random":
        h = e["highest"]
        out.append(f"| random ({h['n']} seeds) | {100 * k[1]:.0f}% | "
                   f"{h['noft']:.4f} +/- {h['noft_std']:.4f} | | | "
                   f"{h['ft']:.4f} +/- {h['ft_std']:.4f} | | |")
        continue
      cells = []
      for phase in ("noft", "ft"):
        hi = e.get("highest", {}).get(phase)
        lo = e.get("lowest", {}).get(phase)
        gap = v.get((model, k[1], k[2], phase), {}).get("gap")
        cells += [f"{hi:.4f}" if hi is not None else "",
                  f"{lo:.4f}" if lo is not None else "",
                  f"{100 * gap:+.1f}" if gap is not None else ""]
      out.append(f"| {k[2]} | {100 * k[1]:.0f}% | " + " | ".join(cells) + " |")
    out.append("")
  out.append("gap: keep-highest minus keep-lowest, points of top-1; FT: after "
             "the short fine-tune.\n")
  out += findings(state)
  return "\n".join(out)


def plot(state, path):
  """Keep-highest minus keep-lowest per criterion, before and after FT."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  table = summarize(state["runs"])
  v = verdicts(table)
  panels = sorted({(k[0], k[1]) for k in v})
  fig, axes = plt.subplots(1, max(len(panels), 1),
                           figsize=(4.5 * max(len(panels), 1), 4.2),
                           squeeze=False)
  for ax, (model, ratio) in zip(axes[0], panels):
    crits = sorted({k[2] for k in v if k[:2] == (model, ratio)})
    pos = np.arange(len(crits))
    for off, phase, color in ((-0.2, "noft", "tab:orange"),
                              (0.2, "ft", "tab:blue")):
      gaps = [100 * v[(model, ratio, c, phase)]["gap"] for c in crits]
      ax.barh(pos + off, gaps, height=0.4, color=color,
              label="no fine-tuning" if phase == "noft" else "fine-tuned")
    ax.set_yticks(pos)
    ax.set_yticklabels(crits, fontsize=7)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("keep-highest minus keep-lowest, top-1 points")
    ax.set_title(f"{model}, {100 * ratio:.0f}% of channels removed",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="x")
  handles, labels = axes[0][0].get_legend_handles_labels()
  if handles:
    axes[0][0].legend(handles, labels, fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  main(sys.argv[1:])
