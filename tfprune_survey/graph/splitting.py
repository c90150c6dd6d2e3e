"""Splitting channel variables, so that differently concatenated tensors merge.

InceptionResNetV2 adds a conv's output to a stream that is a concatenation
of several branches: the conv's channel variable must then be split into
parts that line up with the branches, each part joining its branch's group.
A split variable is dead: its parts stand for it in every layout, read
through `expand` during the walk and rewritten by `finalize` after it.
"""

from tfprune_survey.graph import layout as layout_lib


class Splitting:
  """The splitting half of `GraphBuilder` (it uses its union-find)."""

  def expand(self, lay):
    """`lay` with every split variable replaced by its parts (recursively)."""
    if lay is None or not self.parts or not any(
        s.var in self.parts for s in lay.segments):
      return lay
    segs = []
    stack = list(reversed(lay.segments))
    while stack:
      seg = stack.pop()
      parts = self.parts.get(seg.var)
      if parts is None:
        segs.append(seg)
        continue
      stack.extend(reversed([layout_lib.Segment(v, self.size[v], seg.repeat)
                             for v in parts]))
    return layout_lib.Layout(tuple(segs), lay.spatial)

  def _split(self, var, sizes):
    """Splits the class of `var` into consecutive parts of `sizes`.

    Every member of the class (all of one size) gets parts of these sizes;
    part i of every member is coupled to part i of the others, and keeps
    the class's reasons. The members become dead: layouts that name them
    are read through `expand`. The parts of a class that must keep equal
    blocks for a grouped conv are blocked, since its blocks would then span
    several groups.
    """
    root = self.find(var)
    members = [v for v in range(len(self._parent))
               if v not in self.parts and self.find(v) == root]
    firsts = None
    for m in members:
      parts = tuple(self.new_var(n, self.origin[m], self.is_producer[m])
                    for n in sizes)
      for part in parts:
        self.rank[part] = self.rank[m]
      self.parts[m] = parts
      if firsts is None:
        firsts = parts
      else:
        for a, b in zip(firsts, parts):
          self.union(a, b)
    reasons = list(self.reasons.get(root, []))
    if self.blocks.get(root, 1) > 1:
      reasons.append(f"the grouped conv(s) {self.block_layers[root]} read "
                     "or write channels that a merge splits across groups")
    for part in firsts:
      for reason in reasons:
        self._add_reason(part, reason)

  def _add_reason(self, var, reason):
    bucket = self.reasons.setdefault(self.find(var), [])
    if reason not in bucket:
      bucket.append(reason)

  def _refine(self, layouts):
    """Splits variables until all `layouts` have the same segment bounds.

    Returns:
      The expanded layouts, or None when it cannot be done (a bound falls
      inside a channel repeated by a depth multiplier).
    """
    while True:
      layouts = [self.expand(lay) for lay in layouts]
      bounds = set()
      for lay in layouts:
        pos = 0
        for seg in lay.segments:
          pos += seg.width
          bounds.add(pos)
      changed = False
      for lay in layouts:
        pos = 0
        for seg in lay.segments:
          inner = sorted(b - pos for b in bounds if pos < b < pos + seg.width)
          if inner:
            if any(b % seg.repeat for b in inner):
              return None
            cuts = [0] + [b // seg.repeat for b in inner] + [seg.size]
            self._split(seg.var, [b - a for a, b in zip(cuts, cuts[1:])])
            changed = True
            break
          pos += seg.width
        if changed:
          break
      if not changed:
        return layouts

  def finalize(self, calls=()):
    """Expands every stored layout once the walk is done (no split after)."""
    for sl in self.slices.values():
      sl.layout = self.expand(sl.layout)
    for gs in self.grouped.values():
      gs.layout = self.expand(gs.layout)
    for w in self.widths:
      w.layout = self.expand(w.layout)
    self.observations = [(c, self.expand(lay)) for c, lay in self.observations]
    for call in calls:
      call.inputs = [self.expand(lay) for lay in call.inputs]

  def live_vars(self):
    """Variables that were not split."""
    return [v for v in range(len(self._parent)) if v not in self.parts]
