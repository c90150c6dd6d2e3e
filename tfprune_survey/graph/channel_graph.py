"""ChannelGraph: which channels of a model must be pruned together."""

import dataclasses

from tfprune_survey import frameworks
from tfprune_survey.graph import handlers
from tfprune_survey.graph import layout as layout_lib
from tfprune_survey.graph.builder import GraphBuilder
from tfprune_survey.graph.builder import WidthUpdate
from tfprune_survey.graph.walker import Walker


@dataclasses.dataclass
class ChannelGroup:
  """A set of channels that must be pruned together.

  Attributes:
    id: name of the group's first producer layer in topological order (or
      of its origin, for groups without a producer); unique and stable.
    size: number of channels.
    prunable: whether the group may be pruned.
    reason: why it may not ('' when prunable).
    producers: layers whose output channels are this group.
    consumers: layers that read this group through a weight (convs, Dense).
    slices: `(layer, weight, axis, offset)` of every weight slice that
      follows the group; offset is the position of the group's channel 0 on
      that axis (before any Flatten tiling).
    params: layers with per-channel parameters in the group (BN, PReLU,
      DepthwiseConv).
    blocks: the group's channels form `blocks` consecutive blocks of equal
      size (the groups of the grouped convs that read or write it), and a
      kept set must keep the same number of channels in every block for
      `materialize` (1: no such constraint). `tps.prune` and the `Planner`
      keep the best channels of each block; `mask_channels` accepts any set.
  """
  id: str
  size: int
  prunable: bool
  reason: str
  producers: list
  consumers: list
  slices: list
  params: list
  blocks: int = 1
  root: int = dataclasses.field(default=-1, repr=False)


