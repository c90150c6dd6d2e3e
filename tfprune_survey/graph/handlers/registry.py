"""Registry of per-layer channel handlers, keyed by exact layer class."""

_HANDLERS = {}


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
    layer_class: a tf_keras layer class. Matching is by exact class, so a
      subclass is never assumed to behave like its parent.
    handler: a `LayerHandler` instance.

  Returns:
    The handler.

  Example:
    >>> tps.register_handler(MyScale, tps.graph.handlers.PassThrough())
  """
  if not isinstance(layer_class, type):
    raise TypeError(f"`layer_class` must be a class, got {layer_class!r}")
  if not isinstance(handler, LayerHandler):
    raise TypeError("`handler` must be a LayerHandler instance, got "
                    f"{type(handler).__name__}")
  _HANDLERS[layer_class] = handler
  return handler


def get_handler(layer):
  """The handler registered for `layer`'s exact class, or None."""
  return _HANDLERS.get(type(layer))
