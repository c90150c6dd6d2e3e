"""Flattens a Sequential/Functional model (either Keras) into layer calls.

Topology is read from the model's config (public API); nested Functional and
Sequential sub-models are inlined, once per call, so a sub-model called twice
contributes its layers twice (sharing their weights). Shapes are read from the
live layers' nodes.
"""

import dataclasses

from tfprune_survey import frameworks
from tfprune_survey.errors import UnsupportedModelError


@dataclasses.dataclass
class LayerCall:
  """One call of one layer, with its inputs resolved to upstream values."""
  path: str                 # qualified name, 'outer/inner' inside sub-models
  names: tuple              # the layer names from the top model down
  layer: object             # the live layer (or Keras 3 operation)
  config: dict              # the layer's own config (not mutated)
  class_name: str
  inputs: list              # upstream values, one per tensor input
  input_shapes: list        # tuples, one per tensor input
  output_shapes: list       # tuples, one per output tensor
  kwargs: dict              # non-tensor call arguments
  index: int = 0            # position of the call in topological order
  node_index: int = 0       # the layer's node index for this call


def is_submodel(layer):
  """Whether `layer` is a nested Sequential/Functional model (either Keras)."""
  name = frameworks.detect(layer)
  return name is not None and frameworks.get(name).is_submodel(layer)


def input_layer_paths(model, prefix=""):
  """Paths ('inp', 'outer/inp') of the InputLayers among `model.layers`,
  nested models' too: layers `model.get_layer` finds that are no call of
  the graph."""
  out = set()
  for layer in getattr(model, "layers", ()):
    path = prefix + layer.name
    if type(layer).__name__ == "InputLayer":
      out.add(path)
    elif is_submodel(layer):
      out |= input_layer_paths(layer, path + "/")
  return out


def model_config(model):
  """`model.get_config()`, or an error naming the layer or op it fails on.

  Keras's own error (a NotImplementedError asking to implement
  `get_config()`) names neither the layer nor the model it came from.

  Raises:
    UnsupportedModelError: where the config cannot be made.
  """
  try:
    return model.get_config()
  except NotImplementedError as e:
    culprit = _unserializable(model, ())
    if culprit is None:
      raise
    path, op = culprit
    raise UnsupportedModelError(
        f"the model's layers cannot be read: its config (model.get_config(),"
        f" which tfprune_survey reads them from) fails at '{path}' "
        f"({type(op).__name__}): it was made with argument values Keras "
        "cannot serialize and has no get_config() of its own (for a "
        "keras.ops call such as ops.clip, a NumPy array as a bound; "
        "ops.minimum/ops.maximum take array operands). Keras said: "
        f"{' '.join(str(e).split())[:200]}") from e


def _unserializable(model, names):
  """(path, op) of the first layer or op under `model` whose config fails."""
  ops = getattr(model, "operations", None) or getattr(model, "layers", [])
  for op in ops:
    here = names + (op.name,)
    if is_submodel(op):
      found = _unserializable(op, here)
      if found is not None:
        return found
      continue
    try:
      op.get_config()
    except NotImplementedError:
      return "/".join(here), op
  return None


