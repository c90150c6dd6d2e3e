"""Small helpers shared by the layer handlers."""

#: activations that mix channels (so they block the group they touch)
MIXING_ACTIVATIONS = ("softmax", "log_softmax")


def rank_of(shape):
  return len(shape) if shape is not None else None


def channel_axis_in(axis, rank):
  """Whether `axis` (int or list) includes the last axis of a rank-`rank` tensor."""
  if rank is None:
    return True
  axes = axis if isinstance(axis, (list, tuple)) else [axis]
  return any(a % rank == rank - 1 for a in axes)


def channels_last(call):
  return call.config.get("data_format", "channels_last") in (
      None, "channels_last")


def not_channels_last_reason(call):
  return (f"'{call.path}' ({call.class_name}) uses data_format="
          f"{call.config.get('data_format')!r}; only channels_last is "
          "analysed")


def block_channels_first(call, b):
  """Blocks the inputs of a channels_first layer; its outputs are opaque."""
  reason = not_channels_last_reason(call)
  b.block(call.inputs, reason)
  return [b.opaque(call, shape, reason) for shape in call.output_shapes]


def has_bias(call):
  """Whether the layer's config says it has a bias (the default)."""
  return bool(call.config.get("use_bias", True))
