"""tps.score: one score per channel of every prunable group."""

import numpy as np

from tfprune_survey import criteria as criteria_lib
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey.criteria.context import ScoringContext
from tfprune_survey.graph.channel_graph import ChannelGraph


def needs_labels(criterion):
  """True when `criterion` differentiates a loss, so its data needs labels."""
  return bool(criterion.needs_gradients)


def score(model, criterion, data=None, *, steps=None, graph=None, verbose=0):
  """Scores every prunable channel group of `model` with `criterion`.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3. Not
      modified.
    criterion: a name from `tps.criteria.names()` or a Criterion instance.
    data: for data-dependent criteria ('apoz', 'entropy', 'variance',
      'taylor', 'taylor_fo'): a `tf.data.Dataset` of (x, y) or (x,)
      batches, or numpy (x, y) / x (batched at 32); for a model with
      several inputs x is a tuple, list or dict of arrays, as `fit` takes
      it (numpy `([x1, x2], y)`, a dataset of `((x1, x2), y)`). Streamed
      once. Its
      input shape is checked against the model's before any work, and each
      batch is refused if it holds NaN or inf; for
      criteria that differentiate the loss ('taylor', 'taylor_fo') so are
      its labels (class indices in [0, outputs), or one-hot when the model
      is compiled with a categorical cross-entropy): numpy labels at once,
      a dataset's batch by batch.
    steps: optional maximum number of batches to read.
    graph: optional precomputed `ChannelGraph(model)`.
    verbose: 1 shows a Keras progress bar while data is streamed.

  Returns:
    {group_id: np.ndarray of shape (group.size,)}; higher means keep.
    Groups the criterion has nothing to read for (e.g. no BN for
    'slimming') are absent and stay whole when pruning.

  Raises:
    ValueError: for an unknown criterion; a data-dependent criterion
      without data (the message names the criterion); data whose input
      shape, or labels, do not fit the model, or that holds NaN or inf; or
      scores that are not finite (the message names the groups, and the
      weights that hold NaN or inf, if any).
  """
  frameworks.check_model(model)
  crit = criteria_lib.get(criterion)
  if crit.requires_data and data is None:
    raise ValueError(
        f"criterion '{crit.name}' is data-dependent: pass `data` (a "
        "tf.data.Dataset of (x, y) batches or numpy (x, y))")
  streamed = data
  if crit.requires_data:
    streamed = data_lib.checked(model, data, labels=needs_labels(crit),
                                criterion=crit.name)
  graph = graph if graph is not None else ChannelGraph(model)
  ctx = ScoringContext(model, graph, data=streamed, steps=steps,
                       verbose=verbose)
  scores = crit.score(ctx)
  for gid, s in scores.items():
    size = graph.group(gid).size
    if s.shape != (size,):
      raise RuntimeError(f"criterion '{crit.name}' returned shape {s.shape} "
                         f"for group '{gid}' of {size} channels")
  check_finite(model, crit, scores)
  return scores


def _non_finite_weights(model):
  """Names of the model's weights that hold NaN or inf."""
  out = []
  for w, v in zip(model.weights, model.get_weights()):
    v = np.asarray(v)
    if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
      out.append(getattr(w, "path", None) or w.name)
  return out


def check_finite(model, criterion, scores):
  """Raises unless every score is finite, saying which groups and why.

  Data holding NaN or inf is refused batch by batch before it is used
  (`tfprune_survey.data.checked`), so the causes left are the weights and
  overflow.

  Raises:
    ValueError: naming the groups with NaN/inf scores and the cause found:
      NaN/inf in named weights of the model, or none (the criterion's
      arithmetic overflowed, e.g. on very large inputs).
  """
  bad = {gid: int(np.size(s) - np.isfinite(s).sum())
         for gid, s in scores.items() if not np.isfinite(s).all()}
  if not bad:
    return
  gid = next(iter(bad))
  size = np.size(scores[gid])
  others = [g for g in bad if g != gid]
  where = f"group '{gid}' ({bad[gid]} of {size} channels)"
  if others:
    shown = others[:5] + (["..."] if len(others) > 5 else [])
    where += f" and {len(others)} other group(s) {shown}"
  weights = _non_finite_weights(model)
  if weights:
    shown = weights[:3] + (["..."] if len(weights) > 3 else [])
    why = (f"model '{model.name}' has NaN or inf in weight(s) {shown}; "
           "restore finite weights (e.g. from a checkpoint before training "
           "diverged) before pruning")
  else:
    why = ("neither the data nor the weights hold NaN or inf, so the "
           "criterion's arithmetic overflowed (e.g. very large inputs or an "
           "infinite loss)")
  name = getattr(criterion, "name", None) or type(criterion).__name__
  raise ValueError(f"criterion '{name}' gave scores that are not finite "
                   f"(NaN or inf) for {where}: {why}")
