"""The Criterion interface and the shared reduction of per-layer scores."""

import numpy as np

REDUCTIONS = ("mean", "sum", "max")


def reduce_scores(parts, reduction):
  """Combines per-layer score vectors of one group (mean, sum or max)."""
  stacked = np.stack([np.asarray(p, np.float64) for p in parts])
  if reduction == "mean":
    return stacked.mean(axis=0)
  if reduction == "sum":
    return stacked.sum(axis=0)
  return stacked.max(axis=0)


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
    if not out and self.reads:
      raise ValueError(
          f"criterion '{self.name}' reads {self.reads}, but model "
          f"'{ctx.model.name}' has none in a prunable group{self.reads_hint}")
    return out

  def get_config(self):
    return {"reduction": self.reduction}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
    return f"{type(self).__name__}({args})"
