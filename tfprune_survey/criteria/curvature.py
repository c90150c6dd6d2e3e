"""Per-sample layer statistics for the second-order criteria (obd, kfac_obd).

One forward-backward pass of a probe model (TensorFlow backend, either
Keras) gives, for each layer read, its input X and the gradient D of the
summed per-sample losses at its output. In inference mode sample n's loss
depends only on sample n, so D[n] is that sample's own output gradient, and
each sample's parameter gradient follows from (X[n], D[n]) alone:

- Dense, Conv1D and Conv2D (channels last, groups=1): the layer is a matmul
  of input patches P (N, T, fan_in) (im2col for convs, T output positions)
  with the kernel matrix, so sample n's kernel gradient is
  P[n]^T D_pre[n] and its bias gradient the sum of D_pre[n] over positions,
  D_pre being the gradient before the layer's activation (through the
  activation's own vector-Jacobian product when it is not linear). This is
  BackPACK's per-sample trick (Dangel, Kunstner, Hennig 2020).
- BatchNormalization (inference mode): sums over positions of D[n] times
  the normalised input (gamma) and of D[n] (beta).
- Any other layer (ChannelScale, PReLU, transposed or separable convs):
  `tf.vectorized_map` over samples of the layer's own vector-Jacobian
  product for (X[n], D[n]).

On the JAX and PyTorch backends (Keras 3), `obd` takes each sample's
gradient from the backend's autograd, one sample at a time (slow, but any
layer), and `kfac_obd` reads X and D through the backend's autograd and
builds its factors in numpy (a fused activation's vector-Jacobian product
from the backend's autograd too).
"""

import numpy as np
import tensorflow as tf

from tfprune_survey import frameworks
from tfprune_survey.data import batch_size_of
from tfprune_survey.data import batches_with_progress
from tfprune_survey.data import to_tensors
from tfprune_survey.losses import per_sample_loss

PATCHED = ("Dense", "Conv1D", "Conv2D")


def check_backend(fw, name):
  if fw.backend() not in ("tensorflow", "jax", "torch"):
    raise NotImplementedError(
        f"criterion '{name}' needs gradients, computed on the TensorFlow, JAX"
        f" and PyTorch backends, not on '{fw.backend()}'")


def layer_call(ctx, path, name):
  """The one top-level call of layer `path`.

  Raises:
    NotImplementedError: for a layer inside a nested model or called more
      than once (a shared layer), naming it.
  """
  calls = [c for c in ctx.graph.calls if c.path == path]
  if len(calls) != 1 or len(calls[0].names) != 1:
    raise NotImplementedError(
        f"criterion '{name}' reads per-sample gradients of layer '{path}', "
        "which is shared or inside a nested model; only layers of the top "
        "model called once are supported ('taylor_fo' has no such limit)")
  return calls[0]


def patchable(layer):
  """True when `layer`'s output is patches @ kernel matrix (+ bias)."""
  kind = type(layer).__name__
  if kind not in PATCHED:
    return False
  config = layer.get_config()
  if kind == "Dense":
    return True
  return (config.get("data_format", "channels_last") == "channels_last" and
          (config.get("groups", 1) or 1) == 1)


def _pair(value, rank):
  value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
  return value * rank if len(value) == 1 else value


