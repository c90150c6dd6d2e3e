"""tps.prune: one-shot structured pruning to a channel or MACs target."""

import dataclasses
import math
import numbers

import numpy as np

from tfprune_survey import _compat
from tfprune_survey import criteria as criteria_lib
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.scoring import score as score_fn
from tfprune_survey.strip.materialize import materialize

SCOPES = ("global", "local")


@dataclasses.dataclass
class PruneReport:
  """Before/after figures of a pruning run."""
  criterion: str
  params_before: int
  params_after: int
  macs_before: int
  macs_after: int
  groups: list  # (group_id, kept, total)

  @property
  def macs_reduction(self):
    return 1.0 - self.macs_after / self.macs_before

  @property
  def params_reduction(self):
    return 1.0 - self.params_after / self.params_before

  def __str__(self):
    lines = [f"criterion: {self.criterion}",
             f"{'':10s} {'before':>14s} {'after':>14s} {'reduction':>10s}",
             f"{'params':10s} {self.params_before:14,d} "
             f"{self.params_after:14,d} {self.params_reduction:10.1%}",
             f"{'MACs':10s} {self.macs_before:14,d} {self.macs_after:14,d} "
             f"{self.macs_reduction:10.1%}",
             "", f"{'group':40s} {'kept':>6s} / {'total':<6s}"]
    for gid, kept, total in self.groups:
      lines.append(f"{gid[:40]:40s} {kept:6d} / {total:<6d}")
    return "\n".join(lines)


@dataclasses.dataclass
class PruneResult:
  """What `tps.prune` returns.

  Attributes:
    model: the materialized slim tf_keras model.
    keep: {group_id: np.ndarray of kept indices} (pruned groups only).
    report: a `PruneReport` (printable).
    scores: {group_id: scores} the ranking used.
  """
  model: object
  keep: dict
  report: PruneReport
  scores: dict


def _check_int(value, name, minimum):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
      value < minimum):
    raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
  return int(value)


def _ceil_to(n, step):
  return int(math.ceil(n / step) * step)


class _Planner:
  """Turns scores and constraints into kept counts and indices."""

  def __init__(self, graph, scores, round_to, min_channels):
    self.groups = [graph.group(gid) for gid in scores]
    self.scores = scores
    self.round_to = round_to
    self.min_keep = {g.id: min(g.size, _ceil_to(min_channels, round_to))
                     for g in self.groups}
    normed = []
    for g in self.groups:
      s = np.asarray(scores[g.id], np.float64)
      scale = np.abs(s).mean()
      normed.append(s / scale if scale > 0 else s)
    order = []
    for gi, (g, s) in enumerate(zip(self.groups, normed)):
      for c in range(g.size):
        order.append((s[c], gi, c))
    order.sort(key=lambda t: (t[0], t[1], t[2]))
    self.order = order
    # Local order: each group's channels by rank, interleaved so that every
    # group has lost about the same fraction at any point of the sequence.
    local = []
    for gi, g in enumerate(self.groups):
      ranked = np.argsort(np.asarray(scores[g.id]), kind="stable")
      for j, c in enumerate(ranked):
        local.append(((j + 1) / g.size, gi, int(c)))
    local.sort(key=lambda t: (t[0], t[1], t[2]))
    self.local_order = local

  def _round(self, g, kept):
    kept = max(self.min_keep[g.id], kept)
    return min(g.size, _ceil_to(kept, self.round_to))

  def removal(self, n_remove, order=None):
    """Removes the first `n_remove` channels of `order` that may go.

    Returns ({group_id: removed count}, position in `order` reached).
    """
    removed = {g.id: 0 for g in self.groups}
    budget = n_remove
    order = self.order if order is None else order
    pos = 0
    while pos < len(order) and budget > 0:
      g = self.groups[order[pos][1]]
      if g.size - removed[g.id] > self.min_keep[g.id]:
        removed[g.id] += 1
        budget -= 1
      pos += 1
    return removed, pos

  def counts_from(self, removed):
    return {g.id: self._round(g, g.size - removed[g.id]) for g in self.groups}

  def counts_global(self, n_remove, order=None):
    return self.counts_from(self.removal(n_remove, order)[0])

  def counts_local(self, ratio):
    return {g.id: self._round(g, g.size - int(math.floor(ratio * g.size +
                                                          1e-9)))
            for g in self.groups}

  def counts_per_group(self, ratios):
    return {g.id: self._round(g, g.size - int(math.floor(
        ratios.get(g.id, 0.0) * g.size + 1e-9))) for g in self.groups}

  def floor_counts(self):
    return {g.id: self.min_keep[g.id] for g in self.groups}

  @property
  def total(self):
    return sum(g.size for g in self.groups)

  def keep_indices(self, counts):
    keep = {}
    for g in self.groups:
      n = counts[g.id]
      if n < g.size:
        s = np.asarray(self.scores[g.id])
        top = np.argsort(-s, kind="stable")[:n]
        keep[g.id] = np.sort(top)
    return keep


