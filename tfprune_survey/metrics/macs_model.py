"""MACs as a function of how many channels each group keeps.

For every MAC-counted layer call, MACs = positions x product of the kernel's
dimensions; channel pruning shrinks the sliced kernel axes, so the MACs after
pruning follow from the kept counts alone, without rebuilding the model. A
grouped conv's kernel is (..., C_in / groups, C_out): its in-group axis
shrinks as the kept share of its input channels, since every group keeps as
many.
"""

import numpy as np

from tfprune_survey.frameworks import Framework

from tfprune_survey.metrics.macs import iter_calls
from tfprune_survey.metrics.macs import layer_call_macs

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


class MacsModel:
  """Predicts `count_macs(materialize(model, keep))` from kept counts.

  Args:
    model: the model (either Keras).
    graph: its `ChannelGraph`.
  """

  def __init__(self, model, graph):
    self.graph = graph
    slices = {}
    for sl in graph.weight_slices + graph.grouped_slices:
      slices.setdefault(sl.path, []).append(sl)
    self.terms = []   # (macs, [(layout, full width)])
    for call in iter_calls(model):
      macs = layer_call_macs(call)
      if not macs:
        continue
      kernels = [w for w in call.layer.weights
                 if Framework.short_name(w) in _KERNELS]
      total = sum(int(np.prod(w.shape)) for w in kernels)
      for w in kernels:
        name = Framework.short_name(w)
        share = macs * int(np.prod(w.shape)) / total
        # A sliced axis shrinks by the kept share of its layout; for a
        # grouped conv's in-group axis (C_in / groups wide) that is the
        # kept share of its C_in input channels too.
        axes = [(sl.layout, sl.layout.width)
                for sl in slices.get(call.path, ()) if sl.weight == name]
        self.terms.append((share, axes))
    self.full = sum(t for t, _ in self.terms)

  def macs(self, counts):
    """MACs when group `gid` keeps `counts[gid]` channels (others all)."""
    graph = self.graph

    def kept(var):
      group = graph.group_of_var(var)
      return counts.get(group.id, group.size)
    total = 0.0
    for share, axes in self.terms:
      factor = 1.0
      for layout, full in axes:
        width = sum(kept(s.var) * s.repeat for s in layout.segments)
        factor *= width * layout.spatial / full
      total += share * factor
    return int(round(total))
