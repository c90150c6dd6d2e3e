"""Op nodes that act element-wise: tf_keras' TFOpLambda, Keras 3 operations.

Only ops that act on each element alone, with scalar constants, are followed;
any other op blocks the channels it touches.
"""

from tfprune_survey.graph.handlers.merges import ElementwiseMerge
from tfprune_survey.graph.handlers.registry import LayerHandler

ELEMENTWISE_OPS = frozenset({
    "__operators__.add", "__operators__.sub", "__operators__.mul",
    "__operators__.truediv", "math.add", "math.subtract", "math.multiply",
    "math.truediv", "math.divide", "math.maximum", "math.minimum",
    "nn.relu", "nn.relu6", "math.sigmoid", "nn.sigmoid", "math.tanh",
    "nn.tanh", "nn.swish", "nn.silu", "nn.gelu", "nn.elu", "nn.selu",
    "math.softplus", "nn.softplus", "math.abs", "math.square",
    "clip_by_value", "nn.leaky_relu", "identity",
})


def _scalar(value):
  return value is None or isinstance(value, (int, float, str, bool))


def _blocked(call, b, reason):
  b.block(call.inputs, reason)
  return [b.opaque(call, s, reason) for s in call.output_shapes]


#: TF ops that divide their first operand by their second
DIVIDING_OPS = frozenset({"__operators__.truediv", "math.truediv",
                          "math.divide"})


def _divides_by_tensor(call):
  """Whether a division's divisor is a tensor: two tensor operands, or a
  constant first operand (`2.0 / x`, read as the call's `arg0`)."""
  return len(call.inputs) > 1 or "arg0" in call.kwargs


def _negative_exponent(call):
  """Whether a power may raise a zeroed channel to a negative exponent."""
  if "arg0" in call.kwargs:     # a constant base: c ** x is finite at 0
    return False
  if len(call.inputs) > 1:      # a tensor exponent: unknown sign
    return True
  return any(isinstance(v, (int, float)) and not isinstance(v, bool) and
             v < 0 for v in call.kwargs.values())


class ElementwiseOp(LayerHandler):
  """An element-wise op: pass-through with scalars, merge with tensors.

  Args:
    singular: None, or how the op can be infinite where `mask_channels`
      zeroes a channel: 'divisor' (a division by a tensor), 'zero' (log,
      reciprocal: at 0 itself), 'power' (a negative exponent). Then 0 * inf
      in the masked consumer is NaN where the slim model is finite, so the
      channels are not pruned.
  """

  def __init__(self, singular=None):
    self.singular = singular

  def _singular(self, call):
    """The inputs whose zeroed channels can make the op infinite."""
    if self.singular == "divisor" and _divides_by_tensor(call):
      # The divisor only: a zeroed dividend channel gives 0 / d = 0. With a
      # constant first operand (2.0 / x) the one input is the divisor.
      return list(call.inputs[-1:])
    if self.singular == "power" and _negative_exponent(call):
      return list(call.inputs[:1])   # the base
    if self.singular == "zero":
      return list(call.inputs)
    return []

  def propagate(self, call, b):
    if not all(_scalar(v) for v in call.kwargs.values()):
      return _blocked(call, b, f"'{call.path}' ({call.class_name} op) takes "
                      "a constant that is not a scalar")
    singular = self._singular(call)
    if singular:
      b.block(singular, f"'{call.path}' ({call.class_name} op) is not "
              "finite where a pruned channel is zero (a division, log or "
              "negative power)")
    if len(call.inputs) == 1:
      return [call.inputs[0]]
    return ElementwiseMerge().propagate(call, b)


class TFOp(ElementwiseOp):
  """tf_keras' TFOpLambda: followed only for the ops in ELEMENTWISE_OPS."""

  def propagate(self, call, b):
    fn = call.config.get("function")
    if fn not in ELEMENTWISE_OPS:
      return _blocked(call, b, f"'{call.path}' is the TF op {fn!r}, which is "
                      "not modelled")
    if fn in DIVIDING_OPS:
      return ElementwiseOp("divisor").propagate(call, b)
    return super().propagate(call, b)