def prune(model, criterion, *, data=None, ratio=None, target_macs=None,
          ratios=None, scope="global", round_to=1, min_channels=1, ignore=(),
          reduction=None, steps=None, recalibrate=None, verbose=0):
  """Scores, ranks and removes channels in one shot; returns a slim model.

  Args:
    model: a tf_keras Sequential/Functional model. Not modified.
    criterion: a name from `tps.criteria.names()` or a Criterion instance.
    data: data for data-dependent criteria (see `tps.score`).
    ratio: fraction of the prunable channels to remove, in [0, 1).
    target_macs: fraction of the model's MACs to remove, in (0, 1). Reached
      by removing the lowest-ranked channels with MACs re-counted after each
      step (binary search over the ranking), within 2% of the model's MACs
      where the rounding allows.
    ratios: {group_id: fraction of that group's channels to remove}, e.g.
      from `tps.ratios_from_sensitivity`; groups not named keep all their
      channels. Exactly one of `ratio`, `target_macs` and `ratios` is given.
    scope: 'global' ranks normalised scores across groups (each group's
      scores divided by their mean absolute value); 'local' removes the same
      fraction from every group (with `target_macs`, groups take turns
      losing their lowest-ranked channel, so fractions stay within one
      channel of each other). Defaults to 'global'.
    round_to: kept counts are multiples of this (hardware-friendly widths).
      Defaults to 1.
    min_channels: every group keeps at least this many. Defaults to 1.
    ignore: layer names whose groups are left whole.
    reduction: optional override of the criterion's reduction ('mean',
      'sum' or 'max') across coupled layers.
    steps: optional maximum number of data batches for scoring.
    recalibrate: optional data (as for `data`) on which the slim model's
      BatchNormalization statistics are re-estimated after materializing
      (`tps.recalibrate_bn`). Recommended before judging its accuracy.
    verbose: 1 shows a progress bar while data is scored.

  Returns:
    A `PruneResult` with `.model` (materialized), `.keep` and `.report`.

  Raises:
    ValueError: for a ratio outside [0, 1), both or neither of ratio and
      target_macs, an unknown scope, layer or criterion, missing data, or an
      unreachable target (the message gives the largest reachable).
  """
  _compat.check_model(model)
  if sum(v is not None for v in (ratio, target_macs, ratios)) != 1:
    raise ValueError("give exactly one of `ratio` (fraction of channels), "
                     "`target_macs` (fraction of MACs to remove) and `ratios` "
                     "({group_id: fraction})")
  if ratios is not None:
    if not isinstance(ratios, dict):
      raise ValueError(f"`ratios` must be a dict {{group_id: fraction}}, got "
                       f"{type(ratios).__name__}")
    for gid, r in ratios.items():
      if isinstance(r, bool) or not isinstance(r, numbers.Real) or not (
          0.0 <= r < 1.0):
        raise ValueError(f"`ratios`[{gid!r}] must be in [0, 1), got {r!r}")
  if ratio is not None and (isinstance(ratio, bool) or not isinstance(
      ratio, numbers.Real) or not 0.0 <= ratio < 1.0):
    raise ValueError(f"`ratio` must be in [0, 1), got {ratio!r}")
  if target_macs is not None and (isinstance(target_macs, bool) or
                                  not isinstance(target_macs, numbers.Real) or
                                  not 0.0 < target_macs < 1.0):
    raise ValueError(f"`target_macs` must be in (0, 1), got {target_macs!r}")
  if scope not in SCOPES:
    raise ValueError(f"`scope` must be one of {SCOPES}, got {scope!r}")
  round_to = _check_int(round_to, "round_to", 1)
  min_channels = _check_int(min_channels, "min_channels", 1)
  if isinstance(ignore, str):
    ignore = (ignore,)
  crit = criteria_lib.get(criterion)
  if reduction is not None:
    crit = type(crit).from_config({**crit.get_config(),
                                   "reduction": reduction})
  graph = ChannelGraph(model)
  layer_paths = {c.path for c in graph.calls} | {
      c.path.split("/")[-1] for c in graph.calls}
  unknown = [name for name in ignore if name not in layer_paths]
  if unknown:
    raise ValueError(f"`ignore` names unknown layers {unknown}")
  ignored = set(ignore)
  scores = score_fn(model, crit, data, steps=steps, graph=graph,
                    verbose=verbose)
  for gid in list(scores):
    g = graph.group(gid)
    members = set(g.producers) | set(g.consumers) | set(g.params)
    members |= {m.split("/")[-1] for m in members}
    if members & ignored:
      del scores[gid]

  if ratios is not None:
    for gid in ratios:
      if gid not in scores:
        known = [g.id for g in graph.prunable_groups]
        why = ("is left whole by `ignore`" if gid in known else
               f"is not a prunable group; prunable: {known}")
        raise ValueError(f"`ratios` names group {gid!r}, which {why}")
  planner = _Planner(graph, scores, round_to, min_channels)
  macs_before = count_macs(model)
  if ratios is not None:
    counts = planner.counts_per_group(ratios)
  elif ratio is not None:
    counts = (planner.counts_global(int(round(ratio * planner.total)))
              if scope == "global" else planner.counts_local(ratio))
  else:
    counts = _search_macs(planner, MacsModel(model, graph), macs_before,
                          target_macs, scope)
  keep = planner.keep_indices(counts)
  slim = materialize(model, keep, graph=graph)
  if recalibrate is not None:
    recalibrate_bn(slim, recalibrate)
  report = PruneReport(
      criterion=crit.name or type(crit).__name__,
      params_before=int(model.count_params()),
      params_after=int(slim.count_params()),
      macs_before=macs_before, macs_after=count_macs(slim),
      groups=[(g.id, counts.get(g.id, g.size), g.size)
              for g in graph.prunable_groups])
  return PruneResult(slim, keep, report, scores)


