"""Filter pruning via geometric median (He et al., 2019)."""

import numpy as np

from tfprune_survey.criteria import group_magnitude
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.registry import register_criterion


def distance_sums(filters):
  """For each row, the sum of Euclidean distances to all rows."""
  sq = (filters * filters).sum(axis=1)
  d2 = sq[:, None] + sq[None, :] - 2.0 * filters @ filters.T
  return np.sqrt(np.maximum(d2, 0.0)).sum(axis=1)


@register_criterion("fpgm")
class FPGM(Criterion):
  """Distance of each filter to the others of its layer; keep the largest.

  A filter close to the geometric median of its layer is redundant: the
  others can represent it. As He et al. do, the geometric median is
  approximated by scoring each filter with the sum of its Euclidean
  distances to the layer's other filters; the smallest sums are pruned.

  With `include='producers'` (the default) the filters are the producers'
  kernel slices, one score vector per producer, combined with `reduction`.
  With `include='group'` each channel is one vector: the concatenation of
  every parameter slice the group removes (producer kernels and biases, BN
  gamma and beta, consumers' input slices; see
  `tfprune_survey/criteria/group_magnitude.py`), the distance sums are taken
  between these vectors, and divided by their mean over the group's
  channels (Torch-Pruning's normalizer='mean'). Torch-Pruning's own
  `FPGMImportance` differs: it takes distances per layer between |w|^p
  vectors and averages the layers.

  Reference: Y. He, P. Liu, Z. Wang, Z. Hu, Y. Yang (2019), "Filter pruning
  via geometric median for deep convolutional neural networks
  acceleration", CVPR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers
      (unused with 'group').
    include: 'producers' (default) or 'group'.

  Raises:
    ValueError: for an unknown `reduction` or `include`.
  """

  name = "fpgm"

  def __init__(self, reduction="mean", include="producers"):
    super().__init__(reduction)
    self.include = group_magnitude.check_include(include)

  def score_parts(self, group, ctx):
    if self.include == "group":
      vectors = group_magnitude.group_vectors(group, ctx)
      if vectors is None:
        return []
      return [group_magnitude.normalize_mean(distance_sums(vectors))]
    return [distance_sums(f) for f in ctx.producer_filters(group)]

  def get_config(self):
    return {"reduction": self.reduction, "include": self.include}
