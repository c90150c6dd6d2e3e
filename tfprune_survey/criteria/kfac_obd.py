"""Kronecker-factored OBD per channel, C-OBD (Wang et al., 2019)."""

import numpy as np
import tensorflow as tf

from tfprune_survey.criteria import curvature
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("kfac_obd")
class KFACOBD(Criterion):
  """Per channel c of a producer, 1/2 * (w_c^T A w_c) * S_cc.

  The Fisher block of a producer layer is approximated as A (x) S (K-FAC,
  Martens and Grosse 2015; KFC for convolutions, Grosse and Martens 2016),
  and OBD's saliency of removing output channel c, 1/2 w_c^T F_cc w_c, is
  then 1/2 (w_c^T A w_c) S_cc. Here, over N samples and the T output
  positions of the layer (T = 1 for a Dense on a vector):

  - A = (1/N) sum_n sum_t a_nt a_nt^T, the second moment of the layer's
    input patches a_nt (im2col for Conv1D/Conv2D, the input vector for
    Dense), with a 1 appended when the layer has a bias;
  - S_cc = (1/(N T)) sum_n sum_t ds_ntc^2, the second moment of the
    gradient of sample n's own loss at the layer's pre-activation output;
  - w_c: channel c's filter, its kernel column with its bias appended.

  These are KFC's Omega (summed over positions) and Gamma (averaged over
  positions, under its spatially uncorrelated derivatives assumption); the
  product matches the EigenDamage code's scaling. The loss is the model's
  compiled loss, else sparse categorical cross-entropy, in inference mode.

  Departures from the paper: BatchNormalization (and other per-channel)
  parameters after the producer are not part of the Kronecker block and are
  not scored; a coupled group (e.g. a residual stream) gets one vector per
  producer, combined with `reduction` (default 'sum'). Producers other than
  Dense, Conv1D and Conv2D (channels last, groups=1) are skipped; a group
  with none of these keeps all its channels, and a model with none in any
  prunable group is a ValueError (it would prune nothing). Layers in
  nested models and shared layers are not supported. On JAX and PyTorch
  the factors are built in numpy from the backend's autograd (a fused
  activation's derivative too).

  Memory: A is (fan_in + 1)^2 floats per producer layer, fan_in =
  kernel taps x input channels (e.g. 577^2 = 333k for a 3x3 conv on 64
  channels; 4609^2 = 21M, 85 MB, for 3x3 on 512), held twice (float32 on
  the device, float64 in numpy), plus one batch of patches (batch x T x
  fan_in). Computing A costs about fan_in / out_channels times the layer's
  forward matmul.

  Reference: C. Wang, G. Zhang, S. Wang, R. Grosse (2019), "EigenDamage:
  Structured pruning in the Kronecker-factored eigenbasis", ICML (its
  C-OBD baseline).

  Args:
    reduction: 'sum' (default), 'mean' or 'max' across coupled producers.
  """

  name = "kfac_obd"
  requires_data = True
  needs_gradients = True
  reads = ("the kernels of Dense, Conv1D or Conv2D producers (channels "
           "last, groups=1)")
  reads_hint = ("; 'obd', 'taylor' and the weight criteria ('l1', 'l2', "
                "'fpgm') read other producers")

  def __init__(self, reduction="sum"):
    super().__init__(reduction)

  def _producers(self, ctx):
    """{group id: [(path, base)]} of the producers this criterion scores."""
    plan = {}
    for g in ctx.groups:
      found = []
      for sl, base, _ in ctx.graph.group_segments(g):
        if (sl.role == "producer" and sl.weight == "kernel" and
            curvature.patchable(ctx.graph.layer(sl.path))):
          found.append((sl.path, base))
      if found:
        plan[g.id] = found
    return plan

  def score(self, ctx):
    plan = self._producers(ctx)
    paths = list(dict.fromkeys(p for found in plan.values() for p, _ in found))
    self.check_scored(ctx, plan)   # before any data is read
    probe = curvature.Probe(ctx, paths, self.name)
    fw = probe.fw
    layers = {p: ctx.graph.layer(p) for p in paths}
    biased = {p: fw.find_weight(layers[p], "bias") is not None for p in paths}
    if fw.backend() != "tensorflow":
      sums, samples = self._factors_eager(ctx, probe, paths, layers, biased)
      return self._finish(ctx, plan, paths, biased, sums, samples)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y):
      inputs, deltas = probe.run(x, y)
      out = []
      for p in paths:
        layer = layers[p]
        pt = curvature.patches(layer, inputs[p])
        d = curvature.preactivation_grad(layer, fw, inputs[p], deltas[p])
        a = pt
        if biased[p]:
          a = tf.concat([pt, tf.ones_like(pt[..., :1])], axis=-1)
        out.append(tf.einsum("ntf,ntg->fg", a, a))
        out.append(tf.reduce_sum(tf.square(d), axis=(0, 1)))
        out.append(tf.cast(tf.shape(d)[0] * tf.shape(d)[1], tf.float32))
      return out

    sums, samples = curvature.stream(ctx, self.name, step)
    return self._finish(ctx, plan, paths, biased, sums, samples)

  def _factors_eager(self, ctx, probe, paths, layers, biased):
    """The sums of `score`'s step on JAX or PyTorch, in numpy."""
    fw = probe.fw

    def step(x, y):
      inputs, deltas = probe.run_eager(x, y)
      out = []
      for p in paths:
        pt = curvature.patches(layers[p], inputs[p]).numpy().astype(
            np.float64)
        d = curvature.preactivation_grad_eager(layers[p], fw, inputs[p],
                                               deltas[p]).astype(np.float64)
        a = pt
        if biased[p]:
          a = np.concatenate([pt, np.ones_like(pt[..., :1])], axis=-1)
        out += [np.einsum("ntf,ntg->fg", a, a), np.square(d).sum(axis=(0, 1)),
                float(d.shape[0] * d.shape[1])]
      return out
    return curvature.stream(ctx, self.name, step, eager=True)

  def _finish(self, ctx, plan, paths, biased, sums, samples):
    """Scores per group from the summed factors of each producer."""
    factors = {}
    for i, p in enumerate(paths):
      gram, sq, count = sums[3 * i:3 * i + 3]
      # A: mean over samples of the sum over positions; S: mean over both.
      factors[p] = (gram / samples, sq / max(float(count), 1.0))
    out = {}
    for g in ctx.groups:
      if g.id not in plan:
        continue
      parts = {}
      for path, base in plan[g.id]:
        gram, s_diag = factors[path]
        w = ctx.weights(path)
        kernel = w["kernel"].astype(np.float64)
        cols = kernel.reshape(-1, kernel.shape[-1])
        if biased[path]:
          cols = np.concatenate([cols, w["bias"][None].astype(np.float64)])
        cols = cols[:, base:base + g.size]
        quad = np.einsum("fc,fg,gc->c", cols, gram, cols)
        parts[path] = 0.5 * quad * s_diag[base:base + g.size]
      out[g.id] = reduce_scores(list(parts.values()), self.reduction)
    return out
