"""What a criterion may read: weights, BN vectors, and data statistics."""

import numpy as np

from tfprune_survey.frameworks import Framework

# Per-channel weights that are running statistics, not parameters.
STATISTICS = ("moving_mean", "moving_variance")

# Per-channel weights of a Keras 3 quantized layer that scale its kernel.
QUANTIZATION_SCALES = ("kernel_scale",)


def _dequantized(layer, kernel, weights):
  """The float64 kernel a Keras 3 quantized layer computes with.

  int8 (`model.quantize('int8')`): output channel c is the int8 column
  divided by kernel_scale[c]. float8: the float kernel quantize-dequantized
  to float8_e4m3fn with the per-tensor kernel_scale, as the layer's call
  does. Any other layer's kernel is returned unchanged.
  """
  mode = getattr(layer, "quantization_mode", None)
  if mode == "int8" and "kernel_scale" in weights:
    return kernel / np.asarray(weights["kernel_scale"], np.float64)
  if mode == "float8" and "kernel_scale" in weights:
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    scale = np.float32(weights["kernel_scale"])
    top = np.float32(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max)
    x = np.clip(np.asarray(weights["kernel"], np.float32) / scale, -top, top)
    return (x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32) *
            scale).astype(np.float64)
  return kernel


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
    (frozen) base kernel alone. A Keras 3 layer quantized with
    `model.quantize` computes with its dequantized kernel: int8 values
    divided by each output channel's kernel_scale, or the float8
    quantize-dequantized kernel. Any other weight is returned as stored.
    """
    weights = self.weights(path)
    w = np.asarray(weights[weight], np.float64)
    if weight != "kernel":
      return w
    layer = self.graph.layer(path)
    w = _dequantized(layer, w, weights)
    if "lora_kernel_b" not in weights:
      return w
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
      if sl.weight == "kernel":
        array = _dequantized(self.graph.layer(sl.path),
                             np.asarray(array, np.float64),
                             self.weights(sl.path))
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
    are not parameters and are left out, as are int8 kernel scales (the
    kernel's rows are read dequantized).
    """
    return [(sl, self.channel_rows(group, sl, base, seg))
            for sl, base, seg in self.graph.group_segments(group)
            if sl.weight not in STATISTICS + QUANTIZATION_SCALES]

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
