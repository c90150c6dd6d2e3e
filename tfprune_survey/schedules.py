"""Pruning schedules: when to prune, and to what sparsity, at each step.

Pure-Python counterparts of tensorflow-model-optimization's (tfmot 0.8.1)
``ConstantSparsity`` and ``PolynomialDecay``. Constructor arguments, argument
checks, ``get_config`` layout and the values returned at every step follow
tfmot's ``tensorflow_model_optimization/python/core/sparsity/keras/
pruning_schedule.py``; the difference is that these compute with Python
numbers instead of TensorFlow ops, so they import neither tfmot nor any Keras
(``tf_keras`` or ``keras``) and work with any Keras backend.

A schedule is called with the current training step and returns
``(should_prune, sparsity)`` as a plain ``bool`` and ``float``::

  schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=1000)
  should_prune, sparsity = schedule(step)

Because the step is read with ``int(step)``, a schedule must be called with a
concrete step (a Python or numpy integer, or an eager tf / jax / numpy scalar),
not with a symbolic tensor inside a traced ``tf.function``.

``serialize``/``deserialize`` convert schedules to and from
``{"class_name": ..., "config": {...}}`` dicts, the layout tfmot uses. tfmot's
own schedule objects are accepted everywhere a schedule is (see
`is_schedule`), and a serialized tfmot ``ConstantSparsity`` or
``PolynomialDecay`` deserializes to the class of the same name here, which has
the same semantics.
"""

import abc
import math
import operator
import sys

__all__ = [
    "PruningSchedule", "ConstantSparsity", "PolynomialDecay", "is_schedule",
    "serialize", "deserialize",
]

_TFMOT = "tensorflow_model_optimization"


def _to_step(step):
  """Reads a training step (int, numpy integer, eager scalar tensor) as int."""
  try:
    value = int(step)
  except TypeError:
    value = None
  # Inside tf.function, AutoGraph turns int(tensor) into a symbolic cast.
  if not isinstance(value, int):
    raise TypeError(
        f"`step` must be an integer or a concrete scalar tensor (a symbolic "
        f"tensor inside tf.function cannot be read), got "
        f"{type(step).__name__}: {step!r}")
  return value


def _check_integer(value, name):
  """Raises a TypeError naming `name` unless `value` is an integer (a
  Python or numpy integer, not a bool or a float such as 2.0)."""
  try:
    operator.index(value)
    ok = not isinstance(value, bool)
  except TypeError:
    ok = False
  if not ok:
    raise TypeError(f"`{name}` must be an integer, got "
                    f"{type(value).__name__}: {value!r}")


def _check_power(power):
  """Raises naming `power` unless it is a real number other than NaN (tfmot
  takes any value and fails, or returns NaN sparsities, at its first call)."""
  if isinstance(power, (bool, str, bytes)) or power is None:
    ok = False
  else:
    try:
      value = float(power)
      ok = not isinstance(power, complex)
    except (TypeError, ValueError):
      ok = False
  if not ok:
    raise TypeError(f"`power` must be a real number, got "
                    f"{type(power).__name__}: {power!r}")
  if math.isnan(value):
    raise ValueError(f"`power` must be a number, got {power!r}")


