"""prune_channels / UpdateChannelPruningStep / strip_channel_pruning: tfmot's
three lines, for whole channels."""

import numpy as np
import tensorflow as tf

from tfprune_survey import _compat
from tfprune_survey import criteria as criteria_lib
from tfprune_survey._compat import keras
from tfprune_survey.criteria import collector
from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.context import ScoringContext
from tfprune_survey.criteria.taylor_fo import TaylorFO
from tfprune_survey.graph.builder import short_weight_name
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.pruner import SCOPES, _check_int, _Planner
from tfprune_survey.scoring import score as score_fn
from tfprune_survey.strip.keep import resolve_keep
from tfprune_survey.strip.mask import mask_channels
from tfprune_survey.strip.materialize import materialize
from tfprune_survey.training.wrapper import ChannelPruneWrapper


def _tfmot_schedules():
  from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule  # pylint: disable=g-import-not-at-top
  return pruning_schedule


def serialize_schedule(schedule):
  return {"class_name": type(schedule).__name__,
          "config": schedule.get_config()["config"]
                    if "config" in schedule.get_config()
                    else schedule.get_config()}


def deserialize_schedule(config):
  name = config["class_name"]
  cls = getattr(_tfmot_schedules(), name, None)
  if cls is None:
    cls = keras.utils.get_registered_object(name)
  if cls is None:
    raise ValueError(f"pruning schedule class {name!r} is unknown: register it "
                     "with tf_keras.utils.register_keras_serializable")
  return cls.from_config(config["config"]) if hasattr(
      cls, "from_config") else cls(**config["config"])


def _wrapped_layers(model):
  return [l for l in model.layers if isinstance(l, ChannelPruneWrapper)]


