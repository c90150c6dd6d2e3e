"""InceptionResNetV2's residual scaling layer: x + scale * r, merged like Add.

tf_keras 2.21 and Keras 3 both build InceptionResNetV2's residual sums with
a `CustomScaleLayer(scale)` called on [x, r], returning x + r * scale for a
Python float `scale`. Channel c of the output is channel c of x plus a
multiple of channel c of r, so the layer joins the groups of its two inputs
as Add does. (Older Keras versions used a Lambda instead, which the graph
cannot read and so blocks.) A non-scalar scale blocks the channels.
"""

import importlib
import numbers

from tfprune_survey.graph.handlers.merges import ElementwiseMerge

#: where each Keras defines the layer (not exported by keras.applications)
_MODULE = "{}.src.applications.inception_resnet_v2"


class ScaledMerge(ElementwiseMerge):
  """x + scale * r with a scalar `scale` (the config key `scale_key`).

  Args:
    scale_key: the config entry holding the scale. Defaults to 'scale'.
  """

  def __init__(self, scale_key="scale"):
    self.scale_key = scale_key

  def propagate(self, call, b):
    scale = call.config.get(self.scale_key)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
      reason = (f"'{call.path}' ({call.class_name}) scales by {scale!r}, "
                "not a scalar")
      b.block(call.inputs, reason)
      return [b.opaque(call, s, reason) for s in call.output_shapes]
    return super().propagate(call, b)


def registrations(keras):
  """[(class, handler)] for `keras`' CustomScaleLayer, if it has one.

  Args:
    keras: the Keras module (tf_keras or keras).
  """
  try:
    module = importlib.import_module(_MODULE.format(keras.__name__))
  except ImportError:
    return []
  cls = getattr(module, "CustomScaleLayer", None)
  return [(cls, ScaledMerge())] if isinstance(cls, type) else []
