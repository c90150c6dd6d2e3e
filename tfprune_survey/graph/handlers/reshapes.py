"""Shape-changing layers we can follow: Flatten, channel-preserving Reshape."""

import math

from tfprune_survey.graph.handlers.registry import LayerHandler


class Flatten(LayerHandler):
  """Flatten: channel c appears at every spatial position, as (h, w, c)."""

  def propagate(self, call, b):
    lay = call.inputs[0]
    shape = call.input_shapes[0]
    if lay is None:
      return [None]
    if call.config.get("data_format") == "channels_first" and len(shape) > 2:
      reason = f"'{call.path}' (Flatten) uses channels_first"
      b.block([lay], reason)
      return [b.opaque(call, call.output_shapes[0], reason)]
    inner = shape[1:-1]
    if any(d is None for d in inner):
      reason = f"'{call.path}' (Flatten) has unknown spatial size {shape}"
      b.block([lay], reason)
      return [b.opaque(call, call.output_shapes[0], reason)]
    return [lay.flatten(int(math.prod(inner)) if inner else 1)]


class Reshape(LayerHandler):
  """Reshape that keeps the last axis (e.g. (N, C) -> (N, 1, 1, C), with
  target (1, 1, C) or (1, 1, -1)).

  In row-major order an unchanged last axis keeps every channel index, so the
  layout passes through and `target_shape[-1]` follows the kept width. Any
  other Reshape blocks the channels it touches.
  """

  def propagate(self, call, b):
    lay = call.inputs[0]
    in_shape, out_shape = call.input_shapes[0], call.output_shapes[0]
    target = call.config.get("target_shape") or ()
    # A last target of -1 that comes out as the channel count (1, 1, -1)
    # keeps the last axis too: the other target axes hold every position,
    # so -1 is the kept width after pruning and the config stays as it is.
    keeps_last = (lay is not None and lay.spatial == 1 and in_shape and
                  out_shape and in_shape[-1] is not None and
                  in_shape[-1] == out_shape[-1] and target and
                  target[-1] in (in_shape[-1], -1))
    if not keeps_last:
      reason = (f"'{call.path}' (Reshape to {tuple(target)}) moves channels "
                "across axes")
      b.block([lay], reason)
      return [b.opaque(call, out_shape, reason)]
    if target[-1] != -1:
      b.width(call, ("target_shape", -1), lay)
    return [lay]


def registrations(layers):
  """[(class, handler)] of this module, for one Keras' `layers` namespace."""
  return [(layers.Flatten, Flatten()), (layers.Reshape, Reshape())]
