"""Optimal Brain Damage at channel level (LeCun, Denker and Solla, 1990)."""

import numpy as np
import tensorflow as tf

from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey.criteria import curvature
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.context import STATISTICS
from tfprune_survey.criteria.registry import register_criterion
from tfprune_survey.losses import batch_mean_loss


def scored_slices(ctx, group):
  """[(slice, base, segment)] of the parameters OBD reads for `group`.

  The producers' output slices (kernel and bias) and the per-channel
  parameters that follow them (BN gamma and beta, ChannelScale scale, PReLU
  alpha, ...); not consumers' input slices, nor BN moving statistics.
  """
  return [(sl, base, seg) for sl, base, seg in ctx.graph.group_segments(group)
          if sl.role in ("producer", "param") and sl.weight not in STATISTICS]


@register_criterion("obd")
class OBD(Criterion):
  """Per channel, 1/2 * sum over its parameters of E[g^2] * w^2.

  OBD's saliency of a parameter is 1/2 h_kk w_k^2 with h_kk the diagonal of
  the Hessian; here h_kk is the empirical Fisher E[g_k^2], the mean over
  samples of the squared per-sample gradient of that sample's loss (the
  model's compiled loss, else sparse categorical cross-entropy), taken in
  inference mode. A channel's score sums the saliencies of every parameter
  removed with it: its producer's kernel slice and bias, and the
  per-channel parameters that follow (BN gamma and beta, ChannelScale
  scale, PReLU alpha). Consumers' input slices are not summed. For a
  coupled group (e.g. a residual stream) there is one score vector per
  layer holding such parameters, combined with `reduction` (default 'sum':
  the saliency of all of them).

  Per-sample gradients come from one forward-backward pass of a probe model
  (layer inputs and output gradients) and, per layer, a cheap per-sample
  step (`tfprune_survey/criteria/curvature.py`): patches for Dense, Conv1D
  and Conv2D, `tf.vectorized_map` of the layer's own gradient for the rest.
  On TensorFlow, layers inside nested models or shared layers are not
  supported (NotImplementedError naming the layer). On JAX and PyTorch each
  sample's gradient comes from the backend's autograd, one sample at a time
  (any layer, but slow: for small models and data).
  Memory: per layer read, a batch of per-sample kernel gradients
  (batch x kernel size floats).

  Reference: Y. LeCun, J. S. Denker, S. A. Solla (1990), "Optimal brain
  damage", NeurIPS (here per channel, with the empirical Fisher for the
  Hessian's diagonal).

  Args:
    reduction: 'sum' (default), 'mean' or 'max' across the group's layers.
  """

  name = "obd"
  requires_data = True
  needs_gradients = True

  def __init__(self, reduction="sum"):
    super().__init__(reduction)

  def score(self, ctx):
    plan = {g.id: scored_slices(ctx, g) for g in ctx.groups}
    weights = {}
    for slices in plan.values():
      for sl, _, _ in slices:
        weights.setdefault(sl.path, [])
        if sl.weight not in weights[sl.path]:
          weights[sl.path].append(sl.weight)
    if not weights:
      return {}
    paths = list(weights)
    fw = frameworks.of(ctx.model)
    curvature.check_backend(fw, self.name)
    if fw.backend() != "tensorflow":
      return self._finish(ctx, plan, self._fisher_eager(ctx, fw, weights))
    probe = curvature.Probe(ctx, paths, self.name)
    layers = {p: ctx.graph.layer(p) for p in paths}
    fast = {p: curvature.patchable(layers[p]) and set(weights[p]) <= {
        "kernel", "bias"} for p in paths}
    bn = {p: curvature.is_batch_norm(layers[p]) and set(weights[p]) <= {
        "gamma", "beta"} for p in paths}
    variables = {p: [fw.tf_variable(layers[p].weights[
        fw.find_weight(layers[p], w)[0]]) for w in weights[p]] for p in paths}

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y):
      inputs, deltas = probe.run(x, y)
      out = []
      for p in paths:
        layer = layers[p]
        if bn[p]:
          out += curvature.bn_square_grads(layer, fw, weights[p], inputs[p],
                                           deltas[p])
          continue
        if not fast[p]:
          out += curvature.vmap_square_grads(layer, variables[p], inputs[p],
                                             deltas[p])
          continue
        d = curvature.preactivation_grad(layer, fw, inputs[p], deltas[p])
        for w, v in zip(weights[p], variables[p]):
          if w == "kernel":
            sq = curvature.kernel_square_grads(layer, inputs[p], d)
          else:
            sq = tf.reduce_sum(tf.square(tf.reduce_sum(d, axis=1)), axis=0)
          out.append(tf.reshape(sq, v.shape))
      return out

    sums, samples = curvature.stream(ctx, self.name, step)
    keys = [(p, w) for p in paths for w in weights[p]]
    return self._finish(ctx, plan, {k: v / samples for k, v in zip(keys,
                                                                    sums)})

  def _fisher_eager(self, ctx, fw, weights):
    """{(path, weight): E[g^2]} on JAX or PyTorch, one sample at a time."""
    from tfprune_survey.criteria.collector import backend_grads  # pylint: disable=g-import-not-at-top
    grads_lib = backend_grads(fw.backend())
    loss_fn = batch_mean_loss(ctx.model)
    keys = [(p, w) for p in weights for w in weights[p]]
    variables = []
    for p, w in keys:
      layer = ctx.graph.layer(p)
      variables.append(layer.weights[fw.find_weight(layer, w)[0]])
    grads_of = grads_lib.variable_grads_fn(ctx.model, variables, loss_fn)

    def step(x, y):
      x, y = data_lib.map_inputs(np.asarray, x), np.asarray(y)
      sums = [0.0] * len(variables)
      for i in range(data_lib.batch_size_of(x)):
        grads = grads_of(data_lib.map_inputs(lambda a, i=i: a[i:i + 1], x),
                         y[i:i + 1])
        sums = [s + np.square(np.asarray(g, np.float64))
                for s, g in zip(sums, grads)]
      return sums
    sums, samples = curvature.stream(ctx, self.name, step, eager=True)
    return {k: v / samples for k, v in zip(keys, sums)}

  def _finish(self, ctx, plan, fisher):
    """Per group, the saliencies of its parameters, combined by layer."""
    out = {}
    for g in ctx.groups:
      parts = {}
      for sl, base, seg in plan[g.id]:
        w = ctx.weights(sl.path)[sl.weight].astype(np.float64)
        sal = 0.5 * fisher[(sl.path, sl.weight)] * w * w
        rows = ctx.channel_rows(g, sl, base, seg, sal).sum(axis=1)
        parts[sl.path] = parts.get(sl.path, 0.0) + rows
      if parts:
        out[g.id] = reduce_scores(list(parts.values()), self.reduction)
    return out
