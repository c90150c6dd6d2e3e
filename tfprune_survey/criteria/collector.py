"""One streaming pass over data that feeds every activation criterion.

A multi-output tf_keras model exposes the observed feature maps (and, for
gradient criteria, the model outputs); a `tf.function` reduces each batch to
the criterion's small statistics, which are accumulated in numpy.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfprune_survey._compat import keras
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
  points, seen = [], set()
  for call, lay in graph.observations:
    if len(call.names) != 1 or lay is None or lay.spatial != 1:
      continue
    try:
      tensor = call.layer.get_input_at(call.node_index)
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
  """[(Point, scores over the point's channels)] for `criterion`, cached."""
  cache = ctx.__dict__.setdefault("_point_cache", {})
  key = id(criterion)
  if key not in cache:
    cache[key] = _collect(criterion, ctx)
  return cache[key]


def _collect(criterion, ctx):
  model = ctx.model
  points = observation_points(ctx.graph)
  if not points:
    return []
  tensors = [p.tensor for p in points]
  grads = criterion.needs_gradients
  outputs = ([model.outputs[0]] if grads else []) + tensors
  probe = keras.Model(model.inputs, outputs)
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

  acc = [dict() for _ in points]
  bar = keras.utils.Progbar(ctx.steps, unit_name="batch") if (
      ctx.verbose) else None
  for x, y in iterate_batches(ctx.data, ctx.steps):
    if bar is not None:
      bar.add(1)
    if grads and y is None:
      raise ValueError(f"criterion '{criterion.name}' needs labels: pass data "
                       "as (x, y)")
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y) if y is not None else tf.zeros([tf.shape(
        x)[0]])
    stats = step(x, y)
    for a, s in zip(acc, stats):
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
