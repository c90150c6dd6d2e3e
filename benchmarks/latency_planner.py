"""The latency planner against an earlier version of itself: score kept.

`tps.prune(target_latency=...)` keeps the most criterion score for the time
it must remove (`tps.latency.search_latency`). This script plans, on the
same per-layer tables and the same `l1` scores, with the current
`search_latency` and with the one of an earlier commit (`--against`, read
with `git show`), and reports for each target the score each plan loses
(the sum of the removed channels' scores, each group's scores divided by
their mean) and its predicted latency. Both plan on that 'mean' scale
(`scale='mean'` where the revision has the argument; the default scale
before it existed), so the descents are compared on the score they
count. Planning only: nothing is timed but the tables (cached in
`--cache-dir`).

Models: ResNet-20 at 32x32 and MobileNetV2 at 224 (Keras 3, weights=None,
seed 0), and the demo's width-48 residual CNN at 28x28x1 (tf_keras). Then
`--random-tables` synthetic cases: 5 groups of 16 to 64 channels, each
setting one layer alone, whose measured staircase (every 8 channels) rises
by random steps of 0, 0.1, 1 or 2 (so it is not convex), with gamma-
distributed scores and a random target in (0.05, 0.8), planned with
round_to 'auto' and 1: in how many cases each planner keeps more score.

Run:  .venv/bin/python benchmarks/latency_planner.py --against 6f08e19
Writes benchmarks/results/latency_planner.{json,md}.
"""

import argparse
import functools
import importlib.util
import inspect
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("resnet20", "mobilenetv2", "demo")


