"""Network Slimming: |gamma| of BatchNormalization (Liu et al., 2017)."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("slimming")
class Slimming(Criterion):
  """abs(gamma) of the BatchNormalization layers in each group.

  The paper trains with an L1 penalty on gamma so that unimportant channels
  shrink towards zero (`tps.sparsify_bn`), then prunes the smallest |gamma|.
  Groups with no BatchNormalization(scale=True) get no score and stay whole.

  Reference: Z. Liu, J. Li, Z. Shen, G. Huang, S. Yan, C. Zhang (2017),
  "Learning efficient convolutional networks through network slimming",
  ICCV.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across the group's BNs.

  Raises (when scoring):
    ValueError: if the model has no BatchNormalization with scale=True.
  """

  name = "slimming"
  reads = "BatchNormalization(scale=True) gamma"

  def score_parts(self, group, ctx):
    return [np.abs(v) for _, v in ctx.param_vectors(
        group, "gamma", "BatchNormalization")]
