"""First-order Taylor importance of a filter's parameters (Molchanov et al., 2019)."""

import numpy as np
import tensorflow as tf

from tfprune_survey._compat import keras
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.registry import register_criterion
from tfprune_survey.data import iterate_batches
from tfprune_survey.losses import batch_mean_loss


@register_criterion("taylor_fo")
class TaylorFO(Criterion):
  """Per channel, (sum over its parameters of g * w)^2, averaged over batches.

  Measured on the BatchNormalization after the producer (its gamma and
  beta), as the paper does; for a group without BN, on the producer's own
  filter (kernel slice and bias). g is the gradient of the batch's mean loss
  (the model's compiled loss, else sparse categorical cross-entropy), and
  the squared values are averaged over batches.

  Reference: P. Molchanov, A. Mallya, S. Tyree, I. Frosio, J. Kautz (2019),
  "Importance estimation for neural network pruning", CVPR.

  Args:
    reduction: 'mean' (default), 'sum' or 'max' across coupled layers.
  """

  name = "taylor_fo"
  requires_data = True
  needs_labels = True

  def _terms(self, group, ctx):
    """[(layer path, weight name, axis, offset)] of the parameters read."""
    terms = []
    bn_paths = {p for p, _ in ctx.param_vectors(group, "gamma",
                                                "BatchNormalization")}
    bn_paths |= {p for p, _ in ctx.param_vectors(group, "beta",
                                                 "BatchNormalization")}
    if bn_paths:
      for sl, base, seg in ctx.graph.group_segments(group):
        if sl.path in bn_paths and sl.weight in ("gamma", "beta") and (
            seg.repeat == 1):
          terms.append((sl.path, sl.weight, sl.axis, base))
      return terms
    for sl, base, seg in ctx.graph.group_segments(group):
      if sl.role == "producer":
        terms.append((sl.path, sl.weight, sl.axis, base))
    return terms

  def score(self, ctx):
    model = ctx.model
    plan = {g.id: self._terms(g, ctx) for g in ctx.groups}
    var_index = {}
    variables = []
    for terms in plan.values():
      for path, weight, _, _ in terms:
        if (path, weight) not in var_index:
          layer = ctx.graph.layer(path)
          var = [w for w in layer.weights
                 if w.name.split("/")[-1].split(":")[0] == weight][0]
          var_index[(path, weight)] = len(variables)
          variables.append(var)
    if not variables:
      return {}
    loss_fn = batch_mean_loss(model)
    groups = [g for g in ctx.groups if plan[g.id]]
    layers = {g.id: list(dict.fromkeys(t[0] for t in plan[g.id]))
              for g in groups}

    def per_channel(gw, axis, base, size):
      rows = tf.reshape(tf.experimental.numpy.moveaxis(gw, axis, 0),
                        [tf.shape(gw)[axis], -1])
      return tf.reduce_sum(rows[base:base + size], axis=1)

    @tf.function(reduce_retracing=True)
    def step(x, y):
      """Per group: (layers, size) of (sum of g*w over each filter)^2."""
      with tf.GradientTape() as tape:
        tape.watch(variables)
        loss = loss_fn(y, model(x, training=False))
      grads = tape.gradient(loss, variables)
      gw = [tf.zeros_like(v) if g is None else g * v
            for g, v in zip(grads, variables)]
      out = []
      for g in groups:
        sums = [tf.zeros([g.size]) for _ in layers[g.id]]
        for path, weight, axis, base in plan[g.id]:
          i = layers[g.id].index(path)
          sums[i] += per_channel(gw[var_index[(path, weight)]], axis, base,
                                 g.size)
        out.append(tf.square(tf.stack(sums)))
      return out

    sums = [np.zeros((len(layers[g.id]), g.size)) for g in groups]
    batches = 0
    bar = keras.utils.Progbar(ctx.steps, unit_name="batch") if (
        ctx.verbose) else None
    for x, y in iterate_batches(ctx.data, ctx.steps):
      if bar is not None:
        bar.add(1)
      if y is None:
        raise ValueError("criterion 'taylor_fo' needs labels: pass data as "
                         "(x, y)")
      for acc, value in zip(sums, step(tf.convert_to_tensor(x),
                                       tf.convert_to_tensor(y))):
        acc += value.numpy()
      batches += 1
    out = {}
    for g, acc in zip(groups, sums):
      out[g.id] = reduce_scores(list(acc / batches), self.reduction)
    return out
