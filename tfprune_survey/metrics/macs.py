"""Multiply-accumulate and parameter counts.

Convention (as in pruning papers): MACs of one sample, counting the
multiply-accumulates of conv, depthwise, separable, transposed conv and Dense
layers. BatchNormalization, activations, pooling and element-wise merges are
not counted. A layer called several times (a shared layer, or a sub-model
called twice) is counted once per call. A conv's MACs are its kernel's size
times its output positions, which for a grouped conv (groups > 1, kernel
(..., C_in / groups, C_out)) is k x C_in / groups x C_out per position.
Positions are the spatial axes of the layer's `data_format` (those after
the channel axis for 'channels_first'). A layer wrapped in TimeDistributed
is counted once per time step.
"""

import math

from tfprune_survey import frameworks
from tfprune_survey.errors import UnknownSizeError
from tfprune_survey.graph.walker import Walker

_MAC_RULES = {}
_BUILTINS_DONE = set()


def register_macs(layer_class, fn):
  """Registers fn(layer, input_shape, output_shape) -> MACs for a class.

  Args:
    layer_class: a layer class of either Keras (exact class match).
    fn: callable(layer, input_shape, output_shape) -> int.

  Returns:
    `fn`.
  """
  _ensure_builtins(frameworks.detect(layer_class))
  _MAC_RULES[layer_class] = fn
  return fn


def _positions(shape, layer=None):
  if shape is None:
    return 0
  channels_first = getattr(layer, "data_format", None) == "channels_first"
  inner = shape[2:] if channels_first else shape[1:-1]
  if any(d is None for d in inner):
    where = f" ('{layer.name}')" if layer is not None else ""
    raise UnknownSizeError(f"cannot count MACs: unknown spatial size in "
                           f"{shape}{where}; build the model with a fixed "
                           "input size")
  return int(math.prod(inner)) if inner else 1


def _weight(layer, name):
  found = frameworks.of(layer).find_weight(layer, name)
  if found is None:
    return 0
  return int(math.prod(layer.weights[found[0]].shape))


def _conv(layer, in_shape, out_shape):
  del in_shape
  return _weight(layer, "kernel") * _positions(out_shape, layer)


def _transpose(layer, in_shape, out_shape):
  del out_shape
  return _weight(layer, "kernel") * _positions(in_shape, layer)


def _depthwise(layer, in_shape, out_shape):
  del in_shape
  return _weight(layer, "depthwise_kernel") * _positions(out_shape, layer)


def _separable(layer, in_shape, out_shape):
  del in_shape
  return (_weight(layer, "depthwise_kernel") +
          _weight(layer, "pointwise_kernel")) * _positions(out_shape, layer)


def _time_distributed(layer, in_shape, out_shape):
  """The wrapped layer's MACs on one time step, times the steps."""
  inner = layer.layer
  _ensure_builtins(frameworks.detect(inner))
  rule = _MAC_RULES.get(type(inner))
  if rule is None or out_shape is None:
    return 0
  steps = out_shape[1]
  if steps is None:
    raise UnknownSizeError(f"cannot count MACs: unknown number of time "
                           f"steps in {out_shape} ('{layer.name}'); build the "
                           "model with a fixed input size")

  def step(shape):
    return None if shape is None else tuple(shape[:1]) + tuple(shape[2:])
  return int(steps) * int(rule(inner, step(in_shape), step(out_shape)))


def _ensure_builtins(name):
  if name is None or name in _BUILTINS_DONE:
    return
  _BUILTINS_DONE.add(name)
  layers = frameworks.get(name).layers
  rules = {("Conv1D", "Conv2D", "Conv3D", "Dense"): _conv,
           ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
               _transpose,
           ("DepthwiseConv1D", "DepthwiseConv2D"): _depthwise,
           ("SeparableConv1D", "SeparableConv2D"): _separable,
           ("TimeDistributed",): _time_distributed}
  for names, fn in rules.items():
    for n in names:
      _MAC_RULES.setdefault(getattr(layers, n), fn)


def layer_call_macs(call):
  _ensure_builtins(frameworks.detect(call.layer))
  rule = _MAC_RULES.get(type(call.layer))
  if rule is None:
    return 0
  return int(rule(call.layer, call.input_shapes[0] if call.input_shapes else
                  None, call.output_shapes[0]))


def iter_calls(model):
  calls = []

  def visit(call):
    calls.append(call)
    return [None] * len(call.output_shapes)
  Walker(model, visit, lambda path, shape: None)
  return calls


def count_macs(model):
  """MACs of one sample (see the module docstring for what is counted).

  Args:
    model: a Sequential/Functional model of either Keras, with a fixed
      input size.

  Returns:
    int.
  """
  frameworks.check_model(model)
  return sum(layer_call_macs(c) for c in iter_calls(model))


def count_params(model):
  """All parameters, trainable and not (== `model.count_params()`)."""
  frameworks.check_model(model)
  return int(model.count_params())
