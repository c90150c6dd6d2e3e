"""Shared machinery of `mask_channels` and `materialize`."""

import copy

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.graph.walker import is_submodel


def layer_pairs(old, new, prefix=()):
  """Yields (path, old_layer, new_layer) for every non-model layer."""
  for a, b in zip(old.layers, new.layers):
    names = prefix + (a.name,)
    if is_submodel(a):
      yield from layer_pairs(a, b, names)
    else:
      yield "/".join(names), a, b


def slices_by_path(graph):
  out = {}
  for sl in graph.weight_slices:
    out.setdefault(sl.path, []).append(sl)
  return out


def transfer_weights(old, new, graph, keep_of, mode):
  """Copies weights from `old` to `new`, sliced or masked.

  Args:
    old: the source model.
    new: a model built from (possibly narrowed) config.
    graph: `ChannelGraph` of `old`.
    keep_of: variable -> kept indices.
    mode: 'slice' keeps only the kept positions; 'mask' zeroes the others.
  """
  by_path = slices_by_path(graph)
  grouped = {}
  for gs in graph.grouped_slices:
    grouped.setdefault(gs.path, []).append(gs)
  for path, a, b in layer_pairs(old, new):
    values = a.get_weights()
    if not values:
      continue
    names = [frameworks.Framework.short_name(w) for w in a.weights]
    for sl in by_path.get(path, ()):
      if sl.weight not in names:
        raise ValueError(
            f"layer '{path}' has no weight '{sl.weight}' to slice (it has "
            f"{names})")
      i = names.index(sl.weight)
      kept = sl.layout.indices(keep_of)
      if mode == "slice":
        values[i] = np.take(values[i], kept, axis=sl.axis)
      elif sl.zero:
        dropped = np.setdiff1d(np.arange(values[i].shape[sl.axis]), kept)
        if dropped.size:
          values[i] = values[i].copy()
          index = [slice(None)] * values[i].ndim
          index[sl.axis] = dropped
          values[i][tuple(index)] = 0
    for gs in grouped.get(path, ()):
      i = names.index(gs.weight)
      values[i] = grouped_weight(values[i], gs, keep_of, mode)
    values = _in_order_of(values, names, b, path)
    expected = [tuple(w.shape) for w in b.weights]
    got = [v.shape for v in values]
    if expected != got:
      raise RuntimeError(
          f"internal error: weights of layer '{path}' do not fit the rebuilt "
          f"layer ({got} vs {expected})")
    b.set_weights(values)


def _in_order_of(values, names, new_layer, path):
  """`values` (named `names`) in the order of `new_layer`'s weights.

  A layer rebuilt from its config may create the same weights in another
  order: a Keras 3 float8 Dense built from config creates its scales and
  amax histories before its kernel and bias, while `quantize('float8')`
  added them after. Weights are matched by name when the names agree as a
  set; otherwise the order is kept (and checked by shape).
  """
  new_names = [frameworks.Framework.short_name(w) for w in new_layer.weights]
  if new_names == names or sorted(new_names) != sorted(names) or len(
      set(names)) != len(names):
    return values
  by_name = dict(zip(names, values))
  return [by_name[n] for n in new_names]


