"""ChannelScale: a learnable per-channel scale (the lambda of SSS)."""

import tensorflow as tf

from tfprune_survey._compat import keras


@keras.utils.register_keras_serializable(package="tfprune_survey")
class ChannelScale(keras.layers.Layer):
  """Multiplies each channel by a learnable scalar (Huang and Wang, 2018).

  Sparse Structure Selection (SSS) attaches such scales to channels (or
  whole residual branches) and trains them with an L1 penalty; channels
  whose scale reaches zero are pruned with the `sss` criterion.

  Args:
    initial_value: starting value of every scale. Defaults to 1.0.
    regularizer: optional regularizer for the scales (e.g.
      `tf_keras.regularizers.L1(1e-4)`). Defaults to None.
    shared: one scalar for all channels (SSS's block granularity: it
      scales a whole residual branch; `materialize` removes a branch whose
      shared scale is 0). Defaults to False.
    **kwargs: standard layer arguments (name, dtype, ...).

  Example:
    >>> x = tps.ChannelScale(name="scale1")(conv_output)
  """

  def __init__(self, initial_value=1.0, regularizer=None, shared=False,
               **kwargs):
    super().__init__(**kwargs)
    self.initial_value = float(initial_value)
    self.regularizer = keras.regularizers.get(regularizer)
    self.shared = bool(shared)

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"ChannelScale '{self.name}' needs a known channel "
                       f"dimension, got input shape {input_shape}")
    self.scale = self.add_weight(
        name="scale", shape=(1,) if self.shared else (channels,),
        initializer=keras.initializers.Constant(self.initial_value),
        regularizer=self.regularizer, trainable=True)
    super().build(input_shape)

  def call(self, inputs):
    return inputs * tf.cast(self.scale, inputs.dtype)

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
