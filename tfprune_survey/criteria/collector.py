"""One streaming pass over data that feeds every activation criterion.

Which feature map an activation criterion reads (`observation_points`): the
group's feature map at the last point that still has the producer's spatial
layout, i.e. after the producer's BN, activations, element-wise ops and
merges (Add etc.), and before any pooling, striding, resizing, Flatten,
Reshape or Concatenate. It is found from each consumer's input tensor by
walking back through the layers (or Keras 3 operations) that change the
layout but keep channel c at channel c; for `apoz` it is thus the ReLU's
output, never a pooled one.

A multi-output model of the model's own Keras exposes these feature maps
(and, for gradient criteria, the model outputs). On the TensorFlow backend
(tf_keras, or Keras 3 on TensorFlow) one `tf.function` computes features,
gradients and the criterion's small per-batch statistics. On the JAX and
PyTorch backends, features and dL/dY come from the backend's autograd
(`frameworks/jax_backend.py`, `torch_backend.py`) as its own arrays, and
the same `batch_stats`, written in `keras.ops`, reduce them on that backend
(on JAX compiled with the graph run and the gradient into one `jax.jit`);
TensorFlow takes no part. The small statistics
are accumulated in numpy either way.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfprune_survey import frameworks
from tfprune_survey.criteria.activation import stat_ops
from tfprune_survey.data import batch_size_of
from tfprune_survey.data import batches_with_progress
from tfprune_survey.data import to_tensors
from tfprune_survey.graph import layout as layout_lib
from tfprune_survey.losses import per_sample_loss

# Layers (or Keras 3 operations, by class name) between a feature map and
# its consumers that change its spatial layout but keep channel c at channel
# c: pooling of every kind, padding, cropping, resizing, Flatten, Reshape,
# Concatenate. A point is found by walking back through them, and through
# the layers that are the identity at inference (Dropout and the like).
LAYOUT_CHANGING = frozenset(
    [f"{kind}{d}D" for d in (1, 2, 3) for kind in (
        "MaxPooling", "AveragePooling", "GlobalMaxPooling",
        "GlobalAveragePooling", "ZeroPadding", "Cropping", "UpSampling")] +
    ["Resizing", "Flatten", "Reshape", "Concatenate", "MaxPool",
     "AveragePool"])
IDENTITY_LIKE = frozenset((
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity"))
# tf_keras layers that hold a raw TF op: not wrapped in training.
_OP_LAYERS = frozenset(("TFOpLambda", "SlicingOpLambda"))


@dataclasses.dataclass
class Point:
  """A feature map read by the activation criteria.

  Attributes:
    tensor: the symbolic tensor of the model's graph (of its own Keras).
    layout: its channel `Layout` (`spatial == 1`; `layout.width ==
      tensor.shape[-1]`); `layout.segments` say which channel groups its
      channels belong to.
    name: the name of the layer (or Keras 3 operation) whose output it is.
    consumer: the path of a consumer (conv, Dense, depthwise) that reads it,
      possibly through pooling, Flatten etc. (the first one found).
    layer: the top-level layer whose single call outputs `tensor`, where a
      training-time wrapper can observe it; None when the tensor comes from
      a Keras 3 operation, a tf_keras op layer, a nested model or a shared
      layer.
  """
  tensor: object
  layout: object
  name: str
  consumer: str
  layer: object = None


@dataclasses.dataclass(frozen=True)
class StreamPoint:
  """Where training-time pruning observes a feature map.

  Attributes:
    layer: the top-level layer whose wrapper keeps the statistics.
    at: 'output' (the layer's output: a point's own tensor) or 'input' (the
      consumer's input: the fallback for a point that no wrapper can
      observe).
    layout: the channel layout of the observed tensor.
  """
  layer: str
  at: str
  layout: object


def _made_by(tensor):
  """(layer or operation, node index) that made a symbolic tensor, or None.

  Both Kerases record it as `_keras_history` (layer, node index, tensor
  index) on every tensor of a functional graph.
  """
  history = getattr(tensor, "_keras_history", None)
  if history is None or history[0] is None:
    return None
  return history[0], int(history[1])


def _last_dim(tensor):
  shape = getattr(tensor, "shape", None)
  return None if not shape else shape[-1]


def _step_back(fw, tensor, lay):
  """[(input tensor, its layout)] behind `tensor` when the layer that made
  it only moves positions (see LAYOUT_CHANGING), else None."""
  made = _made_by(tensor)
  if made is None:
    return None
  op, node_index = made
  kind = type(op).__name__
  if kind not in LAYOUT_CHANGING and kind not in IDENTITY_LIKE:
    return None
  try:
    inputs = fw.input_tensor(op, node_index)
  except Exception:  # pylint: disable=broad-except
    return None
  if not isinstance(inputs, (list, tuple)):
    inputs = [inputs]
  dims = [_last_dim(t) for t in inputs]
  if not inputs or any(d is None for d in dims):
    return None
  plain = layout_lib.Layout(lay.segments)
  if len(inputs) == 1:
    if dims[0] == lay.width:
      return [(inputs[0], lay)]
    if dims[0] == lay.channels:
      return [(inputs[0], plain)]
    return None
  if lay.spatial != 1:
    return None
  if all(d == lay.channels for d in dims):    # joined on a spatial axis
    return [(t, plain) for t in inputs]
  if sum(dims) != lay.channels:
    return None
  parts, segs = [], list(lay.segments)         # joined on the channel axis
  for t, d in zip(inputs, dims):
    mine, width = [], 0
    while segs and width < d:
      width += segs[0].width
      mine.append(segs.pop(0))
    if width != d:
      return None
    parts.append((t, layout_lib.Layout(tuple(mine))))
  return parts


def _feature_maps(fw, tensor, lay):
  """[(tensor, layout)]: `tensor` walked back to the feature maps it is
  made of, through the layers that change only their layout."""
  out, stack = [], [(tensor, lay)]
  while stack:
    t, l = stack.pop()
    behind = _step_back(fw, t, l)
    if behind is None:
      out.append((t, l))
    else:
      stack.extend(reversed(behind))
  return out


def _streamable(graph, fw, op):
  """Whether `op` is a top-level layer with one call, that a wrapper can
  observe."""
  calls = [c for c in graph.calls if c.layer is op]
  if len(calls) != 1 or len(calls[0].names) != 1:
    return False
  if not fw.is_layer(op) or fw.is_submodel(op):
    return False
  return type(op).__name__ not in _OP_LAYERS


def _points(graph):
  """[(Point, consumer LayerCall, consumer Layout)] of the top-level graph."""
  fw = frameworks.of(graph.model)
  out, seen = [], set()
  for call, lay in graph.observations:
    if len(call.names) != 1 or lay is None:
      continue
    try:
      tensor = fw.input_tensor(call.layer, call.node_index)
    except Exception:  # pylint: disable=broad-except
      continue
    if isinstance(tensor, (list, tuple)) or _last_dim(tensor) != lay.width:
      continue
    for t, l in _feature_maps(fw, tensor, lay):
      if l.spatial != 1 or _last_dim(t) != l.width or id(t) in seen:
        continue
      if not any(graph.group_of_var(s.var).prunable for s in l.segments):
        continue
      seen.add(id(t))
      made = _made_by(t)
      op = made[0] if made else None
      name = getattr(op, "name", None) or call.path
      layer = name if op is not None and _streamable(graph, fw, op) else None
      out.append((Point(t, l, name, call.path, layer), call, lay))
  return out


def observation_points(graph):
  """The feature maps the activation criteria read, deduplicated.

  For every consumer of the top-level graph (a layer that reads a group
  through a weight: conv, Dense, depthwise), its input tensor is walked
  back through pooling (global too), padding, cropping, resizing, Flatten,
  Reshape, Concatenate and inference-time identities (Dropout) to the last
  tensor that still has the producer's spatial layout: after the producer's
  BN, activations, element-wise ops and merges. Each input of a
  Concatenate becomes its own point, with its part of the layout. Points
  that end on the same tensor are one point; points of groups that are not
  prunable are left out.

  Args:
    graph: a `ChannelGraph`.

  Returns:
    [Point], in the order of the consumers in `graph.observations`: the
    feature map as the activation criteria read it (`point.tensor` is a
    tensor of `graph.model`'s graph, so `keras.Model(model.inputs,
    point.tensor)` computes it).
  """
  return [p for p, _, _ in _points(graph)]


def stream_points(graph):
  """Where training-time pruning observes each point, deduplicated.

  A point made by a layer that a wrapper can observe is observed at that
  layer's output (the same tensor as `observation_points`). A point that
  comes from something that cannot be wrapped (a Keras 3 operation such as
  `keras.ops.relu`, a tf_keras op layer, a nested model or a shared layer)
  falls back to its consumer's input, the tensor after any pooling; that is
  observed only when it still has one position per channel (not after a
  Flatten) and no point is observed at the same layer's output. Which
  tensor is observed depends on the graph only, never on the groups being
  pruned.

  Args:
    graph: a `ChannelGraph`.

  Returns:
    [StreamPoint].
  """
  out, keys, pending = [], set(), []
  for point, call, lay in _points(graph):
    if point.layer is not None:
      if (point.layer, "output") not in keys:
        keys.add((point.layer, "output"))
        out.append(StreamPoint(point.layer, "output", point.layout))
    elif lay.spatial == 1:
      pending.append(StreamPoint(call.path, "input", lay))
  outputs = {k[0] for k in keys}
  for sp in pending:
    if sp.layer not in outputs and (sp.layer, "input") not in keys:
      keys.add((sp.layer, "input"))
      out.append(sp)
  return out


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
  ops = stat_ops("tensorflow")

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
        None if gi is None else reshape(tf.cast(gi, tf.float32), w), ops)
            for f, gi, w in zip(feats, g, widths)]

  def run(x, y):
    x = to_tensors(x)   # one array, or a structure for several inputs
    y = (tf.convert_to_tensor(y) if y is not None else
         tf.zeros([batch_size_of(x)]))
    return step(x, y)
  return _accumulate(criterion, ctx, points, run, fw)


def _accumulate(criterion, ctx, points, run, fw, to_numpy=np.asarray):
  """Streams the batches through `run(x, y) -> [stats per point]`; the
  statistics (backend tensors) are read with `to_numpy`."""
  grads = criterion.needs_gradients
  acc = [dict() for _ in points]
  for x, y in batches_with_progress(ctx.data, ctx.steps, ctx.verbose,
                                    fw.keras):
    if grads and y is None:
      raise ValueError(f"criterion '{criterion.name}' needs labels: pass data "
                       "as (x, y)")
    for a, s in zip(acc, run(x, y)):
      for name, value in s.items():
        value = np.asarray(to_numpy(value))
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
  """The same statistics for Keras 3 on JAX or PyTorch, without TensorFlow.

  Features (and dL/dY) come from the backend's autograd as its own arrays;
  `batch_stats` reduces them with `keras.ops` on that backend, and only the
  small statistics go to numpy. On JAX the graph run, the gradient and the
  reduction compile into one `jax.jit` (the backends' `stats_fn`).
  """
  model = ctx.model
  grads = criterion.needs_gradients
  backend = fw.backend()
  widths = [p.layout.width for p in points]
  tensors = [p.tensor for p in points]
  if backend not in ("jax", "torch"):
    raise NotImplementedError(
        f"criterion '{criterion.name}' cannot read feature maps on the "
        f"'{backend}' backend; use KERAS_BACKEND=tensorflow, jax or torch.")
  grads_lib = backend_grads(backend)
  loss_fn = per_sample_loss(model) if grads else None
  ops = stat_ops(backend)

  def reduce(feats, gs):
    return [criterion.batch_stats(
        ops.reshape(ops.cast(f, "float32"), (f.shape[0], -1, w)),
        None if g is None else ops.reshape(ops.cast(g, "float32"),
                                           (g.shape[0], -1, w)), ops)
            for f, g, w in zip(feats, gs, widths)]
  return _accumulate(criterion, ctx, points, grads_lib.stats_fn(
      model, tensors, loss_fn, reduce), fw, to_numpy=ops.convert_to_numpy)
