"""Per-group pruning sensitivity (Li et al., 2017) and ratios chosen from it."""

import dataclasses
import json
import math
import numbers

from tfprune_survey import criteria as criteria_lib
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey import planning
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.pruner import _check_recalibrate
from tfprune_survey.scoring import score as score_fn
from tfprune_survey.metrics.accuracy import evaluate_accuracy
from tfprune_survey.strip.mask import masked_copy

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _metric_fn(metric):
  if callable(metric):
    return metric
  if metric == "accuracy":
    return evaluate_accuracy
  raise ValueError(f"`metric` must be 'accuracy' or a callable (model, "
                   f"eval_data) -> float where higher is better, got "
                   f"{metric!r}")


@dataclasses.dataclass
class SensitivityResult:
  """The metric after pruning each group alone at each ratio.

  Attributes:
    criterion: the criterion that ranked the channels.
    metric: the metric's name.
    baseline: the metric of the unpruned model.
    ratios: the fractions of each group's channels removed.
    table: {group_id: [metric at each ratio]}, groups in depth order. Each
      value is the metric of `tps.prune(model, criterion, ratios={group_id:
      ratio})` (before any fine-tuning).
    sizes: {group_id: channels in the group}.
    kept: {group_id: [channels kept at each ratio]}, after the rounding
      `tps.prune` applies (see `sensitivity`); a ratio whose count equals
      the previous one's has the same value, and one that keeps the whole
      group has the baseline. None when not recorded (a result built by
      hand).
  """
  criterion: str
  metric: str
  baseline: float
  ratios: tuple
  table: dict
  sizes: dict
  kept: dict = None

  def drops(self, group_id):
    """baseline - metric at each ratio, for one group."""
    return [self.baseline - v for v in self.table[group_id]]

  def __str__(self):
    head = f"{'group':32s} {'size':>5s} " + " ".join(
        f"{r:>6.0%}" for r in self.ratios)
    lines = [f"sensitivity of {self.metric} (baseline {self.baseline:.4f}), "
             f"channels ranked by {self.criterion}", head]
    for gid, values in self.table.items():
      lines.append(f"{gid[:32]:32s} {self.sizes[gid]:5d} " +
                   " ".join(f"{v:6.3f}" for v in values))
    return "\n".join(lines)

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=2)

  def plot(self, path, title=None):
    """One curve per group: metric against the fraction removed.

    Drawn on a standalone matplotlib Figure: pyplot's backend and open
    figures (a notebook's inline plots) are left as they are."""
    from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    ratios = [100 * r for r in self.ratios]
    for gid, values in self.table.items():
      ax.plot(ratios, values, marker="o", ms=3, label=f"{gid} ({self.sizes[gid]})")
    ax.axhline(self.baseline, color="k", lw=0.8, ls="--", label="unpruned")
    ax.set_xlabel("% of the group's channels removed")
    ax.set_ylabel(self.metric)
    ax.set_title(title or f"Pruning sensitivity per group ({self.criterion})")
    ax.legend(fontsize=7, ncol=2 if len(self.table) > 8 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _check_ratio_list(ratios):
  """`ratios` as an increasing tuple of floats in (0, 1)."""
  if isinstance(ratios, (str, bytes)) or not hasattr(ratios, "__iter__"):
    raise TypeError(f"`ratios` must be a sequence of fractions in (0, 1), "
                    f"got {ratios!r} of type {type(ratios).__name__}")
  ratios = tuple(ratios)
  for r in ratios:
    if isinstance(r, bool) or not isinstance(r, numbers.Real):
      raise TypeError(f"`ratios` must hold numbers in (0, 1), got {r!r} of "
                      f"type {type(r).__name__}")
  ratios = tuple(float(r) for r in ratios)
  if not ratios or any(not 0.0 < r < 1.0 for r in ratios):
    raise ValueError(f"`ratios` must be fractions in (0, 1), got {ratios!r}")
  if list(ratios) != sorted(ratios):
    raise ValueError(f"`ratios` must be increasing, got {ratios!r}")
  return ratios


def depth_order(graph):
  """Prunable groups sorted by the position of their first producer."""
  position = {}
  for i, call in enumerate(graph.calls):
    position.setdefault(call.path, i)
    position.setdefault(call.path.split("/")[-1], i)
  def first(g):
    return min((position.get(p, math.inf) for p in g.producers),
               default=math.inf)
  return sorted(graph.prunable_groups, key=first)


def sensitivity(model, criterion, data=None, *, ratios=DEFAULT_RATIOS,
                eval_data, metric="accuracy", groups=None, recalibrate=None,
                steps=None, round_to=1, min_channels=1, verbose=1):
  """Prunes each prunable group on its own at each ratio and evaluates.

  This is the analysis of Li et al. (2017), "Pruning filters for efficient
  ConvNets", section 3.2: the channels of one group at a time are ranked by
  `criterion` and the lowest `ratio` of them removed; every other group is
  untouched. The model is masked (`tps.mask_channels` computes exactly what
  the slim model computes) in one reusable copy, so no model is rebuilt per
  point. The model passed in is not modified.

  Each point is what `tps.prune(model, criterion, ratios={group: ratio},
  round_to=round_to, min_channels=min_channels)` keeps: floor(ratio * size)
  channels are removed, the kept count rounded up to a multiple of
  `round_to` and at least `min_channels`, and a group read or
  written by a grouped convolution (`ChannelGroup.blocks` > 1) keeps a
  multiple of its block count, rounded up, made of the best channels of
  each block. Where that rounding gives a ratio the same kept count as the
  previous ratio, the point is not evaluated again (it has the previous
  value); where it keeps the whole group (e.g. a small ratio of a small
  group), the point is the baseline. `SensitivityResult.kept` holds the
  counts.

  Args:
    model: a model of either Keras (any backend).
    criterion: a criterion name or instance.
    data: data for a data-dependent criterion (see `tps.score`).
    ratios: fractions of a group's channels to remove.
    eval_data: (x, y) or a dataset of (x, y) batches to evaluate on.
    metric: 'accuracy' (top-1) or a callable (model, eval_data) -> float,
      higher is better.
    groups: optional group ids to analyse (default: every prunable group
      that `criterion` scores; groups it has nothing to read for, e.g. an
      activation criterion's groups read inside a nested model, are left
      out, as `tps.prune` leaves them whole).
    recalibrate: optional data on which BN statistics are re-estimated
      after each pruning, before evaluating.
    steps: optional maximum number of batches for scoring.
    round_to: int >= 1, as for `tps.prune`: pass the value you will prune
      with, so that each point is a width that pruning can give. Defaults
      to 1.
    min_channels: int >= 1, as for `tps.prune`. Defaults to 1.
    verbose: 1 shows a progress bar over the evaluations.

  Returns:
    A `SensitivityResult` (printable; `.plot(path)`).

  Raises:
    TypeError: for `ratios` that are not a sequence of numbers, or
      `groups` that are not group ids.
    ValueError: for ratios outside (0, 1) or not increasing, unknown
      groups, `groups` that the criterion gives no scores, a bad `metric`,
      or data whose input shape (or, for 'taylor' and 'taylor_fo', labels)
      do not fit the model, checked before any evaluation (for a model of
      several inputs, `eval_data` and `recalibrate` must give one array per
      input, in order or by input name; the message names the argument).
  """
  frameworks.check_model(model)
  ratios = _check_ratio_list(ratios)
  round_to = planning.check_int(round_to, "round_to", 1)
  min_channels = planning.check_int(min_channels, "min_channels", 1)
  data_lib.check_data_now(model, eval_data, "eval_data")
  if recalibrate is not None:
    data_lib.check_data_now(model, recalibrate, "recalibrate")
    recalibrate = _check_recalibrate(model, recalibrate)
  if groups is not None:
    groups = planning.check_names(groups, "groups", what="group id")
  evaluate = _metric_fn(metric)
  crit = criteria_lib.get(criterion)
  graph = ChannelGraph(model)
  order = depth_order(graph)
  if groups is not None:
    known = {g.id for g in order}
    unknown = [g for g in groups if g not in known]
    if unknown:
      raise ValueError(f"`groups` names {unknown}, which are not prunable "
                       f"groups; prunable: {sorted(known)}")
    order = [g for g in order if g.id in set(groups)]
  scores = score_fn(model, crit, data, steps=steps, graph=graph)
  # Groups the criterion has nothing to read for stay whole, as in
  # tps.prune (tps.score warns about them).
  crit_name = crit.name or type(crit).__name__
  if groups is not None:
    unscored = [g.id for g in order if g.id not in scores]
    if unscored:
      scored = [g.id for g in depth_order(graph) if g.id in scores]
      raise ValueError(
          f"`groups` names {unscored}, which criterion '{crit_name}' gives "
          "no scores (it has nothing to read for them; tps.prune leaves "
          f"them whole), so they cannot be ranked; scored groups: {scored}")
  order = [g for g in order if g.id in scores]
  work, remask = masked_copy(model, graph=graph)
  name = metric if isinstance(metric, str) else getattr(
      metric, "__name__", "metric")

  def measure(keep):
    remask(keep)
    if recalibrate is not None:
      recalibrate_bn(work, recalibrate)
    return float(evaluate(work, eval_data))

  # The kept counts and channels of tps.prune(ratios={group: ratio}).
  plans = []
  for g in order:
    planner = planning.Planner(graph, {g.id: scores[g.id]}, round_to=round_to,
                               min_channels=min_channels)
    plans.append((g, planner, [planner.counts_per_group({g.id: r})[g.id]
                               for r in ratios]))
  # Counts fall as ratios grow: each distinct count below the size is one
  # evaluation.
  evaluations = sum(len({n for n in counts if n < g.size})
                    for g, _, counts in plans)
  bar = (frameworks.of(model).keras.utils.Progbar(
      1 + evaluations, unit_name="evaluation") if verbose else None)
  baseline = measure({})
  if bar is not None:
    bar.add(1)
  table, sizes, kept = {}, {}, {}
  for i, (g, planner, counts) in enumerate(plans, start=1):
    values, last = [], (g.size, baseline)
    for n in counts:
      if n != last[0]:
        last = (n, measure(planner.keep_indices({g.id: n})))
        if bar is not None:
          bar.add(1, values=[("group", i)])
      values.append(last[1])
    table[g.id] = values
    sizes[g.id] = g.size
    kept[g.id] = [int(n) for n in counts]
  return SensitivityResult(criterion=crit_name, metric=name,
                           baseline=baseline, ratios=ratios, table=table,
                           sizes=sizes, kept=kept)


def ratios_from_sensitivity(result, max_drop):
  """Per-group ratios: for each group, the largest ratio whose metric drop,
  and that of every smaller ratio, is at most `max_drop`.

  Groups that cannot lose even the smallest ratio are left out (they keep
  all their channels), and so are groups whose chosen ratio removes no
  channel once rounded (`result.kept`; e.g. 0.1 of a group of 8 channels,
  or 0.2 of a group of 16 that a grouped convolution splits in 4 blocks).
  The result goes to `tps.prune(..., ratios=...)`, which keeps what
  `result.kept` says.
  """
  if not isinstance(result, SensitivityResult):
    raise TypeError(f"`result` must be a SensitivityResult, got "
                    f"{type(result).__name__}")
  if isinstance(max_drop, bool) or not isinstance(max_drop, numbers.Real):
    raise TypeError(f"`max_drop` must be a number >= 0, got {max_drop!r} of "
                    f"type {type(max_drop).__name__}")
  if not max_drop >= 0:
    raise ValueError(f"`max_drop` must be a number >= 0, got {max_drop!r}")
  out = {}
  for gid in result.table:
    chosen, whole = 0.0, True
    kept = (result.kept or {}).get(gid) or [None] * len(result.ratios)
    for r, drop, n in zip(result.ratios, result.drops(gid), kept):
      if drop > max_drop + 1e-9:  # float noise in baseline - value
        break
      chosen, whole = r, n is not None and n >= result.sizes[gid]
    if chosen > 0 and not whole:
      out[gid] = chosen
  return out
