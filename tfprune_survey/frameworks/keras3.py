"""The Keras 3 adapter (`import keras`; TensorFlow, JAX or PyTorch backend).

Keras 3 differs from tf_keras in ways that matter to a channel graph:
inbound nodes are `{"args", "kwargs"}` with `__keras_tensor__` entries and
inline constants; `keras.ops` calls and Python operators on Keras tensors are
Operation nodes (listed in `model.operations` and the config, not in
`model.layers`), whose classes can share a name with a layer class
(`ops.numpy.Add` and `layers.Add`); there is no `get_input_at`; the
InputLayer's shape is `batch_shape`; DepthwiseConv2D's weight is `kernel`; a
nested model has no construction node. The private names used here are
pinned by tests/frameworks.
"""

from tfprune_survey.frameworks.base import Framework

_TENSOR = "__keras_tensor__"


def _is_tensor(value):
  return isinstance(value, dict) and value.get("class_name") == _TENSOR


def _tensor_refs(value, out):
  """Appends the keras_history of every Keras tensor nested in `value`."""
  if _is_tensor(value):
    name, node, index = value["config"]["keras_history"]
    out.append((name, int(node), int(index)))
  elif isinstance(value, dict):
    for v in value.values():
      _tensor_refs(v, out)
  elif isinstance(value, (list, tuple)):
    for v in value:
      _tensor_refs(v, out)


def run_graph(model, x, tap):
  """Runs a Keras 3 Functional `model` on `x`, node by node.

  Args:
    model: a Keras 3 Functional model, or a built Sequential (run through
      the Functional graph it keeps, whose tensors its layers' nodes hold).
    x: the input array (one input), or a list, tuple or dict (by input
      name) of arrays.
    tap: callable(tensor_id, value) -> value, applied to every computed
      tensor (the id is that of the model's symbolic KerasTensor).

  Returns:
    The list of the model's outputs.
  """
  from keras import ops  # pylint: disable=g-import-not-at-top
  from keras.src import tree  # pylint: disable=g-import-not-at-top
  if not hasattr(model, "_nodes_by_depth"):
    graph = getattr(model, "_functional", None)   # a Sequential
    if graph is None:
      raise ValueError(
          f"model '{model.name}' has no graph to run: a Sequential model "
          "must be built with a known input shape (`keras.Input(shape)`)")
    model = graph
  values = {}
  if isinstance(x, dict) and all(getattr(r, "name", None) in x
                                 for r in model.inputs):
    x = [x[r.name] for r in model.inputs]  # matched by name, as fit does
  for ref, value in zip(model.inputs, tree.flatten(x)):
    # In the input's dtype, as a Functional call converts it (uint8 images
    # for a float32 Input): the tap may differentiate there.
    dtype = getattr(ref, "dtype", None)
    if dtype is not None and value is not None:
      value = ops.convert_to_tensor(value, dtype=dtype)
    values[id(ref)] = tap(id(ref), value)
  depths = sorted(model._nodes_by_depth, reverse=True)  # pylint: disable=protected-access
  for depth in depths:
    for node in model._nodes_by_depth[depth]:  # pylint: disable=protected-access
      if not node.operation or node.is_input:
        continue
      if any(id(t) not in values for t in node.input_tensors):
        continue
      args, kwargs = node.arguments.fill_in(values)
      if "training" in kwargs:
        kwargs["training"] = False
      outputs = node.operation(*args, **kwargs)
      for ref, value in zip(node.outputs, tree.flatten(outputs)):
        values[id(ref)] = tap(id(ref), value)
  return [values[id(t)] for t in model.outputs]



class Keras3(Framework):
  """Keras 3: `args`/`kwargs` nodes, Operation nodes, `_inbound_nodes`."""

  name = "keras3"
  input_shape_key = "batch_shape"
  weight_aliases = {"depthwise_kernel": ("kernel",)}
  submodel_node_offset = 0
  builtin_prefixes = ("keras.",)

  @property
  def keras(self):
    import keras  # pylint: disable=g-import-not-at-top
    return keras

  def backend(self):
    return self.keras.backend.backend()

  def is_functional(self, obj):
    from keras.src.models import functional  # pylint: disable=g-import-not-at-top
    return isinstance(obj, functional.Functional)

  def is_submodel(self, layer):
    return self.is_sequential(layer) or self.is_functional(layer)

  def live_operations(self, model):
    return {op.name: op for op in model.operations}

  def node_refs(self, node, layer_names):
    del layer_names
    refs, kwargs = [], {}
    if not isinstance(node, dict):
      raise ValueError(f"unexpected Keras 3 inbound node {node!r}")
    for i, arg in enumerate(node.get("args", [])):
      found = []
      _tensor_refs(arg, found)
      if found:
        refs.extend(found)
      else:
        kwargs[f"arg{i}"] = arg
    for key, value in (node.get("kwargs") or {}).items():
      found = []
      _tensor_refs(value, found)
      if found:
        refs.extend(found)
      else:
        kwargs[key] = value
    return refs, kwargs

  def output_node_index(self, operation, node_index):
    """Keras 3 numbers a nested Functional's calls from 1 in `output_layers`
    (as if it had a construction node) but from 0 in inbound nodes."""
    return node_index - 1 if self.is_functional(operation) else node_index

  def _node_keys(self, model):
    graph = model if self.is_functional(model) else getattr(
        model, "_functional", None)
    return getattr(graph, "_nodes", None)  # pylint: disable=protected-access

  def _node_key(self, layer, index):
    return f"{id(layer)}_ib-{index}"   # keras.src.ops.function.make_node_key

  def output_shapes(self, layer, node_index):
    try:
      node = layer._inbound_nodes[node_index]  # pylint: disable=protected-access
      return [None if t is None else tuple(t.shape)
              for t in node.output_tensors]
    except Exception:  # pylint: disable=broad-except
      return [None]

  def input_tensor(self, layer, node_index):
    node = layer._inbound_nodes[node_index]  # pylint: disable=protected-access
    tensors = list(node.input_tensors)
    return tensors[0] if len(tensors) == 1 else tensors

  def tf_variable(self, variable):
    """A KerasVariable's tf.Variable: `tape.watch` needs it, not the wrapper."""
    return variable.value

  def add_state_weight(self, layer, name, shape, initializer, aggregation,
                       dtype="float32"):
    """A non-trainable weight; Keras 3 takes the aggregation as a string,
    and `autocast=False` keeps its dtype under mixed precision."""
    return layer.add_weight(name=name, shape=shape, dtype=dtype,
                            initializer=initializer, trainable=False,
                            aggregation=aggregation, autocast=False)

  def rebuild(self, model, config):
    """Builds a new model of `model`'s kind from `config`.

    Only the user's own classes go into the custom-object scope: putting
    built-in classes there would turn an operator such as `x + 0.5` into an
    Add *layer*. Safe mode is off so that the user's Lambda layers
    deserialize (the config comes from the live model).
    """
    from keras.src.saving import serialization_lib  # pylint: disable=g-import-not-at-top
    custom = self.custom_classes(model)
    with self.keras.saving.custom_object_scope(custom):
      with serialization_lib.SafeModeScope(False):
        return type(model).from_config(config)

  def handler_registrations(self):
    from tfprune_survey.graph.handlers import keras3_ops  # pylint: disable=g-import-not-at-top
    return keras3_ops.registrations()
