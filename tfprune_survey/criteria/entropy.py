"""Entropy of channel responses (Luo and Wu, 2017)."""

import numpy as np
import tensorflow as tf

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.activation import stat_ops
from tfprune_survey.criteria.base import check_int
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


def _min_max(strategy, lo, hi):
  """In a merge_call: the min of `lo` and max of `hi` over the replicas."""
  return (tf.reduce_min(tf.stack(strategy.experimental_local_results(lo)), 0),
          tf.reduce_max(tf.stack(strategy.experimental_local_results(hi)), 0))


@register_criterion("entropy")
class Entropy(ActivationCriterion):
  """Entropy of each channel's global-average-pooled activation over samples.

  Each sample's feature map (read before any pooling, see
  `ActivationCriterion`) is global-average-pooled per channel here; the
  pooled values of a channel over all samples are binned into `bins`
  equal-width bins between their min and max, and the entropy of that
  histogram is the score. A channel that always responds the same carries
  little information and is pruned first. Only the pooled values (one float
  per sample and channel) are kept in memory.

  Reference: J.-H. Luo, J. Wu (2017), "An entropy-based pruning method for
  CNN compression", arXiv:1706.05791.

  Args:
    bins: number of histogram bins, an int >= 2. Defaults to 100.
    reduction: 'mean' (default), 'sum' or 'max' across feature maps.

  Raises:
    TypeError: for `bins` that is not a whole number (e.g. None, 2.5).
    ValueError: for `bins` < 2, or an unknown `reduction`.
  """

  name = "entropy"
  stat_modes = {"pooled": "concat"}

  def __init__(self, bins=100, reduction="mean"):
    super().__init__(reduction)
    self.bins = check_int(bins, "bins", 2, "criterion 'entropy'")

  def batch_stats(self, y, grad, ops=None):
    del grad
    ops = ops or stat_ops()
    return {"pooled": ops.mean(y, axis=1)}

  def finalize(self, stats):
    return channel_entropy(stats["pooled"], self.bins)

  # Training path: a running histogram per channel. Its bin edges are fixed
  # by the first batch after each reset (that batch's min to max, widened by
  # 5% of the span on each side); later values beyond them fall into the
  # end bins. An approximation of the one-pass histogram above, which sees all
  # values before choosing edges.
  #
  # The wrapper's statistics are summed across replicas under a
  # tf.distribute strategy (MirroredStrategy): a plain `assign` would add up
  # the replicas' values (the edges doubling at every step with two
  # replicas), and the same constant from every replica cannot be summed at
  # all. So every variable moves by `assign_add` of a per-replica share, the
  # first batch's edges are the min and max over all replicas' shards (the
  # edges one device takes from the whole batch; read in a merge_call, not
  # by collective ops), and each replica bins its shard with the edges as
  # stored.
  def stream_spec(self, width):
    return {"hist": ((self.bins, width), 0.0), "lo": ((width,), 0.0),
            "hi": ((width,), 0.0), "ready": ((), 0.0)}

  def stream_update(self, variables, y, grad):
    del grad
    replica = tf.distribute.get_replica_context()
    replicas = replica.num_replicas_in_sync if replica is not None else 1
    pooled = tf.reduce_mean(y, axis=1)            # (B, C)
    lo_b, hi_b = tf.reduce_min(pooled, 0), tf.reduce_max(pooled, 0)
    if replicas > 1:   # the whole batch's min and max, over every shard
      lo_b, hi_b = replica.merge_call(_min_max, args=(lo_b, hi_b))
    span = tf.maximum(hi_b - lo_b, 1e-6)
    first = variables["ready"] < 0.5
    share = 1.0 / replicas   # each replica adds its share of a change
    moves = [
        variables["lo"].assign_add(tf.where(
            first, lo_b - 0.05 * span - variables["lo"], 0.0) * share),
        variables["hi"].assign_add(tf.where(
            first, hi_b + 0.05 * span - variables["hi"], 0.0) * share),
        variables["ready"].assign_add(tf.where(first, share, 0.0))]
    with tf.control_dependencies(moves):
      lo = tf.identity(variables["lo"])
      hi = tf.identity(variables["hi"])
    width = tf.maximum(hi - lo, 1e-12) / self.bins
    idx = tf.clip_by_value(tf.cast(tf.floor((pooled - lo) / width), tf.int32),
                           0, self.bins - 1)                    # (B, C)
    onehot = tf.one_hot(idx, self.bins, axis=1)                 # (B, bins, C)
    return moves + [variables["hist"].assign_add(
        tf.reduce_sum(onehot, axis=0))]

  def stream_finalize(self, values):
    counts = values["hist"].astype(np.float64)                  # (bins, C)
    total = np.maximum(counts.sum(axis=0, keepdims=True), 1.0)
    p = counts / total
    with np.errstate(divide="ignore", invalid="ignore"):
      terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=0)

  def get_config(self):
    return {"bins": self.bins, "reduction": self.reduction}
