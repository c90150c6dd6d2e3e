"""Re-estimation of BatchNormalization statistics (batchnorm adaptation)."""

import contextlib
import inspect

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.data import iterate_batches


def _bn_classes(keras):
  """BatchNormalization, and tf_keras' SyncBatchNormalization (not a subclass
  of it there; Keras 3 has `BatchNormalization(synchronized=True)`)."""
  sync = getattr(getattr(keras.layers, "experimental", None),
                 "SyncBatchNormalization", None)
  return (keras.layers.BatchNormalization,) + ((sync,) if sync else ())


def _bn_layers(model, keras, classes=None, seen=None):
  """Every BN layer of `model` and its nested models, each once."""
  classes = classes or _bn_classes(keras)
  seen = set() if seen is None else seen
  for layer in model.layers:
    if id(layer) in seen:
      continue
    seen.add(id(layer))
    if isinstance(layer, keras.Model):
      yield from _bn_layers(layer, keras, classes, seen)
    elif isinstance(layer, classes):
      yield layer


def _forcing_training(call):
  """`call`, given training=True whatever its caller passes."""
  signature = inspect.signature(call)

  def forced(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.arguments["training"] = True
    return call(*bound.args, **bound.kwargs)

  return forced


@contextlib.contextmanager
def _calls_in_training_mode(layers):
  """Makes each layer's `call` run with training=True whatever it is given.

  The model is then called with training=False, so that every other layer
  (Dropout, noise, random augmentation, ...) runs as at inference. The
  override is an instance attribute, removed on exit.
  """
  saved = []
  try:
    for layer in layers:
      saved.append((layer, layer.__dict__.get("call")))
      layer.call = _forcing_training(layer.call)
    yield
  finally:
    for layer, own in reversed(saved):
      if own is None:
        del layer.call
      else:
        layer.call = own


def recalibrate_bn(model, data, *, steps=None):
  """Re-estimates every BatchNormalization's moving mean and variance.

  Each BN's moving statistics become the cumulative average of the batch
  statistics over `data` (batch k is weighted 1/k, so no momentum is
  involved); all other weights are untouched. Only the BN layers (those of
  nested models too, BN subclasses and tf_keras' SyncBatchNormalization
  included) run in training mode, normalising with the batch statistics
  while they are averaged; every other layer runs as at inference, so
  Dropout, SpatialDropout, GaussianNoise and the like are off and the BNs
  see what they see at inference. Pruned or freshly trained models are
  judged fairly only after this.

  Args:
    model: a model of either Keras (any backend); updated in place and
      returned.
    data: a tf.data.Dataset of (x, y) or x batches, or numpy x / (x, y).
    steps: optional maximum number of batches.

  Returns:
    `model`.
  """
  fw = frameworks.check_model(model)
  layers = list(_bn_layers(model, fw.keras))
  if not layers:
    return model
  saved = [(layer.momentum, layer.trainable) for layer in layers]
  others = [(w, np.asarray(w.numpy())) for w in model.weights
            if not any(w is v for layer in layers for v in
                       (layer.moving_mean, layer.moving_variance))]
  try:
    with _calls_in_training_mode(layers):
      for k, (x, _) in enumerate(iterate_batches(data, steps), start=1):
        for layer in layers:
          layer.momentum = (k - 1) / k
          layer.trainable = True
        model(x, training=False)
  finally:
    for layer, (momentum, trainable) in zip(layers, saved):
      layer.momentum = momentum
      layer.trainable = trainable
    for w, value in others:
      if not np.array_equal(np.asarray(w.numpy()), value):
        w.assign(value)
  return model
