"""The loss used by gradient criteria, in the model's own Keras."""

from tfprune_survey import frameworks


def _ends_in_softmax(model):
  layer = model.layers[-1]
  config = layer.get_config()
  return (config.get("activation") == "softmax" or
          type(layer).__name__ == "Softmax")


def per_sample_loss(model):
  """fn(y_true, y_pred) -> per-sample losses.

  The model's compiled loss if it has one (its first, for several outputs),
  else sparse categorical cross-entropy, from logits unless the model ends
  in a softmax. The function is built from the model's Keras, so it runs on
  that Keras' backend (TensorFlow, JAX).
  """
  keras = frameworks.of(model).keras
  loss = getattr(model, "loss", None)
  if isinstance(loss, (list, tuple)):
    loss = loss[0] if loss else None
  if isinstance(loss, dict):
    loss = next(iter(loss.values()), None)
  if isinstance(loss, str):
    fn = keras.losses.get(loss)
    return lambda y, p: fn(y, p)
  if isinstance(loss, keras.losses.Loss):
    config = dict(loss.get_config())
    config["reduction"] = "none"
    unreduced = type(loss).from_config(config)
    return lambda y, p: unreduced(y, p)
  if callable(loss):
    return lambda y, p: loss(y, p)
  fn = keras.losses.SparseCategoricalCrossentropy(
      from_logits=not _ends_in_softmax(model), reduction="none")
  if frameworks.detect(model) == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return lambda y, p: fn(tf.cast(y, tf.int64), p)
  return lambda y, p: fn(keras.ops.cast(y, "int32"), p)


def batch_mean_loss(model):
  fn = per_sample_loss(model)
  if frameworks.detect(model) == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return lambda y, p: tf.reduce_mean(fn(y, p))
  ops = frameworks.of(model).keras.ops
  return lambda y, p: ops.mean(fn(y, p))
