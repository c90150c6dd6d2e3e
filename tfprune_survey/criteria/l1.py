"""L1 filter norm (Li et al., 2017, "Pruning filters for efficient ConvNets")."""

import numpy as np

from tfprune_survey.criteria import group_magnitude
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("l1")
class L1Norm(Criterion):
  """Sum of absolute weights of each producer filter (or of the whole group).

  With `include='producers'` (the default) it reads the producers' own
  filters (the kernel slice of each output channel; the pointwise kernel of
  a SeparableConv), not consumer slices; coupled producers (e.g. across a
  residual add) are combined with `reduction`.

  With `include='group'` it scores as Torch-Pruning's group magnitude
  (Fang et al., 2023): sum of |w| per channel over every parameter slice the
  group removes (producer kernels and biases, BN gamma and beta, consumers'
  input slices), the slices combined with `reduction` and the result divided
  by its mean; see `tfprune_survey/criteria/group_magnitude.py`.

  Reference: H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf (2017),
  "Pruning filters for efficient ConvNets", ICLR; G. Fang, X. Ma, M. Song,
  M. B. Mi, X. Wang (2023), "DepGraph: Towards any structural pruning",
  CVPR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers
      (with 'group': across the group's parameter slices).
    include: 'producers' (default) or 'group'.

  Raises:
    ValueError: for an unknown `reduction` or `include`.

  Example:
    >>> tps.prune(model, tps.criteria.L1Norm(include="group"), ratio=0.5)
  """

  name = "l1"

  def __init__(self, reduction="mean", include="producers"):
    super().__init__(reduction)
    self.include = group_magnitude.check_include(include)

  def score_parts(self, group, ctx):
    if self.include == "group":
      parts = group_magnitude.slice_norms(group, ctx, 1)
      if not parts:
        return []
      return [group_magnitude.normalize_mean(
          reduce_scores(parts, self.reduction))]
    return [np.abs(f).sum(axis=1) for f in ctx.producer_filters(group)]

  def get_config(self):
    return {"reduction": self.reduction, "include": self.include}
