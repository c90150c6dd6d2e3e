"""strip_channel_pruning: the trained model without its wrappers."""

import warnings

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.strip.keep import resolve_keep
from tfprune_survey.strip.mask import mask_channels
from tfprune_survey.strip.materialize import materialize as materialize_fn
from tfprune_survey.training.wrapper import ChannelPruneWrapper
from tfprune_survey.training.wrapper import wrappers_of


def unwrap(model):
  """The plain model (wrappers replaced by their layers), weights copied."""
  keras = frameworks.of(model).keras

  def clone(layer):
    inner = layer.layer if isinstance(layer, ChannelPruneWrapper) else layer
    return type(inner).from_config(inner.get_config())
  plain = keras.models.clone_model(model, clone_function=clone)
  sync_weights(model, plain)
  return plain


def sync_weights(wrapped, plain):
  """Copies the (masked) weights of `wrapped` into its plain twin."""
  for layer in wrapped.layers:
    if not layer.weights:   # (Keras 3's clone_model renames InputLayers)
      continue
    inner = layer.layer if isinstance(layer, ChannelPruneWrapper) else layer
    target = plain.get_layer(inner.name)
    if isinstance(layer, ChannelPruneWrapper) and layer.built:
      layer.apply_masks()
    target.set_weights(inner.get_weights())


def current_keep(model, graph=None):
  """The kept channels of a model from `prune_channels`, as pruned so far.

  Read from the state the wrappers hold for it: the wrapper of each pruned
  group's first producer (the layer named as the group) holds the group's
  0/1 `channel_mask`.

  Args:
    model: a model with `ChannelPruneWrapper`s.
    graph: optional `ChannelGraph` of `unwrap(model)`.

  Returns:
    (graph, {group_id: sorted kept indices}); groups that keep every
    channel are absent. `graph.model` is the plain model.
  """
  graph = graph if graph is not None else ChannelGraph(unwrap(model))
  wrappers = {w.layer.name: w for w in wrappers_of(model)}
  if wrappers and all(w.built and w.channel_mask is None
                      for w in wrappers.values()):
    raise ValueError(
        f"the wrappers of {model.name!r} hold no kept-channel state: it was "
        "saved by an earlier tfprune_survey, which kept only weight-slice "
        "masks. Prune it again with tps.prune_channels")
  keep = {}
  for g in graph.prunable_groups:
    w = wrappers.get(g.id)
    if w is None or not w.built or w.channel_mask is None:
      continue
    mask = np.asarray(w.channel_mask.numpy())
    if mask.shape == (g.size,) and mask.min() < 1:
      keep[g.id] = np.flatnonzero(mask > 0.5)
  return graph, keep


def _final_prune_pending(graph, keep):
  """Whether a soft-pruned model still needs the final prune: some weight
  slice `mask_channels` zeroes for a dropped channel is not zero (the end
  of `fit` zeroes all of them; during fit only the filters are zeroed, and
  they regrow)."""
  keep_of = graph.keep_resolver(resolve_keep(graph, keep))
  for sl in graph.weight_slices:
    if not sl.zero or "/" in sl.path:
      continue
    layer = graph.model.get_layer(sl.path)
    var = next((w for w in layer.weights
                if frameworks.Framework.short_name(w) == sl.weight), None)
    if var is None:
      continue
    value = np.asarray(var.numpy())
    dropped = np.setdiff1d(np.arange(value.shape[sl.axis]),
                           sl.layout.indices(keep_of))
    if dropped.size and np.any(np.take(value, dropped, axis=sl.axis)):
      return True
  return False


def strip_channel_pruning(model, materialize=True, data=None):  # pylint: disable=redefined-outer-name
  """The trained model without wrappers, of the same Keras.

  A soft-pruned model (`prune_channels(..., soft=True)`) saved during `fit`
  (e.g. by ModelCheckpoint) has not had the final prune that the end of
  `fit` makes: its dropped filters regrew since the last pruning step. It
  is made here as `UpdateChannelPruningStep.on_train_end` makes it (the
  channels selected once more from the weights, at the sparsity of the
  latest pruning step), with a warning, so the result is what finishing
  that training would strip; `model` is not changed.

  Args:
    model: a model from `prune_channels` (after training), or a model
      holding layers wrapped by `prune_channels(layer)`.
    materialize: True (default) returns the physically slim model (the
      `tps.materialize` of the kept channels); False the plain model of the
      original shapes with the dropped channels zeroed.
    data: data for a data-dependent criterion, used only for the final
      prune of a soft-pruned model saved during `fit` (defaults to the
      data given to `prune_channels`).

  Returns:
    A new model without `ChannelPruneWrapper`s. The kept channels are
    `current_keep(model)[1]`; pass them to `tps.rewind` as `keep=` when
    rewinding from weights other than a `RewindCheckpoint` of this run.

  Raises:
    ValueError: when `model` has no `ChannelPruneWrapper`, or wrappers
      without kept-channel state (saved by an earlier release), or for the
      final prune of a soft-pruned model saved during `fit` whose criterion
      needs data, without data.
  """
  wrappers = wrappers_of(model)
  if not wrappers:
    raise ValueError(f"model {model.name!r} has no ChannelPruneWrapper; was it "
                     "made by tps.prune_channels?")
  graph, keep = current_keep(model)
  if (keep and wrappers[0].settings.get("soft")
      and _final_prune_pending(graph, keep)):
    from tfprune_survey.training.controller import final_prune_keep  # pylint: disable=g-import-not-at-top
    keep = final_prune_keep(model, data)
    warnings.warn(
        f"model {model.name!r} is soft-pruned and was saved during fit, "
        "before the final prune that the end of fit makes (its dropped "
        "filters regrew since the last pruning step): strip_channel_pruning "
        "made that prune (channels selected once more from these weights), "
        "so the stripped model is what finishing the training would strip, "
        "and computes other outputs than `model`", stacklevel=2)
  plain = graph.model
  if materialize:
    return materialize_fn(plain, keep, graph=graph)
  return mask_channels(plain, keep, graph=graph)
