"""Planning for `tps.prune(target_latency=...)` on a `LatencyModel`.

`search_latency` allocates the cuts (score lost per millisecond saved, as
NetAdapt and HALP do), `plan_latency` checks the arguments and measures a
LatencyModel when none is given, `plan_to_measured` measures the slim model
(for the report) and re-plans while it misses the target. The tables
themselves and how they are measured live in
`tfprune_survey.latency`; they are re-exported there.
"""

import math
import numbers

import numpy as np

from tfprune_survey import planning


# Cross-group scales of `search_latency` (see its docstring).
SCALES = ("mean", "producers")


def check_scale(scale, arg="scale"):
  """ValueError naming `arg` unless `scale` is one of `SCALES`."""
  if scale not in SCALES:
    raise ValueError(f"`{arg}` must be one of {SCALES}, got {scale!r}")


def producer_counts(planner):
  """{group_id: number of layers producing its channels (at least 1)}: the
  'producers' scale's factor per group."""
  return {g.id: max(1, len(g.producers)) for g in planner.groups}


def search_latency(planner, latency_model, target, round_to="auto",
                   fixed=None, weights=None, left_whole=None,
                   scale="mean"):
  """Kept counts that remove `target` of the predicted latency, greedily.

  As NetAdapt and HALP do: at each step every group proposes a cut, from its
  current width down to an allowed width at which the predicted latency
  falls (so a cut never stops on a flat stretch of the staircase), removing
  its lowest-ranked channels; the cut with the least score lost per
  millisecond saved is taken. Scores are the planner's (normalised per
  group, as for global ranking). A group proposes its best cut over every
  step of its staircase below its width, not only the next one: a
  staircase is not convex, and one step down may buy little where two buy
  much (e.g. 48 -> 40 channels on the flat top of a 16-channel tile, where
  48 -> 32 halves the layer). Steps repeat until the prediction is at most
  (1 - target) x the unpruned prediction. As the last cut may overshoot by
  a whole step, channels are then given back, most score per millisecond
  first, while the prediction stays within the goal.

  Three descents are run, and the plan that keeps the most score wins (at
  equal score, the one closest to the goal): one where each group offers
  only its next stair, and two where it offers every stair, which differ
  in the cut that reaches the goal (the search ends on the reaching cut
  that loses the least score, or a reaching cut is credited only with the
  time still needed, so that smaller cuts with a better ratio may come
  first). None of the three is always the best; the first alone is the
  planner before the look-ahead, so the result never keeps less score.

  A group read or written by a grouped conv keeps multiples of its block
  count (`planner.steps`), as `keep_indices` needs.

  Scores are shifted, all groups by one amount, so that none is negative
  (the lowest costs nothing): with negative scores (e.g. apoz, which is
  -APoZ) every cut would gain score and the search would cut past the goal.

  Groups in `fixed` keep the counts given there (e.g. `tps.prune`'s
  `ratios`): their cuts count towards the goal, and the search neither cuts
  them further nor gives them channels back.

  How a channel's score counts against another group's is set by `scale`.
  Each group's scores are normalised to mean 1 (as for global ranking).
  With 'mean' (the default) that is all: every group's channels count
  alike. With 'producers' they are then multiplied by the number of layers
  that produce the group's channels, as HALP sums a coupled group's
  importance over its layers: a residual stream that five convs write
  loses five layers' worth of score per channel cut. Measured
  (benchmarks/RESULTS.md, "The `producers` scale"): on trained ResNet-20
  and MobileNetV2, 'producers' plans were 8.4% to 38% faster than
  `target_macs` (round_to=1) at equal MACs in 7 of 7 timings, where 'mean'
  ranged from -7.6% to +10.3% on MobileNetV2. On the demo's net, after a
  fine-tune, 'mean' built models both faster and more accurate (its
  latency row: 0.8813 top-1 at 2.90x against 0.8727 at 2.43x; three seeds
  at the deepest target: 0.8300 at 0.348 of the latency against 0.8101 at
  0.387), which is why it stays the default.

  `weights` multiplies a group's scores on top of that: above 1 the group
  is spared (its channels count for more score per millisecond), below 1
  it is cut first. A softer way to protect a group than `fixed` or
  `min_channels`, or a way to try other cross-group scales. A weight
  scales what a cut loses, so it cannot spare a group whose scores are
  all zero.

  Args:
    planner: a `tfprune_survey.planning.Planner` (its groups, scores and
      `min_keep`).
    latency_model: a `LatencyModel` of the same model.
    target: fraction of the predicted latency to remove, in (0, 1).
    round_to: 'auto' (widths on each group's measured grid, multiples of
      `latency_model.step(gid)`) or an int (multiples of it).
    fixed: optional {group_id: kept count} of groups the search leaves at
      that count.
    weights: optional {group_id: factor > 0} on a group's scaled scores
      (default 1); not for groups in `fixed`.
    left_whole: optional {group_id: why} of prunable groups the planner
      does not plan (e.g. 'by `ignore`'), named when `target` is
      unreachable.
    scale: 'mean' (default) or 'producers', the cross-group scale above.

  Returns:
    {group_id: kept count}.

  Raises:
    ValueError: when `target` cannot be reached (see `check_reachable`:
      the message gives the largest reachable reduction and what limits
      it), or for a weight that names no planned group or a group in
      `fixed`, or is not a positive number, or an unknown `scale`.
  """
  lm = latency_model
  fixed = dict(fixed or {})
  weights = _check_weights(planner, weights, fixed)
  check_scale(scale)
  if scale == "producers":
    weights = {gid: n * weights.get(gid, 1.0)
               for gid, n in producer_counts(planner).items()
               if gid not in fixed}
  allowed, cands, lost, steps = _stairs(planner, lm, round_to, fixed, weights)
  counts = {g.id: g.size for g in planner.groups}
  full = lm.predict_counts(counts)
  goal = (1.0 - target) * full
  counts.update(fixed)

  def kept_score(c):
    return -sum(lost[g.id][g.size - c[g.id]] for g in planner.groups
                if g.id not in fixed)

  plans = [_descend(planner, lm, dict(counts), goal, cands, allowed, lost,
                    rule) for rule in RULES]
  if any(p is None for p in plans):
    _raise_unreachable(planner, lm, target, round_to, fixed, left_whole,
                       counts, cands, allowed, lost, steps)
  # The best of them: most score kept, then the closest to the goal.
  return max(plans, key=lambda c: (round(kept_score(c), 9),
                                   lm.predict_counts(c)))


