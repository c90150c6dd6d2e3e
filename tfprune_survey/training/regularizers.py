"""Network Slimming's sparsity regularizer on BN scaling factors."""

import copy
import numbers

from tfprune_survey import frameworks
from tfprune_survey.graph import walker
from tfprune_survey.strip import surgery


def sparsify_bn(model, l1=1e-4):
  """A clone whose BatchNormalization gammas carry an L1 penalty.

  A gamma regularizer the model has already (Keras' L1, L2 or L1L2) is
  kept and the L1 penalty added to it.

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
    ValueError: for a negative `l1`, a model without BatchNormalization
      (or whose BNs all have `scale=False`: no gamma), or a BN whose gamma
      has a regularizer other than Keras' L1, L2 or L1L2 (named).
  """
  keras = frameworks.check_model(model, "model").keras
  if isinstance(l1, bool) or not isinstance(l1, numbers.Real) or l1 < 0:
    raise ValueError(f"`l1` must be a number >= 0, got {l1!r}")
  config = copy.deepcopy(walker.model_config(model))
  count = [0]

  def visit(node):
    if isinstance(node, dict):
      # A BN made with scale=False has no gamma to regularize.
      if node.get("class_name") == "BatchNormalization" and isinstance(
          node.get("config"), dict) and node["config"].get("scale", True):
        conf = node["config"]
        conf["gamma_regularizer"] = _with_l1(
            keras, conf.get("gamma_regularizer"), float(l1), conf.get("name"))
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


def _with_l1(keras, existing, l1, layer_name):
  """The serialized gamma regularizer: Keras' L1(l1), plus the L1, L2 or
  L1L2 penalty the layer already has (kept, not replaced)."""
  regs = keras.regularizers
  if existing is None:
    return regs.serialize(regs.L1(l1))
  try:
    old = regs.deserialize(copy.deepcopy(existing))
  except (TypeError, ValueError):
    old = None
  if type(old) not in (regs.L1, regs.L2, regs.L1L2):  # pylint: disable=unidiomatic-typecheck
    kind = (existing.get("class_name") if isinstance(existing, dict)
            else existing)
    raise ValueError(
        f"BatchNormalization layer {layer_name!r} already has a "
        f"gamma_regularizer ({kind!r}): sparsify_bn adds its L1 penalty to "
        "none, or to Keras' L1, L2 or L1L2 only")
  conf = old.get_config()
  total_l1 = float(conf.get("l1", 0.0)) + l1
  l2 = float(conf.get("l2", 0.0))
  reg = regs.L1L2(l1=total_l1, l2=l2) if l2 else regs.L1(total_l1)
  return regs.serialize(reg)
