"""Planning: from scores and constraints to kept channels.

`Planner` turns per-group scores plus `round_to` / `min_channels` into kept
counts (by channel ratio, per-group ratios, or a removal count along a
ranking) and kept indices; `search_macs` finds the smallest removal along
the ranking that reaches a MACs target. `check_plan_args` is the one
validator of the planning arguments (`ratio`, `target_macs`, `ratios`,
`scope`, `round_to`, `min_channels`, `ignore`) shared by `tps.prune`,
`tps.iterative_prune` and training-time pruning. Each kind of mistake has one
exception type: `TypeError` for a wrong type, `ValueError` for a wrong value;
messages name the argument, the value and what is allowed.

Nothing here imports a Keras.
"""

import collections.abc
import dataclasses
import math
import numbers

import numpy as np

from tfprune_survey.errors import UnreachableTargetError

SCOPES = ("global", "local")
#: What `check_plan_args(target=...)` asks of ratio / target_macs / ratios.
TARGETS = ("one", "target_macs", "none")


# ---- argument checks --------------------------------------------------------

def _is_real(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(value, name, minimum):
  """`value` as an int >= `minimum`.

  Raises:
    TypeError: when `value` is not an int (bools and floats included).
    ValueError: when it is below `minimum`.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"`{name}` must be an int >= {minimum}, got "
                    f"{value!r} of type {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
  return int(value)


def check_verbose(verbose):
  """`verbose` as an int >= 0 (a bool as 0 or 1).

  Raises:
    TypeError: naming `verbose` for anything else: a string such as '0' is
      truthy and would show the output it was meant to hide.
    ValueError: for a negative int.
  """
  if isinstance(verbose, bool):
    return int(verbose)
  if not isinstance(verbose, numbers.Integral):
    raise TypeError("`verbose` must be 0 (quiet) or 1 (progress), an int or "
                    f"a bool, got {verbose!r:.80} of type "
                    f"{type(verbose).__name__}")
  if verbose < 0:
    raise ValueError("`verbose` must be 0 (quiet) or 1 (progress), got "
                     f"{verbose!r}")
  return int(verbose)


def check_fraction(value, name, low_open=False):
  """`value` as a float in [0, 1) (or (0, 1) when `low_open`).

  Raises:
    TypeError: when `value` is not a real number.
    ValueError: when it is outside the interval (NaN included).
  """
  interval = "(0, 1)" if low_open else "[0, 1)"
  if not _is_real(value):
    raise TypeError(f"`{name}` must be a number in {interval}, got "
                    f"{value!r} of type {type(value).__name__}")
  value = float(value)
  ok = (0.0 < value < 1.0) if low_open else (0.0 <= value < 1.0)
  if not ok:
    raise ValueError(f"`{name}` must be in {interval}, got {value!r}")
  return value


def check_choice(value, name, choices):
  """`value` if it is one of the strings `choices`.

  Raises:
    TypeError: when `value` is not a string.
    ValueError: when it is a string not in `choices`.
  """
  if not isinstance(value, str):
    raise TypeError(f"`{name}` must be one of {choices}, got {value!r} of "
                    f"type {type(value).__name__}")
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
  return value


def check_scope(scope):
  return check_choice(scope, "scope", SCOPES)


def check_local_only(criterion, scope):
  """Raises ValueError for a within-group-only criterion ranked globally.

  Args:
    criterion: a `Criterion` (its `local_only` and `name`).
    scope: the ranking scope asked for.
  """
  if getattr(criterion, "local_only", False) and scope == "global":
    raise ValueError(f"criterion '{criterion.name}' ranks channels within "
                     "each group only: pass scope='local' (or `ratios` alone "
                     "to tps.prune), not scope='global' (nor "
                     "target_latency, which ranks across groups)")


def check_ratios(ratios, name="ratios"):
  """{group_id: fraction in [0, 1)} as a new dict of floats."""
  if not isinstance(ratios, collections.abc.Mapping):
    raise TypeError(f"`{name}` must be a dict {{group_id: fraction in "
                    f"[0, 1)}}, got {type(ratios).__name__}")
  out = {}
  for gid, r in ratios.items():
    if not isinstance(gid, str):
      raise TypeError(f"`{name}` keys must be group ids (str), got {gid!r} "
                      f"of type {type(gid).__name__}")
    out[gid] = check_fraction(r, f"{name}[{gid!r}]")
  return out


def check_names(value, name, what="layer name"):
  """A tuple of strings from a string or an iterable of strings.

  Raises:
    TypeError: naming `name` when `value` is neither, or holds a non-string.
  """
  if isinstance(value, str):
    return (value,)
  if value is None:
    return ()
  try:
    items = tuple(value)
  except TypeError:
    raise TypeError(f"`{name}` must be a {what} or a sequence of {what}s, "
                    f"got {value!r} of type {type(value).__name__}") from None
  bad = [v for v in items if not isinstance(v, str)]
  if bad:
    raise TypeError(f"`{name}` must hold {what}s (str), got {bad[0]!r} of "
                    f"type {type(bad[0]).__name__}")
  return items


@dataclasses.dataclass(frozen=True)
class PlanArgs:
  """Checked planning arguments (see `check_plan_args`)."""
  ratio: object = None
  target_macs: object = None
  ratios: object = None
  scope: str = "global"
  round_to: int = 1
  min_channels: int = 1
  ignore: tuple = ()
  target_latency: object = None


def check_plan_args(*, ratio=None, target_macs=None, ratios=None,
                    scope="global", round_to=1, min_channels=1, ignore=(),
                    target="one", target_latency=None):
  """The one validator of the planning arguments.

  Args:
    ratio: fraction of the prunable channels to remove, in [0, 1).
    target_macs: fraction of the MACs to remove, in (0, 1).
    ratios: {group_id: fraction in [0, 1)}.
    scope: one of `SCOPES`. Defaults to 'global'.
    round_to: int >= 1. Defaults to 1.
    min_channels: int >= 1. Defaults to 1.
    ignore: a layer name or a sequence of layer names. Defaults to ().
    target: 'one' (exactly one of `ratio`, `target_macs`, `ratios` and
      `target_latency` is given, or `ratios` with `target_latency`;
      `tps.prune`), 'target_macs' (`target_macs` is required and the
      others are not taken; `tps.iterative_prune`) or 'none' (no target is
      taken; training-time pruning, whose target is its schedule).
    target_latency: fraction of the measured latency to remove, in (0, 1)
      (`tps.prune` only).

  Returns:
    A `PlanArgs` of the normalised values (floats, ints, a tuple of names).

  Raises:
    TypeError: for a value of the wrong type (e.g. ratio='half',
      round_to=2.5, ignore=5), naming the argument and what is allowed.
    ValueError: for a value of the right type out of range (e.g. ratio=1.5,
      scope='galactic', min_channels=0), a wrong combination of targets, or
      `target_latency` with scope='local'.
  """
  check_choice(target, "target", TARGETS)
  given = [n for n, v in (("ratio", ratio), ("target_macs", target_macs),
                          ("ratios", ratios),
                          ("target_latency", target_latency)) if v is not None]
  if target == "one" and len(given) != 1 and given != ["ratios",
                                                       "target_latency"]:
    raise ValueError("give exactly one of `ratio` (fraction of channels), "
                     "`target_macs` (fraction of MACs to remove), `ratios` "
                     "({group_id: fraction}) and `target_latency` (fraction "
                     "of measured latency to remove), or `ratios` with "
                     f"`target_latency`; got {given or 'none'}")
  if target == "target_macs":
    if target_macs is None:
      raise ValueError("`target_macs` (fraction of MACs to remove, in "
                       "(0, 1)) is required")
    if given != ["target_macs"]:
      raise ValueError(f"only `target_macs` is taken here, got {given}")
  if target == "none" and given:
    raise ValueError(f"{given} are not taken here: the pruning target comes "
                     "from the schedule")
  if target_latency is not None and check_scope(scope) != "global":
    raise ValueError("`target_latency` allocates across groups by score lost "
                     "per millisecond saved, so it needs scope='global', got "
                     f"scope={scope!r}")
  return PlanArgs(
      ratio=None if ratio is None else check_fraction(ratio, "ratio"),
      target_macs=(None if target_macs is None else
                   check_fraction(target_macs, "target_macs", low_open=True)),
      ratios=None if ratios is None else check_ratios(ratios),
      target_latency=(None if target_latency is None else check_fraction(
          target_latency, "target_latency", low_open=True)),
      scope=check_scope(scope),
      round_to=check_int(round_to, "round_to", 1),
      min_channels=check_int(min_channels, "min_channels", 1),
      ignore=check_names(ignore, "ignore"))


# ---- the planner ----------------------------------------------------------

def ceil_to(n, step):
  return int(math.ceil(n / step) * step)


class Planner:
  """Turns scores and constraints into kept counts and indices.

  A group keeps at least `min_channels` channels, rounded up to a multiple
  of `round_to`; a group smaller than that keeps all its channels (it is
  clipped, not an error). Kept counts are rounded up to multiples of
  `round_to`, or to the whole group. A group read or written by a grouped
  conv (`ChannelGroup.blocks` > 1) keeps the same number of channels in
  each block (each conv group): its counts are multiples of
  lcm(round_to, blocks), and `keep_indices` keeps each block's best.

  Args:
    graph: the model's `ChannelGraph`.
    scores: {group_id: scores}; only these groups are planned.
    round_to: int >= 1.
    min_channels: int >= 1.
    names: optional {group_id: the id messages give it}, for a graph whose
      ids are not the caller's (e.g. `tps.prune` plans on the model without
      its dead branches, where a group may be named after another of its
      producers).

  Attributes:
    groups: the planned `ChannelGroup`s, in the order of `scores`.
    normalized: {group_id: float64 scores divided by their mean absolute
      value}, the scale groups are compared on (left as they are when that
      mean is 0).
    order: (normalised score, group index, channel) of every channel,
      lowest first: the global removal order.
    local_order: the same channels interleaved so that every group has lost
      about the same fraction at any point of the sequence.
    min_keep: {group_id: the fewest channels the group may keep}.
    steps: {group_id: what its kept counts are multiples of}.
  """

  def __init__(self, graph, scores, round_to=1, min_channels=1, names=None):
    self.groups = [graph.group(gid) for gid in scores]
    self.names = dict(names or {})
    self.scores = scores
    self.round_to = round_to
    self.min_channels = min_channels
    self.steps = {g.id: math.lcm(round_to, getattr(g, "blocks", 1))
                  for g in self.groups}
    self.min_keep = {g.id: min(g.size, ceil_to(min_channels,
                                               self.steps[g.id]))
                     for g in self.groups}
    self.normalized = {}
    for g in self.groups:
      s = np.asarray(scores[g.id], np.float64)
      scale = np.abs(s).mean()
      self.normalized[g.id] = s / scale if scale > 0 else s
    order = []
    for gi, g in enumerate(self.groups):
      s = self.normalized[g.id]
      for c in range(g.size):
        order.append((s[c], gi, c))
    order.sort(key=lambda t: (t[0], t[1], t[2]))
    self.order = order
    local = []
    for gi, g in enumerate(self.groups):
      ranked = np.argsort(np.asarray(scores[g.id]), kind="stable")
      for j, c in enumerate(ranked):
        local.append(((j + 1) / g.size, gi, int(c)))
    local.sort(key=lambda t: (t[0], t[1], t[2]))
    self.local_order = local

  def name(self, gid):
    """The id messages give group `gid` (see `names`)."""
    return self.names.get(gid, gid)

  def _round(self, g, kept):
    kept = max(self.min_keep[g.id], kept)
    return min(g.size, ceil_to(kept, self.steps[g.id]))

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
    """{group_id: kept count} after `removed`, rounded."""
    return {g.id: self._round(g, g.size - removed[g.id]) for g in self.groups}

  def counts_global(self, n_remove, order=None):
    """Kept counts after removing `n_remove` channels along `order`."""
    return self.counts_from(self.removal(n_remove, order)[0])

  def counts_removing(self, n_remove, order=None):
    """Kept counts that remove at least `n_remove` channels, rounded.

    Rounding kept counts up (`round_to`, blocks) can undo removals that
    `counts_global(n_remove)` made (removing 4 channels from each of two
    groups of 16 with round_to=8 keeps 16 and 16). This removes the fewest
    channels along `order` whose rounded counts remove at least `n_remove`
    in all, or all it can where that is less. Without rounding it equals
    `counts_global(n_remove, order)`.
    """
    def removed(counts):
      return sum(g.size - counts[g.id] for g in self.groups)

    lo, hi = n_remove, self.total
    if lo >= hi:
      return self.counts_global(hi, order)
    # Fast paths: the search below costs ~log2(total) passes over `order`.
    # Without rounding (every step 1) counts_global is already the answer,
    # and where its rounded counts already remove enough, the search would
    # stop at n_remove (removed counts grow with n_remove).
    first = self.counts_global(lo, order)
    if (all(step == 1 for step in self.steps.values())
        or removed(first) >= n_remove):
      return first
    lo += 1
    while lo < hi:
      mid = (lo + hi) // 2
      if removed(self.counts_global(mid, order)) >= n_remove:
        hi = mid
      else:
        lo = mid + 1
    return self.counts_global(lo, order)

  def counts_local(self, ratio):
    """Kept counts removing floor(ratio * size) from every group."""
    return {g.id: self._round(g, g.size - int(math.floor(ratio * g.size +
                                                          1e-9)))
            for g in self.groups}

  def counts_per_group(self, ratios):
    """Kept counts removing floor(ratios[gid] * size); others keep all."""
    return {g.id: self._round(g, g.size - int(math.floor(
        ratios.get(g.id, 0.0) * g.size + 1e-9))) for g in self.groups}

  def floor_counts(self):
    """The fewest channels every group may keep."""
    return {g.id: self.min_keep[g.id] for g in self.groups}

  @property
  def total(self):
    return sum(g.size for g in self.groups)

  def keep_indices(self, counts):
    """{group_id: sorted kept indices}: each group's top `counts` scores.

    A group with `blocks` > 1 keeps the top count / blocks of each block (a
    count that is not a multiple of `blocks` is rounded up to one). Groups
    that keep all their channels are absent.
    """
    keep = {}
    for g in self.groups:
      n = counts[g.id]
      blocks = getattr(g, "blocks", 1)
      if n < g.size:
        s = np.asarray(self.scores[g.id])
        if blocks > 1:
          per = g.size // blocks
          top = np.concatenate([
              b * per + np.argsort(-s[b * per:(b + 1) * per],
                                   kind="stable")[:-(-n // blocks)]
              for b in range(blocks)])
        else:
          top = np.argsort(-s, kind="stable")[:n]
        keep[g.id] = np.sort(top)
    return keep


def limit_phrases(grouped_steps, left_whole, empty=None, name=None):
  """The parts of an 'unreachable target' message that MACs and latency
  targets share: grouped-conv steps ({group_id: step}), a note when no
  group is left (`empty`, or None), and the groups left whole
  ({group_id: why}). `name` gives the id said for a group id (e.g.
  `Planner.name`); by default the id itself."""
  name = name or (lambda gid: gid)
  out = []
  if grouped_steps:
    out.append("groups of grouped convs keeping multiples of "
               "lcm(round_to, blocks) " +
               ", ".join(f"{name(gid)!r}: {n}"
                         for gid, n in grouped_steps.items()))
  if empty:
    out.append(empty)
  if left_whole:
    out.append("groups left whole: " + ", ".join(
        f"{name(gid)!r} ({why})" for gid, why in left_whole.items()))
  return out


def check_reachable(planner, macs_model, macs_before, target,
                    left_whole=None):
  """Raises ValueError when no removal reaches `target` MACs cut.

  Args:
    planner: a `Planner`; its `floor_counts` are the fewest channels kept.
    macs_model: an object with `macs(counts) -> int`.
    macs_before: the model's MACs.
    target: fraction of `macs_before` to remove, in (0, 1).
    left_whole: optional {group_id: why} of prunable groups the planner
      does not plan (e.g. 'by `ignore`'), named in the message.

  Raises:
    UnreachableTargetError: a ValueError giving the largest reachable
      reduction and what limits it: `min_channels`, `round_to` (and the
      steps of grouped-conv groups), and the groups left whole, named by
      `planner.name`.
  """
  floor = macs_model.macs(planner.floor_counts())
  if floor <= macs_before * (1.0 - target) + 1e-9:
    return
  best = 1.0 - floor / macs_before
  limits = [f"min_channels={planner.min_channels}",
            f"round_to={planner.round_to}"]
  steps = {gid: n for gid, n in planner.steps.items()
           if n != planner.round_to}
  limits += limit_phrases(steps, left_whole,
                          "no group left to prune" if not planner.groups
                          else None, planner.name)
  raise UnreachableTargetError("target_macs", target, best, "reachable MACs",
                               limits)


def search_macs(planner, macs_model, macs_before, target, scope="global",
                left_whole=None):
  """Kept counts of the smallest removal that reaches `target` MACs cut.

  Channels are removed along `planner.order` ('global') or
  `planner.local_order` ('local'); a binary search finds the fewest removed
  channels whose MACs (`macs_model.macs(counts)`) are at most
  (1 - target) * macs_before. When the last channel overshoots by more than
  2% of `macs_before`, the ranking is walked on from just before it,
  removing only channels that do not overshoot.

  Args:
    planner: a `Planner`.
    macs_model: an object with `macs(counts) -> int` (e.g.
      `tfprune_survey.metrics.macs_model.MacsModel`).
    macs_before: the model's MACs.
    target: fraction of `macs_before` to remove, in (0, 1).
    scope: 'global' or 'local'.
    left_whole: optional {group_id: why} of prunable groups the planner
      does not plan, named when the target is unreachable.

  Returns:
    {group_id: kept count}.

  Raises:
    ValueError: when `target` cannot be reached (see `check_reachable`:
      the message gives the largest reachable reduction and its limits).
  """
  goal = macs_before * (1.0 - target)
  check_reachable(planner, macs_model, macs_before, target, left_whole)
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


__all__ = ["PlanArgs", "Planner", "SCOPES", "check_choice", "check_fraction",
           "check_int", "check_names", "check_verbose", "check_plan_args",
           "check_ratios",
           "check_reachable",
           "check_local_only", "check_scope", "search_macs",
           "UnreachableTargetError"]
