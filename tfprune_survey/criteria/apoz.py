"""Average Percentage of Zeros (Hu et al., 2016)."""

import numpy as np

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.activation import stat_ops
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("apoz")
class APoZ(ActivationCriterion):
  """Fraction of zero activations of each channel after its ReLU, negated.

  APoZ is counted over all samples and positions of the group's feature
  map read before any pooling, Flatten or Concatenate (the ReLU's output,
  see `ActivationCriterion`), never of pooled values. A channel with a high
  APoZ rarely fires and is pruned first, so the score is `-APoZ` (higher
  means keep). The count is of values <= 0: after a ReLU these are exactly
  the zeros; for a channel with no ReLU before its consumers it is the
  fraction a ReLU would zero.

  Reference: H. Hu, R. Peng, Y.-W. Tai, C.-K. Tang (2016), "Network
  trimming: a data-driven neuron pruning approach towards efficient deep
  architectures", arXiv:1607.03250.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across feature maps.
  """

  name = "apoz"
  stat_modes = {"zeros": "sum", "count": "sum"}

  def batch_stats(self, y, grad, ops=None):
    del grad
    ops = ops or stat_ops()
    zeros = ops.sum(ops.cast(y <= 0, "float32"), axis=(0, 1))
    count = ops.sum(ops.ones_like(y[:, :, 0]))
    return {"zeros": zeros, "count": count}

  def finalize(self, stats):
    return -(stats["zeros"] / np.maximum(stats["count"], 1.0))
