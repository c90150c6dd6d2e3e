"""ThiNet: greedy channel selection by the next layer's output (Luo et al. 2017)."""

import numpy as np

from tfprune_survey.criteria.reconstruction_base import (
    ReconstructionCriterion)
from tfprune_survey.criteria.registry import register_criterion


def removal_order(gram):
  """ThiNet's greedy removal order from the contributions' Gram matrix.

  With Z_c a channel's contribution to the consumers' outputs at the
  sampled positions, removing a set T leaves the error ||sum_{c in T} Z_c||²
  = 1_Tᵀ G 1_T. Each step removes the channel that increases it least
  (G[c, c] + 2 sum_{t in T} G[c, t]); ties go to the lower index.

  Args:
    gram: (C, C) Gram matrix G of the channels' contributions.

  Returns:
    (C,) channel indices, the first removed first.
  """
  g = np.asarray(gram, np.float64)
  size = g.shape[0]
  cross = np.zeros(size)
  left = np.ones(size, bool)
  order = []
  for _ in range(size):
    cost = np.where(left, np.diag(g) + 2.0 * cross, np.inf)
    c = int(np.argmin(cost))
    order.append(c)
    left[c] = False
    cross += g[:, c]
  return np.asarray(order, np.int64)


@register_criterion("thinet")
class ThiNet(ReconstructionCriterion):
  """Greedy selection by the consumers' reconstruction error (ThiNet).

  The output of a consumer (the conv or Dense reading the group) at one
  position is the sum of its input channels' contributions. ThiNet removes,
  one at a time, the channel whose removal least increases the squared
  error of the consumers' outputs on sampled positions; the order of
  removal is the score (the first removed scores 0, the last C - 1). The
  contributions of every output channel at `positions_per_sample` seeded
  random positions of each sample are used (the paper samples one output
  channel per location; all of them give the same expectation with less
  variance), over every top-level Conv1D, Conv2D and Dense consumer of the
  group (their equations concatenated). A group without such a consumer
  (e.g. read only by depthwise convs) gets no scores and stays whole.

  The scores are ranks within a group, so ThiNet ranks locally: use
  `scope='local'` or `ratios`; `scope='global'` is refused. Pair it with
  `tps.prune(..., reconstruct=True)` for ThiNet's least-squares re-fit.

  Reference: J.-H. Luo, J. Wu, W. Lin (2017), "ThiNet: A filter level
  pruning method for deep neural network compression", ICCV.

  Args:
    positions_per_sample: random output positions per sample. Defaults to
      10, as in the paper.
    seed: seed of the position sampling. Defaults to 0.
    reduction: kept for the interface (one score vector per group).
  """

  name = "thinet"
  local_only = True

  def gram_scores(self, gram, equations):
    del equations
    order = removal_order(gram)
    scores = np.empty(len(order))
    scores[order] = np.arange(len(order), dtype=np.float64)
    return scores
