"""The criteria registry: names() / get() / register_criterion()."""

from tfprune_survey.criteria.base import Criterion

_REGISTRY = {}


def register_criterion(name, factory=None):
  """Registers a criterion class (or zero-argument factory) under `name`.

  Args:
    name: the registry name, e.g. 'my_norm'.
    factory: a `Criterion` subclass or a callable returning an instance.
      When omitted, returns a class decorator.

  Returns:
    `factory` (or a decorator that registers its class).

  Example:
    >>> @tps.criteria.register_criterion("my_norm")
    ... class MyNorm(tps.criteria.Criterion): ...
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"`name` must be a non-empty string, got {name!r}")
  if factory is None:
    return lambda f: register_criterion(name, f)
  if not callable(factory):
    raise TypeError(f"`factory` must be callable, got {factory!r}")
  _REGISTRY[name] = factory
  return factory


def names():
  """Sorted registry names."""
  return sorted(_REGISTRY)


def get(identifier):
  """A `Criterion` from a registry name or an instance.

  Args:
    identifier: a name from `names()`, or a `Criterion` instance (returned
      as is).

  Raises:
    ValueError: for an unknown name (the message lists the known ones).
    TypeError: for anything else.
  """
  if isinstance(identifier, Criterion):
    return identifier
  if isinstance(identifier, str):
    if identifier not in _REGISTRY:
      raise ValueError(f"unknown criterion {identifier!r}; choose one of "
                       f"{names()} or pass a Criterion instance")
    return _REGISTRY[identifier]()
  raise TypeError("`criterion` must be a name from tps.criteria.names() or a "
                  f"Criterion instance, got {type(identifier).__name__}")


def serialize(criterion):
  criterion = get(criterion)
  return {"class_name": criterion.name, "config": criterion.get_config()}


def deserialize(config):
  factory = _REGISTRY.get(config.get("class_name"))
  if factory is None:
    raise ValueError(f"unknown criterion {config.get('class_name')!r}")
  cls = factory if isinstance(factory, type) else type(factory())
  return cls.from_config(config.get("config", {}))
