"""Consumers' inputs as patches at sampled positions (for re-fits and criteria).

A *consumer* is a layer that reads a channel group through its kernel. Its
output at one position is linear in one patch of its input: for a Conv1D /
Conv2D the receptive field (taps x input channels), for a Dense the input
vector (after a Flatten, channel c sits at every spatial position, as
(h, w, c)). Writing the patch as a (taps, channels) matrix P and the kernel
as a (taps, channels, outputs) tensor W, the pre-activation output is
sum_t P[t] @ W[t] + bias. `tps.reconstruct` fits W from such patches, and the
`thinet` and `lasso` criteria split that sum into per-channel contributions.

Everything here streams: a batch's feature maps are read by a probe model of
the model's own Keras, patches are gathered in numpy at a few seeded random
positions per sample, and only small statistics are kept (`GramSum`: per
group a C x C Gram, or for 1x1 consumers the inputs' second moments).
"""

import collections
import dataclasses

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.data import batch_count
from tfprune_survey.data import batch_size_of
from tfprune_survey.data import iterate_batches
from tfprune_survey.data import map_inputs
from tfprune_survey.data import with_progress

#: Consumer layer classes whose kernels this module can read and re-fit.
FITTABLE = ("Conv1D", "Conv2D", "Dense")
#: Consumers that need no re-fit: each output channel reads one input channel.
SKIPPED = ("DepthwiseConv1D", "DepthwiseConv2D")


@dataclasses.dataclass
class Consumer:
  """How one consumer call maps patches to outputs.

  Attributes:
    path: the layer's name.
    class_name: 'Conv1D', 'Conv2D' or 'Dense'.
    index: the call's position in topological order.
    node_index: the layer's node index of this call.
    kernel_size, strides, dilation: per spatial axis (empty for Dense).
    padding: 'valid', 'same' or 'causal' ('valid' for Dense).
    use_bias: whether the layer has a bias.
  """
  path: str
  class_name: str
  index: int
  node_index: int
  kernel_size: tuple
  strides: tuple
  dilation: tuple
  padding: str
  use_bias: bool


def _tuple(value, rank):
  if isinstance(value, (list, tuple)):
    return tuple(int(v) for v in value)
  return (int(value),) * rank


def consumer_of(call):
  """The `Consumer` of a LayerCall; None for one that needs no re-fit.

  Raises:
    ValueError: naming the layer and its type, for a consumer of another
      type, inside a nested model, or whose geometry is not supported.
  """
  name = call.class_name
  if name in SKIPPED:
    return None
  where = f"layer '{call.path}' ({name})"
  if name not in FITTABLE:
    raise ValueError(
        f"{where} reads a pruned channel group, but only {list(FITTABLE)} "
        f"consumers can be re-fitted (and {list(SKIPPED)} are skipped)")
  if len(call.names) != 1:
    raise ValueError(f"{where} sits inside a nested model; only top-level "
                     "consumers can be re-fitted")
  cfg = call.config
  if name == "Dense":
    return Consumer(call.path, name, call.index, call.node_index, (), (), (),
                    "valid", bool(cfg.get("use_bias", True)))
  rank = 1 if name == "Conv1D" else 2
  if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
    raise ValueError(f"{where} uses data_format={cfg['data_format']!r}; only "
                     "channels_last can be re-fitted")
  if (cfg.get("groups", 1) or 1) != 1:
    raise ValueError(f"{where} is a grouped conv; it cannot be re-fitted")
  padding = str(cfg.get("padding", "valid")).lower()
  if padding not in ("valid", "same", "causal"):
    raise ValueError(f"{where} has padding {padding!r}; only 'valid', 'same' "
                     "and 'causal' can be re-fitted")
  return Consumer(call.path, name, call.index, call.node_index,
                  _tuple(cfg["kernel_size"], rank), _tuple(cfg["strides"], rank),
                  _tuple(cfg.get("dilation_rate", 1), rank), padding,
                  bool(cfg.get("use_bias", True)))


# ---- reading feature maps ---------------------------------------------------

def _to_numpy(t):
  if hasattr(t, "detach"):  # torch
    t = t.detach().cpu()
  return np.asarray(t, np.float32)


