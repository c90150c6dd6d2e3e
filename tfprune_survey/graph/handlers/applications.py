"""Layers that keras.applications defines for its own architectures.

- InceptionResNetV2's `CustomScaleLayer(scale)`, called on [x, r], returns
  x + r * scale for a Python float `scale` (tf_keras 2.21 and Keras 3 both;
  older versions used a Lambda, which the graph cannot read and so blocks).
  Channel c of the output is channel c of x plus a multiple of channel c of
  r, so the layer joins the groups of its two inputs as Add does. A
  non-scalar scale blocks the channels.
- ConvNeXt's `LayerScale(init_values, projection_dim)` returns x * gamma,
  one gamma per channel: gamma is sliced like BN's and `projection_dim`
  follows the kept width.

The classes are not exported by `keras.applications`; they are looked up
in each Keras' module of that architecture, and skipped if absent.
"""

import importlib
import numbers

from tfprune_survey.frameworks import Framework
from tfprune_survey.graph.handlers.merges import ElementwiseMerge
from tfprune_survey.graph.handlers.registry import LayerHandler

#: {class name: the module under `<keras>.src.applications` defining it}
_MODULES = {"CustomScaleLayer": "inception_resnet_v2",
            "LayerScale": "convnext"}


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


class LayerScale(LayerHandler):
  """x * gamma with one gamma per channel (its only weight)."""

  def propagate(self, call, b):
    lay = call.inputs[0]
    weights = call.layer.weights
    if lay is not None and (lay.spatial > 1 or len(weights) != 1):
      b.block([lay], f"'{call.path}' ({call.class_name}) follows a Flatten "
              "or has other weights than one scale per channel")
      return [lay]
    b.slice(call, Framework.short_name(weights[0]), 0, lay, "param")
    b.width(call, ("projection_dim",), lay)
    return [lay]


def registrations(keras):
  """[(class, handler)] for the classes `keras`' applications define.

  Args:
    keras: the Keras module (tf_keras or keras).
  """
  handlers = {"CustomScaleLayer": ScaledMerge(), "LayerScale": LayerScale()}
  out = []
  for name, module_name in _MODULES.items():
    try:
      module = importlib.import_module(
          f"{keras.__name__}.src.applications.{module_name}")
    except ImportError:
      continue
    cls = getattr(module, name, None)
    if isinstance(cls, type):
      out.append((cls, handlers[name]))
  return out
