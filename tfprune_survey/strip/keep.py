"""Validation of `keep` dictionaries."""

import collections.abc
import numbers

import numpy as np


def resolve_keep(graph, keep, arg_name="keep"):
  """Checks `keep` against `graph` and returns {group_id: sorted np.ndarray}.

  Args:
    graph: the model's `ChannelGraph`.
    keep: {group_id: sequence of kept channel indices}; groups not named keep
      every channel.
    arg_name: name used in error messages.

  Raises:
    TypeError: when `keep` is not a mapping or an index is not an integer.
    ValueError: naming the group, for an unknown or non-prunable group, or an
      empty, duplicated or out-of-range index list.
  """
  if keep is None:
    keep = {}
  if not isinstance(keep, collections.abc.Mapping):
    raise TypeError(f"`{arg_name}` must be a dict {{group_id: indices}}, got "
                    f"{type(keep).__name__}")
  out = {}
  known = {g.id: g for g in graph.groups}
  for gid, indices in keep.items():
    if gid not in known:
      close = [k for k in known if str(gid) in k][:5]
      raise ValueError(
          f"`{arg_name}` names unknown channel group {gid!r}"
          + (f"; similar ids: {close}" if close else "")
          + ". Group ids are listed by ChannelGraph(model).groups.")
    group = known[gid]
    # The same checks of type for every group: a fixed group's entry is
    # only accepted when it is exactly every channel.
    arr = _index_array(indices, f"`{arg_name}[{gid!r}]`")
    if not group.prunable:
      if arr.size == group.size and np.array_equal(
          np.sort(arr), np.arange(group.size)):
        continue  # keeping every channel of a fixed group is a no-op
      raise ValueError(f"`{arg_name}`: channel group {gid!r} is not prunable:"
                       f" {group.reason}")
    if arr.size == 0:
      raise ValueError(f"`{arg_name}[{gid!r}]` is empty: a group must keep at "
                       "least one channel")
    bad = arr[(arr < 0) | (arr >= group.size)]
    if bad.size:
      raise ValueError(f"`{arg_name}[{gid!r}]` has index {int(bad[0])} out of "
                       f"range for a group of {group.size} channels")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
      raise ValueError(f"`{arg_name}[{gid!r}]` repeats index "
                       f"{int(uniq[counts > 1][0])}")
    out[gid] = uniq
  return out


def _index_array(indices, what):
  """`indices` as a 1-D int64 array; TypeError (naming `what`) otherwise."""
  if isinstance(indices, (str, bytes)) or not isinstance(
      indices, (collections.abc.Sequence, np.ndarray, range)):
    raise TypeError(f"{what} must be a sequence of ints, got "
                    f"{type(indices).__name__}")
  if isinstance(indices, np.ndarray) and indices.ndim != 1:
    raise TypeError(f"{what} must be a 1-D sequence of channel indices, got "
                    f"an array of shape {indices.shape}")
  arr = np.asarray(list(indices))
  if arr.dtype == bool:
    # bool is an Integral: a mask would read as indices 0 and 1.
    raise TypeError(f"{what} is a boolean mask; pass the kept channel "
                    "indices, e.g. np.flatnonzero(mask)")
  if not all(isinstance(i, (numbers.Integral, np.integer)) and
             not isinstance(i, bool) for i in arr.tolist()):
    raise TypeError(f"{what} must hold integer indices")
  return arr.astype(np.int64)


def check_blocks(graph, keep_arrays, arg_name="keep"):
  """Checks that grouped convs keep the same count in each of their groups.

  A group with `blocks` > 1 (it feeds or comes out of a grouped conv) must
  keep as many channels in each of its `blocks` consecutive blocks, or the
  slim conv could not keep its `groups`. `mask_channels` needs no such
  thing; `materialize` does.

  Args:
    graph: the model's `ChannelGraph`.
    keep_arrays: the output of `resolve_keep`.
    arg_name: name used in error messages.

  Raises:
    ValueError: naming the group, the grouped convs and the counts.
  """
  for gid, kept in keep_arrays.items():
    group = graph.group(gid)
    if group.blocks <= 1:
      continue
    per = group.size // group.blocks
    counts = np.bincount(kept // per, minlength=group.blocks)
    if (counts != counts[0]).any():
      raise ValueError(
          f"`{arg_name}[{gid!r}]`: the grouped conv(s) "
          f"{graph.block_layers(group)} need the same number of kept "
          f"channels in each of the group's {group.blocks} blocks of {per} "
          f"channels (one block per conv group), got {counts.tolist()}. "
          "Keep k channels of every block; tps.prune and the Planner do.")
