"""materialize: a physically slim copy of a model."""

from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.strip import branches
from tfprune_survey.strip import surgery
from tfprune_survey.strip.keep import check_blocks
from tfprune_survey.strip.keep import resolve_keep


def materialize(model, keep, *, graph=None):
  """Builds a slim model that keeps only the given channels.

  The model is rebuilt from its config with smaller `filters`/`units` (and
  channel-preserving Reshape targets), and the kept slices of every weight are
  copied: kernels on both axes, biases, BN gamma/beta/mean/variance,
  depthwise and pointwise kernels, PReLU alphas and Dense rows after Flatten.
  It computes the same function as `mask_channels(model, keep)`.
  Residual branches whose shared `ChannelScale` is exactly 0 (SSS at block
  granularity) are removed whole, their Add becoming the identity.

  Args:
    model: a Sequential/Functional model of either Keras. Not modified.
    keep: {group_id: sequence of kept channel indices}. A group not named
      keeps all its channels.
    graph: optional precomputed `ChannelGraph(model)`.

  Returns:
    A new, slimmer model of the same Keras with the same inputs and outputs.

  A grouped conv (Conv2D with groups > 1) keeps its `groups` and loses
  the same number of channels in every group: a group it reads or writes
  has `blocks` > 1, and `keep` must hold as many channels of each block.

  Raises:
    ValueError: for an unknown or non-prunable group, a bad index list, a
      kept set that holds different counts in the blocks of a grouped
      conv (the message names the conv), or a layer shared between a
      nested model and its parent (the message names it).

  Example:
    >>> graph = tps.ChannelGraph(model)
    >>> g = graph.prunable_groups[0]
    >>> slim = tps.materialize(model, {g.id: range(g.size // 2)})
  """
  if graph is None:
    graph = ChannelGraph(model)
  else:
    surgery.check_graph(model, graph)
  surgery.check_rebuildable(graph)
  keep_arrays = resolve_keep(graph, keep)
  model, removed = branches.remove_dead_branches(model)
  if removed:
    # Residual branches scaled by 0 (SSS, block granularity) are gone; the
    # channel groups are those of the shallower model, and groups that
    # lived only in the removed branches are dropped from `keep`.
    # A group keeps its channels through any producer it still has (its id,
    # the name of its first producer, may have been a removed layer).
    old_graph = graph
    graph = ChannelGraph(model)
    old_of = {p: g for g in old_graph.prunable_groups for p in g.producers}
    mapped = {}
    for g in graph.prunable_groups:
      for p in g.producers:
        old = old_of.get(p)
        if old is not None and old.id in keep_arrays and old.size == g.size:
          mapped[g.id] = keep_arrays[old.id]
          break
    keep_arrays = resolve_keep(graph, mapped)
  check_blocks(graph, keep_arrays)
  keep_of = graph.keep_resolver(keep_arrays)
  config = surgery.narrowed_config(model, graph, keep_of)
  new = surgery.rebuild(model, config, weights_follow=True)
  surgery.transfer_weights(model, new, graph, keep_of, mode="slice")
  return new
