"""What every framework adapter offers: the surface above Keras."""

from tfprune_survey.errors import UnsupportedModelError


def _is_ref(value, names):
  return (isinstance(value, (list, tuple)) and len(value) == 3 and
          isinstance(value[0], str) and value[0] in names and
          isinstance(value[1], int) and isinstance(value[2], int))


def kwarg_refs(value, names, out):
  """Appends every (layer, node, tensor) reference nested in `value`."""
  if _is_ref(value, names):
    out.append(tuple(value))
  elif isinstance(value, dict):
    for v in value.values():
      kwarg_refs(v, names, out)
  elif isinstance(value, (list, tuple)):
    for v in value:
      kwarg_refs(v, names, out)


def _is_triple(value):
  return len(value) == 3


def leaf_refs(value, out, is_leaf=_is_triple):
  """Appends each [layer, node, tensor, ...] leaf of a nested spec to `out`.

  A leaf is a list or tuple that starts with a layer name and passes
  `is_leaf` (default: exactly [layer, node, tensor], as in input/output
  specs); lists and dicts around leaves are walked, dicts in sorted key
  order as Keras flattens them.
  """
  if (isinstance(value, (list, tuple)) and value and
      isinstance(value[0], str) and is_leaf(value)):
    out.append(value)
  elif isinstance(value, dict):
    for key in sorted(value):
      leaf_refs(value[key], out, is_leaf)
  elif isinstance(value, (list, tuple)):
    for v in value:
      leaf_refs(v, out, is_leaf)