class PruningSchedule(abc.ABC):
  """Base class: says whether to prune at a step, and at what sparsity.

  Subclasses implement `__call__` and `get_config`; `from_config` rebuilds a
  schedule from the inner config with ``cls(**config)``, as tfmot does. The
  helpers `_validate_step`, `_validate_sparsity` and `_should_prune_in_step`
  take the same arguments as tfmot's, so a tfmot-style custom schedule ports
  over by switching its base class and computing in Python.

  Semantics follow tfmot's ``pruning_schedule.py``.

  Example:
    >>> class EveryStep(PruningSchedule):
    ...   def __init__(self, sparsity):
    ...     self._validate_sparsity(sparsity, "sparsity")
    ...     self.sparsity = sparsity
    ...   def __call__(self, step):
    ...     return True, float(self.sparsity)
    ...   def get_config(self):
    ...     return {"class_name": "EveryStep",
    ...             "config": {"sparsity": self.sparsity}}
    >>> EveryStep(0.25)(7)
    (True, 0.25)
  """

  @abc.abstractmethod
  def __call__(self, step):
    """Returns whether to prune at `step`, and the sparsity to prune to.

    Args:
      step: the current training step: a Python or numpy integer, or a
        concrete scalar tf / jax / numpy tensor.

    Returns:
      A tuple ``(should_prune, sparsity)`` of a plain `bool` and a plain
      `float` in [0, 1).
    """

  @abc.abstractmethod
  def get_config(self):
    """Returns ``{"class_name": <class name>, "config": {<ctor args>}}``."""

  @classmethod
  def from_config(cls, config):
    """Builds a schedule from its config.

    Args:
      config: the inner ``"config"`` dict of `get_config()` (constructor
        keyword arguments), as tfmot's ``from_config`` takes; the whole
        ``{"class_name": ..., "config": ...}`` dict is accepted too.

    Returns:
      A new instance of `cls`.

    Raises:
      ValueError: the whole dict was passed and its ``"class_name"`` is not
        this class's name, or an argument is out of range.
      TypeError: the config holds an argument the constructor does not take.

    Example:
      >>> ConstantSparsity.from_config({"target_sparsity": 0.5,
      ...                               "begin_step": 0})
      ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, \
frequency=100)
    """
    if _is_wrapped(config):
      if config["class_name"] != cls.__name__:
        raise ValueError(
            f"config is for {config['class_name']!r}, not {cls.__name__!r}; "
            f"use tfprune_survey.schedules.deserialize(config) instead")
      config = config["config"]
    return cls(**config)

  def __repr__(self):
    try:
      config = self.get_config()["config"]
    except Exception:  # pylint: disable=broad-except
      return object.__repr__(self)
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{type(self).__name__}({args})"

  def _should_prune_in_step(self, step, begin_step, end_step, frequency):
    """True when `step` is in [begin_step, end_step] and on a pruning turn.

    Args:
      step: the current training step (anything `int()` accepts).
      begin_step: the first step at which pruning may happen.
      end_step: the last step at which pruning may happen; -1 (any negative
        value) means no end.
      frequency: pruning happens every `frequency` steps from `begin_step`.

    Returns:
      A plain `bool`.
    """
    step = _to_step(step)
    in_range = step >= begin_step and (end_step < 0 or step <= end_step)
    return bool(in_range and (step - begin_step) % frequency == 0)

  def _validate_step(self, begin_step, end_step, frequency, allow_negative_1):
    """Checks the step arguments, in tfmot's order.

    Args:
      begin_step: must be >= 0.
      end_step: must be >= begin_step, or -1 when `allow_negative_1`.
      frequency: must be > 0.
      allow_negative_1: whether `end_step` may be -1 (prune forever).

    Raises:
      TypeError: an argument is not an integer (tfmot's would fail at its
        first call, casting it to int64); the message names it.
      ValueError: an argument is out of range; the message names it.
    """
    for name, value in (("begin_step", begin_step), ("end_step", end_step),
                        ("frequency", frequency)):
      _check_integer(value, name)
    if begin_step < 0:
      raise ValueError(f"`begin_step` must be >= 0, got {begin_step!r}")
    if end_step == -1 and not allow_negative_1:
      raise ValueError(
          f"`end_step` cannot be -1 for {type(self).__name__}: it needs a "
          f"step at which to reach its final sparsity")
    if end_step != -1:
      if end_step < 0:
        raise ValueError(f"`end_step` must be -1 or >= 0, got {end_step!r}")
      if end_step < begin_step:
        raise ValueError(
            f"`end_step` ({end_step!r}) must be >= `begin_step` "
            f"({begin_step!r}) unless it is -1")
    if frequency <= 0:
      raise ValueError(f"`frequency` must be > 0, got {frequency!r}")

  def _validate_sparsity(self, sparsity, variable_name):
    """Checks that `sparsity` is in [0, 1).

    Args:
      sparsity: the value to check.
      variable_name: the argument's name, used in the message.

    Raises:
      TypeError: `sparsity` is not a number.
      ValueError: `sparsity` is outside [0, 1) (or NaN).
    """
    try:
      in_range = 0.0 <= sparsity < 1.0
    except TypeError:
      raise TypeError(
          f"`{variable_name}` must be a number in [0, 1), got "
          f"{type(sparsity).__name__}: {sparsity!r}") from None
    if not in_range:
      raise ValueError(
          f"`{variable_name}` must be in [0, 1), got {sparsity!r}")


