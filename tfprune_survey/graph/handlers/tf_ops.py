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


class ElementwiseOp(LayerHandler):
  """An element-wise op: pass-through with scalars, merge with tensors."""

  def propagate(self, call, b):
    if not all(_scalar(v) for v in call.kwargs.values()):
      return _blocked(call, b, f"'{call.path}' ({call.class_name} op) takes "
                      "a constant that is not a scalar")
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
    return super().propagate(call, b)
