"""tps.score: one score per channel of every prunable group."""

from tfprune_survey import _compat
from tfprune_survey import criteria as criteria_lib
from tfprune_survey.criteria.context import ScoringContext
from tfprune_survey.graph.channel_graph import ChannelGraph


def score(model, criterion, data=None, *, steps=None, graph=None, verbose=0):
  """Scores every prunable channel group of `model` with `criterion`.

  Args:
    model: a tf_keras Sequential/Functional model. Not modified.
    criterion: a name from `tps.criteria.names()` or a Criterion instance.
    data: for data-dependent criteria ('apoz', 'entropy', 'variance',
      'taylor', 'taylor_fo'): a `tf.data.Dataset` of (x, y) or (x,)
      batches, or numpy (x, y) / x (batched at 32). Streamed once.
    steps: optional maximum number of batches to read.
    graph: optional precomputed `ChannelGraph(model)`.
    verbose: 1 shows a Keras progress bar while data is streamed.

  Returns:
    {group_id: np.ndarray of shape (group.size,)}; higher means keep.
    Groups the criterion has nothing to read for (e.g. no BN for
    'slimming') are absent and stay whole when pruning.

  Raises:
    ValueError: for an unknown criterion, or a data-dependent criterion
      without data (the message names the criterion).
  """
  _compat.check_model(model)
  crit = criteria_lib.get(criterion)
  if crit.requires_data and data is None:
    raise ValueError(
        f"criterion '{crit.name}' is data-dependent: pass `data` (a "
        "tf.data.Dataset of (x, y) batches or numpy (x, y))")
  graph = graph if graph is not None else ChannelGraph(model)
  ctx = ScoringContext(model, graph, data=data, steps=steps, verbose=verbose)
  scores = crit.score(ctx)
  for gid, s in scores.items():
    size = graph.group(gid).size
    if s.shape != (size,):
      raise RuntimeError(f"criterion '{crit.name}' returned shape {s.shape} "
                         f"for group '{gid}' of {size} channels")
  return scores