def check_reachable(planner, latency_model, target, round_to="auto",
                    fixed=None, left_whole=None):
  """Raises ValueError when no plan removes `target` of the latency.

  The scores do not matter: the planner may hold zeros (`tps.prune` checks
  this before any data is scored).

  Args:
    planner, latency_model, target, round_to, fixed, left_whole: as for
      `search_latency`.

  Raises:
    ValueError: giving the largest reachable predicted reduction and what
      limits it: `min_channels`, `round_to` (each group's step), the steps
      of grouped-conv groups, the groups fixed by `ratios` and the groups
      left whole.
  """
  lm = latency_model
  fixed = dict(fixed or {})
  allowed, cands, lost, steps = _stairs(planner, lm, round_to, fixed, {})
  counts = {g.id: g.size for g in planner.groups}
  goal = (1.0 - target) * lm.predict_counts(counts)
  counts.update(fixed)
  # Every group at its narrowest is enough on a table that grows with the
  # widths (a measured one); the greedy floor is the search's own answer.
  if lm.predict_counts({**counts, **{gid: w[0] for gid, w in allowed.items()
                                     if w}}) <= goal + 1e-12:
    return
  floor = _descend(planner, lm, dict(counts), -1.0, cands, allowed, lost,
                   "capped", floor_only=True)
  if lm.predict_counts(floor) > goal + 1e-12:
    _raise_unreachable(planner, lm, target, round_to, fixed, left_whole,
                       counts, cands, allowed, lost, steps)


