"""mask_channels: the masked reference model."""

from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.strip import surgery
from tfprune_survey.strip.keep import resolve_keep


def mask_channels(model, keep, *, graph=None):
  """Returns a copy of `model` in which the dropped channels are dead.

  Each dropped channel is zeroed at both ends: the producer's output slices
  (kernel, bias; BN gamma, beta and moving_mean) and every consumer's input
  slices (including Dense rows after Flatten and Concatenate offsets). This
  keeps the result exact after activations with f(0) != 0 and after a BN
  without scale. The architecture is unchanged; `materialize` computes the
  same function with fewer MACs.

  Args:
    model: a Sequential/Functional model of either Keras. Not modified.
    keep: {group_id: sequence of kept channel indices}. A group not named
      keeps all its channels.
    graph: optional precomputed `ChannelGraph(model)`.

  Returns:
    A new model of the same Keras with the same architecture.

  Raises:
    ValueError: for an unknown or non-prunable group, or a bad index list.
  """
  copy, remask = masked_copy(model, graph=graph)
  remask(keep)
  return copy


def masked_copy(model, *, graph=None):
  """A copy of `model` that can be re-masked in place, many times over.

  Sensitivity analysis evaluates one model under many keep sets; building
  one copy and re-masking it is much cheaper than `mask_channels` each time.

  Args:
    model: a Sequential/Functional model of either Keras. Not modified.
    graph: optional precomputed `ChannelGraph(model)`.

  Returns:
    (copy, remask): `remask(keep)` sets `copy`'s weights to those of
    `mask_channels(model, keep)` (validating `keep` the same way) and
    returns `copy`.
  """
  if graph is None:
    graph = ChannelGraph(model)
  else:
    surgery.check_graph(model, graph)
  surgery.check_rebuildable(graph)
  new = surgery.rebuild(model, surgery.narrowed_config(model, graph, None),
                        weights_follow=True)

  def remask(keep):
    keep_of = graph.keep_resolver(resolve_keep(graph, keep))
    surgery.transfer_weights(model, new, graph, keep_of, mode="mask")
    return new
  return new, remask
