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
    model: a tf_keras Sequential/Functional model. Not modified.
    keep: {group_id: sequence of kept channel indices}. A group not named
      keeps all its channels.
    graph: optional precomputed `ChannelGraph(model)`.

  Returns:
    A new tf_keras model with the same architecture.

  Raises:
    ValueError: for an unknown or non-prunable group, or a bad index list.
  """
  graph = graph if graph is not None else ChannelGraph(model)
  keep_arrays = resolve_keep(graph, keep)
  keep_of = graph.keep_resolver(keep_arrays)
  config = surgery.narrowed_config(model, graph, None)
  new = surgery.rebuild(model, config)
  surgery.transfer_weights(model, new, graph, keep_of, mode="mask")
  return new
