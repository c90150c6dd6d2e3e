"""Keras classes of ours, one per framework, made on first use.

A class that users put in models (`ChannelPruneWrapper`, `ChannelScale`,
`DistillationModel`) must subclass a
class of the model's own Keras, so there is one concrete class per framework
(tf_keras, Keras 3), built by a factory the first time that Keras is seen
and registered serializable as `tfprune_survey>Name` in it. The public name
is a dispatcher (`dispatcher_meta`): `isinstance(x, Public)` holds for every
concrete class.

So that a saved model loads without `custom_objects` in a new process, the
concrete classes are made and registered as soon as their Keras is imported
(`when_keras_imported`): at once for a Keras already imported, otherwise
right after the user's own `import keras` / `import tf_keras`. Nothing here
imports a Keras.
"""

import importlib.abc
import importlib.util
import sys
import warnings

from tfprune_survey import frameworks

PACKAGE = "tfprune_survey"

#: The module of each framework, as the user imports it.
_MODULES = {"tf_keras": frameworks.TF_KERAS, "keras": frameworks.KERAS3}
_CALLBACKS = []
_FIRED = set()


class PerFramework:
  """One class per framework from `make(adapter)`, made once and cached.

  Args:
    make: callable(adapter) -> the concrete class for that framework.
  """

  def __init__(self, make):
    self._make = make
    self._classes = {}

  def __call__(self, framework):
    """The class of `framework` ('tf_keras', 'keras3' or an adapter)."""
    fw = frameworks.get(framework)
    if fw.name not in self._classes:
      self._classes[fw.name] = self._make(fw)
    return self._classes[fw.name]

  def made(self):
    """The concrete classes made so far."""
    return tuple(self._classes.values())


def dispatcher_meta(classes):
  """A metaclass whose classes stand for every class of `classes` (a
  `PerFramework`) in isinstance/issubclass checks."""

  class Dispatch(type):

    def __instancecheck__(cls, obj):
      return isinstance(obj, classes.made())

    def __subclasscheck__(cls, sub):
      return sub is cls or issubclass(sub, classes.made())

  return Dispatch


def register(fw, name):
  """The decorator registering a class as `tfprune_survey>name` in `fw`."""
  keras = fw.keras
  if fw.name == frameworks.KERAS3:
    return keras.saving.register_keras_serializable(package=PACKAGE,
                                                    name=name)
  return keras.utils.register_keras_serializable(package=PACKAGE, name=name)


def when_keras_imported(fn):
  """Calls `fn(framework name)` once for each Keras, when it is imported.

  At once for a Keras already imported; otherwise just after its import
  finishes. An exception in `fn` becomes a warning: the user's import of
  Keras must never fail because of us.
  """
  _CALLBACKS.append(fn)
  for module, name in _MODULES.items():
    if _imported(module):
      _FIRED.add(module)
      _call(fn, name)
  if not all(m in _FIRED for m in _MODULES) and not any(
      isinstance(f, _KerasImportFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _KerasImportFinder())


def _imported(module):
  mod = sys.modules.get(module)
  spec = getattr(mod, "__spec__", None)
  return mod is not None and not getattr(spec, "_initializing", False)


def _call(fn, name):
  try:
    fn(name)
  except Exception as e:  # pylint: disable=broad-except
    warnings.warn(f"tfprune_survey could not register its {name} classes: "
                  f"{e!r}; pass them as custom_objects to load models")


def _fire(module):
  if module in _FIRED:
    return
  _FIRED.add(module)
  for fn in list(_CALLBACKS):
    _call(fn, _MODULES[module])
  if all(m in _FIRED for m in _MODULES):
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not isinstance(f, _KerasImportFinder)]


class _KerasImportFinder(importlib.abc.MetaPathFinder):
  """Finds `keras` / `tf_keras` through the other finders, and runs the
  callbacks once the module has executed."""

  def __init__(self):
    self._busy = set()

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname not in _MODULES or fullname in _FIRED or (
        fullname in self._busy):
      return None
    self._busy.add(fullname)
    try:
      spec = importlib.util.find_spec(fullname)
    finally:
      self._busy.discard(fullname)
    if spec is None or not hasattr(spec.loader, "exec_module"):
      return None
    spec.loader = _FiringLoader(spec.loader, fullname)
    return spec


class _FiringLoader(importlib.abc.Loader):
  """Delegates to the real loader; fires the callbacks after execution and
  puts the real loader back on the module."""

  def __init__(self, loader, fullname):
    self._loader = loader
    self._fullname = fullname

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    module.__loader__ = self._loader
    if module.__spec__ is not None:
      module.__spec__.loader = self._loader
    _fire(self._fullname)

  def __getattr__(self, name):
    return getattr(self._loader, name)
