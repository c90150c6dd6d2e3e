"""Variance of channel responses (Polyak and Wolf, 2015)."""

import numpy as np

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.activation import stat_ops
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("variance")
class Variance(ActivationCriterion):
  """Variance over samples of each channel's per-sample activation norm.

  For each sample the L2 norm of a channel's activations over all positions
  of its feature map (read before any pooling, see `ActivationCriterion`)
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

  def batch_stats(self, y, grad, ops=None):
    del grad
    ops = ops or stat_ops()
    return {"norms": ops.sqrt(ops.sum(ops.square(y), axis=1))}

  def finalize(self, stats):
    return np.var(stats["norms"].astype(np.float64), axis=0)

  # Training path: running count, sum and sum of squares of the norms.
  def stream_spec(self, width):
    return {"n": ((), 0.0), "s1": ((width,), 0.0), "s2": ((width,), 0.0)}

  def stream_update(self, variables, y, grad):
    ops = stat_ops()
    norms = self.batch_stats(y, grad, ops)["norms"]
    return [variables["n"].assign_add(ops.sum(ops.ones_like(norms[:, 0]))),
            variables["s1"].assign_add(ops.sum(norms, axis=0)),
            variables["s2"].assign_add(ops.sum(norms * norms, axis=0))]

  def stream_finalize(self, values):
    n = max(float(values["n"]), 1.0)
    mean = values["s1"].astype(np.float64) / n
    return np.maximum(values["s2"].astype(np.float64) / n - mean * mean, 0.0)
