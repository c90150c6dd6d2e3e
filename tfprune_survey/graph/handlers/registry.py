"""Registry of per-layer channel handlers, keyed by exact layer class.

The built-in handlers are registered per framework, the first time a layer
of that framework is looked up, so importing the package imports no Keras.
"""

from tfprune_survey import frameworks

_HANDLERS = {}
_BUILTINS_DONE = set()


class LayerHandler:
  """How one layer family moves channels from its inputs to its outputs.

  Subclasses implement `propagate(call, builder)`, which records the weight
  slices of the call in `builder` and returns one `Layout` (or None, for
  channels we cannot follow) per output tensor.
  """

  def propagate(self, call, builder):
    raise NotImplementedError


def register_handler(layer_class, handler):
  """Registers how a layer class is analysed.

  Args:
    layer_class: a tf_keras or Keras 3 layer (or Keras 3 operation) class.
      Matching is by exact class, so a subclass is never assumed to behave
      like its parent.
    handler: a `LayerHandler` instance.

  Returns:
    The handler.

  Raises:
    TypeError: when `layer_class` is not a class or `handler` not a
      LayerHandler.

  Example:
    >>> tps.register_handler(MyScale, tps.graph.handlers.PassThrough())
  """
  if not isinstance(layer_class, type):
    raise TypeError(f"`layer_class` must be a class, got {layer_class!r}")
  if not isinstance(handler, LayerHandler):
    raise TypeError("`handler` must be a LayerHandler instance, got "
                    f"{type(handler).__name__}")
  _ensure_builtins(frameworks.detect(layer_class))
  _HANDLERS[layer_class] = handler
  return handler


def _ensure_builtins(name):
  """Registers the built-in handlers of framework `name` once.

  A user's registration for a built-in class (made after this) wins.
  """
  if name is None or name in _BUILTINS_DONE:
    return
  _BUILTINS_DONE.add(name)
  from tfprune_survey.graph.handlers import merges  # pylint: disable=g-import-not-at-top
  from tfprune_survey.graph.handlers import normalization  # pylint: disable=g-import-not-at-top
  from tfprune_survey.graph.handlers import passthrough  # pylint: disable=g-import-not-at-top
  from tfprune_survey.graph.handlers import producers  # pylint: disable=g-import-not-at-top
  from tfprune_survey.graph.handlers import reshapes  # pylint: disable=g-import-not-at-top
  from tfprune_survey.graph.handlers import applications  # pylint: disable=g-import-not-at-top
  fw = frameworks.get(name)
  pairs = []
  for module in (passthrough, producers, merges, reshapes, normalization):
    pairs.extend(module.registrations(fw.layers))
  pairs.extend(applications.registrations(fw.keras))
  pairs.extend(fw.handler_registrations())
  for cls, handler in pairs:
    _HANDLERS.setdefault(cls, handler)


def get_handler(layer):
  """The handler registered for `layer`'s exact class, or None."""
  _ensure_builtins(frameworks.detect(layer))
  return _HANDLERS.get(type(layer))