def _window(size, kernel, stride, rate, padding):
  """(output size, padding before, after) of one spatial axis, as Keras pads.

  'SAME' pads as TF does; 'CAUSAL' pads (kernel - 1) * rate zeros before
  and none after, whatever the stride, as Keras' Conv1D does.
  """
  span = (kernel - 1) * rate + 1
  if padding == "VALID":
    return -(-(size - span + 1) // stride), 0, 0
  out = -(-size // stride)
  if padding == "CAUSAL":
    return out, span - 1, 0
  total = max((out - 1) * stride + span - size, 0)
  return out, total // 2, total - total // 2


def taps(layer, x):
  """[(N, T, in_channels)] of a `patchable` layer: one per kernel tap.

  Tap k (row-major over the kernel's spatial axes) holds, at each of the T
  output positions (row-major), the input the kernel's tap k reads, so
  the pre-activation output is sum_k taps[k] @ kernel[k] (+ bias). A Dense
  has one tap. None when a conv's spatial size is not static.
  """
  x = tf.cast(x, tf.float32)
  kind = type(layer).__name__
  if kind == "Dense":
    return [tf.reshape(x, [tf.shape(x)[0], -1, x.shape[-1]])]
  config = layer.get_config()
  rank = 1 if kind == "Conv1D" else 2
  if rank == 1:
    x = x[:, None]
  sizes = list(x.shape[1:3])
  if any(v is None for v in sizes):
    return None
  kernel = (1,) * (2 - rank) + _pair(config["kernel_size"], rank)
  strides = (1,) * (2 - rank) + _pair(config["strides"], rank)
  rates = (1,) * (2 - rank) + _pair(config.get("dilation_rate", 1), rank)
  padding = config["padding"].upper()
  geo = [_window(sizes[a], kernel[a], strides[a], rates[a],
                 "VALID" if (a == 0 and rank == 1) else padding)
         for a in range(2)]
  x = tf.pad(x, [[0, 0], [geo[0][1], geo[0][2]], [geo[1][1], geo[1][2]],
                 [0, 0]])
  n, channels = tf.shape(x)[0], x.shape[-1]
  out = []
  for i in range(kernel[0]):
    for j in range(kernel[1]):
      a, b = i * rates[0], j * rates[1]
      t = x[:, a:a + (geo[0][0] - 1) * strides[0] + 1:strides[0],
            b:b + (geo[1][0] - 1) * strides[1] + 1:strides[1], :]
      out.append(tf.reshape(t, [n, -1, channels]))
  return out


def patches(layer, x):
  """(N, T, fan_in) input patches of a `patchable` layer (im2col).

  The last axis follows the kernel's (taps..., in_channels) order, so the
  layer's pre-activation output is patches @ kernel.reshape(fan_in, -1)
  (+ bias), at T output positions in row-major order.
  """
  parts = taps(layer, x)
  if parts is not None:
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
  x = tf.cast(x, tf.float32)
  n = tf.shape(x)[0]
  config = layer.get_config()
  rank = 1 if type(layer).__name__ == "Conv1D" else 2
  size = _pair(config["kernel_size"], rank)
  strides = _pair(config["strides"], rank)
  rates = _pair(config.get("dilation_rate", 1), rank)
  padding = config["padding"].upper()
  if rank == 1:
    if padding == "CAUSAL":
      x = tf.pad(x, [[0, 0], [rates[0] * (size[0] - 1), 0], [0, 0]])
      padding = "VALID"
    x = x[:, None]
    size, strides, rates = (1,) + size, (1,) + strides, (1,) + rates
  p = tf.image.extract_patches(
      x, sizes=[1, *size, 1], strides=[1, *strides, 1],
      rates=[1, *rates, 1], padding=padding)
  return tf.reshape(p, [n, -1, p.shape[-1]])


def kernel_square_grads(layer, x, d):
  """Sum over samples of the squared per-sample kernel gradient, (fan_in, C).

  Sample n's gradient of tap k is taps[k][n]^T d[n], one batched matmul
  per tap (no im2col copy of the input).
  """
  parts = taps(layer, x)
  if parts is None:
    parts = [patches(layer, x)]
  g = tf.concat([tf.linalg.matmul(t, d, transpose_a=True) for t in parts],
                axis=1)
  return tf.reduce_sum(tf.square(g), axis=0)


def kernel_matrix(layer, fw):
  """(kernel (fan_in, C) tf tensor, bias (C,) or None) of a patchable layer."""
  kernel = fw.tf_variable(layer.weights[fw.find_weight(layer, "kernel")[0]])
  found = fw.find_weight(layer, "bias")
  bias = fw.tf_variable(layer.weights[found[0]]) if found else None
  return tf.reshape(kernel, [-1, kernel.shape[-1]]), bias


def preactivation_grad(layer, fw, x, d):
  """(N, T, C): the output gradient `d` taken back through the activation.

  `x` is the layer's input; the pre-activation output is rebuilt from its
  patches only when the activation is not linear.
  """
  d = tf.reshape(tf.cast(d, tf.float32), [tf.shape(d)[0], -1, d.shape[-1]])
  if linear_activation(layer):
    return d
  kernel, bias = kernel_matrix(layer, fw)
  z = tf.einsum("ntf,fc->ntc", patches(layer, x), tf.cast(kernel, tf.float32))
  if bias is not None:
    z += tf.cast(bias, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(z)
    a = layer.activation(z)
  return tape.gradient(a, z, output_gradients=d)


def preactivation_grad_eager(layer, fw, x, d):
  """`preactivation_grad` on JAX or PyTorch, in numpy: (N, T, C).

  The pre-activation output is rebuilt in numpy from the input's patches
  (float32, as on TensorFlow), and the activation's vector-Jacobian
  product comes from the backend's autograd.
  """
  d = np.asarray(d, np.float32)
  d = d.reshape(d.shape[0], -1, d.shape[-1])
  if linear_activation(layer):
    return d
  from tfprune_survey.criteria.collector import backend_grads  # pylint: disable=g-import-not-at-top
  to_numpy = fw.keras.ops.convert_to_numpy
  kernel = to_numpy(layer.weights[fw.find_weight(layer, "kernel")[0]].value)
  kernel = np.asarray(kernel, np.float32).reshape(-1, kernel.shape[-1])
  z = np.einsum("ntf,fc->ntc", patches(layer, x).numpy().astype(np.float32),
                kernel)
  found = fw.find_weight(layer, "bias")
  if found:
    z = z + np.asarray(to_numpy(layer.weights[found[0]].value), np.float32)
  return backend_grads(fw.backend()).activation_vjp(layer.activation, z, d)


def linear_activation(layer):
  return layer.get_config().get("activation", "linear") in ("linear", None)


def bn_square_grads(layer, fw, weights, x, d):
  """Sum over samples of squared per-sample BN gamma / beta gradients.

  In inference mode BN is y = gamma * (x - mean) / sqrt(var + eps) + beta,
  so sample n's gradients are the sums over positions of D[n] * x_hat[n]
  (gamma) and of D[n] (beta).
  """
  channels = x.shape[-1]
  x = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1, channels])
  d = tf.reshape(tf.cast(d, tf.float32), [tf.shape(d)[0], -1, channels])
  stat = {}
  for name in ("moving_mean", "moving_variance"):
    stat[name] = tf.cast(fw.tf_variable(layer.weights[fw.find_weight(
        layer, name)[0]]), tf.float32)
  eps = float(layer.get_config().get("epsilon", 1e-3))
  x_hat = (x - stat["moving_mean"]) * tf.math.rsqrt(
      stat["moving_variance"] + eps)
  out = []
  for w in weights:
    g = tf.reduce_sum(d * x_hat if w == "gamma" else d, axis=1)
    out.append(tf.reduce_sum(tf.square(g), axis=0))
  return out


def is_batch_norm(layer):
  """True for a BatchNormalization (the graph slices its gamma and beta
  only when it normalises over the channel axis)."""
  return type(layer).__name__ == "BatchNormalization"


def vmap_square_grads(layer, variables, x, d):
  """Sum over samples of each variable's squared per-sample gradient."""

  def one(args):
    xi, di = args
    with tf.GradientTape() as tape:
      tape.watch(variables)
      out = layer(xi[None], training=False)
    grads = tape.gradient(out, variables, output_gradients=di[None])
    return [tf.zeros_like(v) if g is None else tf.cast(g, tf.float32)
            for g, v in zip(grads, variables)]
  grads = tf.vectorized_map(one, (x, d))
  return [tf.reduce_sum(tf.square(g), axis=0) for g in grads]


class Probe:
  """The inputs and output gradients of chosen layers, batch by batch.

  On TensorFlow, a model of the model's Keras whose outputs are the model's
  output and those tensors, run under a tape (use `run` inside a
  `tf.function`); on JAX and PyTorch, the backend's autograd
  (`features_and_grads` of `tfprune_survey/frameworks/`), in numpy.

  Args:
    ctx: the ScoringContext.
    paths: the layers whose input and output are needed (top-level, one
      call each).
    name: the criterion's name, for messages.
  """

  def __init__(self, ctx, paths, name):
    model = ctx.model
    self.fw = frameworks.of(model)
    check_backend(self.fw, name)
    self.tensors, self.index = [], {}

    def add(t):
      for i, u in enumerate(self.tensors):
        if u is t:
          return i
      self.tensors.append(t)
      return len(self.tensors) - 1
    for path in paths:
      call = layer_call(ctx, path, name)
      inp = self.fw.input_tensor(call.layer, call.node_index)
      if isinstance(inp, (list, tuple)):
        raise NotImplementedError(f"criterion '{name}' cannot read layer "
                                  f"'{path}': it has several inputs")
      self.index[path] = (add(inp), add(call.layer.output))
    self.loss_fn = per_sample_loss(model)
    self.backend = self.fw.backend()
    if self.backend == "tensorflow":
      self.model = self.fw.keras.Model(model.inputs,
                                       [model.outputs[0]] + self.tensors)
    else:   # jitted on JAX, on its first batch
      from tfprune_survey.criteria.collector import backend_grads  # pylint: disable=g-import-not-at-top
      self._pass = backend_grads(self.backend).stats_fn(
          model, self.tensors, self.loss_fn, lambda f, g: (f, g))

  def _split(self, feats, grads):
    inputs = {p: feats[i] for p, (i, _) in self.index.items()}
    deltas = {p: grads[o] for p, (_, o) in self.index.items()}
    return inputs, deltas

  def run(self, x, y):
    """({path: input}, {path: gradient of the summed loss at the output})."""
    with tf.GradientTape() as tape:
      outs = self.model(x, training=False)
      loss = tf.reduce_sum(self.loss_fn(y, outs[0]))
    feats = list(outs[1:])
    grads = tape.gradient(loss, feats)
    grads = [tf.zeros_like(f) if g is None else g
             for f, g in zip(feats, grads)]
    return self._split(feats, grads)

  def run_eager(self, x, y):
    """`run` on JAX or PyTorch (the backend's `stats_fn`), as numpy."""
    to_numpy = self.fw.keras.ops.convert_to_numpy
    feats, grads = [[None if a is None else to_numpy(a) for a in part]
                    for part in self._pass(x, y)]
    grads = [np.zeros_like(f) if g is None else g
             for f, g in zip(feats, grads)]
    return self._split(feats, grads)


def stream(ctx, name, step, eager=False):
  """Sums `step(x, y) -> [np arrays]` over the batches; (sums, samples).

  `step` gets tf tensors, or numpy arrays when `eager`.

  Raises:
    ValueError: for a batch without labels, naming the criterion.
  """
  fw = frameworks.of(ctx.model)
  sums, samples = None, 0
  for x, y in batches_with_progress(ctx.data, ctx.steps, ctx.verbose,
                                    fw.keras):
    if y is None:
      raise ValueError(f"criterion '{name}' needs labels: pass data as "
                       "(x, y)")
    if not eager:
      x, y = to_tensors(x), tf.convert_to_tensor(y)
    out = [np.asarray(v, np.float64) for v in step(x, y)]
    sums = out if sums is None else [a + b for a, b in zip(sums, out)]
    samples += batch_size_of(x)
  return sums, samples