def earlier_search(rev):
  """`search_latency` at git revision `rev`.

  Read from tfprune_survey/latency_planning.py, or from latency.py at
  revisions before the planner had its own module.
  """
  for name in ("latency_planning.py", "latency.py"):
    try:
      text = subprocess.check_output(
          ["git", "show", f"{rev}:tfprune_survey/{name}"], cwd=HERE,
          text=True, stderr=subprocess.DEVNULL)
      break
    except subprocess.CalledProcessError:
      continue
  else:
    raise ValueError(f"no planner found at revision {rev!r}")
  path = os.path.join(common.scratch_dir("latency_planner_"),
                      "latency_earlier.py")
  with open(path, "w") as f:
    f.write(text)
  spec = importlib.util.spec_from_file_location("latency_earlier", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return on_mean_scale(module.search_latency)


def on_mean_scale(search):
  """`search` planning on the 'mean' cross-group scale (each group's
  scores over their mean), which revisions before `scale` always did."""
  if "scale" not in inspect.signature(search).parameters:
    return search
  return functools.partial(search, scale="mean")


def build(name, size):
  """The demo's net (tf_keras), or a Keras 3 model of latency_pruning.py."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  import latency_pruning  # pylint: disable=g-import-not-at-top
  framework = "tf_keras" if name == "demo" else "keras3"
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  if name == "demo":
    return zoo.residual_cnn(input_shape=(size, size, 1), width=48,
                            stem_pool=True)
  return latency_pruning.build(name, keras, size)


def score_lost(planner, counts):
  """The planner's measure of what a plan removes (normalised scores)."""
  total = 0.0
  for g in planner.groups:
    s = np.sort(planner.normalized[g.id])
    total += float(s[:g.size - counts[g.id]].sum())
  return total


def random_case(rng):
  """(planner-like object, LatencyModel, target) of one synthetic case."""
  import types  # pylint: disable=g-import-not-at-top
  from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top
  groups, scores, layers, steps = [], {}, [], {}
  for i in range(5):
    size = int(rng.choice([16, 24, 32, 48, 64]))
    gid = f"g{i}"
    groups.append(types.SimpleNamespace(id=gid, size=size, blocks=1,
                                        producers=[gid]))
    scores[gid] = rng.gamma(rng.uniform(0.3, 3.0), size=size)
    widths = list(range(8, size, 8)) + [size]
    ms = [float(v) for v in np.cumsum(
        rng.choice([0.0, 0.1, 1.0, 2.0], size=len(widths))) + 0.01]
    layers.append(dict(name=gid, in_axis=[], out_axis=[[gid, size, 1]],
                       in_full=3, out_full=size, in_widths=[3],
                       in_ms=[ms[-1]], out_widths=widths, out_ms=ms,
                       full_ms=ms[-1]))
    steps[gid] = 8
  planner = types.SimpleNamespace(
      groups=groups, scores=scores, min_keep={g.id: 1 for g in groups},
      steps={}, normalized={gid: s / s.mean() for gid, s in scores.items()})
  return (planner, latency_lib.LatencyModel(layers, steps=steps),
          float(rng.uniform(0.05, 0.8)))


def random_tables(earlier, now, cases, seed=0):
  """Counts of synthetic cases where `now` keeps more/equal/less score."""
  rng = np.random.default_rng(seed)
  tally = {"cases": 0, "now_keeps_more": 0, "equal": 0, "now_keeps_less": 0,
           "unreachable": 0, "largest_gain": 0.0, "largest_loss": 0.0}
  for _ in range(cases):
    planner, lm, target = random_case(rng)
    for round_to in ("auto", 1):
      try:
        a = score_lost(planner, earlier(planner, lm, target, round_to))
        b = score_lost(planner, now(planner, lm, target, round_to))
      except ValueError:
        tally["unreachable"] += 1
        continue
      tally["cases"] += 1
      change = b / a - 1 if a > 0 else 0.0
      if b < a - 1e-9:
        tally["now_keeps_more"] += 1
        tally["largest_gain"] = min(tally["largest_gain"], change)
      elif b > a + 1e-9:
        tally["now_keeps_less"] += 1
        tally["largest_loss"] = max(tally["largest_loss"], change)
      else:
        tally["equal"] += 1
  return tally


def main(argv=None):
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--against", required=True,
                      help="git revision of the earlier planner")
  parser.add_argument("--models",
                      default="resnet20:32,mobilenetv2:224,demo:28")
  parser.add_argument("--targets", default="0.3,0.4,0.5,0.6")
  parser.add_argument("--random-tables", type=int, default=300,
                      help="synthetic cases (0: none)")
  parser.add_argument("--cache-dir", default=None,
                      help="latency tables' folder (default: the usual "
                      "cache)")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="latency_planner")
  args = parser.parse_args(argv)
  t0, load = time.perf_counter(), os.getloadavg()
  earlier = earlier_search(args.against)
  targets = [float(t) for t in args.targets.split(",")]
  rows = []
  for spec in args.models.split(","):
    name, size = spec.split(":")
    model = build(name, int(size))
    lm = latency_lib.LatencyModel.measure(model, cache_dir=args.cache_dir,
                                          verbose=0)
    graph = tps.ChannelGraph(model)
    planner = planning.Planner(graph, tps.score(model, "l1", graph=graph))
    full = lm.predict()
    for t in targets:
      for round_to in ("auto", 1):
        row = {"model": name, "size": int(size), "target": t,
               "round_to": round_to}
        for tag, search in (("earlier", earlier),
                            ("now",
                             on_mean_scale(latency_lib.search_latency))):
          try:
            counts = search(planner, lm, t, round_to)
          except ValueError:
            row[f"{tag}_lost"] = row[f"{tag}_predicted"] = None
            continue
          row[f"{tag}_lost"] = score_lost(planner, counts)
          row[f"{tag}_predicted"] = lm.predict_counts(counts) / full
        if row["earlier_lost"] and row["now_lost"] is not None:
          row["lost_change"] = row["now_lost"] / row["earlier_lost"] - 1
        rows.append(row)
        print(row, flush=True)
  lines = [f"Planner at HEAD against `{args.against}`: normalised score "
           "lost (lower is better) and predicted latency (x orig).", "",
           "| model | target_latency | round_to | score lost, earlier | "
           "score lost, now | change | predicted, earlier | predicted, "
           "now |", "|---|---:|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    def f(v, fmt):
      return "unreachable" if v is None else format(v, fmt)
    lines.append(
        f"| {r['model']} {r['size']} | {r['target']} | {r['round_to']} | "
        f"{f(r['earlier_lost'], '.2f')} | {f(r['now_lost'], '.2f')} | "
        f"{f(r.get('lost_change'), '+.1%')} | "
        f"{f(r['earlier_predicted'], '.3f')} | "
        f"{f(r['now_predicted'], '.3f')} |")
  if args.random_tables:
    tally = random_tables(earlier, on_mean_scale(latency_lib.search_latency),
                          args.random_tables)
    lines += ["", f"{args.random_tables} synthetic cases x round_to 'auto' "
              f"and 1: {tally['cases']} planned ({tally['unreachable']} "
              f"unreachable); now keeps more score in "
              f"{tally['now_keeps_more']} (up to "
              f"{-tally['largest_gain']:.1%} less lost), the same in "
              f"{tally['equal']}, less in {tally['now_keeps_less']} (up to "
              f"{tally['largest_loss']:.1%} more lost)."]
    rows.append({"random_tables": tally})
  meta = common.run_meta("latency_planner.py", argv, t0, load,
                         ("tensorflow", "keras", "ai-edge-litert"),
                         against=args.against, targets=targets)
  common.write_results(args.out, args.tag, meta, rows, "\n".join(lines))
  return rows


if __name__ == "__main__":
  main()
