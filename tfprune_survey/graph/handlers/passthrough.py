"""Layers that keep every channel index where it is."""

from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler


class PassThrough(LayerHandler):
  """Element-wise or spatial-only layers: channel c stays channel c.

  Args:
    spatial: True for layers that act on spatial axes and have a
      `data_format` (pooling, padding, cropping, upsampling).
  """

  def __init__(self, spatial=False):
    self.spatial = spatial

  def propagate(self, call, b):
    lay = call.inputs[0] if call.inputs else None
    if self.spatial and not common.channels_last(call):
      return common.block_channels_first(call, b)
    if self.spatial and lay is not None and lay.spatial > 1:
      reason = f"'{call.path}' ({call.class_name}) follows a Flatten"
      b.block([lay], reason)
      return [b.opaque(call, call.output_shapes[0], reason)]
    return [lay]


class NoiseShaped(PassThrough):
  """Dropout/AlphaDropout: `noise_shape[-1]`, when it is the channel count,
  follows the kept width (None or 1 there broadcasts over channels)."""

  def propagate(self, call, b):
    outs = super().propagate(call, b)
    shape = call.config.get("noise_shape")
    lay = outs[0]
    if shape and lay is not None and shape[-1] not in (None, 1):
      b.width(call, ("noise_shape", -1), lay)
    return outs


class Activation(PassThrough):
  """Activation: element-wise for the built-in element-wise activations.

  A softmax over channels, or an activation we do not know, blocks.
  """

  def propagate(self, call, b):
    common.block_mixing_activation(call, b, call.inputs)
    return super().propagate(call, b)


class Softmax(PassThrough):
  """Softmax: mixes channels only when its axis is the channel axis."""

  def propagate(self, call, b):
    rank = common.rank_of(call.input_shapes[0])
    if common.channel_axis_in(call.config.get("axis", -1), rank):
      b.block(call.inputs, f"'{call.path}' (Softmax) normalises across "
              "channels")
    return super().propagate(call, b)


class Rescaling(PassThrough):
  """Rescaling: element-wise for scalar scale and offset."""

  def propagate(self, call, b):
    scalar = all(isinstance(call.config.get(k, 0.0), (int, float))
                 for k in ("scale", "offset"))
    if not scalar:
      b.block(call.inputs, f"'{call.path}' (Rescaling) has per-channel "
              "constants")
    return super().propagate(call, b)


_ELEMENTWISE = (
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout",
    "ActivityRegularization", "Identity",
)
_NOISE_SHAPED = ("Dropout", "AlphaDropout")
_SPATIAL = (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
)


def registrations(layers):
  """[(class, handler)] of this module, for one Keras' `layers` namespace.

  A class that Keras does not have (Keras 3 dropped ThresholdedReLU) is
  skipped.
  """
  out = [(getattr(layers, n), PassThrough()) for n in _ELEMENTWISE
         if hasattr(layers, n)]
  out += [(getattr(layers, n), PassThrough(spatial=True)) for n in _SPATIAL
          if hasattr(layers, n)]
  out += [(getattr(layers, n), NoiseShaped()) for n in _NOISE_SHAPED
          if hasattr(layers, n)]
  out += [(layers.Activation, Activation()), (layers.Softmax, Softmax()),
          (layers.Rescaling, Rescaling())]
  return out
