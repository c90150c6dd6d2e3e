"""Config-level edits of Functional models: inserting a layer on an edge, and
removing residual branches whose shared scale is 0 (SSS block pruning)."""

import copy

import numpy as np

from tfprune_survey.strip import surgery


def _items(node):
  """The [name, node_index, tensor_index, kwargs] items of an inbound node."""
  if isinstance(node, dict):   # newer Keras formats are not produced by tf_keras
    raise ValueError("unsupported inbound node format")
  return node


def entries(config):
  return {e.get("name") or e["config"]["name"]: e for e in config["layers"]}


def consumers(config, name):
  out = []
  for e in config["layers"]:
    for node in e.get("inbound_nodes", []):
      if any(item[0] == name for item in _items(node)):
        out.append(e.get("name") or e["config"]["name"])
  return out


def parents(config, name):
  e = entries(config)[name]
  return [item[0] for node in e.get("inbound_nodes", []) for item in
          _items(node)]


def insert_after(config, src, new_entry, only_into=None):
  """Inserts `new_entry` (a layer config without inbound nodes) after `src`.

  References to `src` (output 0 of call 0) are redirected to the new layer
  in every layer, or only in `only_into`, and in the model outputs when
  `only_into` is None.
  """
  name = new_entry["config"]["name"]
  new_entry = dict(new_entry, name=name,
                   inbound_nodes=[[[src, 0, 0, {}]]])
  for e in config["layers"]:
    ename = e.get("name") or e["config"]["name"]
    if only_into is not None and ename != only_into:
      continue
    for node in e.get("inbound_nodes", []):
      for item in _items(node):
        if item[0] == src and item[1] == 0 and item[2] == 0:
          item[0] = name
  if only_into is None:
    for ref in _output_refs(config):
      if ref[0] == src:
        ref[0] = name
  index = next(i for i, e in enumerate(config["layers"])
               if (e.get("name") or e["config"]["name"]) == src)
  config["layers"].insert(index + 1, new_entry)


def _output_refs(config):
  outs = config["output_layers"]
  if outs and isinstance(outs[0], str):
    return [outs]
  return outs


def ancestors(config, name):
  seen, stack = set(), [name]
  while stack:
    n = stack.pop()
    if n in seen:
      continue
    seen.add(n)
    stack.extend(parents(config, n))
  return seen


def _depth_from(config, name, stop):
  """Number of layers from `name` back to the first layer in `stop`."""
  depth, frontier, seen = 0, [name], set()
  while frontier:
    if any(n in stop for n in frontier):
      return depth
    seen.update(frontier)
    frontier = [p for n in frontier for p in parents(config, n)
                if p not in seen]
    depth += 1
  return depth


def residual_branch(config, add_name):
  """The name of the layer feeding the residual branch of a 2-input Add.

  The shortcut is the input that is an ancestor of the other (identity) or,
  failing that, the one closer to the inputs' nearest common ancestor
  (a projection); the branch is the other. None if it cannot be told.
  """
  inputs = parents(config, add_name)
  if len(inputs) != 2 or inputs[0] == inputs[1]:
    return None
  a, b = inputs
  anc_a, anc_b = ancestors(config, a), ancestors(config, b)
  if a in anc_b:
    return b
  if b in anc_a:
    return a
  common = anc_a & anc_b
  if not common:
    return None
  da, db = _depth_from(config, a, common), _depth_from(config, b, common)
  if da == db:
    return None
  return a if da > db else b


def dead_branch_scales(model):
  """Shared ChannelScale layers at 0 that feed a 2-input Add, top level."""
  from tfprune_survey.layers.channel_scale import ChannelScale  # pylint: disable=g-import-not-at-top
  zeros = [layer for layer in model.layers
           if isinstance(layer, ChannelScale) and layer.shared and
           layer.built and np.all(layer.scale.numpy() == 0)]
  if not zeros:   # the usual case: no config is built on the materialize path
    return []
  config = model.get_config()
  out = []
  for layer in zeros:
    users = consumers(config, layer.name)
    if len(users) == 1 and entries(config)[users[0]]["class_name"] == "Add":
      out.append((layer.name, users[0]))
  return out


def remove_dead_branches(model):
  """A copy of `model` without the residual branches scaled by exactly 0.

  Each such branch contributes nothing to its Add, so the Add (left with
  one input) becomes the identity and the branch's layers, no longer
  reachable from the outputs, are dropped. Same function, fewer layers.

  Returns:
    (new model, [removed layer names]); the model itself when there is
    nothing to remove.
  """
  dead = dead_branch_scales(model)
  if not dead:
    return model, []
  config = copy.deepcopy(model.get_config())
  for scale_name, add_name in dead:
    add = entries(config)[add_name]
    node = add["inbound_nodes"][0]
    kept = [item for item in node if item[0] != scale_name]
    if len(kept) == 1:
      ref = kept[0]
      config["layers"] = [e for e in config["layers"] if e is not add]
      for e in config["layers"]:
        for n in e.get("inbound_nodes", []):
          for item in _items(n):
            if item[0] == add_name:
              item[0], item[1], item[2] = ref[0], ref[1], ref[2]
      for r in _output_refs(config):
        if r[0] == add_name:
          r[0], r[1], r[2] = ref[0], ref[1], ref[2]
    else:
      add["inbound_nodes"][0] = kept
  live = set()
  for r in _output_refs(config):
    live |= ancestors(config, r[0])
  removed = [e.get("name") or e["config"]["name"] for e in config["layers"]
             if (e.get("name") or e["config"]["name"]) not in live]
  config["layers"] = [e for e in config["layers"]
                      if (e.get("name") or e["config"]["name"]) in live]
  new = surgery.rebuild(model, config)
  for layer in new.layers:
    layer.set_weights(model.get_layer(layer.name).get_weights())
  return new, removed