class ConstantSparsity(PruningSchedule):
  """Prunes to the same sparsity every `frequency` steps in a step range.

  Same arguments and semantics as tfmot's ``ConstantSparsity``
  (``pruning_schedule.py``): at step ``s`` pruning happens when
  ``s >= begin_step``, ``end_step == -1 or s <= end_step`` and
  ``(s - begin_step) % frequency == 0``; the sparsity is always
  `target_sparsity`.

  Args:
    target_sparsity: the fraction of weights to prune, in [0, 1).
    begin_step: the first step at which to prune; >= 0.
    end_step: the last step at which to prune. Defaults to -1: no end.
    frequency: prune every `frequency` steps from `begin_step`. Defaults to
      100.

  Raises:
    TypeError: a step argument is not an integer (a float such as 2.0
      too), or a sparsity not a number; the message names it.
    ValueError: an argument is out of range; the message names it.

  Example:
    >>> schedule = ConstantSparsity(0.5, begin_step=100, frequency=50)
    >>> schedule(150), schedule(160), schedule(50)
    ((True, 0.5), (False, 0.5), (False, 0.5))
  """

  def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
    self.target_sparsity = target_sparsity
    self.begin_step = begin_step
    self.end_step = end_step
    self.frequency = frequency
    self._validate_step(begin_step, end_step, frequency, True)
    self._validate_sparsity(target_sparsity, "target_sparsity")

  def __call__(self, step):
    """Returns ``(should_prune, target_sparsity)`` at `step`.

    Args:
      step: the current training step: a Python or numpy integer, or a
        concrete scalar tf / jax / numpy tensor.

    Returns:
      A tuple of a plain `bool` and a plain `float`.
    """
    return (self._should_prune_in_step(step, self.begin_step, self.end_step,
                                       self.frequency),
            float(self.target_sparsity))

  def get_config(self):
    """Returns ``{"class_name": "ConstantSparsity", "config": {...}}``."""
    return {
        "class_name": type(self).__name__,
        "config": {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        },
    }


class PolynomialDecay(PruningSchedule):
  """Raises the sparsity from an initial to a final value along a polynomial.

  Same arguments and semantics as tfmot's ``PolynomialDecay``
  (``pruning_schedule.py``; Zhu and Gupta, 2017, arXiv:1710.01878). With
  ``p = (step - begin_step) / (end_step - begin_step)`` clamped to [0, 1]
  (that is, the step clamped to [begin_step, end_step])::

    sparsity = final_sparsity
               + (initial_sparsity - final_sparsity) * (1 - p) ** power

  so the sparsity grows fast at first and levels off at `final_sparsity`.
  Pruning happens on the same steps as `ConstantSparsity` with this
  `end_step` (which cannot be -1 here).

  One deliberate difference: when ``end_step == begin_step`` tfmot divides
  0 by 0 at that step and returns NaN; here p is 1 there, so the sparsity is
  `final_sparsity`. Every other step gives tfmot's value (which tfmot
  computes in float32; these are computed in float64).

  Args:
    initial_sparsity: the sparsity at `begin_step` (and before), in [0, 1).
    final_sparsity: the sparsity at `end_step` (and after), in [0, 1).
    begin_step: the first step at which to prune; >= 0.
    end_step: the last step at which to prune; >= begin_step.
    power: the exponent of the decay. Defaults to 3.
    frequency: prune every `frequency` steps from `begin_step`. Defaults to
      100.

  Raises:
    TypeError: a step argument is not an integer (a float such as 2.0
      too), a sparsity not a number, or `power` not a real number; the
      message names it.
    ValueError: an argument is out of range (`power` NaN); the message
      names it.

  Example:
    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100,
    ...                            power=1, frequency=50)
    >>> schedule(0), schedule(50), schedule(100), schedule(200)
    ((True, 0.0), (True, 0.4), (True, 0.8), (False, 0.8))
  """

  def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step,
               power=3, frequency=100):
    self.initial_sparsity = initial_sparsity
    self.final_sparsity = final_sparsity
    self.power = power
    self.begin_step = begin_step
    self.end_step = end_step
    self.frequency = frequency
    self._validate_step(begin_step, end_step, frequency, False)
    self._validate_sparsity(initial_sparsity, "initial_sparsity")
    self._validate_sparsity(final_sparsity, "final_sparsity")
    _check_power(power)

  def _progress(self, step):
    """The fraction p in [0, 1] of the way from begin_step to end_step."""
    if self.end_step == self.begin_step:  # tfmot: NaN at begin_step
      return 0.0 if step < self.begin_step else 1.0
    clamped = min(max(step, self.begin_step), self.end_step)
    return (clamped - self.begin_step) / (self.end_step - self.begin_step)

  def __call__(self, step):
    """Returns ``(should_prune, sparsity)`` at `step`.

    Args:
      step: the current training step: a Python or numpy integer, or a
        concrete scalar tf / jax / numpy tensor.

    Returns:
      A tuple of a plain `bool` and a plain `float`.
    """
    step = _to_step(step)
    remaining = 1.0 - self._progress(step)
    if remaining == 0.0 and self.power < 0:
      decay = math.inf  # tfmot's float pow: 0 ** negative is inf
    else:
      decay = remaining ** self.power
    if decay == 1.0:  # exactly initial_sparsity, not f + (i - f)
      sparsity = self.initial_sparsity
    else:
      sparsity = (self.final_sparsity
                  + (self.initial_sparsity - self.final_sparsity) * decay)
    return (self._should_prune_in_step(step, self.begin_step, self.end_step,
                                       self.frequency),
            float(sparsity))

  def get_config(self):
    """Returns ``{"class_name": "PolynomialDecay", "config": {...}}``."""
    return {
        "class_name": type(self).__name__,
        "config": {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "power": self.power,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        },
    }


