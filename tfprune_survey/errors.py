"""Exceptions raised by tfprune_survey."""


class UnsupportedModelError(TypeError):
  """The model cannot be analysed at all (e.g. a subclassed model).

  Subclasses `TypeError`. The message names the object's class and the fix.
  """


class UnreachableTargetError(ValueError):
  """A pruning target that no plan reaches.

  Attributes:
    argument: the target's argument ('target_macs', 'target_latency').
    target: its value.
    best: the largest reduction a plan reaches (a fraction).
    quantity: what is reduced ('reachable MACs', 'predicted latency').
    limits: the phrases naming what limits it (`min_channels`, ...).
    note: said after `best` (e.g. what it includes), or ''.
  """

  def __init__(self, argument, target, best, quantity, limits, note=""):
    self.argument, self.target, self.best = argument, target, best
    self.quantity, self.limits, self.note = quantity, list(limits), note
    super().__init__(
        f"`{argument}`={target} is unreachable: the largest {quantity} "
        f"reduction is {best:.3f}{note}, with " + "; ".join(self.limits))


class UnknownSizeError(ValueError):
  """MACs cannot be counted: an input's spatial size or number of time
  steps is free (None). Subclasses `ValueError`; the message names it and
  asks for a fixed input size."""
