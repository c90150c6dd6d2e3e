"""Sparse Structure Selection: |lambda| of ChannelScale (Huang and Wang, 2018)."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("sss")
class SSS(Criterion):
  """abs(scale) of the `ChannelScale` layers in each group.

  SSS attaches a learnable scale to each channel (or residual branch) and
  trains it with an L1 penalty (`tps.add_scaling_factors`); channels whose
  scale is near zero are pruned. In a group without a ChannelScale the
  BatchNormalization gamma, which is also a per-channel scale, is read
  instead; groups with neither stay whole.

  Reference: Z. Huang, N. Wang (2018), "Data-driven sparse structure
  selection for deep neural networks", ECCV.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across the group's scales.

  Raises (when scoring):
    ValueError: if the model has neither ChannelScale layers nor
      BatchNormalization(scale=True) in a prunable group.
  """

  name = "sss"
  reads = "ChannelScale scales (or BatchNormalization gamma)"
  reads_hint = "; add them with tps.ChannelScale / tps.add_scaling_factors"

  def score_parts(self, group, ctx):
    scales = ctx.param_vectors(group, "scale", "ChannelScale")
    if not scales:
      scales = ctx.param_vectors(group, "gamma", "BatchNormalization")
    return [np.abs(v) for _, v in scales]
