"""Compatibility names kept for code written against earlier releases.

Nothing here imports a Keras at import time, and nothing sets
TF_USE_LEGACY_KERAS. `from tfprune_survey._compat import keras` gives
tf_keras (imported on that first access), as it always did; new code asks
`tfprune_survey.frameworks` for the adapter of the model at hand instead.
"""

from tfprune_survey import frameworks

__all__ = ["keras", "check_model", "check_layer", "is_keras3_object",
           "rebuild_from_config"]


def __getattr__(name):
  if name == "keras":
    return frameworks.get(frameworks.TF_KERAS).keras
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_keras3_object(obj):
  """True when `obj` is a Keras 3 layer or model (not tf_keras)."""
  return frameworks.detect(obj) == frameworks.KERAS3


def check_layer(obj, arg_name="layer"):
  """Raises TypeError unless `obj` is a layer of either Keras."""
  fw = frameworks.of(obj, arg_name)
  if not fw.is_layer(obj):
    raise TypeError(f"`{arg_name}` must be a Keras Layer or Model, got "
                    f"{type(obj).__name__}.")
  return obj


def check_model(obj, arg_name="model"):
  """Validates an analysable Sequential/Functional model of either Keras.

  Returns:
    `obj`, unchanged.

  Raises:
    TypeError: for non-models.
    UnsupportedModelError: for subclassed or unbuilt models.
  """
  frameworks.check_model(obj, arg_name)
  return obj


def rebuild_from_config(model, config):
  """A new model of `model`'s kind and framework, built from `config`."""
  return frameworks.of(model).rebuild(model, config)
