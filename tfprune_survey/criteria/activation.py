"""Base of criteria that read feature maps: one streaming pass over data."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import warn_nested


class TFOps:
  """The `keras.ops` functions the statistics use, written in TensorFlow.

  For a tf_keras model scored in a process whose Keras 3 runs on another
  backend (where `keras.ops` would not take TensorFlow tensors).
  """

  @staticmethod
  def _tf():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf

  @classmethod
  def sum(cls, x, axis=None):
    return cls._tf().reduce_sum(x, axis=axis)

  @classmethod
  def mean(cls, x, axis=None):
    return cls._tf().reduce_mean(x, axis=axis)

  @classmethod
  def abs(cls, x):
    return cls._tf().abs(x)

  @classmethod
  def sqrt(cls, x):
    return cls._tf().sqrt(x)

  @classmethod
  def square(cls, x):
    return cls._tf().square(x)

  @classmethod
  def cast(cls, x, dtype):
    return cls._tf().cast(x, dtype)

  @classmethod
  def ones_like(cls, x):
    return cls._tf().ones_like(x)

  @classmethod
  def reshape(cls, x, shape):
    return cls._tf().reshape(x, shape)


def stat_ops(backend="tensorflow"):
  """The ops namespace `batch_stats` computes with on `backend`.

  `keras.ops` when Keras 3 runs on `backend` (its ops then take and give
  that backend's tensors: TensorFlow tensors, also inside a tf_keras
  training graph; jax arrays; torch tensors); for TensorFlow under a Keras
  3 that runs elsewhere, `TFOps`.

  Raises:
    NotImplementedError: for another backend than Keras 3's own.
  """
  import keras  # pylint: disable=g-import-not-at-top
  if keras.backend.backend() == backend:
    return keras.ops
  if backend == "tensorflow":
    return TFOps
  raise NotImplementedError(
      f"statistics on the '{backend}' backend need Keras 3 to run on it "
      f"(KERAS_BACKEND={backend}); it runs on '{keras.backend.backend()}'")


class ActivationCriterion(Criterion):
  """Scores channels from the group's feature maps.

  The feature map of a group is read at the last point that still has the
  producer's spatial layout: after the producer's BN, activations,
  element-wise ops and merges (Add etc.), and before any pooling, striding,
  resizing, Flatten, Reshape or Concatenate (`collector.observation_points`:
  each consumer's input walked back through those layers). For a conv
  followed by ReLU and GlobalAveragePooling it is the ReLU's output, not the
  pooled vector. Every batch is reshaped to (B, positions, C) and reduced to
  small statistics by `batch_stats`, written against `keras.ops` so that it
  runs on the model's backend: inside a `tf.function` on TensorFlow
  (tf_keras, or Keras 3 on TensorFlow; also inside the training graph of
  `prune_channels`), on jax arrays (jitted) or torch tensors otherwise. The
  statistics are accumulated over all batches (so batching does not change
  a score) and turned into scores by `finalize` (numpy).

  Subclasses set `stat_modes` ({name: 'sum' | 'concat'}) and implement
  `batch_stats(y, grad, ops)` and `finalize(stats)`.
  """

  requires_data = True
  stat_modes = {}

  def batch_stats(self, y, grad, ops=None):
    """{name: statistic} of one batch.

    Args:
      y: the feature map, (B, positions, C) float32, a tensor of `ops`'
        backend.
      grad: dL/dY of the same shape for gradient criteria, else None.
      ops: the ops namespace to compute with: `keras.ops`, or `TFOps`
        (see `stat_ops`); None: `stat_ops('tensorflow')`.
    """
    raise NotImplementedError

  def finalize(self, stats):
    raise NotImplementedError

  # Streaming form, used by training-time pruning: statistics live in
  # variables of the consumer's ChannelPruneWrapper and are updated inside
  # the training graph from the training batches themselves. The default
  # works for criteria whose statistics are all 'sum'; others override.

  def stream_spec(self, width):
    """{name: (shape, initial value)} of the running statistics."""
    if any(m != "sum" for m in self.stat_modes.values()):
      raise NotImplementedError(
          f"criterion '{self.name}' has no streaming statistics")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    y = tf.ones([1, 1, width])
    stats = self.batch_stats(y, tf.ones_like(y) if self.needs_gradients
                             else None, stat_ops())
    return {k: (tuple(v.shape), 0.0) for k, v in stats.items()}

  def stream_update(self, variables, y, grad):
    """Ops that fold one batch (B, positions, C) into `variables` (TF)."""
    return [variables[k].assign_add(v)
            for k, v in self.batch_stats(y, grad, stat_ops()).items()]

  def stream_finalize(self, values):
    """Scores from the numpy values of the running statistics."""
    return self.finalize(values)

  # 'inputs': the statistics live in the wrappers' `observe` variables. Each
  # point is observed at the output of the layer that makes it where a
  # wrapper can hold that layer, else at its consumer's input
  # (`collector.stream_points`).
  stream_site = "inputs"

  def _stream_points(self, ctx):
    from tfprune_survey.criteria import collector  # pylint: disable=g-import-not-at-top
    roots = {g.root for g in ctx.groups}
    return [sp for sp in collector.stream_points(ctx.graph)
            if any(ctx.graph.root_of(s.var) in roots
                   for s in sp.layout.segments)]

  def stream_layers(self, ctx):
    return {sp.layer: sp.layout.width for sp in self._stream_points(ctx)}

  def stream_sides(self, ctx):
    return {sp.layer: sp.at for sp in self._stream_points(ctx)}

  def stream_scores(self, ctx, stats_of):
    from tfprune_survey.criteria import collector  # pylint: disable=g-import-not-at-top
    pairs = []
    for sp in self._stream_points(ctx):
      stats = stats_of(sp.layer)
      if stats is None:
        continue
      scores = np.asarray(self.stream_finalize(stats), np.float64)
      if scores.shape == (sp.layout.width,):
        pairs.append((collector.Point(None, sp.layout, sp.layer, sp.layer,
                                      sp.layer), scores))
    # The statistics were gathered in the training graph: score as if they
    # came from this criterion's own streaming pass.
    ctx.point_cache[id(self)] = pairs
    return self.score(ctx)

  def after_scoring(self, ctx, scores):
    """Warns naming the groups left unscored because their feature maps
    are read only inside nested models."""
    warn_nested(self.name, ctx, scores, "feature maps")

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
