"""Layers with per-channel parameters: BatchNormalization, PReLU, LayerNorm."""

from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler


class BatchNorm(LayerHandler):
  """BatchNormalization on the channel axis: slice its four vectors."""

  def propagate(self, call, b):
    lay = call.inputs[0]
    rank = common.rank_of(call.input_shapes[0])
    axis = call.config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if rank is None or len(axes) != 1 or axes[0] % rank != rank - 1:
      reason = (f"'{call.path}' (BatchNormalization) normalises over axis "
                f"{axis}, not the channel axis")
      b.block([lay], reason)
      return [b.opaque(call, call.output_shapes[0], reason)]
    b.slice(call, "gamma", 0, lay, "param",
            required=call.config.get("scale", True))
    b.slice(call, "beta", 0, lay, "param",
            required=call.config.get("center", True))
    b.slice(call, "moving_mean", 0, lay, "param")
    b.slice(call, "moving_variance", 0, lay, "param", zero=False)
    if call.config.get("renorm"):
      # tf_keras' batch renormalization keeps per-channel statistics of
      # its own (used in training only); they stay finite when masked.
      for name in ("moving_stddev", "renorm_mean", "renorm_stddev"):
        b.slice(call, name, 0, lay, "param", zero=False)
    return [lay]


class PReLU(LayerHandler):
  """PReLU: slice alpha's channel axis when alpha is per channel.

  alpha's last axis is 1 when the channel axis is shared, and otherwise has
  one position per position of the input's last axis: the channels, or
  after a Flatten every (h, w, c), which the layout's tiling follows (as
  for a BatchNormalization after a Flatten).
  """

  def propagate(self, call, b):
    lay = call.inputs[0]
    alpha = [w for w in call.layer.weights if "alpha" in w.name]
    if alpha and lay is not None and lay.width > 1:
      last = alpha[0].shape[-1]
      if last == lay.width:
        b.slice(call, "alpha", -1, lay, "param")
      elif last != 1:
        b.block([lay], f"'{call.path}' (PReLU) has alpha of shape "
                f"{tuple(alpha[0].shape)}, which does not follow its "
                f"{lay.width} input channels")
    return [lay]


class LayerNorm(LayerHandler):
  """LayerNormalization: mixes channels when it normalises over them."""

  def propagate(self, call, b):
    lay = call.inputs[0]
    rank = common.rank_of(call.input_shapes[0])
    if common.channel_axis_in(call.config.get("axis", -1), rank):
      b.block([lay], f"'{call.path}' (LayerNormalization) normalises across "
              "the channel axis, so removing a channel changes every other "
              "channel")
    return [lay]




class ChannelScaleHandler(LayerHandler):
  """ChannelScale: one scale per channel, sliced like BN gamma."""

  def propagate(self, call, b):
    lay = call.inputs[0]
    if call.config.get("shared"):
      return [lay]   # one scalar for all channels: nothing to slice
    if lay is not None and lay.spatial > 1:
      b.block([lay], f"'{call.path}' (ChannelScale) follows a Flatten")
      return [lay]
    b.slice(call, "scale", 0, lay, "param")
    return [lay]


def registrations(layers):
  """[(class, handler)] of this module, for one Keras' `layers` namespace."""
  from tfprune_survey.layers import channel_scale  # pylint: disable=g-import-not-at-top
  return [(layers.BatchNormalization, BatchNorm()), (layers.PReLU, PReLU()),
          (layers.LayerNormalization, LayerNorm()),
          (channel_scale.channel_scale_class(layers), ChannelScaleHandler())]