def feature_reader(model, tensors):
  """callable(x) -> [np.ndarray] of `tensors` (symbolic tensors of `model`).

  The probe is a model of `model`'s own Keras; on the TensorFlow backend
  its call is compiled once with `tf.function`. x is a batch as Keras'
  `fit` takes it: for a model of one input, an array, or a one-entry
  list, tuple or dict (by the input's name) of it; for several inputs, a
  list, tuple or dict of arrays.
  """
  fw = frameworks.of(model)
  inputs = list(model.inputs)
  probe = fw.keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                         list(tensors))
  reader = _reader(fw, probe, inputs)
  if len(inputs) != 1:
    return reader
  name = str(getattr(inputs[0], "name", "") or "").split(":")[0]
  return lambda x: reader(_one_input(x, name))


def _one_input(x, name):
  """The array of a one-input model's batch x: x itself, or the entry of a
  one-entry list or tuple, or of a dict (by the input's name), as Keras'
  `fit` takes it."""
  if isinstance(x, dict):
    if name in x:
      return x[name]
    if len(x) == 1:
      return next(iter(x.values()))
  elif isinstance(x, (list, tuple)) and len(x) == 1:
    return x[0]
  return x


def _reader(fw, probe, inputs):
  """callable(x) -> [np.ndarray] of the probe's outputs."""
  signature = None
  if fw.backend() == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if len(inputs) == 1:  # one trace for every batch size
      signature = [tf.TensorSpec([None] + list(inputs[0].shape[1:]),
                                 inputs[0].dtype)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def run(x):
      out = probe(x, training=False)
      return out if isinstance(out, (list, tuple)) else [out]
  else:
    def run(x):
      out = probe(x, training=False)
      return out if isinstance(out, (list, tuple)) else [out]
  if signature is not None:
    dtype = signature[0].dtype
    return lambda x: [_to_numpy(t) for t in run(tf.cast(x, dtype))]
  if fw.backend() == "tensorflow":   # several inputs: a structure of them
    return lambda x: [_to_numpy(t) for t in run(map_inputs(
        tf.convert_to_tensor, x))]
  return lambda x: [_to_numpy(t) for t in run(x)]


def input_tensor(model, path, node_index):
  """The symbolic input tensor of layer `path`'s call `node_index`."""
  fw = frameworks.of(model)
  return fw.input_tensor(model.get_layer(path), node_index)


def batches(data, samples=None, steps=None):
  """Yields the x of `data`'s batches, stopping after `samples` samples."""
  seen = 0
  for x, _ in iterate_batches(data, steps):
    # One array, or a tuple/list/dict of them for several inputs.
    x = map_inputs(lambda a: a if isinstance(a, np.ndarray) else
                   _to_numpy(a), x)
    if samples is not None:
      x = map_inputs(lambda a, n=samples - seen: a[:n], x)
    size = batch_size_of(x)
    if size == 0:
      break
    seen += size
    yield x
    if samples is not None and seen >= samples:
      break


# ---- patches ----------------------------------------------------------------

def _pads(consumer, spatial):
  """(before, after) zero padding per spatial axis, as Keras pads."""
  out = []
  for size, k, s, d in zip(spatial, consumer.kernel_size, consumer.strides,
                           consumer.dilation):
    span = (k - 1) * d + 1
    if consumer.padding == "valid":
      out.append((0, 0))
    elif consumer.padding == "causal":
      out.append((span - 1, 0))
    else:
      n_out = -(-size // s)
      total = max((n_out - 1) * s + span - size, 0)
      out.append((total // 2, total - total // 2))
  return out


def output_positions(consumer, shape):
  """The number of output positions of one sample, given its input shape."""
  spatial = shape[1:-1]
  if consumer.class_name == "Dense":
    return int(np.prod(spatial)) if spatial else 1
  total = 1
  for size, (lo, hi), k, s, d in zip(spatial, _pads(consumer, spatial),
                                     consumer.kernel_size, consumer.strides,
                                     consumer.dilation):
    total *= (size + lo + hi - ((k - 1) * d + 1)) // s + 1
  return total


def sample_positions(rng, n, positions, per_sample):
  """(n, m) output positions per sample: m = min(per_sample, positions).

  Without replacement; every position when `per_sample` >= `positions`.
  """
  if per_sample >= positions:
    return np.broadcast_to(np.arange(positions), (n, positions))
  return np.argsort(rng.random((n, positions)), axis=1)[:, :per_sample]


def patches(consumer, x, pos):
  """(n * m, taps * channels) patches of feature map `x` at positions `pos`.

  Args:
    consumer: a `Consumer`.
    x: (n, *spatial, channels) input of the consumer (numpy).
    pos: (n, m) flat output positions (see `sample_positions`).

  Returns:
    The patches in the order of the kernel's rows: (taps, channels), taps
    row-major over the kernel window; for a Dense the whole input vector.
  """
  x = np.asarray(x)
  n, m = pos.shape
  if consumer.class_name == "Dense":
    flat = x.reshape(n, -1, x.shape[-1])
    return flat[np.arange(n)[:, None], pos].reshape(n * m, x.shape[-1])
  if consumer.class_name == "Conv1D":
    x = x[:, None]
    kernel_size, strides, dilation = ((1,) + consumer.kernel_size,
                                      (1,) + consumer.strides,
                                      (1,) + consumer.dilation)
    pads = [(0, 0)] + _pads(consumer, x.shape[2:3])
  else:
    kernel_size, strides, dilation = (consumer.kernel_size, consumer.strides,
                                      consumer.dilation)
    pads = _pads(consumer, x.shape[1:3])
  xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
  out_w = (xp.shape[2] - ((kernel_size[1] - 1) * dilation[1] + 1)) // strides[
      1] + 1
  oh, ow = pos // out_w, pos % out_w
  rows = oh[..., None] * strides[0] + np.arange(kernel_size[0]) * dilation[0]
  cols = ow[..., None] * strides[1] + np.arange(kernel_size[1]) * dilation[1]
  got = xp[np.arange(n)[:, None, None, None], rows[:, :, :, None],
           cols[:, :, None, :]]  # (n, m, kh, kw, channels)
  return got.reshape(n * m, -1)


def kernel_matrix(layer):
  """(rows, outputs) kernel and (outputs,) bias (zeros without) of a layer."""
  weights = {frameworks.Framework.short_name(w): np.asarray(v, np.float64)
             for w, v in zip(layer.weights, layer.get_weights())}
  kernel = weights["kernel"]
  bias = weights.get("bias", np.zeros(kernel.shape[-1]))
  return kernel.reshape(-1, kernel.shape[-1]), bias


# ---- per-channel contributions ---------------------------------------------

def channel_columns(graph, group, path):
  """Positions of `group`'s channels on layer `path`'s input, or None.

  Returns:
    (channels, index) where `channels` is the width of the consumer's
    input channel pattern and `index` the position of each of the group's
    channels in it: (group.size,) when the layer reads the group once,
    (reads, group.size) when it reads it at several places (e.g. a
    Concatenate of a tensor with itself, or with a residual sum of it), a
    channel's contribution then summing all its reads. None when the group
    reaches the layer only through repeated channels (a depth multiplier).
  """
  index = []
  for sl, base, seg in graph.group_segments(group):
    if sl.path != path or sl.role != "consumer" or sl.weight != "kernel":
      continue
    if seg.repeat != 1:
      return None
    channels = sl.layout.channels
    index.append(base + np.arange(group.size))
  if not index:
    return None
  return channels, index[0] if len(index) == 1 else np.stack(index)


def _reads(index):
  """`index` (see `channel_columns`) as (reads, C)."""
  return np.atleast_2d(np.asarray(index))


def _columns(rows, channels, index):
  """(C, taps * reads) rows of a (rows, outputs) kernel read by each channel.

  Column t * reads + k of channel c is tap t of its k-th read.
  """
  reads = _reads(index)
  taps = rows // channels
  cols = (np.arange(taps)[:, None, None] * channels + reads[None])  # t, k, c
  return np.ascontiguousarray(cols.reshape(-1, reads.shape[1]).T)


def contribution_gram(p, kernel, channels, index):
  """C x C Gram matrix of the group channels' contributions to the outputs.

  Args:
    p: (rows, taps * channels) patches.
    kernel: (taps * channels, outputs) kernel.
    channels: the width of the consumer's input channel pattern.
    index: the group's channel positions in that pattern, (C,) or (reads,
      C) (see `channel_columns`).

  Returns:
    G with G[c, d] = sum over rows and outputs of Z_c * Z_d, where Z_c =
    sum_t p[t, c] kernel[t, c, :] is channel c's contribution to the
    outputs (summed over its reads), float64; also the number of (row,
    output) equations.
  """
  cols = _columns(np.shape(kernel)[0], channels, index)
  w = np.asarray(kernel, np.float64)[cols]
  return _slices_gram(p, w, cols), p.shape[0] * w.shape[-1]


def _slices_gram(p, w, cols):
  """`contribution_gram`'s G from the group's kernel slices w (C, T, o)
  and the patch columns `cols` (C, T) they multiply."""
  pc = np.asarray(p)[:, cols].astype(np.float64)   # (rows, C, T)
  z = np.matmul(pc.transpose(1, 0, 2), w).reshape(len(cols), -1)
  return z @ z.T


def uses_moments(taps, outputs):
  """Whether `GramSum` forms a Gram from the inputs' second moments.

  `taps` counts each of a channel's reads (see `channel_columns`) once
  per kernel tap.

  For a consumer that reads each channel at one tap (a 1x1 conv, a Dense
  on a vector), Z_c = x_c w_c, so G = S * (W Wᵀ) elementwise, with S the
  sum over rows of x xᵀ: C² multiply-adds per row instead of Z Zᵀ's C² x
  outputs, and S is no larger than G. With more taps G would sum taps²
  such products of both signs, and float32 second moments lose too much
  to that cancellation, so those consumers keep Z Zᵀ.
  """
  return taps == 1 and outputs > 1


def moment_gram(moments, w):
  """The contributions' Gram of a one-tap consumer from second moments.

  Args:
    moments: (C, C) sum over rows of x xᵀ, x the group's input entries.
    w: (C, 1, outputs) kernel slices (`kernel[_columns(...)]`).

  Returns:
    G = moments * (W Wᵀ) elementwise, W = w[:, 0]: G[c, d] = sum over rows
    and outputs of (x_c w_c)(x_d w_d), the same G as `contribution_gram`.
  """
  flat = np.asarray(w, np.float64)[:, 0, :]
  return np.asarray(moments, np.float64) * (flat @ flat.T)


_TF_FNS = {}   # the TensorFlow functions, made on first use


def _tf_fns():
  """{'gram': (p, w, index) -> G, 'moments': (p, index) -> S}."""
  if not _TF_FNS:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.float32),        # (rows, taps * ch)
        tf.TensorSpec([None, None, None], tf.float32),  # (C, T, outputs)
        tf.TensorSpec([None, None], tf.int32)], autograph=False)  # (C, T)
    def gram(p, w, cols):
      shape = tf.shape(w)
      p = tf.transpose(tf.gather(p, cols, axis=1), [1, 0, 2])  # (C, rows, T)
      z = tf.reshape(tf.matmul(p, w), [shape[0], -1])  # (C, rows * outputs)
      return tf.cast(tf.matmul(z, z, transpose_b=True), tf.float64)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.float32),        # (rows, channels)
        tf.TensorSpec([None], tf.int32)], autograph=False)
    def moments(p, index):
      x = tf.gather(p, index, axis=1)
      return tf.cast(tf.matmul(x, x, transpose_a=True), tf.float64)

    _TF_FNS.update(gram=gram, moments=moments)
  return _TF_FNS