def _raise_unreachable(planner, lm, target, round_to, fixed, left_whole,
                       counts, cands, allowed, lost, steps):
  """The ValueError of an unreachable `target`, naming what limits it."""
  full = lm.predict_counts({g.id: g.size for g in planner.groups})
  now = lm.predict_counts(_descend(planner, lm, dict(counts), -1.0, cands,
                                   allowed, lost, "capped", floor_only=True))
  free = [g for g in planner.groups if g.id not in fixed]
  name = planner.name
  limits = [f"min_channels={planner.min_channels}"]
  if round_to == "auto":
    limits.append("round_to='auto' (widths on each group's measured grid: " +
                  (", ".join(f"{name(g.id)!r}: {lm.step(g.id)}" for g in free)
                   or "no group") + ")")
  else:
    limits.append(f"round_to={round_to}")
  base = {g.id: lm.step(g.id) if round_to == "auto" else int(round_to)
          for g in free}
  blocked = {gid: n for gid, n in steps.items() if n != base[gid]}
  limits += planning.limit_phrases(blocked, None, name=name)
  if fixed:
    sizes = {g.id: g.size for g in planner.groups}
    limits.append("groups fixed by `ratios`: " + ", ".join(
        f"{name(gid)!r} (keeps {n} of {sizes[gid]})"
        for gid, n in fixed.items()))
  limits += planning.limit_phrases(
      None, left_whole, None if free else "no group left to cut", name)
  raise planning.UnreachableTargetError(
      "target_latency", target, 1 - now / full, "predicted latency", limits)