def prune_channels(to_prune, criterion="l1", pruning_schedule=None, *,
                   data=None, scope="global", round_to=1, min_channels=1,
                   pruning_policy=None):
  """Wraps the layers of `to_prune` for channel pruning during `fit`.

  Like tfmot's `prune_low_magnitude`, but whole channels go: every layer
  with weights in a prunable channel group (producers, their BN, and the
  consumers that read the group) is wrapped in a `ChannelPruneWrapper`.
  At each step where `pruning_schedule` says prune, `UpdateChannelPruningStep`
  re-scores the channels with `criterion` and sets the masks so that the
  schedule's sparsity is the fraction of channels removed.

  `to_prune` may also be a layer or a list of layers, used inside a model
  definition as tfmot's `prune_low_magnitude(layer)` is. Each is wrapped
  as a marker; when `fit` starts, the groups all of whose producers are
  marked are pruned (a channel must leave every producer of its group,
  e.g. both convolutions feeding an Add), and `UpdateChannelPruningStep`
  zeroes the dropped slices of every layer involved (BN, consumers)
  between steps. Data criteria then need `data`.

  Args:
    to_prune: a tf_keras Sequential/Functional model (not mutated), a layer,
      or a list of layers.
    criterion: a name from `tps.criteria.names()` or a Criterion.
    pruning_schedule: a tfmot `PruningSchedule` (`ConstantSparsity`,
      `PolynomialDecay`, or a subclass); default ConstantSparsity(0.5,
      begin_step=0, frequency=100), as in tfmot.
    data: optional data for data-dependent criteria, read in one extra pass
      at each pruning step. Without it, `apoz`, `entropy`, `variance` and
      `taylor` collect their statistics from the training batches
      themselves, inside the training graph (the wrappers of the layers
      that read each feature map keep running statistics; `taylor` reads
      dL/dY on the backward pass), and so does `taylor_fo` (per batch,
      (sum of dL/dY * Y)^2 over the output Y of the BN or filter holding
      the parameters, which equals (sum of g * w)^2 over them). They are
      reset after each pruning step, and a pruning step with no batch seen
      since is deferred to the next. The layer form needs `data`.
    scope, round_to, min_channels: as in `tps.prune`.
    pruning_policy: optional collection of layer names; only groups whose
      producers include one of them are pruned.

  Returns:
    A new model with wrapped layers, weights copied; or the wrapper(s) of
    the given layer(s).
  """
  if isinstance(to_prune, (list, tuple)) or (
      isinstance(to_prune, keras.layers.Layer) and
      not isinstance(to_prune, keras.Model)):
    return _wrap_layers(to_prune, criterion, pruning_schedule, data, scope,
                        round_to, min_channels)
  _compat.check_model(to_prune, "to_prune")
  if scope not in SCOPES:
    raise ValueError(f"`scope` must be one of {SCOPES}, got {scope!r}")
  round_to = _check_int(round_to, "round_to", 1)
  min_channels = _check_int(min_channels, "min_channels", 1)
  crit = criteria_lib.get(criterion)
  if pruning_schedule is None:
    pruning_schedule = _tfmot_schedules().ConstantSparsity(0.5, begin_step=0)
  if not callable(pruning_schedule) or not hasattr(pruning_schedule,
                                                   "get_config"):
    raise TypeError("`pruning_schedule` must be a tfmot PruningSchedule, got "
                    f"{type(pruning_schedule).__name__}")
  graph = ChannelGraph(to_prune)
  groups = graph.prunable_groups
  if pruning_policy is not None:
    wanted = set(pruning_policy)
    names = {c.path for c in graph.calls}
    unknown = sorted(wanted - names)
    if unknown:
      raise ValueError(f"`pruning_policy` names unknown layers {unknown}")
    groups = [g for g in groups if wanted & set(g.producers)]
  # Layers inside nested models are not wrapped (clone_model does not
  # descend into them), so groups that reach into one stay whole.
  nested = {graph.root_of(seg.var) for sl in graph.weight_slices
            if "/" in sl.path for seg in sl.layout.segments}
  groups = [g for g in groups if g.root not in nested]
  if not groups:
    raise ValueError(f"model {to_prune.name!r} has no prunable channel group "
                     "to prune (groups inside nested models stay whole)")
  roots = {g.root for g in groups}
  masked = {}
  for sl in graph.weight_slices:
    if not sl.zero or "/" in sl.path:
      continue
    if not any(graph.root_of(seg.var) in roots for seg in sl.layout.segments):
      continue
    layer = to_prune.get_layer(sl.path)
    w = next(w for w in layer.weights if short_weight_name(w.name) == sl.weight)
    entry = (sl.weight, sl.axis, int(w.shape[sl.axis]))
    masked.setdefault(sl.path, [])
    if entry not in masked[sl.path]:
      masked[sl.path].append(entry)
  observe, observe_output = {}, {}
  in_graph = data is None and isinstance(crit, (ActivationCriterion, TaylorFO))
  if in_graph and isinstance(crit, TaylorFO):
    ctx = ScoringContext(to_prune, graph)
    for g in groups:
      for path, _, _, _ in crit._terms(g, ctx):  # pylint: disable=protected-access
        if "/" not in path and path in masked:
          observe_output[path] = int(
              to_prune.get_layer(path).output_shape[-1])
  elif in_graph:
    for point in collector.observation_points(graph):
      if "/" not in point.consumer and point.consumer in masked:
        observe[point.consumer] = point.layout.width
  settings = _settings(crit, pruning_schedule, scope, round_to, min_channels,
                       sorted(g.id for g in groups), in_graph)

  def clone(layer):
    fresh = type(layer).from_config(layer.get_config())
    if layer.name in masked:
      return ChannelPruneWrapper(fresh, masked[layer.name], settings,
                                 observe=observe.get(layer.name),
                                 observe_output=observe_output.get(
                                     layer.name))
    return fresh

  with keras.utils.custom_object_scope({"ChannelPruneWrapper":
                                        ChannelPruneWrapper}):
    wrapped = keras.models.clone_model(to_prune, clone_function=clone)
  for layer in to_prune.layers:
    target = wrapped.get_layer(f"chprune_{layer.name}") if (
        layer.name in masked) else wrapped.get_layer(layer.name)
    inner = target.layer if isinstance(target, ChannelPruneWrapper) else target
    inner.set_weights(layer.get_weights())
  wrapped._tps_data = data  # pylint: disable=protected-access
  return wrapped


def _settings(crit, schedule, scope, round_to, min_channels, groups,
              in_graph):
  return {"criterion": criteria_lib.serialize(crit),
          "in_graph_statistics": in_graph,
          "schedule": serialize_schedule(schedule),
          "scope": scope, "round_to": round_to, "min_channels": min_channels,
          "groups": groups}


