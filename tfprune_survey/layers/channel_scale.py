"""ChannelScale: a learnable per-channel scale (the lambda of SSS).

There is one concrete class per Keras (tf_keras and Keras 3), made on first
use and registered as `tfprune_survey>ChannelScale` in that Keras, so a saved
model of either Keras loads without `custom_objects`. `ChannelScale(...)`
makes the class of `framework=` ('tf_keras' or 'keras3'; by default the
Keras that `tf.keras` gives: tf_keras when TF_USE_LEGACY_KERAS is set, Keras 3
otherwise), and `isinstance(layer, ChannelScale)` holds for both.
"""

import math
import numbers

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.frameworks import classes


def _check_initial_value(value, name):
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"ChannelScale '{name}': `initial_value` must be a "
                     f"finite number, got {value!r}")
  return float(value)


def _check_shared(value, name):
  if isinstance(value, (bool, np.bool_)) or (
      isinstance(value, numbers.Integral) and value in (0, 1)):
    return bool(value)
  raise ValueError(f"ChannelScale '{name}': `shared` must be True or False, "
                   f"got {value!r}")


def _make(fw):
  keras = fw.keras
  if fw.name == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    cast = tf.cast
    is_float = lambda dtype: tf.as_dtype(dtype).is_floating
  else:
    cast = keras.ops.cast
    is_float = keras.backend.is_float_dtype

  @classes.register(fw, "ChannelScale")
  class ChannelScale(keras.layers.Layer):  # pylint: disable=redefined-outer-name
    """Multiplies each channel by a learnable scalar (Huang and Wang, 2018)."""

    def __init__(self, initial_value=1.0, regularizer=None, shared=False,
                 **kwargs):
      super().__init__(**kwargs)
      self.initial_value = _check_initial_value(initial_value, self.name)
      self.regularizer = keras.regularizers.get(regularizer)
      if self.regularizer is not None and not callable(self.regularizer):
        raise ValueError(
            f"ChannelScale '{self.name}': `regularizer` must be a Keras "
            f"regularizer, its name or config, or None; got {regularizer!r}")
      self.shared = _check_shared(shared, self.name)

    def build(self, input_shape):
      channels = input_shape[-1]
      if channels is None and not self.shared:   # one shared scalar needs none
        raise ValueError(f"ChannelScale '{self.name}' needs a known channel "
                         f"dimension, got input shape {input_shape}")
      self.scale = self.add_weight(
          name="scale", shape=(1,) if self.shared else (channels,),
          initializer=keras.initializers.Constant(self.initial_value),
          regularizer=self.regularizer, trainable=True)
      super().build(input_shape)

    def call(self, inputs):
      if not is_float(inputs.dtype):   # scaled in the compute dtype, not
        inputs = cast(inputs, self.compute_dtype)   # truncated to ints
      return inputs * cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
      return input_shape

    def get_config(self):
      config = super().get_config()
      config.update({
          "initial_value": self.initial_value,
          "regularizer": keras.regularizers.serialize(self.regularizer)
                         if self.regularizer is not None else None,
          "shared": self.shared,
      })
      return config

  ChannelScale.__module__ = __name__
  ChannelScale.__qualname__ = f"ChannelScale[{fw.name}]"
  return ChannelScale


_CLASSES = classes.PerFramework(_make)


def channel_scale_class(framework):
  """The ChannelScale class of one Keras.

  Args:
    framework: 'tf_keras', 'keras3', an adapter, or a Keras `layers`
      namespace.
  """
  if hasattr(framework, "__name__") and not isinstance(framework, str):
    framework = (frameworks.TF_KERAS if framework.__name__.startswith(
        "tf_keras") else frameworks.KERAS3)
  return _CLASSES(framework)


class ChannelScale(metaclass=classes.dispatcher_meta(_CLASSES)):
  """Multiplies each channel by a learnable scalar (Huang and Wang, 2018).

  Sparse Structure Selection (SSS) attaches such scales to channels (or
  whole residual branches) and trains them with an L1 penalty; channels
  whose scale reaches zero are pruned with the `sss` criterion.

  Args:
    initial_value: starting value of every scale. Defaults to 1.0.
    regularizer: optional regularizer for the scales (e.g.
      `keras.regularizers.L1(1e-4)`). Defaults to None.
    shared: one scalar for all channels (SSS's block granularity: it
      scales a whole residual branch; `materialize` removes a branch whose
      shared scale is 0). Defaults to False.
    framework: 'tf_keras' or 'keras3'; defaults to the Keras `tf.keras`
      gives (tf_keras when TF_USE_LEGACY_KERAS is set, else Keras 3).
    **kwargs: standard layer arguments (name, dtype, ...).

  Returns:
    A layer of the chosen Keras.

  Example:
    >>> x = tps.ChannelScale(name="scale1")(conv_output)
  """

  def __new__(cls, *args, framework=None, **kwargs):
    klass = channel_scale_class(framework or frameworks.default_name())
    return klass(*args, **kwargs)

  @classmethod
  def from_config(cls, config, framework=None):
    """A layer of `framework` (default as in the constructor) from config."""
    klass = channel_scale_class(framework or frameworks.default_name())
    return klass.from_config(config)
