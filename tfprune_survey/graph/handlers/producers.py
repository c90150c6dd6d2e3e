"""Layers that create new output channels: convs, transposed convs, Dense."""

from tfprune_survey._compat import keras
from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler
from tfprune_survey.graph.handlers.registry import register_handler

_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


class Producer(LayerHandler):
  """Conv/Dense-like: kernel's `in_axis` reads inputs, `out_axis` writes outputs.

  Args:
    in_axis: kernel axis of input channels.
    out_axis: kernel axis of output channels.
    width_key: the config entry holding the number of output channels.
  """

  def __init__(self, in_axis=-2, out_axis=-1, width_key="filters"):
    self.in_axis = in_axis
    self.out_axis = out_axis
    self.width_key = width_key

  def propagate(self, call, b):
    in_lay = call.inputs[0] if call.inputs else None
    size = call.config[self.width_key]
    if not common.channels_last(call):
      return common.block_channels_first(call, b)
    groups = call.config.get("groups", 1) or 1
    if (groups > 1 and in_lay is not None and groups == size ==
        in_lay.channels and in_lay.spatial == 1):
      # A depthwise conv written as Conv2D(groups=C, filters=C): channel c
      # reads only channel c, so input and output are one group.
      b.slice(call, "kernel", self.out_axis, in_lay, "param")
      b.slice(call, "bias", 0, in_lay, "param")
      b.width(call, (self.width_key,), in_lay)
      b.width(call, ("groups",), in_lay)
      b.register_call(call)
      return [in_lay]
    out = b.producer(call, size)
    if groups > 1:
      reason = (f"'{call.path}' ({call.class_name}) is a grouped conv "
                f"(groups={groups}); its channels are not pruned")
      b.block([in_lay, out], reason)
      return [out]
    b.slice(call, "kernel", self.in_axis, in_lay, "consumer")
    b.slice(call, "kernel", self.out_axis, out, "producer")
    b.slice(call, "bias", 0, out, "producer")
    b.width(call, (self.width_key,), out)
    if call.config.get("activation") in _MIXING_ACTIVATIONS:
      b.block([out], f"'{call.path}' applies {call.config['activation']} "
              "across its output channels")
    return [out]


class Separable(LayerHandler):
  """SeparableConv1D/2D: a depthwise step then a pointwise producer."""

  def propagate(self, call, b):
    in_lay = call.inputs[0]
    if not common.channels_last(call):
      return common.block_channels_first(call, b)
    mult = call.config.get("depth_multiplier", 1)
    out = b.producer(call, call.config["filters"])
    b.slice(call, "depthwise_kernel", -2, in_lay, "consumer")
    if in_lay is not None:
      b.slice(call, "pointwise_kernel", -2, in_lay.expand(mult), "consumer")
    b.slice(call, "pointwise_kernel", -1, out, "producer")
    b.slice(call, "bias", 0, out, "producer")
    b.width(call, ("filters",), out)
    return [out]


class Depthwise(LayerHandler):
  """DepthwiseConv: output channel c*m+k reads input channel c."""

  def propagate(self, call, b):
    in_lay = call.inputs[0]
    if not common.channels_last(call):
      return common.block_channels_first(call, b)
    if in_lay is None:
      return [b.opaque(call, call.output_shapes[0],
                       f"'{call.path}' reads channels of unknown origin")]
    mult = call.config.get("depth_multiplier", 1)
    b.slice(call, "depthwise_kernel", -2, in_lay, "consumer")
    out = in_lay.expand(mult)
    b.slice(call, "bias", 0, out, "param")
    b.register_call(call)
    return [out]


for _cls in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
  register_handler(_cls, Producer(-2, -1, "filters"))
for _cls in (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
             keras.layers.Conv3DTranspose):
  register_handler(_cls, Producer(-1, -2, "filters"))
register_handler(keras.layers.Dense, Producer(0, 1, "units"))
for _cls in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D):
  register_handler(_cls, Separable())
for _cls in (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D):
  register_handler(_cls, Depthwise())
