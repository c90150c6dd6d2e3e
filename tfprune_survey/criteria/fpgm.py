"""Filter pruning via geometric median (He et al., 2019)."""

import numpy as np

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

  Reference: Y. He, P. Liu, Z. Wang, Z. Hu, Y. Yang (2019), "Filter pruning
  via geometric median for deep convolutional neural networks
  acceleration", CVPR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers.
  """

  name = "fpgm"

  def score_parts(self, group, ctx):
    return [distance_sums(f) for f in ctx.producer_filters(group)]