_BUILTIN = {"ConstantSparsity": ConstantSparsity,
            "PolynomialDecay": PolynomialDecay}


def _is_wrapped(d):
  """True for a ``{"class_name": str, "config": dict}`` dict."""
  return (isinstance(d, dict) and isinstance(d.get("class_name"), str)
          and isinstance(d.get("config"), dict))


def is_schedule(obj):
  """True for anything usable as a pruning schedule.

  Duck-typed, so tfmot's own schedules count without importing tfmot: an
  instance (not a class) that is callable and has a callable `get_config`.

  Args:
    obj: any object.

  Returns:
    A plain `bool`.

  Example:
    >>> is_schedule(ConstantSparsity(0.5, 0)), is_schedule(lambda step: 0.5)
    (True, False)
  """
  if isinstance(obj, type):
    return False
  return callable(obj) and callable(getattr(obj, "get_config", None))


def serialize(schedule):
  """Returns a JSON-friendly ``{"class_name": ..., "config": {...}}`` dict.

  Works for the schedules here, tfmot's (whose ``get_config`` already
  returns that layout) and any other `is_schedule` object (a ``get_config``
  returning just the constructor arguments is wrapped).

  Args:
    schedule: a schedule object.

  Returns:
    ``{"class_name": type(schedule).__name__, "config": <ctor args>}``; the
    config is a new dict, so editing it leaves `schedule` alone.

  Raises:
    TypeError: `schedule` is not a schedule, or its config is not a dict.

  Example:
    >>> serialize(ConstantSparsity(0.5, 0))
    {'class_name': 'ConstantSparsity', 'config': {'target_sparsity': 0.5, \
'begin_step': 0, 'end_step': -1, 'frequency': 100}}
  """
  if not is_schedule(schedule):
    raise TypeError(
        f"`schedule` must be a pruning schedule (callable with a get_config "
        f"method), got {type(schedule).__name__}: {schedule!r}")
  config = schedule.get_config()
  if _is_wrapped(config):
    config = config["config"]
  if not isinstance(config, dict):
    raise TypeError(
        f"{type(schedule).__name__}.get_config() must return a dict, got "
        f"{type(config).__name__}")
  return {"class_name": type(schedule).__name__, "config": dict(config)}


def _tfmot_schedule_class(name):
  """tfmot's `name` class if tfmot is already imported and has it, else None."""
  tfmot = sys.modules.get(_TFMOT)
  if tfmot is None:
    return None
  try:
    api = tfmot.sparsity.keras
    klass = getattr(api, name)
    base = api.PruningSchedule
  except AttributeError:
    return None
  if isinstance(klass, type) and issubclass(klass, base):
    return klass
  return None


def deserialize(config, custom_objects=None):
  """Builds a schedule from a `serialize` (or tfmot ``get_config``) dict.

  ``"ConstantSparsity"`` and ``"PolynomialDecay"`` always give the classes
  here, also for dicts written from tfmot's schedules: they replace tfmot's
  on deserialization, with the same semantics. Any other class name is
  looked up in `custom_objects`, then, only if ``tensorflow_model_optimization``
  has already been imported (this never imports it), in
  ``tfmot.sparsity.keras``; the class's ``from_config`` builds the schedule.

  Args:
    config: a ``{"class_name": str, "config": dict}`` dict.
    custom_objects: optional ``{class name: schedule class}`` for schedules
      of your own. Defaults to None.

  Returns:
    A schedule object.

  Raises:
    TypeError: `config` is not a ``{"class_name", "config"}`` dict.
    ValueError: the class name is unknown (the message says how to register
      it), or the config's arguments are out of range.

  Example:
    >>> deserialize({"class_name": "PolynomialDecay",
    ...              "config": {"initial_sparsity": 0.0,
    ...                         "final_sparsity": 0.5, "begin_step": 0,
    ...                         "end_step": 10}})
    PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.5, power=3, \
begin_step=0, end_step=10, frequency=100)
  """
  if not _is_wrapped(config):
    raise TypeError(
        f"`config` must be a dict {{'class_name': str, 'config': dict}} as "
        f"returned by serialize(), got {config!r}")
  name = config["class_name"]
  klass = (custom_objects or {}).get(name) or _BUILTIN.get(name)
  if klass is None:
    klass = _tfmot_schedule_class(name)
  if klass is None:
    raise ValueError(
        f"Unknown pruning schedule class {name!r}. Known: "
        f"{sorted(_BUILTIN)}. Register your own class with "
        f"deserialize(config, custom_objects={{{name!r}: {name}}})"
        + ("" if _TFMOT in sys.modules else
           ", or, for a tfmot schedule, `import tensorflow_model_optimization`"
           " first") + ".")
  return klass.from_config(dict(config["config"]))
