"""First-order Taylor importance of a filter's parameters (Molchanov et al., 2019)."""

import numpy as np
import tensorflow as tf

from tfprune_survey import frameworks
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.registry import register_criterion
from tfprune_survey.data import batches_with_progress
from tfprune_survey.data import map_inputs
from tfprune_survey.data import to_tensors
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
  needs_gradients = True

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

  # Streaming form: the wrapper of each layer in `_terms` accumulates, per
  # batch, (sum over its output of dL/dY * Y)^2 (`fo_sq`) and a batch count
  # (`fo_n`), which equals (sum of g * w)^2 over the parameters it holds.
  stream_site = "outputs"

  def stream_layers(self, ctx):
    widths = {c.path: c.output_shapes[0][-1] for c in ctx.graph.calls}
    return {path: int(widths[path]) for g in ctx.groups
            for path, _, _, _ in self._terms(g, ctx)}

  def stream_scores(self, ctx, stats_of):
    out = {}
    for g in ctx.groups:
      parts = {}
      for path, _, _, base in self._terms(g, ctx):
        stats = stats_of(path)
        if stats is None or path in parts:
          continue
        parts[path] = (stats["fo_sq"][base:base + g.size].astype(np.float64)
                       / max(float(stats["fo_n"]), 1.0))
      if parts:
        out[g.id] = reduce_scores(list(parts.values()), self.reduction)
    return out

  def score(self, ctx):
    model = ctx.model
    fw = frameworks.of(model)
    plan = {g.id: self._terms(g, ctx) for g in ctx.groups}
    var_index = {}
    variables = []
    for terms in plan.values():
      for path, weight, _, _ in terms:
        if (path, weight) not in var_index:
          layer = ctx.graph.layer(path)
          var = layer.weights[fw.find_weight(layer, weight)[0]]
          var_index[(path, weight)] = len(variables)
          variables.append(var)
    if not variables:
      return {}
    loss_fn = batch_mean_loss(model)
    groups = [g for g in ctx.groups if plan[g.id]]
    layers = {g.id: list(dict.fromkeys(t[0] for t in plan[g.id]))
              for g in groups}

    if fw.backend() != "tensorflow":
      return self._score_eager(ctx, fw, plan, groups, layers, variables,
                               var_index, loss_fn)
    tf_vars = [fw.tf_variable(v) for v in variables]

    def per_channel(gw, axis, base, size):
      rows = tf.reshape(tf.experimental.numpy.moveaxis(gw, axis, 0),
                        [tf.shape(gw)[axis], -1])
      return tf.reduce_sum(rows[base:base + size], axis=1)

    @tf.function(reduce_retracing=True)
    def step(x, y):
      """Per group: (layers, size) of (sum of g*w over each filter)^2."""
      with tf.GradientTape() as tape:
        tape.watch(tf_vars)
        pred = model(x, training=False)
        if isinstance(pred, (list, tuple)):
          pred = pred[0]
        loss = loss_fn(y, pred)
      grads = tape.gradient(loss, tf_vars)
      gw = [tf.zeros_like(v) if g is None else g * v
            for g, v in zip(grads, tf_vars)]
      out = []
      for g in groups:
        sums = [tf.zeros([g.size]) for _ in layers[g.id]]
        for path, weight, axis, base in plan[g.id]:
          i = layers[g.id].index(path)
          sums[i] += per_channel(gw[var_index[(path, weight)]], axis, base,
                                 g.size)
        out.append(tf.square(tf.stack(sums)))
      return out

    def run(x, y):
      return [v.numpy() for v in step(to_tensors(x),
                                      tf.convert_to_tensor(y))]
    return self._average(ctx, fw, groups, layers, run)

  def _average(self, ctx, fw, groups, layers, run):
    """Averages `run(x, y) -> [per group (layers, size)]` over batches."""
    sums = [np.zeros((len(layers[g.id]), g.size)) for g in groups]
    batches = 0
    for x, y in batches_with_progress(ctx.data, ctx.steps, ctx.verbose,
                                      fw.keras):
      if y is None:
        raise ValueError("criterion 'taylor_fo' needs labels: pass data as "
                         "(x, y)")
      for acc, value in zip(sums, run(x, y)):
        acc += value
      batches += 1
    out = {}
    for g, acc in zip(groups, sums):
      out[g.id] = reduce_scores(list(acc / batches), self.reduction)
    return out

  def _score_eager(self, ctx, fw, plan, groups, layers, variables, var_index,
                   loss_fn):
    """The same sums on JAX or PyTorch (gradients from their autograd)."""
    from tfprune_survey.criteria.collector import backend_grads  # pylint: disable=g-import-not-at-top
    if fw.backend() not in ("jax", "torch"):
      raise NotImplementedError(
          f"criterion 'taylor_fo' needs gradients, computed on the "
          f"TensorFlow, JAX and PyTorch backends, not on '{fw.backend()}'.")
    grads_lib = backend_grads(fw.backend())

    def per_channel(gw, axis, base, size):
      rows = np.moveaxis(gw, axis, 0).reshape(gw.shape[axis], -1)
      return rows[base:base + size].sum(axis=1)

    values = [np.asarray(v.numpy(), np.float64) for v in variables]
    grads_of = grads_lib.variable_grads_fn(ctx.model, variables, loss_fn)

    def run(x, y):
      grads = grads_of(map_inputs(np.asarray, x), np.asarray(y))
      gw = [np.asarray(g, np.float64) * v for g, v in zip(grads, values)]
      out = []
      for g in groups:
        sums = np.zeros((len(layers[g.id]), g.size))
        for path, weight, axis, base in plan[g.id]:
          i = layers[g.id].index(path)
          sums[i] += per_channel(gw[var_index[(path, weight)]], axis, base,
                                 g.size)
        out.append(np.square(sums))
      return out
    return self._average(ctx, fw, groups, layers, run)
