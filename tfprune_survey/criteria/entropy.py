"""Entropy of channel responses (Luo and Wu, 2017)."""

import numpy as np
import tensorflow as tf

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.registry import register_criterion


def channel_entropy(values, bins):
  """Entropy (nats) of each column of `values` (samples, C) over `bins` bins."""
  out = np.zeros(values.shape[1])
  for c in range(values.shape[1]):
    col = values[:, c]
    lo, hi = col.min(), col.max()
    if hi <= lo:
      continue
    counts, _ = np.histogram(col, bins=bins, range=(lo, hi))
    p = counts[counts > 0] / len(col)
    out[c] = -(p * np.log(p)).sum()
  return out


@register_criterion("entropy")
class Entropy(ActivationCriterion):
  """Entropy of each channel's global-average-pooled activation over samples.

  Each sample's feature map is global-average-pooled per channel; the
  pooled values of a channel over all samples are binned into `bins`
  equal-width bins between their min and max, and the entropy of that
  histogram is the score. A channel that always responds the same carries
  little information and is pruned first. Only the pooled values (one float
  per sample and channel) are kept in memory.

  Reference: J.-H. Luo, J. Wu (2017), "An entropy-based pruning method for
  CNN compression", arXiv:1706.05791.

  Args:
    bins: number of histogram bins. Defaults to 100.
    reduction: 'mean' (default), 'sum' or 'max' across feature maps.
  """

  name = "entropy"
  stat_modes = {"pooled": "concat"}

  def __init__(self, bins=100, reduction="mean"):
    super().__init__(reduction)
    if int(bins) < 2:
      raise ValueError(f"`bins` must be >= 2, got {bins}")
    self.bins = int(bins)

  def batch_stats(self, y, grad):
    del grad
    return {"pooled": tf.reduce_mean(y, axis=1)}

  def finalize(self, stats):
    return channel_entropy(stats["pooled"], self.bins)

  def get_config(self):
    return {"bins": self.bins, "reduction": self.reduction}
