"""profile: a per-layer table of shapes, parameters and MACs."""

import dataclasses

from tfprune_survey import frameworks
from tfprune_survey.metrics.macs import iter_calls
from tfprune_survey.metrics.macs import layer_call_macs


@dataclasses.dataclass
class ProfileRow:
  name: str
  type: str
  output_shape: tuple
  params: int
  macs: int


class Profile(list):
  """A list of `ProfileRow`, printable as a table, with totals."""

  @property
  def total_macs(self):
    return sum(r.macs for r in self)

  @property
  def total_params(self):
    return sum(r.params for r in self)

  def __str__(self):
    head = f"{'layer':44s} {'type':24s} {'output shape':22s} {'params':>10s} {'MACs':>14s}"
    lines = [head, "-" * len(head)]
    for r in self:
      lines.append(f"{r.name[:44]:44s} {r.type[:24]:24s} "
                   f"{str(r.output_shape)[:22]:22s} {r.params:10,d} "
                   f"{r.macs:14,d}")
    lines.append("-" * len(head))
    lines.append(f"{'total':44s} {'':24s} {'':22s} {self.total_params:10,d} "
                 f"{self.total_macs:14,d}")
    return "\n".join(lines)


def profile(model):
  """Per-layer table: name, type, output shape, params and MACs.

  Each layer's parameters are counted at its first call only, so the params
  column sums to `model.count_params()`; MACs are counted per call.

  Args:
    model: a Sequential/Functional model of either Keras.

  Returns:
    A `Profile` (a list of `ProfileRow`); `print(profile)` shows a table.
  """
  frameworks.check_model(model)
  rows = Profile()
  seen = set()
  for call in iter_calls(model):
    # Keras 3 Operation nodes (`x + y`, keras.ops calls) hold no weights.
    counter = getattr(call.layer, "count_params", None)
    # A layer is one object however it is reached (called twice, or shared
    # between a nested model and its parent: two paths).
    params = 0 if id(call.layer) in seen or counter is None else int(counter())
    seen.add(id(call.layer))
    rows.append(ProfileRow(call.path, call.class_name,
                           tuple(call.output_shapes[0] or ()), params,
                           layer_call_macs(call)))
  return rows
