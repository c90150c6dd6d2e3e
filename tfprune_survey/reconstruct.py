"""tps.reconstruct: least-squares re-fit of the consumers of pruned channels.

ThiNet (Luo, Wu and Lin 2017) and channel pruning by LASSO (He, Zhang and Sun
2017) choose channels so that the next layer's output can be rebuilt, then
re-fit that layer by least squares on the remaining channels. This module is
that second step, for any keep set.
"""

import numbers

import numpy as np

from tfprune_survey import consumer_patches as cp
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.strip import surgery
from tfprune_survey.strip.keep import resolve_keep


def _check_options(samples, positions_per_sample, ridge, seed):
  if samples is not None and (isinstance(samples, bool) or not isinstance(
      samples, numbers.Integral) or samples < 1):
    raise ValueError(f"`samples` must be a positive int or None, got "
                     f"{samples!r}")
  if isinstance(positions_per_sample, bool) or not isinstance(
      positions_per_sample, numbers.Integral) or positions_per_sample < 1:
    raise ValueError("`positions_per_sample` must be a positive int, got "
                     f"{positions_per_sample!r}")
  if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not (
      ridge >= 0 and np.isfinite(ridge)):
    raise ValueError(f"`ridge` must be a finite number >= 0, got {ridge!r}")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise ValueError(f"`seed` must be an int, got {seed!r}")


OPTIONS = ("samples", "positions_per_sample", "ridge", "steps", "seed")


def check_option(reconstruct, data):
  """The options dict of `tps.prune(..., reconstruct=...)`, or None.

  Args:
    reconstruct: None or False (no re-fit), True (defaults) or a dict of
      `reconstruct` options (see `OPTIONS`).
    data: the pruning data the re-fit will read.

  Raises:
    TypeError: for another type.
    ValueError: for an unknown option, or a re-fit without data.
  """
  if reconstruct is None or reconstruct is False:
    return None
  if reconstruct is True:
    options = {}
  elif isinstance(reconstruct, dict):
    options = dict(reconstruct)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
      raise ValueError(f"`reconstruct` has unknown options {unknown}; "
                       f"allowed: {list(OPTIONS)}")
  else:
    raise TypeError("`reconstruct` must be True, False, None or a dict of "
                    f"options {list(OPTIONS)}, got {type(reconstruct).__name__}")
  if data is None:
    raise ValueError("`reconstruct` needs `data`: the re-fit matches the "
                     "original model's outputs on it")
  _check_options(options.get("samples", 2048),
                 options.get("positions_per_sample", 10),
                 options.get("ridge", 1e-6), options.get("seed", 0))
  return options


def _consumers(graph, keep_arrays):
  """The `Consumer`s of the pruned groups, in depth (topological) order."""
  calls = {}
  for call in graph.calls:
    calls.setdefault(call.path, []).append(call)
  paths = []
  for gid, kept in keep_arrays.items():
    group = graph.group(gid)
    if len(kept) < group.size:
      paths.extend(p for p in group.consumers if p not in paths)
  out = []
  for path in paths:
    layer_calls = calls.get(path, [])
    if len(layer_calls) != 1:
      name = layer_calls[0].class_name if layer_calls else "?"
      raise ValueError(f"layer '{path}' ({name}) is called "
                       f"{len(layer_calls)} times; only layers called once can"
                       " be re-fitted")
    consumer = cp.consumer_of(layer_calls[0])
    if consumer is not None:
      out.append(consumer)
  return sorted(out, key=lambda c: c.index)


def _kept_rows_and_outputs(graph, consumer, keep_of, kernel_shape):
  """Kept kernel rows (flattened taps x inputs) and kept output columns."""
  rank = len(kernel_shape)
  in_idx = np.arange(kernel_shape[-2])
  out_idx = np.arange(kernel_shape[-1])
  for sl in graph.weight_slices:
    if sl.path != consumer.path or sl.weight != "kernel":
      continue
    if sl.axis == rank - 2:
      in_idx = sl.layout.indices(keep_of)
    elif sl.axis == rank - 1:
      out_idx = sl.layout.indices(keep_of)
  taps = int(np.prod(kernel_shape[:-2])) if rank > 2 else 1
  rows = (np.arange(taps)[:, None] * kernel_shape[-2] + in_idx[None, :])
  return rows.ravel(), in_idx, out_idx


