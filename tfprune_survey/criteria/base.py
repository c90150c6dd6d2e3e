"""The Criterion interface and the shared reduction of per-layer scores."""

import numbers
import warnings

import numpy as np

REDUCTIONS = ("mean", "sum", "max")


def check_int(value, name, minimum, owner):
  """`value` as an int, or an error naming the argument and its owner.

  Whole floats (3.0, e.g. from a config file) are taken as ints.

  Raises:
    TypeError: for a bool, None, a string, or a number that is not whole.
    ValueError: for an int below `minimum`.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
      int(value) != value):
    raise TypeError(f"{owner}: `{name}` must be an int >= {minimum}, got "
                    f"{value!r} of type {type(value).__name__}")
  if value < minimum:
    raise ValueError(f"{owner}: `{name}` must be an int >= {minimum}, got "
                     f"{value!r}")
  return int(value)


def reduce_scores(parts, reduction):
  """Combines per-layer score vectors of one group (mean, sum or max)."""
  stacked = np.stack([np.asarray(p, np.float64) for p in parts])
  if reduction == "mean":
    return stacked.mean(axis=0)
  if reduction == "sum":
    return stacked.sum(axis=0)
  return stacked.max(axis=0)


def nested_consumers(ctx, group):
  """The consumers of `group` that sit inside a nested model (paths)."""
  nested = {c.path for c in ctx.graph.calls if len(c.names) != 1}
  return [p for p in group.consumers if p in nested]


def warn_nested(name, ctx, scores, unread, scored_anyway=False):
  """Warns about the groups whose nested-model consumers were not read.

  Args:
    name: the criterion's name.
    ctx: the ScoringContext.
    scores: {group_id: scores} as scored.
    unread: what the criterion cannot read there (for the message).
    scored_anyway: also warn for a scored group with such consumers (they
      were left out of its scores); else only for unscored groups.
  """
  whole, partial = [], []
  for group in ctx.groups:
    found = nested_consumers(ctx, group)
    if not found:
      continue
    if group.id not in scores:
      whole.append((group.id, found))
    elif scored_anyway:
      partial.append((group.id, found))
  hint = ("; 'taylor_fo' and the weight criteria ('l1', 'l2', 'fpgm') read "
          "layers inside nested models")
  for groups, fate in ((whole, "gets no scores and is left whole"),
                       (partial, "is scored without them")):
    for gid, layers in groups:
      warnings.warn(
          f"criterion '{name}' cannot read {unread} inside nested models: "
          f"group '{gid}' is read there by layer"
          f"{'s' if len(layers) > 1 else ''} "
          f"{', '.join(repr(p) for p in layers)}, so it {fate}{hint}",
          UserWarning, stacklevel=4)


class Criterion:
  """Scores the channels of each prunable group; higher means keep.

  A criterion never modifies the model. Subclasses implement
  `score_parts(group, ctx)`, returning one score vector per coupled layer (or
  per observed feature map) of the group, or an empty list when it has
  nothing to read for that group; the parts are combined with `reduction`.

  Data-dependent criteria set `requires_data = True` and implement
  `batch_stats` / `finalize` (see `ActivationCriterion`).

  Args:
    reduction: how the scores of coupled layers combine: 'mean' (default),
      'sum' or 'max'.
  """

  name = None
  requires_data = False
  # True when scoring differentiates a loss (so the data needs labels).
  needs_gradients = False
  # True when scores rank channels within a group only and are not
  # comparable across groups (so `prune` refuses scope='global').
  local_only = False
  # What a criterion that must find something to read reads, for the error
  # raised when no prunable group has it (e.g. 'BatchNormalization gamma').
  reads = None
  reads_hint = ""

  def __init__(self, reduction="mean"):
    if reduction not in REDUCTIONS:
      raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got "
                       f"{reduction!r}")
    self.reduction = reduction

  def score_parts(self, group, ctx):
    raise NotImplementedError

  def score(self, ctx):
    """{group_id: np.ndarray (group.size,)} for every scorable group."""
    out = {}
    for group in ctx.groups:
      parts = self.score_parts(group, ctx)
      if parts:
        out[group.id] = reduce_scores(parts, self.reduction)
    self.after_scoring(ctx, out)
    self.check_scored(ctx, out)
    return out

  def after_scoring(self, ctx, scores):
    """Called by `score` with what it scored, before `check_scored`: e.g.
    warnings about the groups left unscored. Does nothing by default."""

  def check_scored(self, ctx, scores):
    """Raises, naming what the criterion reads (`reads`), when it set
    `reads` and scored no group: pruning would silently remove nothing."""
    if not scores and self.reads:
      raise ValueError(
          f"criterion '{self.name}' reads {self.reads}, but model "
          f"'{ctx.model.name}' has none in a prunable group{self.reads_hint}")

  # ---- the streaming protocol of training-time pruning --------------------
  # Without `data=`, `prune_channels` gathers a data criterion's statistics
  # inside the training graph, in the wrappers of the layers this names:
  # 'inputs' (the feature maps consumers read: activation criteria) or
  # 'outputs' (the outputs of the layers holding the scored parameters:
  # taylor_fo). None: the criterion has no such form.
  stream_site = None

  def stream_layers(self, ctx):
    """{layer path: channel width} of the tensors to observe in training."""
    del ctx
    return {}

  def stream_sides(self, ctx):
    """{layer path: 'input' | 'output'} of the layers of `stream_layers`
    whose feature-map statistics ('inputs' site) are read on a side other
    than their input; a layer not named is observed at its input."""
    del ctx
    return {}

  def stream_scores(self, ctx, stats_of):
    """Scores from the statistics gathered in the training graph.

    Args:
      ctx: a `ScoringContext` of the plain (unwrapped) model.
      stats_of: callable(layer path) -> {name: np.ndarray} of that layer's
        running statistics, or None when it kept none.

    Returns:
      {group_id: np.ndarray (group.size,)}, as `score`.
    """
    raise NotImplementedError(
        f"criterion '{self.name}' has no in-graph statistics; pass `data=`")

  def get_config(self):
    return {"reduction": self.reduction}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({args})"
