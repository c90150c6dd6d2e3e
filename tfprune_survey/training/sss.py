"""Sparse Structure Selection (Huang and Wang, 2018): learnable scales."""

import copy
import numbers

from tfprune_survey import frameworks
from tfprune_survey.graph import walker
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.layers.channel_scale import ChannelScale
from tfprune_survey.strip import surgery
from tfprune_survey.strip import config_edges as edges

GRANULARITIES = ("channel", "block")


def _scale_entry(fw, name, l1, shared):
  reg = fw.keras.regularizers.L1(l1) if l1 else None
  layer = ChannelScale(regularizer=reg, shared=shared, name=name,
                       framework=fw.name)
  return {"module": None, "class_name": "ChannelScale",
          "config": layer.get_config(),
          "registered_name": "tfprune_survey>ChannelScale"}


def _free_name(entries, name, model):
  """`name` for a new scale layer, unless the model has a layer so named
  (e.g. scales already added): then a ValueError naming it."""
  if name in entries:
    raise ValueError(
        f"model {model.name!r} already has a layer named {name!r}, the name "
        f"of the scale add_scaling_factors would insert"
        + (" (scaling factors were already added to this model)"
           if entries[name]["class_name"] == "ChannelScale" else
           ": rename that layer"))
  return name


def add_scaling_factors(model, l1=1e-4, granularity="channel"):
  """Inserts SSS scaling factors with an L1 penalty; returns a new model.

  'channel': a per-channel `ChannelScale` after each producer of a
  prunable group (after its BatchNormalization when one follows it); prune
  the trained model with the `sss` criterion.

  'block': one shared scalar on the residual branch of every 2-input Add
  (the branch is told from the shortcut by the graph's shape: the shortcut
  is an ancestor of the branch, or the shorter path for a projection).
  Train; a branch whose scale reaches exactly 0 is removed whole by
  `tps.materialize` and its Add becomes the identity, which cuts depth as
  in the paper (a proximal or thresholding step gives exact zeros; see
  `zero_small_block_scales`).

  Reference: Z. Huang, N. Wang (2018), "Data-driven sparse structure
  selection for deep neural networks", ECCV.

  Args:
    model: a Functional model of tf_keras or Keras 3 (any backend: the
      penalty is an ordinary regularization loss). Not modified.
    l1: the L1 penalty weight on the scales (the paper's gamma), >= 0.
      Defaults to 1e-4.
    granularity: 'channel' (default) or 'block'.

  Returns:
    The new model (same Keras), weights copied, scales starting at 1 (same
    function).

  Raises:
    ValueError: for a bad `l1` or `granularity`, a Sequential model, a
      model with nowhere to put scales, or one that already has a layer
      with the name of a scale to insert (`<layer>_sss`,
      `<add>_branch_sss`; e.g. scales were already added).
  """
  fw = frameworks.check_model(model, "model")
  if granularity not in GRANULARITIES:
    raise ValueError(f"`granularity` must be one of {GRANULARITIES}, got "
                     f"{granularity!r}")
  if isinstance(l1, bool) or not isinstance(l1, numbers.Real) or l1 < 0:
    raise ValueError(f"`l1` must be a number >= 0, got {l1!r}")
  if fw.is_sequential(model):
    raise ValueError("add_scaling_factors needs a Functional model (scales "
                     "are inserted on graph edges)")
  config = copy.deepcopy(walker.model_config(model))
  entries = edges.entries(config)
  added = 0
  if granularity == "channel":
    graph = ChannelGraph(model)
    targets = []
    for g in graph.prunable_groups:
      for p in g.producers:
        if "/" in p or p not in entries:
          continue
        users = edges.consumers(config, p, fw)
        if len(users) == 1 and entries[users[0]]["class_name"] in (
            "BatchNormalization",):
          p = users[0]
        if p not in targets:
          targets.append(p)
    for t in targets:
      edges.insert_after(config, t, _scale_entry(
          fw, _free_name(entries, f"{t}_sss", model), l1, False), fw)
      added += 1
  else:
    for name, entry in list(entries.items()):
      if entry["class_name"] != "Add":
        continue
      src = edges.residual_branch(config, name, fw)
      if src is None:
        continue
      edges.insert_after(
          config, src,
          _scale_entry(fw, _free_name(entries, f"{name}_branch_sss", model),
                       l1, True), fw, only_into=name)
      added += 1
  if not added:
    raise ValueError(f"model {model.name!r} has nowhere to put "
                     f"{granularity}-level scaling factors")
  new = surgery.rebuild(model, config)
  for layer in new.layers:
    if isinstance(layer, ChannelScale) and layer.name not in entries:
      continue
    layer.set_weights(model.get_layer(layer.name).get_weights())
  return new


def zero_small_block_scales(model, threshold):
  """Sets shared (block) scales with |scale| <= threshold to exactly 0, in
  place; returns the names zeroed. The thresholding step that turns an L1
  trained scale into a removable branch.

  Raises:
    ValueError: for a `threshold` that is not a number >= 0 (a negative or
      NaN one would zero nothing).
  """
  if isinstance(threshold, bool) or not isinstance(
      threshold, numbers.Real) or not threshold >= 0:
    raise ValueError(f"`threshold` must be a number >= 0, got {threshold!r}")
  zeroed = []
  for layer in model.layers:
    if isinstance(layer, ChannelScale) and layer.shared and (
        abs(float(layer.scale.numpy()[0])) <= threshold):
      layer.scale.assign([0.0])
      zeroed.append(layer.name)
  return zeroed