class Walker:
  """Walks a model's layer calls in topological order.

  Args:
    model: a Sequential or Functional model of either Keras.
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
    self.fw = frameworks.of(model)
    config = model_config(model)
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

  def _call_layer(self, model, layer, entry_cfg, class_name, names,
                  node_index, in_vals, kwargs):
    """Calls one (non-model) layer or inlines a sub-model.

    `node_index` counts the layer's calls in `model`'s config; the call's
    shapes are read from the layer's own node of that call.
    """
    path = "/".join(names)
    if is_submodel(layer):
      sub_cfg = layer.get_config()
      return self._walk(layer, sub_cfg, names, in_vals)
    node_index = self.fw.call_node_index(model, layer, node_index)
    call = LayerCall(
        path=path, names=names, layer=layer, config=entry_cfg,
        class_name=class_name, inputs=[v[0] for v in in_vals],
        input_shapes=[v[1] for v in in_vals],
        output_shapes=self.fw.output_shapes(layer, node_index),
        kwargs=kwargs, node_index=node_index)
    outs = self._emit(call)
    return [(o, s, path) for o, s in zip(outs, call.output_shapes)]

  def _walk_functional(self, model, config, names, outer_inputs):
    layer_names = {e["config"]["name"] if "name" not in e else e["name"]
                   for e in config["layers"]}
    values = {}
    input_refs = self.fw.input_refs(config)
    key = self.fw.input_shape_key
    entries = {(e.get("name") or e["config"]["name"]): e
               for e in config["layers"]}
    for i, ref in enumerate(input_refs):
      name = ref[0]
      if outer_inputs is not None:
        values[(name, 0, 0)] = outer_inputs[i]
        self._inner_input(names + (name,), (key, -1), outer_inputs[i][0])
      else:
        shape = tuple(entries[name]["config"].get(key) or ())
        path = "/".join(names + (name,))
        self.inputs.append(path)
        values[(name, 0, 0)] = (self._make_input(path, shape), shape, path)
    offsets = self._submodel_offsets(config, layer_names)
    pending = []
    for entry in config["layers"]:
      if entry["class_name"] == "InputLayer":
        continue
      name = entry.get("name") or entry["config"]["name"]
      for node_index, node in enumerate(entry.get("inbound_nodes", [])):
        pending.append((entry, name, node_index, node))
    live = self.fw.live_operations(model)
    progress = True
    while pending and progress:
      progress = False
      rest = []
      for entry, name, node_index, node in pending:
        refs, kwargs = self.fw.node_refs(node, layer_names)
        if not all(tuple(r) in values for r in refs):
          rest.append((entry, name, node_index, node))
          continue
        progress = True
        in_vals = [values[tuple(r)] for r in refs]
        layer = live[name]
        outs = self._call_layer(model, layer, entry["config"],
                                entry["class_name"], names + (name,),
                                node_index, in_vals, kwargs)
        key_index = node_index
        if is_submodel(layer):
          default = self.fw.submodel_node_offset
          key_index = node_index + offsets.get(
              name, 1 if default is None else default)
        for t, out in enumerate(outs):
          values[(name, key_index, t)] = out
      pending = rest
    if pending:
      raise ValueError(
          "could not resolve the inputs of layer "
          f"'{pending[0][1]}' while reading the model's config")
    outs = []
    for name, node_index, t in self.fw.output_refs(config):
      node_index = self.fw.output_node_index(live[name], node_index)
      outs.append(values[(name, node_index, t)])
    return outs

  def _walk_sequential(self, model, config, names, outer_inputs):
    layer_entries = [e for e in config["layers"]
                     if e["class_name"] != "InputLayer"]
    if outer_inputs is not None:
      current = outer_inputs[0]
      first = config["layers"][0] if config["layers"] else None
      if first is not None:
        fname = first["config"]["name"]
        key = self.fw.input_shape_key
        if first["class_name"] == "InputLayer" or key in first["config"]:
          self._inner_input(names + (fname,), (key, -1), current[0])
    else:
      shape = tuple(self.fw.model_inputs(model)[0].shape)
      first = [e for e in config["layers"] if e["class_name"] == "InputLayer"]
      in_name = first[0]["config"]["name"] if first else model.name + "_input"
      path = "/".join(names + (in_name,))
      self.inputs.append(path)
      current = (self._make_input(path, shape), shape, path)
    live = list(model.layers)
    for entry, layer in zip(layer_entries, live):
      name = layer.name
      outs = self._call_layer(model, layer, entry["config"],
                              entry["class_name"], names + (name,), 0,
                              [current], {})
      current = outs[0]
    return [current]


  def _submodel_offsets(self, config, layer_names):
    """Node-index offset of each layer in this config's references.

    tf_keras numbers a nested model's calls after its own construction
    node, which is not listed among its inbound nodes; so a sub-model
    referenced only from node 1 upwards has offset 1. Keras 3 has no such
    node (offset 0).
    """
    if self.fw.submodel_node_offset is not None:
      return {}
    lowest = {}
    refs = []
    for entry in config["layers"]:
      for node in entry.get("inbound_nodes", []):
        refs.extend(self.fw.node_refs(node, layer_names)[0])
    refs.extend(tuple(r) for r in self.fw.output_refs(config))
    for name, node_index, _ in refs:
      lowest[name] = min(lowest.get(name, node_index), node_index)
    return {name: (0 if low == 0 else 1) for name, low in lowest.items()}
