"""Channel-graph coverage of the model zoo: how much of each model is prunable.

Coverage of a model is the share of its producers' output channels that lie
in a prunable `ChannelGroup` of `tps.ChannelGraph(model)`:

  coverage = sum over prunable groups of size x number of producers
             / sum over all groups of size x number of producers

A producer is a layer that makes new output channels (Conv1D/2D/3D, grouped
convs included, transposed convs, Dense, SeparableConv's pointwise step);
each producer's output channels belong to exactly one group, of the
group's size. A DepthwiseConv (or a Conv2D with groups == filters == input
channels) makes no new channels and is not counted. The classifier's
output (the logits) can never be pruned, and counts as not covered.

`group_coverage` is the second measure recorded, the share of all groups'
channels (sum of sizes) that are prunable: each group counts once, however
many producers it has, and groups without a producer (the input image's 3
channels, channels of a layer the graph does not model) count too.

The zoo is every `tf_keras.applications` architecture that builds offline
with `weights=None` (as in tests/strip/test_zoo_equivalence.py, at the same
input sizes, 10 classes, no classifier softmax), plus the ResNeXt-style
`tfprune_survey.zoo.resnext_small`. Graph only: nothing is trained or
pruned, so the figures are exact, not measured.

"Before" figures come from the same script run against the package of an
earlier commit, in a separate worktree:

  git worktree add -f /tmp/wt_cov <commit> --detach
  PYTHONPATH=/tmp/wt_cov .venv/bin/python benchmarks/coverage.py \
      --json-out benchmarks/results/coverage_before.json
  .venv/bin/python benchmarks/coverage.py \
      --before benchmarks/results/coverage_before.json

(or `--json-out after.json` first, then `--rows-from after.json --before
...` to write the table without building the models again).

Writes benchmarks/results/coverage.{json,md}.
"""

import argparse
import collections
import inspect
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
EXTRA = ("resnext_small",)   # built by tfprune_survey.zoo, not applications


def zoo_names():
  """Every tf_keras.applications architecture, then EXTRA."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  apps = tf_keras.applications
  names = sorted(n for n in dir(apps)
                 if n[:1].isupper() and inspect.isfunction(getattr(apps, n)))
  return names + list(EXTRA)


def build(name, framework="tf_keras"):
  """The zoo model `name`, of `framework`'s Keras."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  if name in EXTRA:
    from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
    return getattr(zoo, name)(framework=framework)
  fn = getattr(frameworks.get(framework).keras.applications, name)
  size = MIN_SIZE.get(name, 32)
  kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
  if "classifier_activation" in inspect.signature(fn).parameters:
    kwargs["classifier_activation"] = None
  return fn(**kwargs)


def _pattern(reason):
  """A reason with layer names and numbers elided, to count kinds."""
  first = reason.split("; ")[0]
  first = re.sub(r"'[^']*'", "'*'", first)
  return re.sub(r"\d+", "N", first)


def coverage(model):
  """Coverage figures of one model (see the module docstring).

  Returns:
    A dict: producer_channels, covered_channels, coverage, group_channels,
    group_coverage, groups, prunable_groups, blockers (list of
    [reason pattern, producer channels], largest first).
  """
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  graph = tps.ChannelGraph(model)
  total = covered = gtotal = gcovered = 0
  blockers = collections.Counter()
  for g in graph.groups:
    n = g.size * len(g.producers)
    total += n
    gtotal += g.size
    if g.prunable:
      covered += n
      gcovered += g.size
    elif n:
      blockers[_pattern(g.reason)] += n
  return dict(
      producer_channels=total, covered_channels=covered,
      coverage=covered / total if total else 0.0,
      group_channels=gtotal,
      group_coverage=gcovered / gtotal if gtotal else 0.0,
      groups=len(graph.groups), prunable_groups=len(graph.prunable_groups),
      blockers=[[k, v] for k, v in blockers.most_common(4)])


