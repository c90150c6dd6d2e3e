"""Layers that create new output channels: convs, transposed convs, Dense."""

from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler


#: Keras 3 quantization modes whose weights a pruned layer keeps exactly:
#: float8 keeps a float kernel with per-tensor scales (scalars and amax
#: histories, unchanged by removing channels); int8 adds a per-output-channel
#: kernel_scale, sliced with the output channels.
SUPPORTED_QUANTIZATION = (None, "float8", "int8")


def quantization_mode(call):
  """The Keras 3 quantization mode of the layer ('int8', ...), or None."""
  mode = getattr(getattr(call, "layer", None), "quantization_mode", None)
  return mode if isinstance(mode, str) else None


def quantization_reason(call):
  """Why the layer's quantized weights block its channels ('' if they don't).

  Keras 3's `model.quantize` quantizes Dense (int8, int4, float8; gptq and
  awq with a calibration config). int4 packs two output channels per byte
  and scales blocks of input channels (kernel_zero, g_idx), and gptq/awq
  store a transposed packed kernel; their layout is not sliced, so the
  channels they touch are not pruned.
  """
  mode = quantization_mode(call)
  if mode in SUPPORTED_QUANTIZATION and not (
      mode == "int8" and call.class_name != "Dense"):
    return ""
  return (f"'{call.path}' ({call.class_name}) is quantized with mode "
          f"{mode!r}, whose weight layout is not sliced; prune the float "
          "model before quantizing it (int8 and float8 Dense layers are "
          "pruned)")


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
    lora = bool(call.config.get("lora_rank"))
    quantized = quantization_reason(call)
    if quantized:
      out = b.producer(call, size)
      b.block([in_lay, out], quantized)
      return [out]
    if lora and (groups > 1 or self.in_axis not in (-2, 0)):
      out = b.producer(call, size)   # a grouped or transposed conv
      b.block([in_lay, out], f"'{call.path}' ({call.class_name}) has LoRA "
              f"weights (groups={groups}) whose layout is not modelled")
      return [out]
    if groups > 1:
      return self._grouped(call, b, in_lay, size, groups)
    out = b.producer(call, size)
    b.slice(call, "kernel", self.in_axis, in_lay, "consumer")
    if lora:
      # Keras 3 LoRA: kernel + lora_kernel_a @ lora_kernel_b, with a's
      # last axis and b's first the rank: a reads the inputs, b writes
      # the outputs.
      b.slice(call, "lora_kernel_a", self.in_axis, in_lay, "consumer",
              observe=False)
    return self._outputs(call, b, out)

  def _outputs(self, call, b, out):
    """Records the output-channel slices of a producer; returns [out]."""
    b.slice(call, "kernel", self.out_axis, out, "producer")
    if quantization_mode(call) == "int8":
      # Keras 3 int8: the kernel holds int8 values, and the layer divides
      # its output channel c by kernel_scale[c]. The scale must stay finite
      # (mask_channels zeroes the int8 kernel, never the scale).
      b.slice(call, "kernel_scale", -1, out, "producer", zero=False)
    if call.config.get("lora_rank"):
      b.slice(call, "lora_kernel_b", -1, out, "producer")
    b.slice(call, "bias", 0, out, "producer",
            required=common.has_bias(call))
    b.width(call, (self.width_key,), out)
    common.block_mixing_activation(call, b, [out])
    return [out]

  def _grouped(self, call, b, in_lay, size, groups):
    """A conv with groups > 1.

    One input channel per group (groups == input channels), with
    `filters` = m * groups, is a depthwise conv with depth multiplier m:
    output channel c*m+k reads input channel c, so input and output are one
    channel group, as for DepthwiseConv2D.

    Otherwise the conv keeps its `groups` and loses the same number of
    channels in every group: its input channels and its output channels
    are each asked to keep equal counts in `groups` blocks
    (`ChannelGroup.blocks`), and the kernel's in-group input axis is
    sliced group by group (`GroupedSlice`). Which channels each group keeps
    is free, so this keeps more choices than tying channel i of every
    group together (Torch-Pruning's way) and stays exact. Whole groups are
    never removed.
    """
    if self.in_axis != -2:
      out = b.producer(call, size)
      b.block([in_lay, out], f"'{call.path}' ({call.class_name}) is a "
              f"grouped transposed conv (groups={groups}); its channels are "
              "not pruned")
      return [out]
    if (in_lay is not None and in_lay.spatial == 1 and
        groups == in_lay.channels and size % groups == 0):
      out = in_lay.expand(size // groups)
      b.slice(call, "kernel", self.out_axis, out, "param")
      b.slice(call, "bias", 0, out, "param", required=common.has_bias(call))
      b.width(call, (self.width_key,), out)
      b.width(call, ("groups",), in_lay)
      common.block_mixing_activation(call, b, [out])
      return [out]
    out = b.producer(call, size)
    if b.require_blocks(in_lay, groups, call):
      b.grouped_slice(call, "kernel", self.in_axis, self.out_axis, groups,
                      in_lay)
    b.require_blocks(out, groups, call)
    return self._outputs(call, b, out)


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
    b.slice(call, "bias", 0, out, "producer",
            required=common.has_bias(call))
    b.width(call, ("filters",), out)
    common.block_mixing_activation(call, b, [out])
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
    b.slice(call, "bias", 0, out, "param", required=common.has_bias(call))
    common.block_mixing_activation(call, b, [out])
    return [out]


def registrations(layers):
  """[(class, handler)] of this module, for one Keras' `layers` namespace."""
  out = [(getattr(layers, n), Producer(-2, -1, "filters"))
         for n in ("Conv1D", "Conv2D", "Conv3D")]
  out += [(getattr(layers, n), Producer(-1, -2, "filters"))
          for n in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")]
  out.append((layers.Dense, Producer(0, 1, "units")))
  out += [(getattr(layers, n), Separable())
          for n in ("SeparableConv1D", "SeparableConv2D")]
  out += [(getattr(layers, n), Depthwise())
          for n in ("DepthwiseConv1D", "DepthwiseConv2D")]
  return out
