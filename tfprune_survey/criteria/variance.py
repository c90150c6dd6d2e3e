"""Variance of channel responses (Polyak and Wolf, 2015)."""

import numpy as np
import tensorflow as tf

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("variance")
class Variance(ActivationCriterion):
  """Variance over samples of each channel's per-sample activation norm.

  For each sample the L2 norm of a channel's activations over all positions
  is taken; the score is the variance of these norms over samples (Polyak
  and Wolf, eq. 3). A channel whose response hardly varies with the input
  is pruned first. Only the norms (one float per sample and channel) are
  kept in memory.

  Reference: A. Polyak, L. Wolf (2015), "Channel-level acceleration of deep
  face representations", IEEE Access.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across feature maps.
  """

  name = "variance"
  stat_modes = {"norms": "concat"}

  def batch_stats(self, y, grad):
    del grad
    return {"norms": tf.sqrt(tf.reduce_sum(tf.square(y), axis=1))}

  def finalize(self, stats):
    return np.var(stats["norms"].astype(np.float64), axis=0)
