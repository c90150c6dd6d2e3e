"""The one place that knows which Keras a model comes from.

tfprune_survey works on tf_keras (Keras 2, as tensorflow-model-optimization
does) and on Keras 3 (`import keras`, TensorFlow, JAX or PyTorch backend).
The framework is read per object from the module of its class; nothing here
sets an environment variable or imports a Keras until an object of that Keras
arrives. Each framework has one adapter (`tf_keras.TfKeras`,
`keras3.Keras3`) with the same small surface; graph/, strip/, metrics/,
criteria/ and training/ reach Keras only through it.
"""

import os

from tfprune_survey.frameworks.base import Framework

TF_KERAS = "tf_keras"
KERAS3 = "keras3"
NAMES = (TF_KERAS, KERAS3)

_ADAPTERS = {}


def get(name):
  """The adapter of a framework, by name ('tf_keras' or 'keras3')."""
  if isinstance(name, Framework):
    return name
  if name not in NAMES:
    raise ValueError(f"`framework` must be one of {NAMES}, got {name!r}")
  if name not in _ADAPTERS:
    if name == TF_KERAS:
      from tfprune_survey.frameworks.tf_keras import TfKeras  # pylint: disable=g-import-not-at-top
      _ADAPTERS[name] = TfKeras()
    else:
      from tfprune_survey.frameworks.keras3 import Keras3  # pylint: disable=g-import-not-at-top
      _ADAPTERS[name] = Keras3()
  return _ADAPTERS[name]


def detect(obj):
  """'tf_keras', 'keras3' or None, from the module of `obj`'s class (MRO)."""
  klass = obj if isinstance(obj, type) else type(obj)
  for k in klass.__mro__:
    mod = k.__module__ or ""
    if mod == "tf_keras" or mod.startswith("tf_keras."):
      return TF_KERAS
    if mod == "keras" or mod.startswith("keras."):
      return KERAS3
  return None


def of(obj, arg_name="model"):
  """The adapter for `obj` (a layer, model, operation or class).

  Raises:
    TypeError: naming `arg_name` when `obj` belongs to neither Keras.
  """
  name = detect(obj)
  if name is None:
    raise TypeError(
        f"`{arg_name}` must be a Keras layer or model (tf_keras or Keras 3), "
        f"got {type(obj).__name__}")
  return get(name)


def default_name():
  """The framework of objects made without a model to follow.

  That is what `tf.keras` gives the user: tf_keras when
  TF_USE_LEGACY_KERAS is set to a true value, Keras 3 otherwise.
  """
  value = os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower()
  return TF_KERAS if value in ("1", "true", "yes") else KERAS3


def default():
  return get(default_name())


def check_model(obj, arg_name="model"):
  """Validates an analysable Sequential/Functional model of either Keras.

  Returns:
    The model's adapter.

  Raises:
    TypeError: for a non-model.
    UnsupportedModelError: for a subclassed or unbuilt model.
  """
  fw = of(obj, arg_name)
  fw.check_model(obj, arg_name)
  return fw


# After the names above: `classes` reads them at import.
from tfprune_survey.frameworks import classes  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["Framework", "classes", "KERAS3", "NAMES", "TF_KERAS", "check_model",
           "default", "default_name", "detect", "get", "of"]