def grouped_weight(value, gs, keep_of, mode):
  """A grouped conv's kernel with its in-group input axis sliced or masked.

  Output channels in block k of the kernel's `gs.out_axis` (C_out / groups
  wide, before or after that axis was sliced) read input block k; their
  in-group positions are the kept input channels of block k, less k times
  the block width.

  Args:
    value: the kernel (np.ndarray).
    gs: the `GroupedSlice`.
    keep_of: variable -> kept indices.
    mode: 'slice' or 'mask' (as for `transfer_weights`).

  Returns:
    The new kernel.

  Raises:
    RuntimeError: in 'slice' mode, when the blocks keep different counts
      (`materialize` checks keep sets before it gets here).
  """
  per_in = value.shape[gs.axis]
  per_out = value.shape[gs.out_axis] // gs.groups
  kept = gs.layout.indices(keep_of)
  block = kept // per_in
  parts = []
  for k in range(gs.groups):
    local = kept[block == k] - k * per_in
    outs = np.arange(k * per_out, (k + 1) * per_out)
    part = np.take(value, outs, axis=gs.out_axis)
    if mode == "slice":
      parts.append(np.take(part, local, axis=gs.axis))
    else:
      part = part.copy()
      index = [slice(None)] * part.ndim
      index[gs.axis] = np.setdiff1d(np.arange(per_in), local)
      part[tuple(index)] = 0
      parts.append(part)
  if mode == "slice" and len({p.shape[gs.axis] for p in parts}) > 1:
    raise RuntimeError(
        f"internal error: grouped conv '{gs.path}' keeps different numbers "
        "of input channels in its groups")
  return np.concatenate(parts, axis=gs.out_axis)


def _layers_by_path(model, prefix=()):
  """{qualified path: layer} of every non-model layer of `model`."""
  out = {}
  for layer in model.layers:
    names = prefix + (layer.name,)
    if is_submodel(layer):
      out.update(_layers_by_path(layer, names))
    else:
      out["/".join(names)] = layer
  return out


def check_graph(model, graph, arg_name="graph"):
  """Raises when `graph` was built for a model of another architecture.

  The surgery finds the weights to slice by the layers' paths, so a graph
  is accepted for `model` when every layer with weights has the same path
  and weight shapes in both (an identical copy); any other graph would
  slice the wrong weights, or none.

  Raises:
    ValueError: naming the first layer that does not match.
  """
  if graph.model is model:
    return
  have = {path: layer for path, layer in _layers_by_path(model).items()
          if layer.weights}
  seen = {}
  for call in graph.calls:
    if call.layer.weights:
      seen.setdefault(call.path, call.layer)
  problem = None
  for path, layer in seen.items():
    if path not in have:
      problem = f"it has layer '{path}', which the model has not"
    elif [tuple(w.shape) for w in have[path].weights] != [
        tuple(w.shape) for w in layer.weights]:
      problem = f"its layer '{path}' has other weight shapes than the model's"
    if problem:
      break
  extra = [path for path in have if path not in seen]
  if problem is None and extra:
    problem = f"the model's layer '{extra[0]}' is not in it"
  if problem:
    raise ValueError(
        f"`{arg_name}` was built for model '{graph.model.name}', not for "
        f"'{model.name}': {problem}. Pass graph=tps.ChannelGraph(model), or "
        "leave it out.")


def check_rebuildable(graph):
  """Raises when rebuilding the graph's model from config would unshare a
  layer (one called inside a nested model and outside it).

  Raises:
    ValueError: naming the layer and its two paths.
  """
  if graph.shared_across_models:
    first, other = graph.shared_across_models[0]
    raise ValueError(
        f"layer '{first.split('/')[-1]}' is called both as '{first}' and as "
        f"'{other}': a layer shared between a nested model and its parent "
        "(or two nested models) is rebuilt from the model's config as two "
        "separate layers, so the copy would have more parameters than the "
        "model. Call the nested model's layers only through the nested "
        "model (or flatten it into one Functional model) to prune it.")


def narrowed_config(model, graph, keep_of):
  """The model's config with producer widths set to the kept counts.

  Per-layer build configs are dropped (layers are built by the functional
  call itself, once). With `keep_of=None` the widths are left unchanged.
  """
  config = copy.deepcopy(model.get_config())
  _drop_build_config(config)
  if keep_of is None:
    return config
  for upd in graph.width_updates:
    entry = _find_layer_config(config, upd.names)
    width = int(len(upd.layout.indices(keep_of)))
    key = upd.key
    if len(key) == 1:
      entry[key[0]] = width
    elif entry.get(key[0]) is not None:
      value = list(entry[key[0]])
      value[key[1]] = width
      entry[key[0]] = value
  return config


