"""What a criterion may read: weights, BN vectors, and data statistics."""

import numpy as np

from tfprune_survey.frameworks import Framework

# Per-channel weights that are running statistics, not parameters.
STATISTICS = ("moving_mean", "moving_variance")


class ScoringContext:
  """Read-only access to a model for criteria.

  Args:
    model: the model being scored, of either Keras (never modified).
    graph: its `ChannelGraph`.
    data: optional data (see `tfprune_survey.data.iterate_batches`).
    steps: optional maximum number of batches.
    verbose: 1 shows a progress bar while data is streamed.
  """

  def __init__(self, model, graph, data=None, steps=None, verbose=0):
    self.verbose = verbose
    self.model = model
    self.graph = graph
    self.data = data
    self.steps = steps
    self.groups = graph.prunable_groups
    self._weights = {}
    # {id(criterion): [(Point, scores)]}: one streaming pass per criterion,
    # shared by all its groups (see criteria/collector.py).
    self.point_cache = {}

  def weights(self, path):
    """{short weight name: np.ndarray} of the layer at `path`."""
    if path not in self._weights:
      layer = self.graph.layer(path)
      self._weights[path] = {
          Framework.short_name(w): v
          for w, v in zip(layer.weights, layer.get_weights())}
    return self._weights[path]

  def effective_kernel(self, path, weight="kernel"):
    """The kernel the layer at `path` computes with, as float64.

    With Keras 3 LoRA enabled the layer computes with kernel +
    (lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b, not with its
    (frozen) base kernel alone; any other weight is returned as stored.
    """
    weights = self.weights(path)
    w = np.asarray(weights[weight], np.float64)
    if weight != "kernel" or "lora_kernel_b" not in weights:
      return w
    layer = self.graph.layer(path)
    rank = float(layer.lora_rank)
    # Keras 3 versions without lora_alpha scale by 1.
    scale = float(getattr(layer, "lora_alpha", None) or rank) / rank
    return w + scale * np.matmul(
        np.asarray(weights["lora_kernel_a"], np.float64),
        np.asarray(weights["lora_kernel_b"], np.float64))

  def producer_filters(self, group):
    """One (group.size, fan_in) matrix per producer: each row is a filter.

    The filters are those the layer computes with: with Keras 3 LoRA, the
    effective kernel (see `effective_kernel`), not the base kernel alone.
    """
    out = []
    for sl, base, seg in self.graph.group_segments(group):
      if sl.role != "producer" or sl.weight not in ("kernel",
                                                    "pointwise_kernel"):
        continue
      w = self.effective_kernel(sl.path, sl.weight)
      rows = np.moveaxis(w, sl.axis, 0).reshape(w.shape[sl.axis], -1)
      out.append(rows[base:base + group.size].astype(np.float64))
    return out

  def channel_rows(self, group, sl, base, seg, array=None):
    """(group.size, k): the entries of one weight slice each channel owns.

    Args:
      group: a ChannelGroup.
      sl, base, seg: one item of `graph.group_segments(group)`.
      array: optional array of the weight's shape (e.g. squared gradients)
        to read instead of the weight itself.

    Returns:
      float64 matrix; row c holds every entry of the slice's axis that
      channel c of `group` owns: its `repeat` positions (DepthwiseConv's
      depth multiplier) at every spatial position after a Flatten, times the
      weight's other axes.
    """
    if array is None:
      array = self.weights(sl.path)[sl.weight]
    moved = np.moveaxis(np.asarray(array, np.float64), sl.axis, 0)
    lay = sl.layout
    own = (base + np.arange(group.size)[:, None] * seg.repeat +
           np.arange(seg.repeat)[None, :])
    idx = (own[:, None, :] + lay.channels *
           np.arange(lay.spatial)[None, :, None]).reshape(group.size, -1)
    return moved[idx].reshape(group.size, -1)

  def group_slices(self, group):
    """[(WeightSlice, (group.size, k) rows)] of every parameter slice removed.

    Every slice the group removes with its channels: producers' kernels and
    biases, per-channel parameters (BN gamma and beta, ChannelScale scale,
    PReLU alpha, DepthwiseConv bias) and consumers' input slices (after a
    Flatten, all spatial positions of the channel). BN's moving statistics
    are not parameters and are left out.
    """
    return [(sl, self.channel_rows(group, sl, base, seg))
            for sl, base, seg in self.graph.group_segments(group)
            if sl.weight not in STATISTICS]

  def param_vectors(self, group, weight, layer_type=None):
    """(path, vector) of per-channel parameters named `weight` in the group.

    Args:
      group: a ChannelGroup.
      weight: e.g. 'gamma', 'beta' or 'scale'.
      layer_type: optional class name the layer must have.
    """
    out = []
    for sl, base, seg in self.graph.group_segments(group):
      if sl.role != "param" or sl.weight != weight or seg.repeat != 1:
        continue
      if sl.layout.spatial != 1:
        continue
      if layer_type and type(self.graph.layer(sl.path)).__name__ != layer_type:
        continue
      v = self.weights(sl.path)[weight]
      out.append((sl.path, np.asarray(v[base:base + group.size], np.float64)))
    return out
