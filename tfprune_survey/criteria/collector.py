"""One streaming pass over data that feeds every activation criterion.

A multi-output model of the model's own Keras exposes the observed feature
maps (and, for gradient criteria, the model outputs). On the TensorFlow
backend (tf_keras, or Keras 3 on TensorFlow) one `tf.function` computes
features, gradients and the criterion's small per-batch statistics. On the
JAX backend, features and dL/dY come from `jax.grad`
(`frameworks/jax_backend.py`) and the same `batch_stats` reduce them. The
statistics are accumulated in numpy either way.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfprune_survey import frameworks
from tfprune_survey.data import iterate_batches
from tfprune_survey.losses import per_sample_loss


@dataclasses.dataclass
class Point:
  """An observed feature map: a consumer's input tensor and its layout."""
  tensor: object
  layout: object
  consumer: str


def observation_points(graph):
  """Feature maps of the top-level graph that consumers read, deduplicated."""
  fw = frameworks.of(graph.model)
  points, seen = [], set()
  for call, lay in graph.observations:
    if len(call.names) != 1 or lay is None or lay.spatial != 1:
      continue
    try:
      tensor = fw.input_tensor(call.layer, call.node_index)
    except Exception:  # pylint: disable=broad-except
      continue
    if isinstance(tensor, (list, tuple)) or tensor.shape[-1] != lay.width:
      continue
    if not any(graph.group_of_var(seg.var).prunable for seg in lay.segments):
      continue
    if id(tensor) in seen:
      continue
    seen.add(id(tensor))
    points.append(Point(tensor, lay, call.path))
  return points


def point_scores(criterion, ctx):
  """[(Point, scores over the point's channels)] for `criterion`.

  Cached in `ctx.point_cache`, so the groups of one scoring run share one
  pass over the data.
  """
  cache = ctx.point_cache
  key = id(criterion)
  if key not in cache:
    cache[key] = _collect(criterion, ctx)
  return cache[key]


def _collect(criterion, ctx):
  model = ctx.model
  points = observation_points(ctx.graph)
  if not points:
    return []
  fw = frameworks.of(model)
  if fw.backend() != "tensorflow":
    return _collect_eager(criterion, ctx, points, fw)
  tensors = [p.tensor for p in points]
  grads = criterion.needs_gradients
  outputs = ([model.outputs[0]] if grads else []) + tensors
  probe = fw.keras.Model(model.inputs, outputs)
  loss_fn = per_sample_loss(model) if grads else None
  widths = [p.layout.width for p in points]

  def reshape(t, width):
    return tf.reshape(t, [tf.shape(t)[0], -1, width])

  @tf.function(reduce_retracing=True)
  def step(x, y):
    if grads:
      with tf.GradientTape() as tape:
        outs = probe(x, training=False)
        feats = outs[1:]
        loss = tf.reduce_sum(loss_fn(y, outs[0]))
      g = [tf.zeros_like(f) if gi is None else gi
           for f, gi in zip(feats, tape.gradient(loss, feats))]
    else:
      outs = probe(x, training=False)
      feats = outs if isinstance(outs, (list, tuple)) else [outs]
      g = [None] * len(feats)
    return [criterion.batch_stats(
        reshape(tf.cast(f, tf.float32), w),
        None if gi is None else reshape(tf.cast(gi, tf.float32), w))
            for f, gi, w in zip(feats, g, widths)]

  def run(x, y):
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y) if y is not None else tf.zeros([tf.shape(
        x)[0]])
    return step(x, y)
  return _accumulate(criterion, ctx, points, run, fw)


def _accumulate(criterion, ctx, points, run, fw):
  """Streams the batches through `run(x, y) -> [stats per point]`."""
  grads = criterion.needs_gradients
  acc = [dict() for _ in points]
  bar = fw.keras.utils.Progbar(ctx.steps, unit_name="batch") if (
      ctx.verbose) else None
  for x, y in iterate_batches(ctx.data, ctx.steps):
    if bar is not None:
      bar.add(1)
    if grads and y is None:
      raise ValueError(f"criterion '{criterion.name}' needs labels: pass data "
                       "as (x, y)")
    for a, s in zip(acc, run(x, y)):
      for name, value in s.items():
        value = np.asarray(value)
        if criterion.stat_modes[name] == "concat":
          a.setdefault(name, []).append(value)
        else:
          a[name] = a.get(name, 0.0) + value.astype(np.float64)
  out = []
  for p, a in zip(points, acc):
    stats = {k: (np.concatenate(v) if isinstance(v, list) else v)
             for k, v in a.items()}
    out.append((p, np.asarray(criterion.finalize(stats), np.float64)))
  return out


def backend_grads(backend):
  """The module computing features and gradients on a non-TF backend."""
  if backend == "jax":
    from tfprune_survey.frameworks import jax_backend  # pylint: disable=g-import-not-at-top
    return jax_backend
  from tfprune_survey.frameworks import torch_backend  # pylint: disable=g-import-not-at-top
  return torch_backend


def _collect_eager(criterion, ctx, points, fw):
  """The same statistics for Keras 3 on JAX or PyTorch.

  Features (and dL/dY) come from the backend's autograd; `batch_stats` then
  reduces them exactly as on TensorFlow, in a `tf.function` on host arrays.
  """
  model = ctx.model
  grads = criterion.needs_gradients
  backend = fw.backend()
  widths = [p.layout.width for p in points]
  tensors = [p.tensor for p in points]
  if backend in ("jax", "torch"):
    grads_lib = backend_grads(backend)
    loss_fn = per_sample_loss(model) if grads else None

    def features(x, y):
      return grads_lib.features_and_grads(model, tensors, loss_fn, x, y)
  else:
    raise NotImplementedError(
        f"criterion '{criterion.name}' cannot read feature maps on the "
        f"'{backend}' backend; use KERAS_BACKEND=tensorflow, jax or torch.")

  @tf.function(reduce_retracing=True)
  def reduce(feats, gs):
    return [criterion.batch_stats(
        tf.reshape(f, [tf.shape(f)[0], -1, w]),
        None if g is None else tf.reshape(g, [tf.shape(g)[0], -1, w]))
            for f, g, w in zip(feats, gs, widths)]

  def run(x, y):
    feats, gs = features(np.asarray(x), None if y is None else np.asarray(y))
    feats = [tf.constant(f, tf.float32) for f in feats]
    gs = [None if g is None else tf.constant(g, tf.float32) for g in gs]
    return reduce(feats, gs)
  return _accumulate(criterion, ctx, points, run, fw)