def _search_macs(planner, macs_model, macs_before, target, scope):
  """Smallest removal that reaches `target` MACs reduction."""
  goal = macs_before * (1.0 - target)
  floor = macs_model.macs(planner.floor_counts())
  if floor > goal + 1e-9:
    best = 1.0 - floor / macs_before
    raise ValueError(
        f"`target_macs`={target} is unreachable: with min_channels and "
        f"round_to the largest reachable MACs reduction is {best:.3f}")
  order = planner.order if scope == "global" else planner.local_order
  lo, hi = 0, planner.total
  while lo < hi:
    mid = (lo + hi) // 2
    if macs_model.macs(planner.counts_global(mid, order)) <= goal:
      hi = mid
    else:
      lo = mid + 1
  counts = planner.counts_global(lo, order)
  tolerance = 0.02 * macs_before
  if lo == 0 or macs_model.macs(counts) >= goal - tolerance:
    return counts
  # The last channel removed overshot by more than the tolerance (it was an
  # expensive one): keep walking the ranking from just before it, removing
  # only channels that do not overshoot, until the target is reached.
  removed, pos = planner.removal(lo - 1, order)
  for _, gi, _ in order[pos:pos + 20000]:
    g = planner.groups[gi]
    if g.size - removed[g.id] <= planner.min_keep[g.id]:
      continue
    removed[g.id] += 1
    macs = macs_model.macs(planner.counts_from(removed))
    if macs < goal - tolerance:
      removed[g.id] -= 1
      continue
    if macs <= goal:
      return planner.counts_from(removed)
  return counts
