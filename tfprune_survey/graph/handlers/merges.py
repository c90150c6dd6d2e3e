"""Layers that combine several tensors: element-wise merges and Concatenate."""

from tfprune_survey.graph import layout as layout_lib
from tfprune_survey.graph.handlers import common
from tfprune_survey.graph.handlers.registry import LayerHandler


class ElementwiseMerge(LayerHandler):
  """Add, Subtract, Multiply, Average, Maximum, Minimum: join input groups.

  An input whose channel axis has size 1 while the output has more (a
  broadcast, e.g. a spatial attention map), or a rank-0 input (a scalar
  computed in the graph), is not coupled.
  """

  def propagate(self, call, b):
    out_shape = call.output_shapes[0]
    out_c = out_shape[-1] if out_shape else None
    coupled = []
    for lay, shape in zip(call.inputs, call.input_shapes):
      broadcast = shape is not None and (
          len(shape) == 0 or (shape[-1] == 1 and out_c not in (None, 1)))
      if not broadcast:
        coupled.append(lay)
    return [b.unify(coupled, call)]


class Concatenate(LayerHandler):
  """Concatenate: on the channel axis, inputs become segments of the output."""

  def propagate(self, call, b):
    rank = common.rank_of(call.input_shapes[0])
    if common.channel_axis_in(call.config.get("axis", -1), rank):
      if any(lay is None or lay.spatial > 1 for lay in call.inputs):
        b.block(call.inputs, f"'{call.path}' (Concatenate) joins tensors "
                "whose channels are not all known")
        return [b.opaque(call, call.output_shapes[0],
                         f"output of '{call.path}'")]
      return [layout_lib.concat(call.inputs)]
    # Concatenating along another axis: channel c of every input meets.
    return [b.unify(list(call.inputs), call)]


def registrations(layers):
  """[(class, handler)] of this module, for one Keras' `layers` namespace."""
  out = [(getattr(layers, n), ElementwiseMerge()) for n in
         ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")]
  out.append((layers.Concatenate, Concatenate()))
  return out
