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

  # Training path: the running count, sum and sum of squares of the norms
  # minus a shift, the mean norm of the first batch after each reset (under
  # a tf.distribute strategy, the mean of the replicas' shard means, so that
  # no collective runs inside the layer). The variables are
  # float32: raw sums of squares would leave the variance of a channel whose
  # norm hardly varies (the channels this criterion prunes first) to
  # rounding, E[x^2] - E[x]^2 cancelling to 0; around the shift it is kept.
  # The statistics are summed across replicas, so every variable moves by
  # `assign_add` (see `Entropy.stream_update`).
  def stream_spec(self, width):
    return {"n": ((), 0.0), "s1": ((width,), 0.0), "s2": ((width,), 0.0),
            "shift": ((width,), 0.0), "ready": ((), 0.0)}

  def stream_update(self, variables, y, grad):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    ops = stat_ops()
    norms = self.batch_stats(y, grad, ops)["norms"]
    count = ops.sum(ops.ones_like(norms[:, 0]))
    total = ops.sum(norms, axis=0)
    replica = tf.distribute.get_replica_context()
    replicas = replica.num_replicas_in_sync if replica is not None else 1
    first = variables["ready"] < 0.5
    share = 1.0 / replicas   # each replica adds its share of a change
    mean = total / tf.maximum(count, 1.0)   # this replica's shard
    moves = [
        variables["shift"].assign_add(tf.where(
            first, mean - variables["shift"], 0.0) * share),
        variables["ready"].assign_add(tf.where(first, share, 0.0))]
    with tf.control_dependencies(moves):
      centred = norms - variables["shift"]
    return moves + [
        variables["n"].assign_add(count),
        variables["s1"].assign_add(ops.sum(centred, axis=0)),
        variables["s2"].assign_add(ops.sum(centred * centred, axis=0))]

  def stream_finalize(self, values):
    n = max(float(values["n"]), 1.0)
    mean = values["s1"].astype(np.float64) / n
    return np.maximum(values["s2"].astype(np.float64) / n - mean * mean, 0.0)
