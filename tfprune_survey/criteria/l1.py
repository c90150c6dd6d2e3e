"""L1 filter norm (Li et al., 2017, "Pruning filters for efficient ConvNets")."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("l1")
class L1Norm(Criterion):
  """Sum of absolute weights of each producer filter.

  Reads the producers' own filters (the kernel slice of each output channel;
  the pointwise kernel of a SeparableConv), not consumer slices. Coupled
  producers (e.g. across a residual add) are combined with `reduction`.

  Reference: H. Li, A. Kadav, I. Durdanovic, H. Samet, H. P. Graf (2017),
  "Pruning filters for efficient ConvNets", ICLR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled producers.
  """

  name = "l1"

  def score_parts(self, group, ctx):
    return [np.abs(f).sum(axis=1) for f in ctx.producer_filters(group)]
