"""Small helpers shared by the layer handlers."""

#: activations that mix channels (so they block the group they touch)
MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")

#: built-in activations (either Keras) that act on each element alone; any
#: other activation (a channel-mixing one, a user's function) blocks.
ELEMENTWISE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "celu",
    "gelu", "softplus", "softsign", "swish", "silu", "exponential",
    "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "hard_shrink",
    "soft_shrink", "leaky_relu", "log_sigmoid", "mish", "sparse_plus",
    "sparse_sigmoid", "squareplus", "tanh_shrink", "threshold",
    # element-wise functions of keras.ops / tf.math given as activations
    "abs", "exp", "square",
})

#: modules whose functions are trusted by name (Keras' activations and ops,
#: TensorFlow's ops); a function from anywhere else is a user's own.
_TRUSTED_MODULES = ("keras.activations", "keras.src.activations",
                    "keras.src.ops", "tf_keras.activations",
                    "tf_keras.src.activations", "tensorflow.python.ops")


def _activation_name(act):
  """The built-in name of a config's activation, or None if it is not one."""
  if act is None:
    return "linear"
  if isinstance(act, str):
    return act
  if isinstance(act, dict) and act.get("class_name") == "function" and (
      str(act.get("module") or "").startswith(
          ("keras.activations", "keras.src.activations",
           "tf_keras.activations", "tf_keras.src.activations"))):
    return act.get("config") if isinstance(act.get("config"), str) else None
  return None


def _live_activation_name(call, key):
  """The trusted name of the layer's own activation function.

  Read from the live layer, not its config: Keras 3 serializes `tf.nn.silu`
  like a user's function ({'module': 'builtins', 'config': 'swish'}), and
  both Kerases serialize a user's function named `relu` as the string
  'relu'. Returns None for a function outside Keras and TensorFlow, and
  False when the layer has no such function to read (use the config).
  """
  fn = getattr(getattr(call, "layer", None), key, None)
  if fn is None or not callable(fn) or not hasattr(fn, "__name__"):
    return False
  if not str(getattr(fn, "__module__", "") or "").startswith(
      _TRUSTED_MODULES):
    return None
  name = fn.__name__
  return name[:-3] if name.endswith("_v2") else name


def activation_reason(call, key="activation"):
  """Why `call`'s activation (config entry `key`) blocks its channels.

  Returns '' for an element-wise built-in activation (or none); otherwise a
  reason naming the layer and the activation: a softmax-like activation
  mixes channels, and one we do not know is not assumed element-wise.
  """
  if key not in call.config:
    return ""
  act = call.config[key]
  name = _live_activation_name(call, key)
  if name is False:
    name = _activation_name(act)
  if name in ELEMENTWISE_ACTIVATIONS:
    return ""
  if name in MIXING_ACTIVATIONS:
    return f"'{call.path}' applies {name} across channels"
  if name is not None:
    shown = name
  elif isinstance(act, dict) and isinstance(act.get("config"), str):
    shown = act["config"]
  elif isinstance(act, dict):
    shown = act.get("class_name")  # e.g. a layer given as the activation
  else:
    shown = act
  return (f"'{call.path}' applies the activation {shown!r}, which is not "
          "known to act on each channel alone")


def block_mixing_activation(call, b, layouts, key="activation"):
  """Blocks `layouts` when `call`'s activation is not element-wise."""
  reason = activation_reason(call, key)
  if reason:
    b.block(layouts, reason)


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