def _wrap_layers(layers, criterion, schedule, data, scope, round_to,
                 min_channels):
  """prune_channels(layer or [layers]): marker wrappers, as tfmot's
  prune_low_magnitude(layer) is used inside a model definition."""
  single = not isinstance(layers, (list, tuple))
  layers = [layers] if single else list(layers)
  for layer in layers:
    if not isinstance(layer, keras.layers.Layer) or isinstance(
        layer, (keras.Model, ChannelPruneWrapper)):
      raise ValueError("prune_channels takes a model, a layer or a list of "
                       f"layers; got {type(layer).__name__}")
  crit = criteria_lib.get(criterion)
  if scope not in SCOPES:
    raise ValueError(f"`scope` must be one of {SCOPES}, got {scope!r}")
  if schedule is None:
    schedule = _tfmot_schedules().ConstantSparsity(0.5, begin_step=0)
  settings = _settings(crit, schedule, scope,
                       _check_int(round_to, "round_to", 1),
                       _check_int(min_channels, "min_channels", 1), None,
                       False)
  wrappers = [ChannelPruneWrapper(l, None, settings) for l in layers]
  for w in wrappers:
    w._tps_data = data  # pylint: disable=protected-access
  return wrappers[0] if single else wrappers


def unwrap(model):
  """The plain model (wrappers replaced by their layers), weights copied."""
  def clone(layer):
    inner = layer.layer if isinstance(layer, ChannelPruneWrapper) else layer
    return type(inner).from_config(inner.get_config())
  plain = keras.models.clone_model(model, clone_function=clone)
  sync_weights(model, plain)
  return plain


def sync_weights(wrapped, plain):
  for layer in wrapped.layers:
    inner = layer.layer if isinstance(layer, ChannelPruneWrapper) else layer
    target = plain.get_layer(inner.name)
    if isinstance(layer, ChannelPruneWrapper) and layer.built:
      layer.apply_masks()
    target.set_weights(inner.get_weights())