class ChannelGraph:
  """Channel dependency analysis of a Sequential/Functional model (either Keras).

  A grouped conv (groups > 1) keeps its groups: the channel groups it reads
  and writes get `blocks` = groups, and a kept set must hold the same
  number of channels in each block (see `ChannelGroup.blocks`); its
  kernel's in-group axis is one of `grouped_slices`. A merge of tensors
  concatenated differently (a conv's output added to a concatenated
  stream) splits the conv's channels to match the concatenation's parts.

  Args:
    model: a Sequential or Functional model of tf_keras or Keras 3 (nested
      sub-models are analysed too). It is not modified.

  Raises:
    TypeError: for a non-model.
    UnsupportedModelError: for a subclassed model.

  Attributes:
    shared_across_models: (first path, other path) of each layer that is
      called both inside a nested model and outside it (or in two nested
      models); its channels are not prunable, and `mask_channels` /
      `materialize` raise for such a model, since Keras would rebuild it
      with two unshared copies of the layer.

  Example:
    >>> graph = tps.ChannelGraph(model)
    >>> [(g.id, g.size) for g in graph.groups if g.prunable]
  """

  def __init__(self, model):
    frameworks.check_model(model)
    self.model = model
    self._b = GraphBuilder()
    self._calls = []
    self._first_call = {}   # id(layer) -> (path, inputs, outputs) of its first call
    self.shared_across_models = []
    walker = Walker(model, self._visit, self._make_input, self._inner_input)
    self.calls = self._calls
    for value, _, path in walker.outputs:
      self._b.block([value], f"reaches the model output through '{path}'")
    self._b.finalize(self._calls)
    self.groups = self._collect_groups()
    self._by_id = {g.id: g for g in self.groups}
    self._root_to_group = {g.root: g for g in self.groups}

  # ---- walking -----------------------------------------------------------
  def _make_input(self, path, shape):
    if not shape or shape[-1] is None:
      return None
    var = self._b.new_var(shape[-1], path,
                          reason=f"channels of the model input '{path}'")
    return layout_lib.single(var, shape[-1])

  def _inner_input(self, names, key, value):
    if value is not None:
      self._b.widths.append(WidthUpdate("/".join(names), tuple(names), key,
                                        value))

  def _visit(self, call):
    self._calls.append(call)
    handler = handlers.get_handler(call.layer)
    if handler is None:
      reason = (f"'{call.path}' ({call.class_name}) is not a layer the "
                "channel analysis models")
      self._b.block(call.inputs, reason)
      outs = [self._b.opaque(call, s, reason) for s in call.output_shapes]
    else:
      outs = handler.propagate(call, self._b)
    self._b.register_call(call)
    if len(outs) < len(call.output_shapes):
      outs = list(outs) + [None] * (len(call.output_shapes) - len(outs))
    self._check_shared(call, outs)
    return outs

  def _check_shared(self, call, outs):
    """Blocks a layer met at two paths (a nested model's layer also called
    by its parent or by another nested model).

    Keras rebuilds each nested model's layers from its own config entry, so
    a rebuilt copy would hold two unshared layers; the surgery refuses such
    models (see `shared_across_models`). A layer without weights (an
    activation, pooling) is left alone: two copies of it compute the same.
    """
    if not getattr(call.layer, "weights", None):
      return
    first = self._first_call.setdefault(id(call.layer),
                                        (call.path, call.inputs, outs))
    if first[0] == call.path:
      return
    pair = (first[0], call.path)
    if pair not in self.shared_across_models:
      self.shared_across_models.append(pair)
    reason = (f"layer '{call.layer.name}' is shared by '{first[0]}' and "
              f"'{call.path}' across nested models")
    self._b.block(list(first[1]) + list(first[2]) + list(call.inputs) +
                  list(outs), reason)

  # ---- groups ------------------------------------------------------------
  def _collect_groups(self):
    b = self._b
    members = {}
    for var in b.live_vars():
      members.setdefault(b.find(var), []).append(var)
    slices_by_root = {}
    for sl in b.slices.values():
      base = 0
      for seg in sl.layout.segments:
        root = b.find(seg.var)
        slices_by_root.setdefault(root, []).append((sl, base))
        base += seg.width
    grouped_by_root = {}
    for gs in b.grouped.values():
      for seg in gs.layout.segments:
        grouped_by_root.setdefault(b.find(seg.var), []).append(gs.path)
    groups = []
    used_ids = set()
    # Variables in topological order: a split variable's parts take its
    # place (its rank), so group ids and order stay topological.
    def order(var):
      return (b.rank[var], var)
    for root in sorted(members, key=lambda r: min(map(order, members[r]))):
      vars_ = sorted(members[root], key=order)
      producers = _unique(b.origin[v] for v in vars_ if b.is_producer[v])
      origins = _unique(b.origin[v] for v in vars_)
      gid = producers[0] if producers else origins[0]
      n = 1
      base_id = gid
      while gid in used_ids:
        n += 1
        gid = f"{base_id}:{n}"
      used_ids.add(gid)
      entries = slices_by_root.get(root, [])
      consumers = _unique([sl.path for sl, _ in entries
                           if sl.role == "consumer"] +
                          grouped_by_root.get(root, []))
      params = _unique(sl.path for sl, _ in entries if sl.role == "param")
      reasons = list(b.reasons.get(root, []))
      if not producers and not reasons:
        reasons = ["has no producer layer"]
      blocks = b.blocks.get(root, 1)
      if blocks > 1 and not reasons and b.size[root] // blocks < 2:
        reasons = [f"the grouped conv(s) {b.block_layers[root]} have one "
                   "channel per group here; removing one would remove a "
                   "whole group, which is not done"]
      groups.append(ChannelGroup(
          id=gid, size=b.size[root], prunable=not reasons,
          reason="; ".join(reasons), producers=producers, consumers=consumers,
          slices=[(sl.path, sl.weight, sl.axis, off) for sl, off in entries],
          params=params, blocks=blocks, root=root))
    return groups

  def group(self, group_id):
    """The group with this id; KeyError naming the id when unknown."""
    if group_id not in self._by_id:
      raise KeyError(f"no channel group '{group_id}'")
    return self._by_id[group_id]

  def group_of_var(self, var):
    return self._root_to_group[self._b.find(var)]

  @property
  def prunable_groups(self):
    return [g for g in self.groups if g.prunable]

  @property
  def weight_slices(self):
    return list(self._b.slices.values())

  @property
  def grouped_slices(self):
    """The `GroupedSlice`s: in-group input axes of grouped convs' kernels.

    They are not among `weight_slices` (a grouped kernel's input axis does
    not follow one channel layout); surgery and the MACs model read them.
    """
    return list(self._b.grouped.values())

  def block_layers(self, group):
    """Paths of the grouped convs that ask `group` for equal blocks."""
    return list(self._b.block_layers.get(group.root, []))

  @property
  def observations(self):
    """(LayerCall, Layout) of every consumer's input feature map."""
    return list(self._b.observations)

  def layer(self, path):
    """The live layer at a qualified path."""
    return self._b.layers[path].layer

  def group_segments(self, group):
    """Yields (WeightSlice, base, Segment) for each place `group` appears."""
    for sl in self._b.slices.values():
      base = 0
      for seg in sl.layout.segments:
        if self._b.find(seg.var) == group.root:
          yield sl, base, seg
        base += seg.width

  def root_of(self, var):
    return self._b.find(var)

  @property
  def width_updates(self):
    return list(self._b.widths)

  def keep_resolver(self, keep_arrays):
    """Maps a variable to its kept indices, given {group_id: np.ndarray}."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    b = self._b

    def keep_of(var):
      group = self._root_to_group[b.find(var)]
      if group.id in keep_arrays:
        return keep_arrays[group.id]
      return np.arange(group.size)
    return keep_of

  def __repr__(self):
    pr = len(self.prunable_groups)
    return (f"ChannelGraph(model='{self.model.name}', groups={len(self.groups)}"
            f", prunable={pr})")

  def summary(self):
    """A readable table of groups."""
    lines = [f"{'group':40s} {'size':>6s} {'prunable':>8s}  producers / reason"]
    for g in self.groups:
      tail = ", ".join(g.producers) if g.prunable else g.reason
      lines.append(f"{g.id[:40]:40s} {g.size:6d} {str(g.prunable):>8s}  "
                   f"{tail[:100]}")
    return "\n".join(lines)


def _unique(items):
  seen, out = set(), []
  for item in items:
    if item not in seen:
      seen.add(item)
      out.append(item)
  return out