def _stairs(planner, lm, round_to, fixed, weights):
  """(allowed widths, cut candidates, cumulative score lost, steps) per
  planned group; groups in `fixed` get no widths."""
  allowed, cands, lost, steps = {}, {}, {}, {}
  # Score lost per ms needs scores >= 0: a criterion with negative scores
  # (apoz is -APoZ) would make every cut *gain* score, and the search would
  # cut more than the goal needs. All groups are shifted by one amount so
  # the lowest channel costs nothing; the order of channels, within and
  # across groups, is unchanged.
  shift = min([0.0] + [float(np.min(planner.normalized[g.id]))
                       for g in planner.groups
                       if g.id not in fixed and g.size])
  for g in planner.groups:
    if g.id in fixed:
      allowed[g.id] = cands[g.id] = []
      continue
    step = lm.step(g.id) if round_to == "auto" else int(round_to)
    # A grouped conv's group keeps the same count in every block.
    step = math.lcm(step, planner.steps.get(g.id, 1))
    steps[g.id] = step
    floor = planner.min_keep[g.id]
    widths = sorted({w for w in range(step, g.size, step) if w >= floor} |
                    {g.size})
    if floor not in widths and floor < g.size:
      widths = sorted(set(widths) | {min(g.size, -(-floor // step) * step)})
    allowed[g.id] = widths
    cands[g.id] = _cut_candidates(widths, lm.step(g.id))
    s = (np.sort(planner.normalized[g.id]) - shift) * weights.get(g.id, 1.0)
    lost[g.id] = np.concatenate([[0.0], np.cumsum(s)])
  return allowed, cands, lost, steps


def _check_weights(planner, weights, fixed):
  """{group_id: float factor}, or ValueError naming the bad entry."""
  weights = dict(weights or {})
  ids = {g.id for g in planner.groups}
  unknown = sorted(set(weights) - ids)
  if unknown:
    raise ValueError(f"`weights` names groups that are not planned: "
                     f"{unknown}; planned groups: {sorted(ids)}")
  both = sorted(set(weights) & set(fixed))
  if both:
    raise ValueError(f"`weights` names groups whose counts are fixed (e.g. "
                     f"by `ratios`), where a weight does nothing: {both}")
  for gid, w in weights.items():
    if (isinstance(w, bool) or not isinstance(w, (int, float, np.number))
        or not np.isfinite(w) or w <= 0):
      raise ValueError(f"`weights[{gid!r}]` must be a positive number, "
                       f"got {w!r}")
  return {gid: float(w) for gid, w in weights.items()}


# The descents `search_latency` runs (see `_descend`).
RULES = ("next", "reach", "capped")


def _descend(planner, lm, counts, goal, cands, allowed, lost, rule,
             floor_only=False):
  """One greedy descent of `search_latency` from `counts`; None if stuck.

  Each step takes the cut with the least score lost per millisecond saved.
  With `rule` 'next', a group proposes only its next stair (the first
  allowed width below its count at which the prediction falls) and a cut
  that reaches the goal ends the search, the one losing the least score.
  With 'reach' and 'capped' a group proposes each stair below its count (and
  its next allowed width); 'reach' ends as 'next' does, 'capped' credits a
  reaching cut only with the time still needed, so smaller cuts with a
  better ratio may come first. Then channels are given back, most score per
  millisecond first, while the prediction stays within the goal. With
  `floor_only`, it cuts as far as it can and returns those counts.
  """
  per_layer = lm.layer_ms(counts)
  now = lm.fixed_ms + sum(t - lm.fixed_ms for t in per_layer.values())
  while now > goal + 1e-12:
    best = None
    for g in planner.groups:
      touched = lm.groups_layers(g.id)
      if not touched:
        continue
      before = sum(per_layer[i] for i in touched)
      below = [w for w in allowed[g.id] if w < counts[g.id]]
      if rule == "next":
        widths = below[::-1]
      else:
        widths = sorted({w for w in cands[g.id] if w < counts[g.id]} |
                        set(below[-1:]), reverse=True)
      for w in widths:
        trial = dict(counts)
        trial[g.id] = w
        after = lm.layer_ms(trial, touched)
        saved = before - sum(after.values())
        if saved > 1e-9:
          score = (lost[g.id][g.size - w] - lost[g.id][g.size - counts[g.id]])
          if rule == "capped":
            key = (score / min(saved, now - goal), saved)
          else:
            key = ((0, score, saved) if now - saved <= goal + 1e-12 else
                   (1, score / saved, 0))
          if best is None or key < best[0]:
            best = (key, g.id, w, after, saved)
          if rule == "next":
            break
    if best is None:
      return counts if floor_only else None
    _, gid, w, after, saved = best
    counts[gid] = w
    per_layer.update(after)
    now -= saved
  # The last cut may overshoot by a whole step: give back the channels that
  # still fit under the goal, most score per millisecond first (a width that
  # costs nothing more is taken at once).
  while True:
    best = None
    for g in planner.groups:
      touched = lm.groups_layers(g.id)
      before = sum(per_layer[i] for i in touched)
      for w in [w for w in allowed[g.id] if w > counts[g.id]]:
        trial = dict(counts)
        trial[g.id] = w
        after = lm.layer_ms(trial, touched)
        added = sum(after.values()) - before
        if now + added > goal + 1e-12:
          continue
        gain = lost[g.id][g.size - counts[g.id]] - lost[g.id][g.size - w]
        ratio = gain / max(added, 1e-12)
        if best is None or ratio > best[0]:
          best = (ratio, g.id, w, after, added)
    if best is None:
      return counts
    _, gid, w, after, added = best
    counts[gid] = w
    per_layer.update(after)
    now += added


def _cut_candidates(allowed, step, most=64):
  """The widths a group's cut may stop at, widest first.

  Within one stair of the measured grid (multiples of `step`) every width
  costs the same predicted time, so only the widest allowed width at or
  below each grid point can be the best cut to that stair; with no grid
  (`step` 1, e.g. linear profile costs) at most `most` widths, evenly
  spread, are tried.
  """
  allowed = sorted(allowed)
  if step > 1:
    picks = set()
    for m in range(step, allowed[-1] + step, step):
      below = [w for w in allowed if w <= m]
      if below:
        picks.add(below[-1])
    picks.add(allowed[0])
  elif len(allowed) > most:
    picks = {allowed[int(i)] for i in np.linspace(0, len(allowed) - 1, most)}
  else:
    picks = set(allowed)
  return sorted(picks, reverse=True)


def check_round_to(round_to, target_latency):
  """`round_to` for the planner: 1 for 'auto' (with `target_latency` only).

  Raises:
    ValueError: for 'auto' without `target_latency`, or another string
      (e.g. 'Auto'): the message names both int and 'auto'.
    TypeError: with `target_latency`, for a value neither an int nor a
      string (ints are checked further by `planning.check_plan_args`).
  """
  allowed = ("`round_to` must be an int >= 1, or 'auto' (with "
             "`target_latency`: each group's step from the LatencyModel)")
  if isinstance(round_to, str):
    if round_to != "auto":
      raise ValueError(f"{allowed}, got {round_to!r}")
    if target_latency is None:
      raise ValueError("`round_to`='auto' takes each group's step from the "
                       "LatencyModel, so it needs `target_latency`; give an "
                       "int otherwise")
    return 1
  if target_latency is not None and (
      isinstance(round_to, bool) or not isinstance(round_to, numbers.Integral)):
    raise TypeError(f"{allowed}, got {round_to!r} of type "
                    f"{type(round_to).__name__}")
  return round_to


def plan_latency(model, graph, planner, target, latency, round_to, scope,
                 verbose=0, fixed=None, left_whole=None):
  """Kept counts for `tps.prune(target_latency=...)`, and the LatencyModel.

  Args:
    model, graph, planner: the model, its ChannelGraph, its Planner.
    target: fraction of latency to remove, in (0, 1).
    latency: a `LatencyModel` of `model`, or None (measured here, cached).
    round_to: 'auto' or the int `round_to` of `tps.prune`.
    scope: must be 'global' (the allocation weighs every group's cuts
      against each other).
    verbose: 1 shows a progress bar while measuring.
    fixed: optional {group_id: kept count} left as they are (see
      `search_latency`).
    left_whole: optional {group_id: why} of prunable groups not planned,
      named when the target is unreachable.

  Raises:
    TypeError: `latency` is not a LatencyModel.
    ValueError: 'local' scope, a LatencyModel of another architecture, or
      an unreachable target.
  """
  if scope != "global":
    raise ValueError("`target_latency` allocates across groups by score lost "
                     "per millisecond saved, so it needs scope='global', got "
                     f"scope={scope!r}")
  from tfprune_survey.latency import LatencyModel  # pylint: disable=g-import-not-at-top
  if latency is None:
    latency = LatencyModel.measure(model, verbose=verbose)
  elif not isinstance(latency, LatencyModel):
    raise TypeError("`latency` must be a tps.latency.LatencyModel, got "
                    f"{type(latency).__name__}")
  latency.check(model, graph)
  return search_latency(planner, latency, target, round_to, fixed,
                        left_whole=left_whole), latency


# `tps.prune(target_latency=t)` re-plans when the slim model, measured on the
# machine the tables were measured on, is more than this far from removing
# t of the latency (a fraction of the original's latency), at most
# `MEASURED_REPLANS` times.
MEASURED_TOLERANCE = 0.03
MEASURED_REPLANS = 2


def _measure_pair(model, slim, latency):
  """(before, after) ms of `model` and `slim`, their invokes taken in turn
  (`measure_side_by_side`), with the LatencyModel's threads and delegate."""
  from tfprune_survey import latency as latency_lib  # pylint: disable=g-import-not-at-top
  threads = int(latency.runtime.get("threads", 1))
  delegate = latency.runtime.get("delegate", "xnnpack")
  if delegate not in latency_lib.DELEGATES:
    delegate = "xnnpack"
  before, after = latency_lib.measure_side_by_side(
      [model, slim], threads=threads, delegate=delegate)
  return before, after


def plan_to_measured(model, latency, target, plan, build, predicted,
                     counts, slim, verbose=0):
  """Counts and slim model that remove `target` of the *measured* latency.

  The tables predict a model's latency from its layers timed alone: their
  sum is not the whole model's time (Adds and pooling are not timed), and
  on a shared machine two measurements of one table differ point by point
  (12% at the median for ResNet-20's, in `benchmarks/RESULTS.md`, "Timing
  noise"), so a plan can miss the measured target. When the tables were
  measured on this machine's runtime (`latency.measured_here`), the slim
  model is measured, side by side with the original, and while the
  measured reduction is more than `MEASURED_TOLERANCE` from `target` the
  predicted target is corrected by the secant through the plans so far
  (the first through (0, 0)) and planned again, at most
  `MEASURED_REPLANS` times, as NetAdapt checks each proposal by measuring
  it. The plan whose measured reduction is closest to `target` is kept.
  Tables from elsewhere (a phone's profile) are not corrected: this
  machine's latency says nothing of that runtime's.

  Args:
    model: the original model.
    latency: its LatencyModel.
    target: the fraction of the measured latency to remove.
    plan: fn(predicted target, a fraction of the whole prediction) ->
      counts; raises `planning.UnreachableTargetError` when out of reach
      (its `best`, the largest reachable predicted reduction, is then
      planned instead).
    build: fn(counts) -> slim model.
    predicted: fn(counts) -> predicted latency as a fraction of the whole.
    counts, slim: the first plan (for `target` itself) and its model.
    verbose: 1 prints a line per re-plan.

  Returns:
    (counts, slim, report fields): `latency_before_ms`,
    `latency_after_ms`, `latency_predicted_ratio` and `latency_replans`.
  """
  from tfprune_survey.latency import measured_here  # pylint: disable=g-import-not-at-top
  # Each plan is timed in turn with the original: absolute times drift on a
  # shared machine, their ratio much less.
  tries = [(counts, slim, *_measure_pair(model, slim, latency))]
  if measured_here(latency):
    reached = lambda t: 1.0 - t[3] / t[2]  # pylint: disable=unnecessary-lambda-assignment
    points = [(0.0, 0.0), (1.0 - predicted(counts), reached(tries[0]))]
    seen = [counts]
    for _ in range(MEASURED_REPLANS):
      (p0, r0), (p1, r1) = points[-2:]
      if abs(r1 - target) <= MEASURED_TOLERANCE or abs(r1 - r0) < 1e-6:
        break
      goal = p1 + (target - r1) * (p1 - p0) / (r1 - r0)
      goal = min(max(goal, 1e-3), 0.999)
      try:
        counts = plan(goal)
      except planning.UnreachableTargetError as e:
        # Past the tables' reach: the deepest plan they allow, if it is
        # deeper than the last.
        if e.best <= p1 + 1e-9:
          break
        goal = e.best
        try:
          counts = plan(goal)
        except planning.UnreachableTargetError:
          break
      if counts in seen:
        break
      seen.append(counts)
      slim = build(counts)
      tries.append((counts, slim, *_measure_pair(model, slim, latency)))
      points.append((1.0 - predicted(counts), reached(tries[-1])))
      if verbose:
        print(f"target_latency={target}: {r1:.3f} of the measured latency "
              f"removed; re-planned for {goal:.3f} of the predicted "
              f"latency: {points[-1][1]:.3f} removed", flush=True)
  counts, slim, before, after = min(
      tries, key=lambda t: abs(1.0 - t[3] / t[2] - target))
  return counts, slim, {"latency_before_ms": before,
                        "latency_after_ms": after,
                        "latency_predicted_ratio": predicted(counts),
                        "latency_replans": len(tries) - 1}


__all__ = ["check_reachable", "check_round_to", "plan_latency",
           "plan_to_measured", "search_latency"]