class Controller:
  """Scores and sets the masks of a wrapped model (no Keras state of its own)."""

  def __init__(self, model, data=None):
    wrappers = _wrapped_layers(model)
    if not wrappers:
      raise ValueError(f"model {model.name!r} has no ChannelPruneWrapper: "
                       "build it with tps.prune_channels(model, ...)")
    self.model = model
    self.wrappers = {w.layer.name: w for w in wrappers}
    s = wrappers[0].settings
    self.criterion = criteria_lib.deserialize(s["criterion"])
    self.schedule = deserialize_schedule(s["schedule"])
    self.scope, self.round_to = s["scope"], s["round_to"]
    self.min_channels = s["min_channels"]
    self.deferred = any(w.deferred for w in wrappers)
    self.data = data if data is not None else getattr(model, "_tps_data",
                                                      None)
    if self.data is None:
      self.data = next((getattr(w, "_tps_data", None) for w in wrappers
                        if getattr(w, "_tps_data", None) is not None), None)
    self.in_graph = bool(s.get("in_graph_statistics")) and self.data is None
    self.batches_seen = 0
    if self.criterion.requires_data and self.data is None and (
        not self.in_graph):
      raise ValueError(
          f"criterion '{self.criterion.name}' needs data: pass data= to "
          "tps.prune_channels or to tps.UpdateChannelPruningStep")
    self.plain = unwrap(model)
    self.graph = ChannelGraph(self.plain)
    if self.deferred:
      # Layer form: the groups all of whose producers were wrapped.
      marked = {n for n, w in self.wrappers.items() if w.deferred}
      self.group_ids = [g.id for g in self.graph.prunable_groups
                        if set(g.producers) <= marked]
      if not self.group_ids:
        raise ValueError(
            "no channel group can be pruned: a group is pruned when every "
            "layer that produces it was wrapped by prune_channels (e.g. "
            f"both convolutions feeding an Add); wrapped: {sorted(marked)}")
      self.keep = current_keep(model, self.graph)[1]
    else:
      self.group_ids = list(s["groups"])
      self.keep = {}
    self._apply_fn = None
    self._build_apply(self._slice_masks(self.keep) if self.keep else {})

  def step_of(self):
    return int(next(iter(self.wrappers.values())).pruning_step.numpy())

  def set_step(self, step):
    for w in self.wrappers.values():
      w.pruning_step.assign(step)

  def maybe_update(self, step):
    should, sparsity = self.schedule(tf.constant(step, tf.int64))
    if not bool(should):
      return False
    self.update(float(sparsity))
    return True

  def update(self, sparsity):
    if self.deferred:   # the wrappers of the standard form mask on sync
      self.apply_masks()
    sync_weights(self.model, self.plain)
    if self.in_graph:
      if not self.batches_seen:
        return   # no statistics yet: deferred to the next pruning step
      scores = self._in_graph_scores()
    else:
      scores = score_fn(self.plain, self.criterion, self.data,
                        graph=self.graph)
    scores = {g: s for g, s in scores.items() if g in self.group_ids}
    planner = _Planner(self.graph, scores, self.round_to, self.min_channels)
    if self.scope == "global":
      counts = planner.counts_global(int(round(sparsity * planner.total)))
    else:
      counts = planner.counts_local(sparsity)
    self.keep = planner.keep_indices(counts)
    self.assign(self.keep)

  def _in_graph_scores(self):
    if isinstance(self.criterion, TaylorFO):
      scores = self._taylor_fo_scores()
    else:
      scores = self._activation_scores()
    for w in self.wrappers.values():
      if w.stat_vars:
        w.reset_stats()
    self.batches_seen = 0
    return scores

  def _taylor_fo_scores(self):
    ctx = ScoringContext(self.plain, self.graph)
    out = {}
    for g in ctx.groups:
      parts = {}
      for path, _, _, base in self.criterion._terms(g, ctx):  # pylint: disable=protected-access
        w = self.wrappers.get(path)
        if w is None or w.observe_output is None or path in parts:
          continue
        stats = w.stats_numpy()
        parts[path] = (stats["fo_sq"][base:base + g.size].astype(np.float64)
                       / max(float(stats["fo_n"]), 1.0))
      if parts:
        out[g.id] = reduce_scores(list(parts.values()),
                                  self.criterion.reduction)
    return out

  def _activation_scores(self):
    pairs = []
    for point in collector.observation_points(self.graph):
      w = self.wrappers.get(point.consumer)
      if w is None or w.observe != point.layout.width:
        continue
      pairs.append((point, np.asarray(self.criterion.stream_finalize(
          w.stats_numpy()), np.float64)))
    ctx = ScoringContext(self.plain, self.graph)
    ctx.__dict__["_point_cache"] = {id(self.criterion): pairs}
    return self.criterion.score(ctx)

  def _live_layer(self, path):
    if path in self.wrappers:
      return self.wrappers[path].layer
    return self.model.get_layer(path)

  def _slice_masks(self, keep):
    """{(path, weight, axis): 0/1 vector} for each zeroed weight slice.

    Standard form: the axes the wrappers hold masks for. Layer form: every
    top-level slice, applied to the live weights between steps.
    """
    keep_of = self.graph.keep_resolver(resolve_keep(self.graph, keep))
    masks = {}
    for sl in self.graph.weight_slices:
      if not sl.zero or "/" in sl.path:
        continue
      if self.deferred:
        names = [short_weight_name(w.name)
                 for w in self._live_layer(sl.path).weights]
        if sl.weight not in names:
          continue
        size = int(self._live_layer(sl.path).weights[
            names.index(sl.weight)].shape[sl.axis])
      else:
        wrapper = self.wrappers.get(sl.path)
        size = None if wrapper is None else next(
            (d for w, a, d in wrapper.masked
             if (w, a) == (sl.weight, sl.axis)), None)
        if size is None:   # not wrapped, or a group that is not pruned
          continue
      key = (sl.path, sl.weight, sl.axis)
      vec = np.zeros(size, np.float32)
      vec[sl.layout.indices(keep_of)] = 1.0
      masks[key] = masks.get(key, 1.0) * vec
    return masks

  def assign(self, keep):
    self.keep = dict(keep)
    masks = self._slice_masks(keep)
    if self.deferred:
      for g in self.graph.prunable_groups:
        if g.id not in self.group_ids:
          continue
        mask = np.zeros(g.size, np.float32)
        mask[keep.get(g.id, np.arange(g.size))] = 1.0
        for p in g.producers:
          self.wrappers[p].channel_mask.assign(mask)
    else:
      for (path, weight, axis), m in masks.items():
        wrapper = self.wrappers[path]
        i = [(w, a) for w, a, _ in wrapper.masked].index((weight, axis))
        wrapper.mask_vars[i].assign(m)
    self._build_apply(masks)
    self.apply_masks()

  def _build_apply(self, masks):
    """One tf.function that re-zeroes every dropped slice (run per step)."""
    if not self.deferred:
      wrappers = list(self.wrappers.values())
      self._apply_fn = tf.function(
          lambda: [op for w in wrappers for op in w.apply_masks()])
      return
    factors = {}
    for (path, weight, axis), m in masks.items():
      if m.min() >= 1:
        continue
      layer = self._live_layer(path)
      var = next(w for w in layer.weights
                 if short_weight_name(w.name) == weight)
      shape = [1] * len(var.shape)
      shape[axis] = -1
      key = id(var)
      prev = factors.get(key, (var, 1.0))[1]
      factors[key] = (var, prev * m.reshape(shape))
    pairs = [(v, tf.constant(f, v.dtype)) for v, f in factors.values()]
    self._apply_fn = tf.function(
        lambda: [v.assign(v * f) for v, f in pairs]) if pairs else None

  def apply_masks(self):
    if self._apply_fn is not None:
      self._apply_fn()


