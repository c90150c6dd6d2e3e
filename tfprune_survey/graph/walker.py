"""Flattens a tf_keras Sequential/Functional model into layer calls.

Topology is read from the model's config (public API); nested Functional and
Sequential sub-models are inlined, once per call, so a sub-model called twice
contributes its layers twice (sharing their weights). Shapes are read from the
live layers' nodes.
"""

import dataclasses

from tfprune_survey._compat import keras


@dataclasses.dataclass
class LayerCall:
  """One call of one layer, with its inputs resolved to upstream values."""
  path: str                 # qualified name, 'outer/inner' inside sub-models
  names: tuple              # the layer names from the top model down
  layer: object             # the live tf_keras layer
  config: dict              # the layer's own config (not mutated)
  class_name: str
  inputs: list              # upstream values, one per tensor input
  input_shapes: list        # tuples, one per tensor input
  output_shapes: list       # tuples, one per output tensor
  kwargs: dict              # non-tensor call arguments
  index: int = 0            # position of the call in topological order
  node_index: int = 0       # the layer's node index for this call


def _node_items(node):
  """The [name, node, tensor, kwargs] items of one serialized inbound node."""
  if isinstance(node, dict):  # newer serialization format
    node = node.get("args", [])
  if node and isinstance(node[0], str):  # a single item, not wrapped
    return [node]
  return node


def _as_ref_list(refs):
  if refs and isinstance(refs[0], str):
    return [refs]
  return list(refs)


def _is_ref(value, names):
  return (isinstance(value, (list, tuple)) and len(value) == 3 and
          isinstance(value[0], str) and value[0] in names and
          isinstance(value[1], int) and isinstance(value[2], int))


def _kwarg_refs(value, names, out):
  if _is_ref(value, names):
    out.append(tuple(value))
  elif isinstance(value, dict):
    for v in value.values():
      _kwarg_refs(v, names, out)
  elif isinstance(value, (list, tuple)):
    for v in value:
      _kwarg_refs(v, names, out)


def _shape_list(shape):
  if shape is None:
    return [None]
  if isinstance(shape, list) and (not shape or isinstance(shape[0],
                                                          (tuple, list))):
    return [tuple(s) for s in shape]
  if isinstance(shape, list) and shape and shape[0] is None:
    return [tuple(shape)]
  return [tuple(shape)]


def _shape_at(layer, getter, node_index):
  try:
    return _shape_list(getattr(layer, getter)(node_index))
  except Exception:  # pylint: disable=broad-except
    return [None]


def is_submodel(layer):
  return isinstance(layer, keras.Model) and (
      isinstance(layer, keras.Sequential) or "Functional" in type(
          layer).__name__ or type(layer) is keras.Model)  # pylint: disable=unidiomatic-typecheck


