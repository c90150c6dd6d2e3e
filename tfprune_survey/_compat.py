"""The one place that imports Keras.

tfprune_survey, like tensorflow-model-optimization (tfmot), works on Keras 2
models from the ``tf_keras`` package. Everything else in the package imports
``keras`` from here.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras  # noqa: E402  pylint: disable=g-import-not-at-top

from tfprune_survey.errors import UnsupportedModelError  # noqa: E402

__all__ = ["keras", "check_model", "check_layer", "is_keras3_object"]

_HOW_TO = (
    "tfprune_survey, like tensorflow-model-optimization, works on tf_keras "
    "(Keras 2) models. Build the model with `import tf_keras as keras` "
    "(pip install tf-keras) instead of `import keras` / `tf.keras` under "
    "Keras 3, e.g. `model = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), "
    "tf_keras.layers.Conv2D(16, 3), ...])`, or load a saved model with "
    "`tf_keras.models.load_model(path)`."
)


def is_keras3_object(obj):
  """True when `obj` is a Keras 3 layer or model (not tf_keras)."""
  module = type(obj).__module__ or ""
  if module.startswith("tf_keras"):
    return False
  for klass in type(obj).__mro__:
    mod = klass.__module__ or ""
    if mod == "keras" or mod.startswith("keras.src") or mod.startswith("keras."):
      return True
  return False


def check_layer(obj, arg_name="layer"):
  """Raises TypeError unless `obj` is a tf_keras layer."""
  if is_keras3_object(obj):
    raise TypeError(
        f"`{arg_name}` is a Keras 3 object of type {type(obj).__name__} "
        f"({type(obj).__module__}). " + _HOW_TO)
  if not isinstance(obj, keras.layers.Layer):
    raise TypeError(
        f"`{arg_name}` must be a tf_keras Layer or Model, got "
        f"{type(obj).__name__}.")
  return obj


def check_model(obj, arg_name="model"):
  """Validates that `obj` is an analysable tf_keras Sequential/Functional model.

  Args:
    obj: the object passed by the user.
    arg_name: the name of the argument, used in error messages.

  Returns:
    `obj`, unchanged.

  Raises:
    TypeError: for Keras 3 objects and non-models.
    UnsupportedModelError: for subclassed models, whose graph cannot be read.
  """
  if is_keras3_object(obj):
    raise TypeError(
        f"`{arg_name}` is a Keras 3 model of type {type(obj).__name__} "
        f"({type(obj).__module__}). " + _HOW_TO)
  if not isinstance(obj, keras.Model):
    raise TypeError(
        f"`{arg_name}` must be a tf_keras Sequential or Functional model, "
        f"got {type(obj).__name__}.")
  if isinstance(obj, keras.Sequential):
    if not obj.built or not obj.inputs:
      raise UnsupportedModelError(
          f"`{arg_name}` is a Sequential model '{obj.name}' that has not been "
          "built with a known input shape. Start it with "
          "`tf_keras.Input(shape)` so that its graph can be analysed.")
    return obj
  if not _is_functional(obj):
    raise UnsupportedModelError(
        f"`{arg_name}` is a subclassed model of class "
        f"{type(obj).__name__}: its layers are connected in Python code "
        "(`call`), so its channel graph cannot be read. Rebuild it with the "
        "Functional API (`tf_keras.Model(inputs, outputs)`) or Sequential.")
  return obj


def _is_functional(obj):
  from tf_keras.src.engine import functional  # pylint: disable=g-import-not-at-top
  if type(obj) is functional.Functional:  # pylint: disable=unidiomatic-typecheck
    return True
  try:
    cfg = obj.get_config()
  except Exception:  # pylint: disable=broad-except
    return False
  return isinstance(cfg, dict) and "input_layers" in cfg and "layers" in cfg


def tf_op_lambda_class():
  """The class tf_keras uses for raw TF ops called on Keras tensors."""
  from tf_keras.src.layers.core import tf_op_layer  # pylint: disable=g-import-not-at-top
  return tf_op_layer.TFOpLambda


def rebuild_from_config(model, config):
  """Builds a new model of `model`'s kind from `config`.

  Custom layer classes found in `model` are passed as custom objects, and safe
  mode is off so that the user's own Lambda layers deserialize (the config
  comes from the user's live model, not from an untrusted file).
  """
  from tf_keras.src.saving import serialization_lib  # pylint: disable=g-import-not-at-top
  custom = {}
  _collect_classes(model, custom)
  with keras.utils.custom_object_scope(custom):
    with serialization_lib.SafeModeScope(False):
      return type(model).from_config(config)


def _collect_classes(layer, out):
  out.setdefault(type(layer).__name__, type(layer))
  for sub in getattr(layer, "layers", None) or []:
    _collect_classes(sub, out)
