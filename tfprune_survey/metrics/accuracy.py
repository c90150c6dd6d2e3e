"""Top-1 accuracy of a model on (x, y) batches, on any backend."""

import weakref

import numpy as np

from tfprune_survey import frameworks

_PREDICT = weakref.WeakKeyDictionary()


def _predict_fn(model):
  """One compiled inference function per model, reused while it lives.

  Sensitivity evaluates the same (re-masked) model once per point, with only
  its weights changing in between, so the function is traced once. On the
  TensorFlow backend it is a `tf.function`; elsewhere Keras'
  `predict_on_batch`, which compiles once per model too.
  """
  fn = _PREDICT.get(model)
  if fn is not None:
    return fn
  ref = weakref.ref(model)  # the cache must not keep the model alive
  if frameworks.of(model).backend() == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    traced = tf.function(lambda x: ref()(x, training=False),
                         reduce_retracing=True)
    fn = lambda x: traced(tf.nest.map_structure(tf.convert_to_tensor, x))  # pylint: disable=unnecessary-lambda-assignment
  else:
    fn = lambda x: ref().predict_on_batch(x)  # pylint: disable=unnecessary-lambda-assignment
  _PREDICT[model] = fn
  return fn


def evaluate_accuracy(model, data, steps=None):
  """Top-1 accuracy of `model` (inference mode) on (x, y) batches.

  Args:
    model: a model of either Keras (any backend) producing class scores.
    data: (x, y) numpy arrays (batched at 256) or a tf.data.Dataset of
      (x, y) batches; x may be a tuple, list or dict of arrays.
    steps: optional maximum number of batches.

  Returns:
    float in [0, 1].

  Raises:
    ValueError: when the data has no labels.
  """
  from tfprune_survey.data import iterate_batches, map_inputs  # pylint: disable=g-import-not-at-top
  fn = _predict_fn(model)
  correct = total = 0
  for x, y in iterate_batches(data, steps, batch_size=256,
                              arg_name="eval_data"):
    if y is None:
      raise ValueError("`eval_data` needs labels: pass (x, y)")
    # x may be a tuple, list or dict of arrays (a model of several inputs).
    pred = np.argmax(np.asarray(fn(map_inputs(np.asarray, x))), axis=-1)
    y = np.asarray(y).reshape(pred.shape)
    correct += int((pred == y).sum())
    total += len(y)
  return correct / total
