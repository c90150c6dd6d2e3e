"""Layers that keep every channel index where it is."""

from tfprune_survey._compat import keras
from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler
from tfprune_survey.graph.handlers.registry import register_handler

_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


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


class Activation(PassThrough):
  """Activation: element-wise unless it is a softmax over channels."""

  def propagate(self, call, b):
    act = call.config.get("activation")
    if act in _MIXING_ACTIVATIONS:
      b.block(call.inputs, f"'{call.path}' applies {act} across channels")
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
    keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.ThresholdedReLU, keras.layers.Dropout,
    keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)
_SPATIAL = (
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D, keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D, keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D, keras.layers.Cropping1D,
    keras.layers.Cropping2D, keras.layers.Cropping3D,
    keras.layers.UpSampling1D, keras.layers.UpSampling2D,
    keras.layers.UpSampling3D,
)

for _cls in _ELEMENTWISE:
  register_handler(_cls, PassThrough())
for _cls in _SPATIAL:
  register_handler(_cls, PassThrough(spatial=True))
register_handler(keras.layers.Activation, Activation())
register_handler(keras.layers.Softmax, Softmax())
register_handler(keras.layers.Rescaling, Rescaling())
if hasattr(keras.layers, "Identity"):
  register_handler(keras.layers.Identity, PassThrough())
