"""Keras 3 Operation nodes: `keras.ops` calls and Python operators.

`x * 0.5`, `ops.relu(x)` or `ops.concatenate([a, b])` on Keras tensors become
nodes of the functional graph. Element-wise ops with scalar constants keep
channel c where it is; with several tensor inputs they merge the inputs'
groups, as the Add layer does; `concatenate` on the channel axis joins
segments as the Concatenate layer does. Matching is by the op class itself,
so `ops.numpy.Add` is never confused with `layers.Add`. Any other op blocks
the channels it touches (the default for unknown classes).
"""

from tfprune_survey.graph.handlers.merges import Concatenate
from tfprune_survey.graph.handlers.tf_ops import ElementwiseOp

ELEMENTWISE_NUMPY = (
    "Abs", "Absolute", "Add", "Subtract", "Multiply", "Divide",
    "TrueDivide", "Maximum", "Minimum", "Negative", "Square", "Sqrt",
    "Exp", "Log", "Log1p", "Tanh", "Sign", "Clip", "Power", "Reciprocal",
    "Fabs",
)
#: ops infinite where a pruned channel is zero (see ElementwiseOp)
SINGULAR = {"Divide": "divisor", "TrueDivide": "divisor", "Log": "zero",
            "Reciprocal": "zero", "Power": "power"}
ELEMENTWISE_NN = (
    "Relu", "Relu6", "Sigmoid", "Silu", "Gelu", "Elu", "Selu", "Softplus",
    "Softsign", "LeakyRelu", "HardSigmoid", "HardSilu", "HardTanh", "Celu",
    "LogSigmoid", "Squareplus", "TanhShrink",
)


def registrations():
  """[(op class, handler)] for Keras 3's element-wise ops and concatenate."""
  from keras.src.ops import nn  # pylint: disable=g-import-not-at-top
  from keras.src.ops import numpy as knp  # pylint: disable=g-import-not-at-top
  out = [(getattr(knp, n), ElementwiseOp(SINGULAR.get(n)))
         for n in ELEMENTWISE_NUMPY if hasattr(knp, n)]
  out += [(getattr(nn, n), ElementwiseOp()) for n in ELEMENTWISE_NN
          if hasattr(nn, n)]
  out.append((knp.Concatenate, Concatenate()))
  return out