def rebuild(model, config, weights_follow=False):
  """A new model of `model`'s kind and Keras, built from `config`.

  Args:
    model: the model the config came from (for its class and custom
      objects).
    config: the (edited) config.
    weights_follow: True when every weight is overwritten right after (the
      surgery copies them), so the fresh ones need not be random. On the
      JAX and PyTorch backends the built-in layers are then built with zero
      initializers and given their own initializers back afterwards
      (`get_config` is unchanged): JAX compiles a random initializer once
      per new weight shape, which made the first `materialize` of a
      MobileNetV2 take 13.6 s instead of about 0.3 s. A layer that keeps
      its initializers elsewhere (an LSTM or GRU on its cell) is given them
      there; where one cannot be given back, the model is rebuilt from
      `config` as it is (slow, but with the layers' own initializers).
  """
  fw = frameworks.of(model)
  if not weights_follow or fw.backend() == "tensorflow":
    return fw.rebuild(model, config)
  fast = copy.deepcopy(config)
  originals = {}
  _zero_initializers(fast, (), originals)
  new = fw.rebuild(model, fast)
  keras = fw.keras
  for names, inits in originals.items():
    layer = new
    for name in names:
      layer = layer.get_layer(name)
    for key, value in inits.items():
      if not _restore_initializer(keras, layer, key, value):
        return fw.rebuild(model, config)
  return new


def _restore_initializer(keras, layer, key, value):
  """Gives `layer` its initializer `value` (a config) back under `key`.

  Sets it on the layer, as a private `_<key>` where the layer keeps it so
  (MultiHeadAttention), or, where the layer's attribute is a read-only
  view (an RNN layer's `kernel_initializer` reads its cell's), on its
  `cell`. Returns whether the layer's config now shows it.
  """
  want = keras.initializers.serialize(keras.initializers.get(value))
  cell = getattr(layer, "cell", None)
  for owner, attr in ((layer, key), (layer, "_" + key), (cell, key)):
    if owner is None or not hasattr(owner, attr):
      continue
    try:
      setattr(owner, attr, keras.initializers.get(value))
    except (AttributeError, TypeError):
      continue
    try:
      if layer.get_config().get(key) == want:
        return True
    except Exception:  # pylint: disable=broad-except
      return False
  return False


_ZEROS = {"module": "keras.initializers", "class_name": "Zeros",
          "config": {}, "registered_name": None}


def _zero_initializers(config, names, originals):
  """Swaps the initializers of built-in layers in `config` for zeros.

  Records {layer names from the top: {key: original}} in `originals`.
  """
  for entry in config.get("layers", []):
    cfg = entry.get("config") or {}
    name = entry.get("name") or cfg.get("name")
    if "layers" in cfg:   # a nested model
      _zero_initializers(cfg, names + (name,), originals)
      continue
    if not str(entry.get("module") or "").startswith("keras.layers"):
      continue
    for key in [k for k in cfg if k.endswith("_initializer")]:
      if isinstance(cfg[key], (dict, str)):
        originals.setdefault(names + (name,), {})[key] = cfg[key]
        cfg[key] = dict(_ZEROS)


def _drop_build_config(config):
  if isinstance(config, dict):
    config.pop("build_config", None)
    config.pop("build_input_shape", None)
    for v in config.values():
      _drop_build_config(v)
  elif isinstance(config, list):
    for v in config:
      _drop_build_config(v)


def _find_layer_config(config, names):
  cfg = config
  for name in names:
    match = None
    for entry in cfg["layers"]:
      entry_name = entry.get("name") or entry["config"].get("name")
      if entry_name == name:
        match = entry
        break
    if match is None:
      raise RuntimeError(f"internal error: layer '{name}' not in config")
    cfg = match["config"]
  return cfg
