"""First-order Taylor expansion on feature maps (Molchanov et al., 2016)."""

import numpy as np

from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.activation import stat_ops
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("taylor")
class Taylor(ActivationCriterion):
  """abs(mean over positions of dL/dY * Y), averaged over samples.

  For each sample, the product of a feature map with the gradient of that
  sample's loss is averaged over positions and its absolute value taken;
  this is averaged over samples and L2-normalised per layer (per feature
  map). The loss is the model's compiled loss if it has one, else sparse
  categorical cross-entropy against the data's labels.

  Reference: P. Molchanov, S. Tyree, T. Karras, T. Aila, J. Kautz (2017),
  "Pruning convolutional neural networks for resource efficient
  inference", ICLR (arXiv:1611.06440, 2016).

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across feature maps.
  """

  name = "taylor"
  needs_gradients = True
  stat_modes = {"sum": "sum", "count": "sum"}

  def batch_stats(self, y, grad, ops=None):
    ops = ops or stat_ops()
    per_sample = ops.abs(ops.mean(grad * y, axis=1))
    return {"sum": ops.sum(per_sample, axis=0),
            "count": ops.sum(ops.ones_like(per_sample[:, 0]))}

  def finalize(self, stats):
    return stats["sum"] / np.maximum(stats["count"], 1.0)

  def score_parts(self, group, ctx):
    parts = []
    for part in super().score_parts(group, ctx):
      norm = np.sqrt((part * part).sum())
      parts.append(part / norm if norm > 0 else part)
    return parts
