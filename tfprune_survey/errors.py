"""Exceptions raised by tfprune_survey."""


class UnsupportedModelError(TypeError):
  """The model cannot be analysed at all (e.g. a subclassed model).

  Subclasses `TypeError`. The message names the object's class and the fix.
  """