_Entry = collections.namedtuple("_Entry", "channels index cols w moments")


class GramSum:
  """Sums, over batches of patches, each group's contribution Gram.

  For every (channels, index) of `columns`, G = sum over rows and outputs
  of Z_c Z_d (see `contribution_gram`). For a one-tap consumer
  (`uses_moments`) the inputs' second moments are summed instead and G is
  formed from them and the kernel once, at `results`: the same G for
  `outputs` times fewer multiply-adds per row. On the TensorFlow backend
  each batch's products run in float32 in a `tf.function` (traced once for
  all consumers) and are summed in float64; on other backends in numpy, in
  float64.

  Args:
    kernel: (taps * channels, outputs) kernel of the consumer.
    columns: (channels, index) of each group read by the consumer (see
      `channel_columns`).
    use_tf: whether to compute in TensorFlow (the model's backend is
      TensorFlow) or in numpy.
  """

  def __init__(self, kernel, columns, use_tf):
    self.kernel = kernel
    self.entries = []
    for channels, index in columns:
      _, rest = divmod(kernel.shape[0], channels)
      if rest:
        raise ValueError(f"a kernel of {kernel.shape[0]} rows does not "
                         f"hold whole taps of {channels} channels")
      cols = _columns(kernel.shape[0], channels, index)
      # A channel read at several places sums its reads like taps.
      self.entries.append(_Entry(
          channels, np.asarray(index), cols,
          np.asarray(kernel, np.float64)[cols],
          uses_moments(cols.shape[1], kernel.shape[-1])))
    self.sums = [np.zeros((len(e.cols),) * 2) for e in self.entries]
    self._tf_args = None
    if use_tf:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._tf_args = [(tf.constant(e.w, tf.float32),
                        tf.constant(e.cols.astype(np.int32)))
                       for e in self.entries]

  def add(self, p):
    """Adds the (rows, taps * channels) patches `p` of one batch."""
    if self._tf_args is not None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      fns = _tf_fns()
      p = tf.constant(np.asarray(p, np.float32))
      parts = [fns["moments"](p, cols[:, 0]) if e.moments else
               fns["gram"](p, w, cols)
               for e, (w, cols) in zip(self.entries, self._tf_args)]
    else:
      parts = []
      for e in self.entries:
        if e.moments:
          x = np.asarray(p, np.float64)[:, e.cols[:, 0]]
          parts.append(x.T @ x)
        else:
          parts.append(_slices_gram(p, e.w, e.cols))
    self.sums = [total + part for total, part in zip(self.sums, parts)]

  def results(self):
    """[G] (C x C, float64), one per entry of `columns`."""
    return [moment_gram(np.asarray(total, np.float64), e.w) if e.moments
            else np.asarray(total, np.float64)
            for e, total in zip(self.entries, self.sums)]