def _solve(a, b, ridge, n_kernel_rows):
  """(A + ridge * mean(diag) * I) x = B; the bias row is not penalised."""
  a = a.copy()
  scale = float(np.trace(a[:n_kernel_rows, :n_kernel_rows])) / max(
      n_kernel_rows, 1)
  if ridge > 0 and scale > 0:
    idx = np.arange(n_kernel_rows)
    a[idx, idx] += ridge * scale
  try:
    return np.linalg.solve(a, b)
  except np.linalg.LinAlgError:
    return np.linalg.lstsq(a, b, rcond=None)[0]


def reconstruct(slim, original, data, *, keep=None, samples=2048,
                positions_per_sample=10, ridge=1e-6, steps=None, seed=0,
                verbose=0):
  """Re-fits the consumers of pruned channels by least squares.

  For every consumer of a pruned group (a Conv1D, Conv2D or Dense that
  reads the group's channels through its kernel, Dense after Flatten
  included), in depth order, the kernel and bias of the slim layer are
  re-fitted so that its pre-activation output (the linear part, before a
  fused `activation`) matches the original model's on `data`, from the
  inputs the slim model itself gives that layer (after the earlier fits),
  as ThiNet (Luo et al. 2017) and He et al. (2017) do. Each fit solves
  (XᵀX + ridge * mean(diag XᵀX) * I) W = XᵀY over `positions_per_sample`
  random output positions of each sample (seeded); the bias is fitted
  with the kernel and not penalised. Consumers reading the same tensor
  are fitted from one pass over the data; each other consumer takes one
  pass (through the model up to that layer, for both models).

  DepthwiseConv consumers need no re-fit (each output channel reads one
  input channel) and are skipped. Layers that are not consumers of a
  pruned group keep their weights.

  Memory: the statistics of one fit are XᵀX and XᵀY in float64, i.e.
  (K + 1)² + (K + 1) * outputs floats with K = kept inputs × kernel area
  (kept input positions, for a Dense), plus one batch's feature maps and
  patches; nothing grows with the amount of data.

  Args:
    slim: the slim model (e.g. `tps.prune(...).model` or
      `tps.materialize(original, keep)`). Not modified.
    original: the model it was cut from. Not modified.
    data: a `tf.data.Dataset` of (x, y) or x batches, or numpy x / (x, y);
      labels are not used. For a model with several inputs x is a tuple,
      list or dict of arrays (numpy `([x1, x2],)`, a dataset of
      `((x1, x2), y)`).
    keep: the {group_id: kept indices} that made `slim` from `original`
      (`PruneResult.keep`). Required: which channels were kept cannot be
      told from the widths alone, so None raises ValueError.
    samples: read at most this many samples of `data` per fit (None: all).
      Defaults to 2048.
    positions_per_sample: random output positions per sample (all of them
      where a sample has fewer). Defaults to 10.
    ridge: ridge penalty, relative to the mean diagonal of XᵀX. Defaults
      to 1e-6.
    steps: optional maximum number of batches per fit.
    seed: seed of the position sampling. Defaults to 0.
    verbose: 1 shows a progress bar over the fits.

  Returns:
    A new slim model of the same Keras, with re-fitted consumers.

  Raises:
    ValueError: without data or keep; for data that does not fit the
      model or holds NaN or inf; for keep that does not fit `original` or
      a slim model whose widths do not match it; for a fit that is not
      finite (features that overflow on `data`: the message names the
      layer); for a consumer that cannot be re-fitted (the message names
      the layer and its type: e.g. Conv2DTranspose, SeparableConv2D, a
      layer inside a nested model or called several times); for a bad
      option.
    TypeError: for models that are not Keras models, or of different Kerases.
  """
  fw = frameworks.check_model(original, "original")
  fw_slim = frameworks.check_model(slim, "slim")
  if fw_slim.name != fw.name:
    raise TypeError(f"`slim` is a {fw_slim.name} model but `original` is a "
                    f"{fw.name} model")
  if data is None:
    raise ValueError("reconstruction needs `data` (the inputs on which the "
                     "original outputs are matched); got None")
  if keep is None:
    raise ValueError("`keep` is required: pass the {group_id: kept indices} "
                     "that made `slim` (PruneResult.keep); which channels were "
                     "kept cannot be read from the widths")
  _check_options(samples, positions_per_sample, ridge, seed)
  # Shapes now; each batch's shape and finiteness as it streams.
  data = data_lib.checked(original, data, arg_name="data",
                          purpose="no layer can be re-fitted")
  graph = ChannelGraph(original)
  keep_arrays = resolve_keep(graph, keep)
  keep_of = graph.keep_resolver(keep_arrays)
  consumers = _consumers(graph, keep_arrays)
  new = surgery.rebuild(slim, slim.get_config(), weights_follow=True)
  new.set_weights(slim.get_weights())
  plans = []
  for c in consumers:
    o_layer, s_layer = original.get_layer(c.path), new.get_layer(c.path)
    o_kernel = [w for w, v in zip(o_layer.weights, o_layer.get_weights())
                if frameworks.Framework.short_name(w) == "kernel"][0]
    shape = tuple(o_kernel.shape)
    rows, in_idx, out_idx = _kept_rows_and_outputs(graph, c, keep_of, shape)
    s_shape = shape[:-2] + (len(in_idx), len(out_idx))
    s_kernel = [tuple(w.shape) for w in s_layer.weights
                if frameworks.Framework.short_name(w) == "kernel"][0]
    if s_kernel != s_shape:
      raise ValueError(
          f"`slim` does not match `original` cut by `keep`: layer "
          f"'{c.path}' has kernel shape {s_kernel}, expected {s_shape}")
    plans.append((c, rows, out_idx))
  waves = {}
  for c, rows, out_idx in plans:
    key = id(cp.input_tensor(new, c.path, c.node_index))
    waves.setdefault(key, []).append((c, rows, out_idx))
  bar = fw.keras.utils.Progbar(len(plans), unit_name="layer") if (
      verbose) else None
  rng = np.random.default_rng(seed)
  for wave in waves.values():
    _fit_wave(original, new, wave, data, samples, steps, positions_per_sample,
              ridge, rng)
    if bar is not None:
      bar.add(len(wave))
  return new


