"""The context handlers write into: channel variables, slices and couplings."""

import dataclasses
import math

from tfprune_survey import frameworks
from tfprune_survey.graph import layout as layout_lib
from tfprune_survey.graph import splitting


@dataclasses.dataclass
class WeightSlice:
  """One weight axis whose positions follow a channel layout.

  Attributes:
    path: qualified layer name.
    weight: the weight's short name (e.g. 'kernel', 'gamma').
    axis: the weight axis (non-negative).
    layout: the `Layout` of that axis.
    role: 'producer' (output channels), 'consumer' (input channels) or
      'param' (a per-channel vector of a pass-through layer).
    zero: whether `mask_channels` zeroes the dropped positions (False for
      e.g. BN moving_variance, which only needs to stay finite).
  """
  path: str
  weight: str
  axis: int
  layout: object
  role: str
  zero: bool = True


@dataclasses.dataclass
class GroupedSlice:
  """The input-channel axis of a grouped conv's kernel (groups > 1).

  The kernel's `axis` has C_in / groups positions, shared by the groups:
  position j, read by output channel o, is input channel
  (o // (C_out / groups)) * (C_in / groups) + j. It cannot follow a `Layout`
  on its own, so it is kept apart from the `WeightSlice`s: surgery slices it
  per group (which needs the same number of kept input channels in every
  group) and `mask_channels` zeroes it per group.

  Attributes:
    path: qualified layer name.
    weight: the kernel's short name.
    axis: the kernel axis of the in-group input positions (non-negative).
    out_axis: the kernel axis of the output channels (non-negative).
    groups: the conv's `groups`.
    layout: the `Layout` of the conv's input (C_in channels).
  """
  path: str
  weight: str
  axis: int
  out_axis: int
  groups: int
  layout: object


@dataclasses.dataclass
class WidthUpdate:
  """A config entry that must equal the kept width of a layout."""
  path: str
  names: tuple  # layer names from the top model down
  key: tuple    # e.g. ('filters',) or ('target_shape', -1)
  layout: object