class Framework:
  """One Keras (tf_keras or Keras 3) seen through a common surface.

  Attributes:
    name: 'tf_keras' or 'keras3'.
    input_shape_key: the InputLayer config key of the batch shape.
    weight_aliases: {canonical weight name: other names it may have}.
  """

  name = None
  input_shape_key = "batch_input_shape"
  weight_aliases = {}
  #: node-index offset of a nested model's calls; None: read from the config.
  submodel_node_offset = None

  # ---- the module --------------------------------------------------------
  @property
  def keras(self):
    raise NotImplementedError

  @property
  def layers(self):
    return self.keras.layers

  def backend(self):
    return "tensorflow"

  # ---- models ------------------------------------------------------------
  def is_model(self, obj):
    return isinstance(obj, self.keras.Model)

  def is_layer(self, obj):
    return isinstance(obj, self.keras.layers.Layer)

  def is_sequential(self, obj):
    return isinstance(obj, self.keras.Sequential)

  def is_functional(self, obj):
    raise NotImplementedError

  def is_submodel(self, layer):
    return self.is_model(layer) and (self.is_sequential(layer) or
                                     self.is_functional(layer))

  def check_model(self, obj, arg_name="model"):
    """Raises unless `obj` is an analysable Sequential/Functional model."""
    pretty = "tf_keras" if self.name == "tf_keras" else "Keras 3"
    lib = "tf_keras" if self.name == "tf_keras" else "keras"
    if not self.is_model(obj):
      raise TypeError(
          f"`{arg_name}` must be a {pretty} Sequential or Functional model, "
          f"got {type(obj).__name__}.")
    if self.is_sequential(obj):
      if not obj.built or not self.model_inputs(obj):
        raise UnsupportedModelError(
            f"`{arg_name}` is a Sequential model '{obj.name}' that has not "
            "been built with a known input shape. Start it with "
            f"`{lib}.Input(shape)` so that its graph can be analysed.")
      return obj
    if not self.is_functional(obj):
      raise UnsupportedModelError(
          f"`{arg_name}` is a subclassed model of class "
          f"{type(obj).__name__}: its layers are connected in Python code "
          "(`call`), so its channel graph cannot be read. Rebuild it with the "
          f"Functional API (`{lib}.Model(inputs, outputs)`) or Sequential.")
    return obj

  def model_inputs(self, model):
    try:
      return list(model.inputs or [])
    except (AttributeError, ValueError):
      return []

  def live_operations(self, model):
    """{name: layer or operation} of a Functional model's config entries."""
    return {layer.name: layer for layer in model.layers}

  # ---- config ------------------------------------------------------------
  def node_refs(self, node, layer_names):
    """(refs, kwargs) of one serialized inbound node.

    refs: the (layer, node index, tensor index) of every tensor input, in
    call order; kwargs: the non-tensor call arguments (constants included).
    """
    raise NotImplementedError

  def output_refs(self, config):
    """The [layer, node, tensor] of every model output, flattened.

    `output_layers` may be one reference, a list, or a dict (a model built
    with dict outputs), nested; dict entries come in sorted key order, as
    Keras flattens them. The returned lists are the config's own, so
    editing one edits the config.
    """
    out = []
    leaf_refs(config["output_layers"], out)
    return out

  def input_refs(self, config):
    return self.output_refs({"output_layers": config["input_layers"]})

  def output_node_index(self, operation, node_index):
    """The inbound-node numbering of a node index read in `output_layers`.

    tf_keras numbers a node the same way in both places.
    """
    del operation
    return node_index

  # ---- per-call tensors and shapes --------------------------------------
  def call_node_index(self, model, layer, index):
    """The index in `layer`'s own nodes of its `index`-th call in `model`.

    A model's config lists only the calls that belong to it, so a layer
    also called in another model (built first) has other nodes before
    these; shapes and tensors must be read from this model's.
    """
    keys = self._node_keys(model)
    if keys is None:
      return index
    nodes = getattr(layer, "_inbound_nodes", None) or []
    own = [i for i in range(len(nodes)) if self._node_key(layer, i) in keys]
    return own[index] if index < len(own) else index

  def _node_keys(self, model):
    """The keys of the nodes that belong to `model`, or None if unknown."""
    del model
    return None

  def _node_key(self, layer, index):
    raise NotImplementedError

  def output_shapes(self, layer, node_index):
    raise NotImplementedError

  def input_tensor(self, layer, node_index):
    raise NotImplementedError

  # ---- weights -------------------------------------------------------------
  @staticmethod
  def short_name(weight):
    return weight.name.split("/")[-1].split(":")[0]

  def find_weight(self, layer, name):
    """(index, actual short name) of `layer`'s weight `name`, or None.

    `name` is the canonical (tf_keras) name; aliases of this framework
    (e.g. Keras 3's DepthwiseConv2D `kernel`) are tried after it.
    """
    names = [self.short_name(w) for w in layer.weights]
    for candidate in (name,) + tuple(self.weight_aliases.get(name, ())):
      if candidate in names:
        return names.index(candidate), candidate
    return None

  def tf_variable(self, variable):
    """The tf.Variable behind a weight (TensorFlow backend), for tapes."""
    return variable

  def add_state_weight(self, layer, name, shape, initializer, aggregation,
                       dtype="float32"):
    """A non-trainable weight of `layer` (a mask, a step, a statistic).

    Args:
      aggregation: how replicas combine it, as a string ('mean',
        'only_first_replica', 'sum', 'none').
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return layer.add_weight(
        name=name, shape=shape, dtype=dtype, initializer=initializer,
        trainable=False,
        aggregation=getattr(tf.VariableAggregation, aggregation.upper()))

  # ---- rebuilding --------------------------------------------------------
  def rebuild(self, model, config):
    raise NotImplementedError

  def custom_classes(self, model):
    """{class name: class} of every non-built-in layer class in `model`."""
    out = {}
    _collect(model, out)
    return {k: v for k, v in out.items()
            if not (v.__module__ or "").startswith(self.builtin_prefixes)}

  builtin_prefixes = ()

  def handler_registrations(self):
    """[(class, LayerHandler)] specific to this framework (ops, TF ops)."""
    return []

  def __repr__(self):
    return f"<framework {self.name}>"


def _collect(layer, out):
  out.setdefault(type(layer).__name__, type(layer))
  for sub in getattr(layer, "layers", None) or []:
    _collect(sub, out)
