"""TFOpLambda layers (tf ops used on Keras tensors) that act element-wise.

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


class TFOp(LayerHandler):
  """Element-wise TF ops: pass-through with scalars, merge with tensors."""

  def propagate(self, call, b):
    fn = call.config.get("function")
    constants_ok = all(_scalar(v) for k, v in call.kwargs.items())
    if fn not in ELEMENTWISE_OPS or not constants_ok:
      reason = f"'{call.path}' is the TF op {fn!r}, which is not modelled"
      b.block(call.inputs, reason)
      return [b.opaque(call, s, reason) for s in call.output_shapes]
    if len(call.inputs) == 1:
      return [call.inputs[0]]
    return ElementwiseMerge().propagate(call, b)