def markdown(rows, before=None):
  """The coverage table; `before`: {name: row} of an earlier run."""
  before = before or {}
  head = ["model", "producer channels"]
  if before:
    head += ["coverage before", "coverage after",
             "group coverage before", "group coverage after"]
  else:
    head += ["coverage", "group coverage"]
  head.append("largest remaining blocker (producer channels)")
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]

  def fmt(value):
    return "n/a" if value is None else f"{value:.3f}"

  for r in rows:
    cells = [r["model"], str(r["producer_channels"])]
    b = before.get(r["model"])
    if before:
      cells += [fmt(b and b["coverage"]), fmt(r["coverage"]),
                fmt(b and b["group_coverage"]), fmt(r["group_coverage"])]
    else:
      cells += [fmt(r["coverage"]), fmt(r["group_coverage"])]
    blocker = ("" if not r["blockers"] else
               f"{r['blockers'][0][0]} ({r['blockers'][0][1]})")
    cells.append(blocker.replace("|", "/"))
    lines.append("| " + " | ".join(cells) + " |")
  means = mean_row(rows, before)
  cells = [f"**mean of {means['n']}**", ""]
  if before:
    cells += [fmt(means["coverage_before"]), fmt(means["coverage"]),
              fmt(means["group_coverage_before"]),
              fmt(means["group_coverage"])]
  else:
    cells += [fmt(means["coverage"]), fmt(means["group_coverage"])]
  cells.append("")
  lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def mean_row(rows, before=None):
  """Means over `rows` (and over the same models in `before`)."""
  before = before or {}
  n = len(rows)
  out = {"n": n,
         "coverage": sum(r["coverage"] for r in rows) / n if n else None,
         "group_coverage": (sum(r["group_coverage"] for r in rows) / n
                            if n else None)}
  matched = [before[r["model"]] for r in rows if r["model"] in before]
  if before and len(matched) == n and n:
    out["coverage_before"] = sum(b["coverage"] for b in matched) / n
    out["group_coverage_before"] = sum(b["group_coverage"]
                                       for b in matched) / n
  else:
    out["coverage_before"] = out["group_coverage_before"] = None
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="",
                      help="comma-separated zoo names (default: the zoo)")
  parser.add_argument("--framework", default="tf_keras",
                      choices=("tf_keras", "keras3"))
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--json-out", default=None,
                      help="write only this JSON (e.g. a 'before' run)")
  parser.add_argument("--before", default=None,
                      help="JSON of an earlier run, for the before column")
  parser.add_argument("--rows-from", default=None,
                      help="take the rows from this --json-out file instead "
                      "of building the models (to add a before column)")
  args = parser.parse_args(argv)
  names = [n for n in args.models.split(",") if n] or zoo_names()
  rows = []
  if args.rows_from:
    with open(args.rows_from) as f:
      saved = json.load(f)
    rows = saved["rows"]
    names = []
  for name in names:
    t0 = time.perf_counter()
    model = build(name, args.framework)
    row = dict(model=name, **coverage(model))
    row["seconds"] = time.perf_counter() - t0
    rows.append(row)
    print(f"{name:24s} coverage {row['coverage']:.3f}  group coverage "
          f"{row['group_coverage']:.3f}", flush=True)
    del model
  meta = {"framework": args.framework, "commit": common.git_head(),
          "command": common.command("coverage.py", argv)}
  if args.rows_from:
    meta.update(commit=saved["meta"]["commit"],
                rows_command=saved["meta"]["command"])
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return rows
  before = None
  if args.before:
    with open(args.before) as f:
      saved = json.load(f)
    before = {r["model"]: r for r in saved["rows"]}
    meta["before_commit"] = saved["meta"].get("commit")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "coverage.json"), "w") as f:
    json.dump({"meta": meta, "mean": mean_row(rows, before), "rows": rows,
               "before": list(before.values()) if before else []}, f,
              indent=1)
  with open(os.path.join(args.out, "coverage.md"), "w") as f:
    f.write(markdown(rows, before))
  return rows


if __name__ == "__main__":
  main()
