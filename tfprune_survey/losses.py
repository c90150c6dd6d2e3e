"""The loss used by gradient criteria, in the model's own Keras."""

from tfprune_survey import frameworks


def _output_layer(model, index=0):
  """The layer (or Keras 3 operation) that makes `model`'s `index`-th output,
  looked up through nested models; None if it cannot be told."""
  fw = frameworks.of(model)
  for _ in range(64):  # nesting depth; a cycle cannot happen in a real model
    if fw.is_sequential(model):
      if not model.layers:
        return None
      layer = model.layers[-1]
      index = 0
    else:
      try:
        refs = fw.output_refs(model.get_config())
      except Exception:  # pylint: disable=broad-except
        refs = []
      if not refs:
        return model.layers[-1] if model.layers else None
      name, _, tensor = refs[min(index, len(refs) - 1)][:3]
      layer = fw.live_operations(model).get(name)
      if layer is None:
        return None
      index = tensor if isinstance(tensor, int) else 0
    if not fw.is_submodel(layer):
      return layer
    model = layer
  return None


def _ends_in_softmax(model):
  """Whether `model`'s first output is a softmax: the layer that makes it,
  nested models looked through, has a softmax activation or is one (a
  Softmax layer, tf.nn.softmax, keras.ops.softmax)."""
  layer = _output_layer(model)
  if layer is None:
    return False
  try:
    config = layer.get_config()
  except Exception:  # pylint: disable=broad-except
    config = {}
  if config.get("activation") == "softmax":
    return True
  if type(layer).__name__ == "Softmax":
    return True
  function = config.get("function")
  return isinstance(function, str) and function.split(".")[-1] == "softmax"


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