class Walker:
  """Walks a model's layer calls in topological order.

  Args:
    model: a tf_keras Sequential or Functional model.
    visit: callable(LayerCall) -> list of output values (one per output).
    make_input: callable(path, shape) -> value for a model input.
    inner_input: optional callable(names, config_key, value), told where a
      nested model's input shape records the channels of an outer value.
  """

  def __init__(self, model, visit, make_input, inner_input=None):
    self._visit = visit
    self._inner_input = inner_input or (lambda names, key, value: None)
    self._make_input = make_input
    self._count = 0
    self.inputs = []
    self.outputs = []   # (value, path of the layer producing it)
    config = model.get_config()
    outs = self._walk(model, config, (), None)
    self.outputs = outs

  def _emit(self, call):
    call.index = self._count
    self._count += 1
    return self._visit(call)

  def _walk(self, model, config, names, outer_inputs):
    """Returns [(value, shape, producer_path)] for the model's outputs."""
    if "input_layers" in config:
      return self._walk_functional(model, config, names, outer_inputs)
    return self._walk_sequential(model, config, names, outer_inputs)

  def _call_layer(self, layer, entry_cfg, class_name, names, node_index,
                  in_vals, kwargs):
    """Calls one (non-model) layer or inlines a sub-model."""
    path = "/".join(names)
    if is_submodel(layer):
      sub_cfg = layer.get_config()
      return self._walk(layer, sub_cfg, names, in_vals)
    call = LayerCall(
        path=path, names=names, layer=layer, config=entry_cfg,
        class_name=class_name, inputs=[v[0] for v in in_vals],
        input_shapes=[v[1] for v in in_vals],
        output_shapes=_shape_at(layer, "get_output_shape_at", node_index),
        kwargs=kwargs, node_index=node_index)
    outs = self._emit(call)
    return [(o, s, path) for o, s in zip(outs, call.output_shapes)]

  def _walk_functional(self, model, config, names, outer_inputs):
    layer_names = {e["config"]["name"] if "name" not in e else e["name"]
                   for e in config["layers"]}
    values = {}
    input_refs = _as_ref_list(config["input_layers"])
    entries = {(e.get("name") or e["config"]["name"]): e
               for e in config["layers"]}
    for i, ref in enumerate(input_refs):
      name = ref[0]
      if outer_inputs is not None:
        values[(name, 0, 0)] = outer_inputs[i]
        self._inner_input(names + (name,), ("batch_input_shape", -1),
                          outer_inputs[i][0])
      else:
        shape = tuple(entries[name]["config"].get("batch_input_shape") or ())
        path = "/".join(names + (name,))
        self.inputs.append(path)
        values[(name, 0, 0)] = (self._make_input(path, shape), shape, path)
    offsets = _submodel_offsets(config, layer_names)
    pending = []
    for entry in config["layers"]:
      if entry["class_name"] == "InputLayer":
        continue
      name = entry.get("name") or entry["config"]["name"]
      for node_index, node in enumerate(entry.get("inbound_nodes", [])):
        pending.append((entry, name, node_index, node))
    live = {layer.name: layer for layer in model.layers}
    progress = True
    while pending and progress:
      progress = False
      rest = []
      for entry, name, node_index, node in pending:
        refs, kwargs = self._node_refs(node, layer_names)
        if not all(tuple(r) in values for r in refs):
          rest.append((entry, name, node_index, node))
          continue
        progress = True
        in_vals = [values[tuple(r)] for r in refs]
        layer = live[name]
        outs = self._call_layer(layer, entry["config"], entry["class_name"],
                                names + (name,), node_index, in_vals, kwargs)
        key_index = node_index
        if is_submodel(layer):
          key_index = node_index + offsets.get(name, 1)
        for t, out in enumerate(outs):
          values[(name, key_index, t)] = out
      pending = rest
    if pending:
      raise ValueError(
          "could not resolve the inputs of layer "
          f"'{pending[0][1]}' while reading the model's config")
    return [values[tuple(r)] for r in _as_ref_list(config["output_layers"])]

  def _node_refs(self, node, layer_names):
    """Tensor refs and non-tensor kwargs of one inbound node."""
    refs, kwargs = [], {}
    for item in _node_items(node):
      refs.append(tuple(item[:3]))
      if len(item) > 3 and isinstance(item[3], dict):
        extra = []
        _kwarg_refs(item[3], layer_names, extra)
        refs.extend(extra)
        kwargs.update({k: v for k, v in item[3].items()
                       if not _is_ref(v, layer_names)})
    return refs, kwargs

  def _walk_sequential(self, model, config, names, outer_inputs):
    layer_entries = [e for e in config["layers"]
                     if e["class_name"] != "InputLayer"]
    if outer_inputs is not None:
      current = outer_inputs[0]
      first = config["layers"][0] if config["layers"] else None
      if first is not None:
        fname = first["config"]["name"]
        if first["class_name"] == "InputLayer" or (
            "batch_input_shape" in first["config"]):
          self._inner_input(names + (fname,), ("batch_input_shape", -1),
                            current[0])
    else:
      shape = tuple(model.inputs[0].shape)
      first = [e for e in config["layers"] if e["class_name"] == "InputLayer"]
      in_name = first[0]["config"]["name"] if first else model.name + "_input"
      path = "/".join(names + (in_name,))
      self.inputs.append(path)
      current = (self._make_input(path, shape), shape, path)
    live = list(model.layers)
    for entry, layer in zip(layer_entries, live):
      name = layer.name
      outs = self._call_layer(layer, entry["config"], entry["class_name"],
                              names + (name,), 0, [current], {})
      current = outs[0]
    return [current]


def _submodel_offsets(config, layer_names):
  """Node-index offset of each layer in this config's references.

  Functional configs number a nested model's calls after its own
  construction node, which is not listed among its inbound nodes; so a
  sub-model referenced only from node 1 upwards has offset 1.
  """
  lowest = {}
  refs = []
  for entry in config["layers"]:
    for node in entry.get("inbound_nodes", []):
      for item in _node_items(node):
        refs.append(tuple(item[:3]))
        if len(item) > 3:
          _kwarg_refs(item[3], layer_names, refs)
  refs.extend(tuple(r) for r in _as_ref_list(config["output_layers"]))
  for name, node_index, _ in refs:
    lowest[name] = min(lowest.get(name, node_index), node_index)
  return {name: (0 if low == 0 else 1) for name, low in lowest.items()}
