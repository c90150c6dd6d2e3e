"""Re-estimation of BatchNormalization statistics (batchnorm adaptation)."""

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.data import iterate_batches


def _bn_layers(model, keras):
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from _bn_layers(layer, keras)
    elif isinstance(layer, keras.layers.BatchNormalization):
      yield layer


def recalibrate_bn(model, data, *, steps=None):
  """Re-estimates every BatchNormalization's moving mean and variance.

  Each BN's moving statistics become the cumulative average of the batch
  statistics over `data` (batch k is weighted 1/k, so no momentum is
  involved); all other weights are untouched. Pruned or freshly trained
  models are judged fairly only after this.

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
    for k, (x, _) in enumerate(iterate_batches(data, steps), start=1):
      for layer in layers:
        layer.momentum = (k - 1) / k
        layer.trainable = True
      model(x, training=True)
  finally:
    for layer, (momentum, trainable) in zip(layers, saved):
      layer.momentum = momentum
      layer.trainable = trainable
    for w, value in others:
      if not np.array_equal(np.asarray(w.numpy()), value):
        w.assign(value)
  return model
