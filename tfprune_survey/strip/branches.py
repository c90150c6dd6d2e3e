"""Removing residual branches whose shared scale is 0 (SSS block pruning).

Config-level edits of a Functional model, in either Keras' format (through
`config_edges`): each branch scaled by exactly 0 contributes nothing to its
Add, so the Add (left with one input) becomes the identity and the branch's
layers, no longer reachable from the outputs, are dropped.
"""

import copy

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.graph import walker
from tfprune_survey.strip import config_edges as edges
from tfprune_survey.strip import surgery


def dead_branch_scales(model):
  """Shared ChannelScale layers at 0 that feed a 2-input Add, top level."""
  from tfprune_survey.layers.channel_scale import ChannelScale  # pylint: disable=g-import-not-at-top
  zeros = [layer for layer in model.layers
           if isinstance(layer, ChannelScale) and layer.shared and
           layer.built and np.all(np.asarray(layer.scale.numpy()) == 0)]
  if not zeros:   # the usual case: no config is built on the materialize path
    return []
  fw = frameworks.of(model)
  config = walker.model_config(model)
  by_name = edges.entries(config)
  parents = edges.parent_map(config, fw)
  out = []
  adds = set()
  for layer in zeros:
    users = edges.consumers(config, layer.name, fw)
    # An Add whose two inputs are both scaled by 0 loses one of them only:
    # it becomes the identity on the other (still 0) branch.
    if (len(users) == 1 and by_name[users[0]]["class_name"] == "Add" and
        len(parents[users[0]]) == 2 and users[0] not in adds):
      adds.add(users[0])
      out.append((layer.name, users[0]))
  return out


def remove_dead_branches(model):
  """A copy of `model` without the residual branches scaled by exactly 0.

  Returns:
    (new model, [removed layer names]); the model itself when there is
    nothing to remove.
  """
  dead = dead_branch_scales(model)
  if not dead:
    return model, []
  fw = frameworks.of(model)
  config = copy.deepcopy(walker.model_config(model))
  for scale_name, add_name in dead:
    add = edges.entries(config)[add_name]
    names = set(edges.entries(config))
    kept = [tuple(r) for r in fw.node_refs(add["inbound_nodes"][0], names)[0]
            if r[0] != scale_name]
    config["layers"] = [e for e in config["layers"] if e is not add]
    edges.redirect(config, add_name, kept[0], fw)
  parents = edges.parent_map(config, fw)
  live = set()
  for ref in fw.output_refs(config):
    live |= edges.ancestors(parents, ref[0])
  removed = [edges.name_of(e) for e in config["layers"]
             if edges.name_of(e) not in live]
  config["layers"] = [e for e in config["layers"]
                      if edges.name_of(e) in live]
  new = surgery.rebuild(model, config)
  for layer in new.layers:
    layer.set_weights(model.get_layer(layer.name).get_weights())
  return new, removed
