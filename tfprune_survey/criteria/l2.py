"""L2 filter norm (Li et al., 2017)."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("l2")
class L2Norm(Criterion):
  """Euclidean norm of each producer filter.

  Reference: H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf (2017),
  "Pruning filters for efficient ConvNets", ICLR (the L2 variant of their
  magnitude criterion).

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers.
  """

  name = "l2"

  def score_parts(self, group, ctx):
    return [np.sqrt((f * f).sum(axis=1)) for f in ctx.producer_filters(group)]