def _fit_wave(original, new, wave, data, samples, steps, per_sample, ridge,
              rng):
  """Fits the consumers of one slim input tensor from one pass over data."""
  first = wave[0][0]
  read_orig = cp.feature_reader(original, [
      cp.input_tensor(original, c.path, c.node_index) for c, _, _ in wave])
  read_slim = cp.feature_reader(new, [
      cp.input_tensor(new, first.path, first.node_index)])
  targets = [cp.kernel_matrix(original.get_layer(c.path)) for c, _, _ in wave]
  stats = [None] * len(wave)
  for x in cp.batches(data, samples, steps):
    origs = read_orig(x)
    xs = read_slim(x)[0]
    for i, ((c, _, out_idx), xo, (w, b)) in enumerate(zip(wave, origs,
                                                          targets)):
      # Each consumer's own output grid and patches: consumers of one
      # tensor may differ in kernel size, stride, dilation or padding.
      positions = cp.output_positions(c, xs.shape)
      pos = cp.sample_positions(rng, data_lib.batch_size_of(x), positions,
                                per_sample)
      ps = cp.patches(c, xs, pos).astype(np.float64)
      ps = np.concatenate([ps, np.ones((len(ps), 1))], axis=1)
      y = cp.patches(c, xo, pos).astype(np.float64) @ w[:, out_idx] + b[
          out_idx]
      a, xy = ps.T @ ps, ps.T @ y
      stats[i] = (a, xy) if stats[i] is None else (stats[i][0] + a,
                                                   stats[i][1] + xy)
  for (c, rows, out_idx), (a, xy) in zip(wave, stats):
    k = len(rows)
    if not c.use_bias:
      a, xy = a[:k, :k], xy[:k]
    where = f"cannot re-fit layer '{c.path}' ({c.class_name})"
    if not (np.isfinite(a).all() and np.isfinite(xy).all()):
      raise ValueError(
          f"{where}: its inputs, or the original model's outputs there, hold "
          "NaN or inf on `data` (features that overflow float32), so no "
          "finite weights can be fitted")
    sol = _solve(a, xy, ridge, k)
    if not np.isfinite(sol).all():
      raise ValueError(f"{where}: its least-squares solution on `data` is not "
                       f"finite (ridge={ridge}); try a larger `ridge`")
    layer = new.get_layer(c.path)
    values = []
    for w, v in zip(layer.weights, layer.get_weights()):
      name = frameworks.Framework.short_name(w)
      if name == "kernel":
        values.append(sol[:k].reshape(v.shape).astype(v.dtype))
      elif name == "bias":
        values.append(sol[k].astype(v.dtype))
      else:
        values.append(v)
    layer.set_weights(values)