def current_keep(model, graph=None):
  """{group_id: kept indices} read back from the wrappers' masks."""
  ctl_graph = graph if graph is not None else ChannelGraph(unwrap(model))
  wrappers = {w.layer.name: w for w in _wrapped_layers(model)}
  keep = {}
  for g in ctl_graph.prunable_groups:
    marks = [wrappers[p] for p in g.producers
             if p in wrappers and wrappers[p].deferred and wrappers[p].built]
    if marks and marks[0].channel_mask.shape[0] == g.size:
      mask = marks[0].channel_mask.numpy()
      if mask.min() < 1:
        keep[g.id] = np.flatnonzero(mask > 0.5)
  for sl in ctl_graph.weight_slices:
    w = wrappers.get(sl.path)
    if w is None or not sl.zero or len(sl.layout.segments) != 1:
      continue
    seg = sl.layout.segments[0]
    if seg.repeat != 1:
      continue
    group = ctl_graph.group_of_var(seg.var)
    if not group.prunable or group.id in keep:
      continue
    pairs = [(n, a) for n, a, _ in w.masked]
    if (sl.weight, sl.axis) not in pairs:
      continue
    mask = w.mask_vars[pairs.index((sl.weight, sl.axis))].numpy()
    if mask.size != group.size:
      continue
    if mask.min() < 1:
      keep[group.id] = np.flatnonzero(mask > 0.5)
  return ctl_graph, keep


def strip_channel_pruning(model, materialize=True):  # pylint: disable=redefined-outer-name
  """The trained model without wrappers.

  Args:
    model: a model from `prune_channels` (after training).
    materialize: True (default) returns the physically slim model; False
      the plain model of the original shapes with dropped channels zeroed.
  """
  if not _wrapped_layers(model):
    raise ValueError(f"model {model.name!r} has no ChannelPruneWrapper; was it "
                     "made by tps.prune_channels?")
  graph, keep = current_keep(model)
  plain = graph.model
  if materialize:
    return _materialize(plain, keep, graph=graph)
  masked = mask_channels(plain, keep, graph=graph)
  masked._tps_keep = dict(keep)  # pylint: disable=protected-access
  return masked


_materialize = materialize


class UpdateChannelPruningStep(keras.callbacks.Callback):
  """Advances the pruning step and updates the masks when the schedule says.

  Args:
    data: data for data-dependent criteria, if not given to
      `prune_channels` (scored at each pruning step).
  """

  def __init__(self, data=None):
    super().__init__()
    self.data = data
    self.controller = None
    self.step = 0

  def on_train_begin(self, logs=None):
    self.controller = Controller(self.model, self.data)
    self.step = max(self.controller.step_of(), 0)

  def on_train_batch_begin(self, batch, logs=None):
    self.controller.set_step(self.step)
    if not self.controller.maybe_update(self.step) and (
        tf.distribute.has_strategy() or self.controller.deferred):
      # Optimizer state (momentum) can move masked weights off zero; the
      # wrappers re-mask in their call, except under a distribution
      # strategy, where it is done here between steps.
      self.controller.apply_masks()

  def on_train_batch_end(self, batch, logs=None):
    self.step += 1
    self.controller.batches_seen += 1

  def on_epoch_end(self, epoch, logs=None):
    self.controller.apply_masks()

  def on_train_end(self, logs=None):
    self.controller.apply_masks()