class GraphBuilder(splitting.Splitting):
  """Union-find over channel variables, plus the slices that follow them."""

  def __init__(self):
    self._parent = []
    self.size = []
    self.origin = []        # path of the layer (or input) that made the var
    self.is_producer = []   # whether the var is a producer's output channels
    self.rank = []          # topological rank (a split var's parts share it)
    self.reasons = {}       # var -> list of reasons (merged at the root)
    self.slices = {}        # (path, weight, axis) -> WeightSlice
    self.widths = []
    self.layers = {}        # path -> LayerCall of the first call
    self.observations = []  # (LayerCall, Layout) of every consumer input
    self.grouped = {}       # (path, weight, axis) -> GroupedSlice
    self.parts = {}         # split var -> its part vars, in channel order
    self.blocks = {}        # root -> equal blocks every kept set must have
    self.block_layers = {}  # root -> paths of the grouped convs asking it
    self._producer_vars = {}

  # ---- variables -------------------------------------------------------
  def new_var(self, size, origin, producer=False, reason=None):
    var = len(self._parent)
    self._parent.append(var)
    self.size.append(int(size))
    self.origin.append(origin)
    self.is_producer.append(producer)
    self.rank.append(var)
    if reason:
      self.reasons.setdefault(var, []).append(reason)
    return var

  def find(self, var):
    root = var
    while self._parent[root] != root:
      root = self._parent[root]
    while self._parent[var] != root:
      self._parent[var], var = root, self._parent[var]
    return root

  def union(self, a, b):
    ra, rb = self.find(a), self.find(b)
    if ra == rb:
      return ra
    if rb < ra:
      ra, rb = rb, ra
    self._parent[rb] = ra
    if rb in self.reasons:
      self.reasons.setdefault(ra, []).extend(self.reasons.pop(rb))
    if rb in self.blocks:
      self.blocks[ra] = math.lcm(self.blocks.get(ra, 1), self.blocks.pop(rb))
      self.block_layers.setdefault(ra, []).extend(self.block_layers.pop(rb))
    return ra

  def block(self, layouts, reason):
    """Marks every variable of the given layouts as not prunable."""
    for lay in layouts:
      if lay is None:
        continue
      for var in self.expand(lay).variables():
        root = self.find(var)
        bucket = self.reasons.setdefault(root, [])
        if reason not in bucket:
          bucket.append(reason)

  def unify(self, layouts, call):
    """Couples layouts that must carry the same channels (e.g. Add inputs).

    Returns the first layout, or None if they cannot be coupled (then every
    variable involved is blocked with a reason naming the layer).
    """
    present = [lay for lay in layouts if lay is not None]
    if len(present) != len(layouts) or not present:
      self.block(present, f"merged at '{call.path}' ({call.class_name}) with "
                 "a tensor of unknown channels")
      return None
    first = present[0]
    # Tensors of one width and tiling whose channels come from different
    # concatenations (a concatenated stream plus a conv's output, as in
    # InceptionResNetV2) are split into matching parts first.
    refined = None
    if all(lay.channels == first.channels and lay.spatial == first.spatial
           for lay in present[1:]):
      refined = self._refine(present)
    if refined is None or not all(refined[0].same_structure(o)
                                  for o in refined[1:]):
      self.block(present, f"'{call.path}' ({call.class_name}) merges tensors "
                 "whose channels are concatenated differently")
      return None
    first = refined[0]
    for other in refined[1:]:
      for a, b in zip(first.segments, other.segments):
        self.union(a.var, b.var)
    return first

  def require_blocks(self, lay, blocks, call):
    """Asks that `lay`'s channels keep the same count in `blocks` blocks.

    A grouped conv (groups=`blocks`) reads and writes its channels in
    `blocks` consecutive blocks of equal width, and stays a grouped conv
    only if every block keeps the same number. The requirement is recorded
    on the channel group (several requirements combine into their least
    common multiple, which still divides the group's size). A layout that
    is not one whole group (a Concatenate, a depth multiplier, a Flatten)
    cannot carry it, and its channels are blocked.

    Returns:
      Whether the requirement was recorded (False for None or blocked).
    """
    if lay is None:
      return False
    lay = self.expand(lay)
    seg = lay.segments[0] if len(lay.segments) == 1 else None
    if seg is None or seg.repeat != 1 or lay.spatial != 1:
      self.block([lay], f"'{call.path}' ({call.class_name}) is a grouped conv "
                 f"(groups={blocks}) on channels that are concatenated, "
                 "repeated or flattened")
      return False
    root = self.find(seg.var)
    self.blocks[root] = math.lcm(self.blocks.get(root, 1), int(blocks))
    paths = self.block_layers.setdefault(root, [])
    if call.path not in paths:
      paths.append(call.path)
    return True

  def grouped_slice(self, call, weight, axis, out_axis, groups, lay):
    """Records the in-group input axis of a grouped conv's kernel.

    Args:
      call: the LayerCall.
      weight: the kernel's short name.
      axis: the kernel axis of in-group input positions.
      out_axis: the kernel axis of output channels.
      groups: the conv's `groups`.
      lay: the Layout of the conv's input (None: nothing to record).

    Raises:
      ValueError: when the layer has no such weight.
    """
    if lay is None:
      return
    found = frameworks.of(call.layer).find_weight(call.layer, weight)
    if found is None:
      raise ValueError(f"layer '{call.path}' ({call.class_name}) has no weight "
                       f"'{weight}'; the grouped conv handler expects it")
    index, weight = found
    shape = call.layer.weights[index].shape
    axis, out_axis = axis % len(shape), out_axis % len(shape)
    if shape[axis] * groups != lay.width or shape[out_axis] % groups:
      self.block([lay], f"'{call.path}' ({call.class_name}): kernel {shape} "
                 f"does not fit groups={groups} on {lay.width} channels")
      return
    self.observations.append((call, lay))
    key = (call.path, weight, axis)
    if key in self.grouped:
      self.unify([self.grouped[key].layout, lay], call)
      return
    self.grouped[key] = GroupedSlice(call.path, weight, axis, out_axis,
                                     int(groups), lay)

  # ---- producers, inputs, opaque outputs -------------------------------
  def producer(self, call, size):
    """The output-channel variable of a producer layer (shared across calls)."""
    if call.path not in self._producer_vars:
      self._producer_vars[call.path] = self.new_var(size, call.path,
                                                    producer=True)
    var = self._producer_vars[call.path]
    return self.expand(layout_lib.single(var, size))

  def opaque(self, call, shape, reason):
    """A tensor whose channels come from something we do not model."""
    if not shape or shape[-1] is None:
      return None
    var = self.new_var(shape[-1], call.path, reason=reason)
    return layout_lib.single(var, shape[-1])

  # ---- weights -----------------------------------------------------------
  def slice(self, call, weight, axis, lay, role, zero=True, required=True,
            observe=True):
    """Records that `weight`'s `axis` follows layout `lay`.

    Args:
      call: the LayerCall.
      weight: the canonical (tf_keras) short weight name; the framework's
        aliases are tried too (Keras 3 DepthwiseConv2D's `kernel`).
      axis: the weight axis.
      lay: the Layout of that axis (None: nothing to record).
      role: 'producer', 'consumer' or 'param'.
      zero: whether `mask_channels` zeroes dropped positions.
      required: when True (the default), a weight the layer does not have
        is an error that names the layer and the weight, never a silent
        skip; handlers pass False where the config says it is absent
        (use_bias=False, BN scale=False / center=False).
      observe: whether a consumer slice records the call's input feature
        map among `observations` (False for a second weight of the same
        consumer, such as a LoRA factor).

    Raises:
      ValueError: when a required weight is missing.
    """
    if lay is None:
      return
    found = frameworks.of(call.layer).find_weight(call.layer, weight)
    if found is None:
      if not required:
        return
      have = [frameworks.Framework.short_name(w) for w in call.layer.weights]
      raise ValueError(
          f"layer '{call.path}' ({call.class_name}) has no weight '{weight}' "
          f"(it has {have}); the channel handler for {call.class_name} "
          "expects it. Register a handler for this class with "
          "tps.register_handler if it is a custom layer.")
    index, weight = found
    weights = {weight: call.layer.weights[index]}
    rank = len(weights[weight].shape)
    axis = axis % rank
    if weights[weight].shape[axis] != lay.width:
      self.block([lay], f"'{call.path}' ({call.class_name}): weight "
                 f"'{weight}' axis {axis} has {weights[weight].shape[axis]} "
                 f"positions, the channel analysis found {lay.width}")
      return
    if role == "consumer" and observe:
      self.observations.append((call, lay))
    key = (call.path, weight, axis)
    if key in self.slices:
      prev = self.slices[key]
      self.unify([prev.layout, lay], call)
      return
    self.slices[key] = WeightSlice(call.path, weight, axis, lay, role, zero)

  def width(self, call, key, lay):
    """Records that config entry `key` of `call`'s layer is `lay`'s width."""
    self.config_width(call.names, key, lay,
                      f"'{call.path}' ({call.class_name})")

  def config_width(self, names, key, lay, what):
    """Records that config entry `key` of the layer at `names` is `lay`'s
    width.

    A layer called more than once has one config: a second call on other
    channels (a weightless Reshape or Dropout shared by two branches, a
    nested model's input) couples them, as a shared weight does, and
    blocks them when they cannot be coupled.

    Args:
      names: the layer names from the top model down.
      key: the config key, e.g. ('filters',) or ('target_shape', -1).
      lay: the Layout (None: nothing to record).
      what: how error reasons name the layer.
    """
    if lay is None:
      return
    key = tuple(key)
    path = "/".join(names)
    for upd in self.widths:
      if upd.names == tuple(names) and upd.key == key:
        if upd.layout is lay:
          return
        present = [self.expand(upd.layout), self.expand(lay)]
        if present[0].channels == present[1].channels and (
            present[0].spatial == present[1].spatial):
          refined = self._refine(present)
          if refined is not None and refined[0].same_structure(refined[1]):
            for a, b in zip(refined[0].segments, refined[1].segments):
              self.union(a.var, b.var)
            return
        self.block(present, f"{what} is called on tensors whose channels "
                   f"cannot be pruned alike, and its config entry {key} "
                   "must fit both")
        return
    self.widths.append(WidthUpdate(path, tuple(names), key, lay))

  def register_call(self, call):
    self.layers.setdefault(call.path, call)
