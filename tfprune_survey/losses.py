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


def _rank(t):
  try:
    return len(t.shape)
  except (TypeError, ValueError):  # unknown rank
    return None


def _last_dim(t):
  d = t.shape[-1]
  return None if d is None else int(d)


def _same_rank(y, p, expand, squeeze):
  """(y, p) brought to one rank as Keras' `LossFunctionWrapper` does in
  `fit` (Keras 3's rule): where one has one more axis, of size 1, the other
  gains that axis if it is of rank 1, else the size-1 axis is dropped. So
  labels (N,) meet outputs (N, 1) as (N, 1), and a loss that reduces the
  last axis gives one value per sample (tf_keras' own rule would squeeze
  the outputs to (N,) and reduce the batch away)."""
  ry, rp = _rank(y), _rank(p)
  if ry is None or rp is None or ry == rp:
    return y, p
  if rp == ry + 1 and _last_dim(p) == 1:
    if ry == 1:
      y = expand(y)
    else:
      p = squeeze(p)
  elif ry == rp + 1 and _last_dim(y) == 1:
    if rp == 1:
      p = expand(p)
    else:
      y = squeeze(y)
  return y, p


def _is_wrapper(loss):
  """A Keras `LossFunctionWrapper` (MeanSquaredError(), ...): a function
  loss whose inputs Keras brings to one rank."""
  return any(c.__name__ == "LossFunctionWrapper" for c in type(loss).__mro__)


def _loss_name(loss):
  if isinstance(loss, str):
    return repr(loss)
  return repr(getattr(loss, "name", None) or getattr(
      loss, "__name__", None) or type(loss).__name__)


def _per_sample(value, p, name):
  """Raises unless `value` holds one loss per sample of outputs `p`: its
  shape a leading part of p's (batch first), as a loss that reduces some
  trailing axes gives."""
  rv, rp = _rank(value), _rank(p)
  if rv is None or rp is None:
    return value
  fits = 1 <= rv <= rp and all(
      a is None or b is None or int(a) == int(b)
      for a, b in zip(tuple(value.shape), tuple(p.shape)[:rv]))
  if not fits:
    raise ValueError(
        f"the model's loss {name} gives values of shape "
        f"{tuple(value.shape)} for outputs of shape {tuple(p.shape)}, not "
        "one loss per sample, which gradient criteria need (a loss that "
        "reduces the batch, or labels that broadcast against the outputs): "
        "compile the model with a loss that keeps the batch axis, and "
        "labels of the outputs' shape")
  return value


def _first_output_keys(model):
  """The keys a dict of losses may give `model.outputs[0]`'s loss under:
  its key in a dict of outputs (Keras flattens one in sorted key order),
  then its name (`output_names[0]`, the last layer of a Sequential)."""
  keys = []
  struct = getattr(model, "_outputs_struct", None)   # Keras 3
  if struct is None:
    struct = getattr(model, "_nested_outputs", None)   # tf_keras
  if isinstance(struct, dict) and struct:
    keys.append(sorted(struct)[0])
  try:
    names = list(getattr(model, "output_names", None) or [])
  except Exception:  # pylint: disable=broad-except
    names = []
  if not names and frameworks.of(model).is_sequential(model) and (
      model.layers):
    names = [model.layers[-1].name]
  return keys + names[:1]


def compiled_loss(model):
  """The model's compiled loss for its first output (`model.outputs[0]`),
  or None (uncompiled, or no loss given for that output). A list of losses
  gives its first entry; a dict gives the entry under the first output's
  key or name (not the dict's first entry, which may be another output's)."""
  loss = getattr(model, "loss", None)
  if isinstance(loss, (list, tuple)):
    return loss[0] if loss else None
  if isinstance(loss, dict):
    if not loss:
      return None
    keys = _first_output_keys(model)
    for key in keys:
      if key in loss:
        return loss[key]
    return None if keys else next(iter(loss.values()))
  return loss


def per_sample_loss(model):
  """fn(y_true, y_pred) -> per-sample losses.

  The model's compiled loss if it has one (that of its first output, for
  several outputs: see `compiled_loss`), else sparse categorical cross-entropy, from logits unless the model ends
  in a softmax. The function is built from the model's Keras, so it runs on
  that Keras' backend (TensorFlow, JAX, PyTorch). A loss given as a name, a
  function or a Keras function loss (MeanSquaredError(), ...) gets labels
  and outputs brought to one rank as Keras' `fit` does (labels (N,) for
  outputs (N, 1) are taken as (N, 1)); a `Loss` instance runs with
  reduction 'none'.

  The returned function raises ValueError, naming the loss, when what it
  gives is not one value per sample (a leading part of the outputs' shape).
  """
  fw = frameworks.of(model)
  keras = fw.keras
  if frameworks.detect(model) == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    expand = lambda t: tf.expand_dims(t, -1)
    squeeze = lambda t: tf.squeeze(t, -1)
  else:
    expand = lambda t: keras.ops.expand_dims(t, -1)
    squeeze = lambda t: keras.ops.squeeze(t, -1)
  loss = compiled_loss(model)
  name = _loss_name(loss)
  if isinstance(loss, str):
    loss = keras.losses.get(loss)   # a function, or a Loss for a class name
  if isinstance(loss, keras.losses.Loss):
    # A shallow copy with reduction 'none': not `from_config` (a Loss subclass
    # whose constructor takes arguments its config leaves out cannot be
    # rebuilt from it), nor `copy.copy` (Keras 3 copies a Loss through its
    # saving code, which needs the class registered).
    unreduced = object.__new__(type(loss))
    unreduced.__dict__.update(vars(loss))
    unreduced.reduction = "none"
    if _is_wrapper(loss):
      def fn(y, p):
        y, p = _same_rank(y, p, expand, squeeze)
        return _per_sample(unreduced(y, p), p, name)
    else:   # Keras calls a Loss subclass on (y, p) as they are
      def fn(y, p):
        return _per_sample(unreduced(y, p), p, name)
    return fn
  if callable(loss):
    def fn(y, p):
      y, p = _same_rank(y, p, expand, squeeze)
      return _per_sample(loss(y, p), p, name)
    return fn
  scce = keras.losses.SparseCategoricalCrossentropy(
      from_logits=not _ends_in_softmax(model), reduction="none")
  if frameworks.detect(model) == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return lambda y, p: scce(tf.cast(y, tf.int64), p)
  return lambda y, p: scce(keras.ops.cast(y, "int32"), p)


def batch_mean_loss(model):
  fn = per_sample_loss(model)
  if frameworks.detect(model) == frameworks.TF_KERAS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return lambda y, p: tf.reduce_mean(fn(y, p))
  ops = frameworks.of(model).keras.ops
  return lambda y, p: ops.mean(fn(y, p))
