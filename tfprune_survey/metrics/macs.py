"""Multiply-accumulate and parameter counts.

Convention (as in pruning papers): MACs of one sample, counting the
multiply-accumulates of conv, depthwise, separable, transposed conv and Dense
layers. BatchNormalization, activations, pooling and element-wise merges are
not counted. A layer called several times (a shared layer, or a sub-model
called twice) is counted once per call.
"""

import math

from tfprune_survey import _compat
from tfprune_survey._compat import keras
from tfprune_survey.graph.builder import short_weight_name
from tfprune_survey.graph.walker import Walker

_MAC_RULES = {}


def register_macs(layer_class, fn):
  """Registers fn(layer, input_shape, output_shape) -> MACs for a class."""
  _MAC_RULES[layer_class] = fn
  return fn


def _positions(shape):
  if shape is None:
    return 0
  inner = shape[1:-1]
  if any(d is None for d in inner):
    raise ValueError(f"cannot count MACs: unknown spatial size in {shape}; "
                     "build the model with a fixed input size")
  return int(math.prod(inner)) if inner else 1


def _weight(layer, name):
  for w in layer.weights:
    if short_weight_name(w.name) == name:
      return int(math.prod(w.shape))
  return 0


def _conv(layer, in_shape, out_shape):
  del in_shape
  return _weight(layer, "kernel") * _positions(out_shape)


def _transpose(layer, in_shape, out_shape):
  del out_shape
  return _weight(layer, "kernel") * _positions(in_shape)


def _depthwise(layer, in_shape, out_shape):
  del in_shape
  return _weight(layer, "depthwise_kernel") * _positions(out_shape)


def _separable(layer, in_shape, out_shape):
  del in_shape
  return (_weight(layer, "depthwise_kernel") +
          _weight(layer, "pointwise_kernel")) * _positions(out_shape)


for _cls in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
             keras.layers.Dense):
  register_macs(_cls, _conv)
for _cls in (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
             keras.layers.Conv3DTranspose):
  register_macs(_cls, _transpose)
for _cls in (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D):
  register_macs(_cls, _depthwise)
for _cls in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D):
  register_macs(_cls, _separable)


def layer_call_macs(call):
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
    model: a tf_keras Sequential/Functional model with a fixed input size.

  Returns:
    int.
  """
  _compat.check_model(model)
  return sum(layer_call_macs(c) for c in iter_calls(model))


def count_params(model):
  """All parameters, trainable and not (== `model.count_params()`)."""
  _compat.check_model(model)
  return int(model.count_params())
