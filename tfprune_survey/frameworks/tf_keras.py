"""The tf_keras (Keras 2) adapter. tf_keras is imported on first use only."""

from tfprune_survey.frameworks.base import Framework
from tfprune_survey.frameworks.base import _is_ref
from tfprune_survey.frameworks.base import kwarg_refs
from tfprune_survey.frameworks.base import leaf_refs


#: tf_keras' marker of a constant among a node's inputs (engine/node.py).
_CONSTANT_VALUE = "_CONSTANT_VALUE"


def _shape_list(shape):
  """One tuple per tensor, from a tf_keras shape or list of shapes."""
  if shape is None:
    return [None]
  if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
    return [tuple(s) for s in shape]
  return [tuple(shape)]


def _node_items(value, out):
  """Appends the [layer, node, tensor(, kwargs)] items of a serialized node.

  A node is one item, a list of items, or (a layer called on a dict, such
  as a nested model with dict inputs) a dict of items, read in sorted key
  order as Keras flattens it.
  """
  leaf_refs(value, out, is_leaf=lambda item: True)


class TfKeras(Framework):
  """tf_keras: list-style inbound nodes, `get_input_at`, TFOpLambda."""

  name = "tf_keras"
  input_shape_key = "batch_input_shape"

  @property
  def keras(self):
    import tf_keras  # pylint: disable=g-import-not-at-top
    return tf_keras

  def is_functional(self, obj):
    from tf_keras.src.engine import functional  # pylint: disable=g-import-not-at-top
    if type(obj) is functional.Functional:  # pylint: disable=unidiomatic-typecheck
      return True
    if not isinstance(obj, self.keras.Model):
      return False
    try:
      cfg = obj.get_config()
    except Exception:  # pylint: disable=broad-except
      return False
    return isinstance(cfg, dict) and "input_layers" in cfg and "layers" in cfg

  def is_submodel(self, layer):
    keras = self.keras
    return isinstance(layer, keras.Model) and (
        isinstance(layer, keras.Sequential) or
        "Functional" in type(layer).__name__ or type(layer) is keras.Model)  # pylint: disable=unidiomatic-typecheck

  def node_refs(self, node, layer_names):
    if isinstance(node, dict) and "args" in node:
      node = node["args"]
    items = []
    _node_items(node, items)
    node = items
    refs, kwargs = [], {}
    for i, item in enumerate(node):
      if item and item[0] == _CONSTANT_VALUE:
        # ['_CONSTANT_VALUE', -1, value, kwargs]: a constant in the call's
        # first argument (`2.0 - x` is tf.math.subtract(2.0, y=x)).
        kwargs[f"arg{i}"] = item[2]
      else:
        refs.append(tuple(item[:3]))
      if len(item) > 3 and isinstance(item[3], dict):
        extra = []
        kwarg_refs(item[3], layer_names, extra)
        refs.extend(extra)
        kwargs.update({k: v for k, v in item[3].items()
                       if not _is_ref(v, layer_names)})
    return refs, kwargs

  def _node_keys(self, model):
    return getattr(model, "_network_nodes", None)  # pylint: disable=protected-access

  def _node_key(self, layer, index):
    return f"{layer.name}_ib-{index}"   # tf_keras functional._make_node_key

  def output_shapes(self, layer, node_index):
    try:
      return _shape_list(layer.get_output_shape_at(node_index))
    except Exception:  # pylint: disable=broad-except
      return [None]

  def input_tensor(self, layer, node_index):
    return layer.get_input_at(node_index)

  def rebuild(self, model, config):
    """Builds a new model of `model`'s kind from `config`.

    Every layer class found in `model` is passed as a custom object (tf_keras
    has no built-in prefix to leave out: `builtin_prefixes` is empty), and
    safe mode is off so that the user's own Lambda layers deserialize (the
    config comes from the user's live model, not from an untrusted file).
    """
    from tf_keras.src.saving import serialization_lib  # pylint: disable=g-import-not-at-top
    with self.keras.utils.custom_object_scope(self.custom_classes(model)):
      with serialization_lib.SafeModeScope(False):
        return type(model).from_config(config)

  def handler_registrations(self):
    from tf_keras.src.layers.core import tf_op_layer  # pylint: disable=g-import-not-at-top
    from tfprune_survey.graph.handlers import tf_ops  # pylint: disable=g-import-not-at-top
    return [(tf_op_layer.TFOpLambda, tf_ops.TFOp())]
