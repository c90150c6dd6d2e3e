"""Edge edits of a Functional model's config, in either Keras' format.

Used by strip/branches.py (removing dead residual branches) and by
training/sss.py (inserting scale layers).

tf_keras writes an inbound node as a list of `[layer, node, tensor, kwargs]`
items; Keras 3 as `{"args": [...], "kwargs": {...}}` with each tensor a
`{"class_name": "__keras_tensor__", "config": {"keras_history": [layer,
node, tensor], ...}}`. Both keep the (layer, node, tensor) triple in a
list (Keras 3's may be a tuple, made a list here), which is what the edits
here rename. Reading goes through the
framework adapter's `node_refs`.
"""

import copy

from tfprune_survey import frameworks

_TENSOR = "__keras_tensor__"


def name_of(entry):
  return entry.get("name") or entry["config"]["name"]


def entries(config):
  """{name: layer entry} of a Functional config."""
  return {name_of(e): e for e in config["layers"]}


def _ref_lists(value, names, out):
  """Appends every mutable [layer, node, tensor, ...] list in `value`."""
  if isinstance(value, dict):
    if value.get("class_name") == _TENSOR:
      history = list(value["config"]["keras_history"])   # may be a tuple
      value["config"]["keras_history"] = history
      out.append(history)
      return
    for v in value.values():
      _ref_lists(v, names, out)
  elif isinstance(value, tuple):
    for v in value:
      _ref_lists(v, names, out)
  elif isinstance(value, list):
    if (len(value) >= 3 and isinstance(value[0], str) and value[0] in names
        and isinstance(value[1], int) and isinstance(value[2], int)):
      out.append(value)
      if len(value) > 3:
        _ref_lists(value[3:], names, out)
      return
    for v in value:
      _ref_lists(v, names, out)


def ref_lists(entry, names):
  """The mutable tensor references of all inbound nodes of `entry`
  (`names`: the layer names of the config)."""
  out = []
  _ref_lists(entry.get("inbound_nodes", []), names, out)
  return out


def parent_map(config, fw):
  """{name: names of the layers whose outputs it reads, in call order}."""
  names = set(entries(config))
  out = {}
  for e in config["layers"]:
    out[name_of(e)] = [r[0] for node in e.get("inbound_nodes", [])
                       for r in fw.node_refs(node, names)[0]]
  return out


def consumers(config, name, fw):
  """Names of the layers that read an output of `name`."""
  return [n for n, ps in parent_map(config, fw).items() if name in ps]


def output_refs(config, fw):
  return fw.output_refs(config)


def insert_after(config, src, new_entry, fw, only_into=None):
  """Inserts `new_entry` (a layer entry without inbound nodes) after `src`.

  References to output 0 of call 0 of `src` are redirected to the new
  layer in every layer, or only in `only_into`; and in the model outputs
  when `only_into` is None.
  """
  name = new_entry["config"]["name"]
  names = set(entries(config))
  found = []
  for e in config["layers"]:
    if only_into is not None and name_of(e) != only_into:
      continue
    for ref in ref_lists(e, names):
      if ref[0] == src and ref[1] == 0 and ref[2] == 0:
        found.append(ref)
  if fw.name == frameworks.KERAS3:
    tensor = _tensor_of(config, src)
    node = {"args": [tensor], "kwargs": {}}
  else:
    node = [[src, 0, 0, {}]]
  for ref in found:
    ref[0] = name
  if only_into is None:
    for ref in output_refs(config, fw):
      if ref[0] == src and ref[1] == 0 and ref[2] == 0:
        ref[0] = name
  new_entry = dict(new_entry, name=name, inbound_nodes=[node])
  index = next(i for i, e in enumerate(config["layers"])
               if name_of(e) == src)
  config["layers"].insert(index + 1, new_entry)


def redirect(config, name, ref, fw):
  """Points every reference to an output of `name` at `ref` instead.

  Args:
    config: a Functional config (edited in place).
    name: the layer whose outputs are no longer there.
    ref: the (layer, node, tensor) to read instead.
    fw: the framework adapter.
  """
  names = set(entries(config)) | {name}
  for e in config["layers"]:
    for r in ref_lists(e, names):
      if r[0] == name:
        r[0:3] = list(ref)
  config["output_layers"] = _lists(config["output_layers"])
  for r in fw.output_refs(config):   # the config's own lists, any nesting
    if r[0] == name:
      r[0:3] = list(ref)


def _lists(value):
  """`value` (a nested output spec) with its tuples made lists."""
  if isinstance(value, dict):
    return {k: _lists(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_lists(v) for v in value]
  return value


def _tensor_of(config, src):
  """A Keras 3 serialized tensor for output 0 of call 0 of `src`."""
  for e in config["layers"]:
    stack = [e.get("inbound_nodes", [])]
    while stack:
      v = stack.pop()
      if isinstance(v, dict):
        if v.get("class_name") == _TENSOR and list(
            v["config"]["keras_history"]) == [src, 0, 0]:
          return copy.deepcopy(v)
        stack.extend(v.values())
      elif isinstance(v, (list, tuple)):
        stack.extend(v)
  return {"class_name": _TENSOR,
          "config": {"shape": None, "dtype": "float32",
                     "keras_history": [src, 0, 0]}}


def ancestors(parents, name):
  seen, stack = set(), [name]
  while stack:
    n = stack.pop()
    if n in seen:
      continue
    seen.add(n)
    stack.extend(parents[n])
  return seen


def _depth_from(parents, name, stop):
  """Number of layers from `name` back to the first layer in `stop`."""
  depth, frontier, seen = 0, [name], set()
  while frontier:
    if any(n in stop for n in frontier):
      return depth
    seen.update(frontier)
    frontier = [p for n in frontier for p in parents[n] if p not in seen]
    depth += 1
  return depth


def residual_branch(config, add_name, fw):
  """The name of the layer feeding the residual branch of a 2-input Add.

  The shortcut is the input that is an ancestor of the other (identity) or,
  failing that, the one closer to the inputs' nearest common ancestor
  (a projection); the branch is the other. None if it cannot be told.
  """
  parents = parent_map(config, fw)
  inputs = parents[add_name]
  if len(inputs) != 2 or inputs[0] == inputs[1]:
    return None
  a, b = inputs
  anc_a, anc_b = ancestors(parents, a), ancestors(parents, b)
  if a in anc_b:
    return b
  if b in anc_a:
    return a
  common = anc_a & anc_b
  if not common:
    return None
  da = _depth_from(parents, a, common)
  db = _depth_from(parents, b, common)
  if da == db:
    return None
  return a if da > db else b
