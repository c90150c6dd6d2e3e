"""L2 filter norm (Li et al., 2017)."""

import numpy as np

from tfprune_survey.criteria import group_magnitude
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("l2")
class L2Norm(Criterion):
  """Euclidean norm of each producer filter (or group magnitude).

  With `include='producers'` (the default) the score is the L2 norm of
  each producer filter; coupled producers are combined with `reduction`.

  With `include='group'` it scores as Torch-Pruning's default
  `GroupMagnitudeImportance` (p=2; Fang et al., 2023): per parameter slice
  the group removes (producer kernels and biases, BN gamma and beta,
  consumers' input slices), the sum of w^2 of each channel (the squared
  norm, as Torch-Pruning), combined across slices with `reduction` (mean)
  and divided by the mean over the group's channels; see
  `tfprune_survey/criteria/group_magnitude.py`.

  Reference: H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf (2017),
  "Pruning filters for efficient ConvNets", ICLR (the L2 variant of their
  magnitude criterion); G. Fang, X. Ma, M. Song, M. B. Mi, X. Wang (2023),
  "DepGraph: Towards any structural pruning", CVPR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers
      (with 'group': across the group's parameter slices).
    include: 'producers' (default) or 'group'.

  Raises:
    ValueError: for an unknown `reduction` or `include`.

  Example:
    >>> tps.prune(model, tps.criteria.L2Norm(include="group"), ratio=0.5)
  """

  name = "l2"

  def __init__(self, reduction="mean", include="producers"):
    super().__init__(reduction)
    self.include = group_magnitude.check_include(include)

  def score_parts(self, group, ctx):
    if self.include == "group":
      parts = group_magnitude.slice_norms(group, ctx, 2)
      if not parts:
        return []
      return [group_magnitude.normalize_mean(
          reduce_scores(parts, self.reduction))]
    return [np.sqrt((f * f).sum(axis=1)) for f in ctx.producer_filters(group)]

  def get_config(self):
    return {"reduction": self.reduction, "include": self.include}
