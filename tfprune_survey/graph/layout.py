"""Channel layouts: how a tensor's channel axis maps onto channel variables.

A *channel variable* is a set of channels that are created together (by one
producer, a model input, or a layer we do not model). Variables that must be
pruned together are joined in a union-find; each final class is one
`ChannelGroup`.

A `Layout` describes the channel (last) axis of one tensor as a sequence of
segments. Segment `s` covers `s.size * s.repeat` consecutive channels: channel
`c` of variable `s.var` expands to the `repeat` channels `c*repeat .. c*repeat +
repeat - 1` (DepthwiseConv2D with depth_multiplier does this). After Flatten the
whole channel pattern is tiled over `spatial` positions, as (h, w, c).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Segment:
  var: int
  size: int
  repeat: int = 1

  @property
  def width(self):
    return self.size * self.repeat


@dataclasses.dataclass(frozen=True)
class Layout:
  """The channel axis of a tensor, as segments of channel variables."""
  segments: tuple
  spatial: int = 1

  @property
  def channels(self):
    return sum(s.width for s in self.segments)

  @property
  def width(self):
    return self.channels * self.spatial

  def expand(self, multiplier):
    """Each channel becomes `multiplier` consecutive channels."""
    return Layout(tuple(Segment(s.var, s.size, s.repeat * multiplier)
                        for s in self.segments), self.spatial)

  def flatten(self, positions):
    return Layout(self.segments, self.spatial * positions)

  def same_structure(self, other):
    if self.spatial != other.spatial or len(self.segments) != len(
        other.segments):
      return False
    return all(a.size == b.size and a.repeat == b.repeat
               for a, b in zip(self.segments, other.segments))

  def indices(self, keep_of):
    """Kept indices along this axis.

    Args:
      keep_of: callable mapping a variable id to the sorted np.ndarray of its
        kept channel indices.

    Returns:
      Sorted int64 np.ndarray of the kept positions of this axis.
    """
    parts = []
    base = 0
    for s in self.segments:
      kept = np.asarray(keep_of(s.var), dtype=np.int64)
      idx = (kept[:, None] * s.repeat + np.arange(s.repeat)[None, :]).ravel()
      parts.append(idx + base)
      base += s.width
    channels = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if self.spatial > 1:
      channels = (np.arange(self.spatial)[:, None] * base +
                  channels[None, :]).ravel()
    return channels

  def variables(self):
    return [s.var for s in self.segments]


def single(var, size):
  return Layout((Segment(var, size, 1),))


def concat(layouts):
  segs = []
  for layout in layouts:
    segs.extend(layout.segments)
  return Layout(tuple(segs))