def group_grams(ctx, per_sample, seed):
  """{group_id: (G, equations)} of every scorable group, in one data pass.

  G sums `contribution_gram` (by `GramSum`) over the group's consumers
  (their equations concatenated) at `per_sample` seeded random output
  positions per sample.
  Consumers that are not top-level Conv1D/Conv2D/Dense layers called once
  are left out; a group with none is absent. Cached in `ctx.point_cache`.

  Args:
    ctx: a `ScoringContext` with data.
    per_sample: output positions sampled per sample.
    seed: seed of the sampling.
  """
  key = ("contribution_grams", per_sample, seed)
  if key in ctx.point_cache:
    return ctx.point_cache[key]
  graph, model = ctx.graph, ctx.model
  calls = {}
  for call in graph.calls:
    calls.setdefault(call.path, []).append(call)
  readers = {}   # consumer path -> (Consumer, [(group id, channels, index)])
  for group in ctx.groups:
    for path in group.consumers:
      cs = calls.get(path, [])
      if (len(cs) != 1 or cs[0].class_name not in FITTABLE or
          len(cs[0].names) != 1):
        continue
      try:
        consumer = consumer_of(cs[0])
      except ValueError:
        continue
      cols = channel_columns(graph, group, path)
      if consumer is None or cols is None:
        continue
      readers.setdefault(path, (consumer, []))[1].append((group.id,) + cols)
  out = {}
  if not readers:
    ctx.point_cache[key] = out
    return out
  order = list(readers)
  read = feature_reader(model, [
      input_tensor(model, p, readers[p][0].node_index) for p in order])
  sums, rows = {}, dict.fromkeys(order, 0)   # consumer path -> GramSum
  use_tf = frameworks.of(model).backend() == "tensorflow"
  for p in order:
    sums[p] = GramSum(kernel_matrix(model.get_layer(p))[0],
                      [e[1:] for e in readers[p][1]], use_tf)
  rng = np.random.default_rng(seed)
  fw = frameworks.of(model)
  for x in with_progress(batches(ctx.data, None, ctx.steps),
                         batch_count(ctx.data, ctx.steps), ctx.verbose,
                         fw.keras):
    for path, feat in zip(order, read(x)):
      consumer = readers[path][0]
      pos = sample_positions(rng, batch_size_of(x),
                             output_positions(consumer, feat.shape),
                             per_sample)
      p = patches(consumer, feat, pos)
      sums[path].add(p)
      rows[path] += p.shape[0]
  for path in order:
    n = rows[path] * sums[path].kernel.shape[-1]
    if not n:
      continue
    for (gid, _, _), g in zip(readers[path][1], sums[path].results()):
      if gid in out:
        out[gid] = (out[gid][0] + g, out[gid][1] + n)
      else:
        out[gid] = (g, n)
  ctx.point_cache[key] = out
  return out
