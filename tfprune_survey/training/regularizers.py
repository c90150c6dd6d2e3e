"""Network Slimming's sparsity regularizer on BN scaling factors."""

import copy
import numbers

from tfprune_survey import frameworks
from tfprune_survey.strip import surgery


def sparsify_bn(model, l1=1e-4):
  """A clone whose BatchNormalization gammas carry an L1 penalty.

  Training the clone pushes unimportant channels' gamma towards 0; pruning
  it with the `slimming` criterion (|gamma|) is then Network Slimming's
  recipe. The regularizer is the model's own Keras' L1, so the model saves
  and loads with no custom objects. The model passed in is not modified.
  Works with tf_keras and with Keras 3 on any backend (the penalty is an
  ordinary regularization loss).

  Reference: Z. Liu et al. (2017), "Learning efficient convolutional networks
  through network slimming", ICCV.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3.
    l1: the penalty weight (the paper's lambda), >= 0. Defaults to 1e-4.

  Returns:
    The regularized clone (same Keras), weights copied.

  Raises:
    ValueError: for a negative `l1`, or a model without BatchNormalization
      (or whose BNs all have `scale=False`: no gamma).
  """
  keras = frameworks.check_model(model, "model").keras
  if isinstance(l1, bool) or not isinstance(l1, numbers.Real) or l1 < 0:
    raise ValueError(f"`l1` must be a number >= 0, got {l1!r}")
  config = copy.deepcopy(model.get_config())
  reg = keras.regularizers.serialize(keras.regularizers.L1(float(l1)))
  count = [0]

  def visit(node):
    if isinstance(node, dict):
      # A BN made with scale=False has no gamma to regularize.
      if node.get("class_name") == "BatchNormalization" and isinstance(
          node.get("config"), dict) and node["config"].get("scale", True):
        node["config"]["gamma_regularizer"] = copy.deepcopy(reg)
        count[0] += 1
      for v in node.values():
        visit(v)
    elif isinstance(node, list):
      for v in node:
        visit(v)

  visit(config)
  if not count[0]:
    raise ValueError(f"model {model.name!r} has no BatchNormalization layer "
                     "with a gamma to regularize (BatchNormalization("
                     "scale=False) has none)")
  clone = surgery.rebuild(model, config)
  for _, a, b in surgery.layer_pairs(model, clone):
    b.set_weights(a.get_weights())
  return clone
