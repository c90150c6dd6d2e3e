"""Base of criteria that read feature maps: one streaming pass over data."""

import numpy as np

from tfprune_survey.criteria.base import Criterion


class ActivationCriterion(Criterion):
  """Scores channels from the feature maps that consumers see.

  The feature map of a group is the input of each layer that reads it
  through a weight (conv, Dense, depthwise): after the producer's BN and
  activation, where present. Every batch is reshaped to (B, positions, C)
  and reduced to small statistics by `batch_stats` inside a `tf.function`;
  the statistics are accumulated over all batches (so batching does not
  change a score) and turned into scores by `finalize`.

  Subclasses set `stat_modes` ({name: 'sum' | 'concat'}) and implement
  `batch_stats(y, grad)` and `finalize(stats)`.
  """

  requires_data = True
  needs_gradients = False
  stat_modes = {}

  def batch_stats(self, y, grad):
    raise NotImplementedError

  def finalize(self, stats):
    raise NotImplementedError

  def score_parts(self, group, ctx):
    from tfprune_survey.criteria import collector  # pylint: disable=g-import-not-at-top
    out = []
    for point, scores in collector.point_scores(self, ctx):
      base = 0
      for seg in point.layout.segments:
        if (ctx.graph.root_of(seg.var) == group.root and seg.repeat == 1):
          out.append(np.asarray(scores[base:base + group.size], np.float64))
        base += seg.width
    return out
