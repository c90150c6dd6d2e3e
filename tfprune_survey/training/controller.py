"""Controllers: score the channels of a wrapped model and set its masks.

A controller lives for one `fit` (made by `UpdateChannelPruningStep` at
`on_train_begin`) and keeps no Keras state of its own: what must survive a
save (masks, kept channels, the step) is in the wrappers. Two strategies:

- `MaskingController`, for models from `prune_channels(model)`: the
  wrappers hold a mask per weight slice and re-mask their weights in every
  call, inside the training graph.
- `MarkerController`, for layers wrapped by `prune_channels(layer)` inside a
  model definition: the wrappers only mark producers; a group is pruned when
  all its producers are marked, and the controller zeroes every dropped
  slice of every layer (BN, consumers) between steps with one tf.function.

With `soft=True` in the settings (soft filter pruning, He et al. 2018) both
hold no mask at all: each pruning step zeroes the producer slices (kernel
and bias) of the selected channels once, and they stay trainable; only the
kept set (`channel_mask`) is recorded. `finish` ends a `fit` with SFP's
final prune.
"""

import numpy as np

from tfprune_survey import planning
from tfprune_survey import schedules as schedules_lib
from tfprune_survey.frameworks import Framework
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.strip.keep import resolve_keep
from tfprune_survey.training.strip import current_keep
from tfprune_survey.training.strip import sync_weights
from tfprune_survey.training.strip import unwrap
from tfprune_survey.training.wrapper import backend_error
from tfprune_survey.training.wrapper import ChannelPruneWrapper
from tfprune_survey.training.wrapper import registered_class
from tfprune_survey.training.wrapper import wrappers_of


def make_controller(model, data=None):
  """The controller of the wrappers in `model`.

  Args:
    model: a model holding `ChannelPruneWrapper`s.
    data: data for data-dependent criteria, overriding the wrappers'.

  Raises:
    ValueError: when `model` has no wrapper, holds wrappers inside nested
      models (which training-time pruning does not reach), its wrappers
      were given different arguments (layers wrapped one by one), or a criterion that
      needs data has none.
  """
  wrappers = wrappers_of(model)
  if wrappers:
    from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
    fw = frameworks.of(model, "model")
    if fw.backend() != "tensorflow":   # saved on TensorFlow, loaded here
      raise backend_error(
          fw, f"training-time channel pruning of model {model.name!r} "
          "(UpdateChannelPruningStep)")
  nested = _nested_wrappers(model)
  if nested:
    raise ValueError(
        f"model {model.name!r} holds layers wrapped by prune_channels "
        f"inside nested models ({nested}): training-time pruning reaches "
        "only the layers of the model being fit, not those of a model "
        "used as a layer. Wrap layers of the outer model, or prune the "
        "nested model's channels one-shot with tps.prune")
  if not wrappers:
    raise ValueError(f"model {model.name!r} has no ChannelPruneWrapper: "
                     "build it with tps.prune_channels(model, ...)")
  _check_same_settings(model, wrappers)
  if any(w.deferred for w in wrappers):
    return MarkerController(model, wrappers, data)
  return MaskingController(model, wrappers, data)


def final_prune_keep(model, data=None):
  """The kept channels soft pruning's final prune would select in `model`.

  What `UpdateChannelPruningStep.on_train_end` selects (`Controller.finish`)
  from the model's weights at the sparsity of its latest pruning step, for
  a soft-pruned model saved during `fit` (e.g. by ModelCheckpoint); the
  model is not changed, and works on any backend.

  Raises:
    ValueError: the criterion needs data and neither `data` nor the data
      given to `prune_channels` is there.
  """
  from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
  wrappers = wrappers_of(model)
  crit = criteria_lib.deserialize(wrappers[0].settings["criterion"])
  if data is None:
    data = next((w.data for w in wrappers if w.data is not None), None)
  if crit.requires_data and data is None:
    raise ValueError(
        f"model {model.name!r} was saved during a soft-pruning fit, before "
        "the final prune that the end of fit makes (UpdateChannelPruningStep"
        ".on_train_end: the channels are selected once more from the final "
        "weights, which regrew since the last pruning step), and its "
        f"criterion '{crit.name}' needs data to make it: pass it, "
        "tps.strip_channel_pruning(model, data=...), or finish the training "
        "(fit with tps.UpdateChannelPruningStep()) and strip then")
  klass = (MarkerController if any(w.deferred for w in wrappers)
           else MaskingController)
  ctl = klass(model, wrappers, data)
  return ctl.select(ctl.final_sparsity())


def _nested_wrappers(model, prefix=""):
  """The paths of the ChannelPruneWrappers inside `model`'s nested models."""
  found = []
  for layer in getattr(model, "layers", ()):
    if isinstance(layer, ChannelPruneWrapper) or not hasattr(layer, "layers"):
      continue
    path = f"{prefix}{layer.name}/"
    found += [path + w.name for w in wrappers_of(layer)]
    found += _nested_wrappers(layer, path)
  return found


def _check_same_settings(model, wrappers):
  """One controller prunes every wrapper with one criterion, schedule and
  plan: layers wrapped one by one (`prune_channels(layer, ...)`) with other
  arguments would be pruned with the first one's."""
  first = wrappers[0]
  for w in wrappers[1:]:
    if w.settings != first.settings:
      keys = sorted(k for k in set(w.settings) | set(first.settings)
                    if w.settings.get(k) != first.settings.get(k))
      raise ValueError(
          f"the layers of model {model.name!r} wrapped by prune_channels "
          f"were given different arguments: {first.layer.name!r} and "
          f"{w.layer.name!r} differ in {keys} "
          f"({[first.settings.get(k) for k in keys]} and "
          f"{[w.settings.get(k) for k in keys]}). One "
          "UpdateChannelPruningStep prunes all of them with one criterion, "
          "schedule, scope, round_to, min_channels and soft: wrap them with "
          "the same arguments (e.g. in one prune_channels([...]) call)")


def _schedule_of(model, wrappers):
  """The wrappers' schedule.

  A `tps.schedules.PruningSchedule` given to `prune_channels` (kept in
  memory) is used as it is. Otherwise it is rebuilt from the settings, so
  that a tfmot schedule becomes its pure-Python counterpart here, and a
  class of the user's own is looked up in Keras' custom objects; an object
  of an unknown class that was kept in memory is used as it is.
  """
  held = next((w.schedule for w in wrappers if w.schedule is not None), None)
  if isinstance(held, schedules_lib.PruningSchedule):
    return held
  config = wrappers[0].settings["schedule"]
  name = config.get("class_name") if isinstance(config, dict) else None
  custom = {}
  if isinstance(name, str):
    from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
    klass = registered_class(frameworks.of(model, "model"), name)
    if klass is not None and name not in ("ConstantSparsity",
                                          "PolynomialDecay"):
      custom[name] = klass
  try:
    return schedules_lib.deserialize(config, custom_objects=custom)
  except ValueError as e:
    if not str(e).startswith("Unknown pruning schedule class"):
      raise
    if held is not None:
      return held
    raise ValueError(
        f"the pruning schedule of model {model.name!r} is of class "
        f"{name!r}, which is not known in this process: pass it when "
        f"loading the model, load_model(path, custom_objects={{{name!r}: "
        f"{name}}}), or register it with Keras (register_keras_"
        "serializable, or custom_object_scope around fit)") from e


def _ask_schedule(schedule, step):
  """(should_prune, sparsity) of `schedule` at `step`: a bool, and a float
  in [0, 1) when it prunes (None otherwise).

  Raises:
    TypeError: the schedule returned something else than a pair (e.g. a
      learning-rate schedule, which returns one number).
    ValueError: the sparsity is outside [0, 1) or NaN.
  """
  out = schedule(step)
  name = type(schedule).__name__
  try:
    should, sparsity = out
    should = bool(should)
    # The sparsity is read only when pruning (it may be None otherwise).
    sparsity = float(sparsity) if should else None
  except (TypeError, ValueError):
    raise TypeError(
        f"the pruning schedule {name} must return (should_prune, sparsity) "
        f"when called with a step; at step {step} it returned "
        f"{out!r}") from None
  if should and not 0.0 <= sparsity < 1.0:
    raise ValueError(
        f"the pruning schedule {name} returned sparsity {sparsity!r} at step "
        f"{step}: the fraction of channels to remove must be in [0, 1)")
  return should, sparsity


def _kept_first(scores, kept):
  """Scores ranking the channels in `kept` above all others.

  Within each part the order of `scores` (ties to the lower index, as
  `Planner.keep_indices` breaks them) is kept; `kept` None keeps all.
  """
  s = np.asarray(scores)
  if kept is None:
    return s
  rank = np.empty(len(s), np.float64)
  rank[np.argsort(-s, kind="stable")] = np.arange(len(s))
  dropped = np.ones(len(s), bool)
  dropped[np.asarray(kept, int)] = False
  return -(rank + len(s) * dropped)


class Controller:
  """What both strategies share: schedule, scoring, planning, state.

  Args:
    model: the wrapped model.
    wrappers: its `ChannelPruneWrapper`s.
    data: data for data-dependent criteria, or None (then the data given
      to `prune_channels`, else the in-graph statistics).

  Attributes:
    keep: {group_id: kept indices} as set last (read back from the wrappers
      when the controller starts, so a loaded model resumes).
    group_ids: the groups this controller prunes.
    batches_seen: training batches since the last scoring (in-graph
      statistics).
  """

  def __init__(self, model, wrappers, data=None):
    from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
    self.model = model
    self.wrappers = {w.layer.name: w for w in wrappers}
    s = wrappers[0].settings
    self.criterion = criteria_lib.deserialize(s["criterion"])
    self.schedule = _schedule_of(model, wrappers)
    self.scope, self.round_to = s["scope"], s["round_to"]
    self.min_channels = s["min_channels"]
    self.soft = bool(s.get("soft", False))
    self.last_sparsity = None
    if data is None:
      data = next((w.data for w in wrappers if w.data is not None), None)
    self.data = data
    self.in_graph = bool(s.get("in_graph_statistics")) and data is None
    self.batches_seen = 0
    if self.criterion.requires_data and data is None and not self.in_graph:
      raise ValueError(
          f"criterion '{self.criterion.name}' needs data: pass data= to "
          "tps.prune_channels or to tps.UpdateChannelPruningStep")
    self.plain = unwrap(model)
    self.graph = ChannelGraph(self.plain)
    self.group_ids = self._group_ids()
    self.keep = current_keep(model, self.graph)[1]
    self._apply_fn = None
    self._set_step_fn = None
    if not self.soft:   # soft: no mask is held between pruning steps
      self._build_apply(self._slice_masks(self.keep))

  # ---- what the two strategies do differently ---------------------------
  def _group_ids(self):
    raise NotImplementedError

  def _slice_size(self, sl):
    """The size of the masked axis of weight slice `sl`, or None when this
    strategy does not mask it."""
    raise NotImplementedError

  def _assign_slice_masks(self, keep, masks):
    raise NotImplementedError

  def _build_apply(self, masks):
    raise NotImplementedError

  def remask_between_steps(self):
    """Whether the masks must be re-applied between training steps."""
    raise NotImplementedError

  # ---- the step --------------------------------------------------------
  def step_of(self):
    """The pruning step saved in the wrappers (-1 before any training)."""
    return int(next(iter(self.wrappers.values())).pruning_step.numpy())

  def set_step(self, step):
    """Sets every wrapper's pruning step (one tf.function call)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if self._set_step_fn is None:
      steps = [w.pruning_step for w in self.wrappers.values()]
      self._set_step_fn = tf.function(
          lambda s: [v.assign(s) for v in steps])
    self._set_step_fn(tf.constant(step, tf.int64))

  def maybe_update(self, step, first=None):
    """Re-scores and re-masks when the schedule prunes at `step`.

    Args:
      step: the pruning step.
      first: with several steps trained since the last call (Keras'
        `steps_per_execution`), the first of them: the schedule is asked
        about every step from `first` to `step`, and the latest at which
        it prunes is applied (once). Defaults to `step`.

    Returns:
      Whether it did.
    """
    first = step if first is None else min(first, step)
    for s in range(step, first - 1, -1):
      should, sparsity = _ask_schedule(self.schedule, s)
      if should:
        self.last_sparsity = sparsity
        self.update(sparsity)
        return True
    return False

  def finish(self):
    """Soft pruning: the final prune at the end of a `fit`.

    As SFP does after its last epoch, the channels are selected once more
    from the final weights (at the last sparsity) and zeroed everywhere
    `tps.mask_channels` zeroes them (producers, BN, consumers), so the
    wrapped model computes what `strip_channel_pruning` builds. Nothing
    happens for hard masks or before the first pruning step.
    """
    if not self.soft or not self.keep:
      return
    sparsity = self.last_sparsity
    if sparsity is None:   # resumed: nothing pruned in this fit yet
      sizes = {g: self.graph.group(g).size for g in self.group_ids}
      removed = sum(sizes[g] - len(k) for g, k in self.keep.items()
                    if g in sizes)
      sparsity = removed / sum(sizes.values())
    self.update(sparsity)
    self._zero_once(self.keep, roles=None)

  def final_sparsity(self):
    """The sparsity `finish` prunes at: that of the latest step at or
    before the saved one at which the schedule prunes (else the fraction
    the kept sets remove)."""
    for s in range(self.step_of(), -1, -1):
      should, sparsity = _ask_schedule(self.schedule, s)
      if should:
        return sparsity
    sizes = {g: self.graph.group(g).size for g in self.group_ids}
    removed = sum(sizes[g] - len(k) for g, k in self.keep.items()
                  if g in sizes)
    return removed / sum(sizes.values())

  # ---- scoring and planning ---------------------------------------------
  def update(self, sparsity):
    """Scores the channels and keeps the best (1 - sparsity) of them.

    With hard masks the kept channels are chosen among those kept now (a
    dropped channel is zero, so its score says nothing); only a sparsity
    below the last one brings dropped channels back, the best scored.
    """
    keep = self.select(sparsity)
    if keep is not None:
      self.assign(keep)

  def select(self, sparsity):
    """The kept channels `update(sparsity)` sets, without setting them
    (None: in-graph statistics with no batch seen yet)."""
    self.apply_masks()
    sync_weights(self.model, self.plain)
    if self.in_graph:
      if not self.batches_seen:
        return None   # no statistics yet: deferred to the next pruning step
      scores = self._in_graph_scores()
    else:
      from tfprune_survey.scoring import score as score_fn  # pylint: disable=g-import-not-at-top
      scores = score_fn(self.plain, self.criterion, self.data,
                        graph=self.graph)
    scores = {g: s for g, s in scores.items() if g in self.group_ids}
    planner = planning.Planner(self.graph, scores, self.round_to,
                               self.min_channels)
    # Hard masks: a dropped channel is zero and gets no gradient, so its
    # score says nothing (APoZ and entropy can tie it with a live channel
    # that is dead on this data). The channels already dropped go first in
    # the global removal order, and each group's kept channels are chosen
    # among those it keeps now: the kept sets only shrink.
    held = {} if self.soft else {g: k for g, k in self.keep.items()
                                 if g in scores}
    if self.scope == "global":
      order = planner.order
      if held:
        ids = [g.id for g in planner.groups]
        dropped = {(ids.index(g), int(c)) for g, k in held.items()
                   for c in np.setdiff1d(np.arange(len(scores[g])), k)}
        order = sorted(order, key=lambda t: (t[1], t[2]) not in dropped)
      # As tps.prune's global ratio: the fewest channels along the order
      # whose rounded widths (round_to, grouped convs) remove at least
      # the sparsity; rounding each group up could undo every removal.
      counts = planner.counts_removing(int(round(sparsity * planner.total)),
                                       order)
    else:
      counts = planner.counts_local(sparsity)
    if held:
      planner = planning.Planner(
          self.graph, {g: _kept_first(s, held.get(g))
                       for g, s in scores.items()},
          self.round_to, self.min_channels)
    return planner.keep_indices(counts)

  def _in_graph_scores(self):
    from tfprune_survey.criteria.context import ScoringContext  # pylint: disable=g-import-not-at-top
    site = self.criterion.stream_site

    def stats_of(path):
      w = self.wrappers.get(path)
      if w is None or not w.stat_vars:
        return None
      if (w.observe if site == "inputs" else w.observe_output) is None:
        return None
      return w.stats_numpy()
    scores = self.criterion.stream_scores(
        ScoringContext(self.plain, self.graph), stats_of)
    for w in self.wrappers.values():
      if w.stat_vars:
        w.reset_stats()
    self.batches_seen = 0
    return scores

  # ---- masks -------------------------------------------------------------
  def _live_layer(self, path):
    if path in self.wrappers:
      return self.wrappers[path].layer
    return self.model.get_layer(path)

  def _slice_masks(self, keep):
    """{(path, weight, axis): 0/1 vector} for each zeroed weight slice."""
    keep_of = self.graph.keep_resolver(resolve_keep(self.graph, keep))
    masks = {}
    for sl in self.graph.weight_slices:
      if not sl.zero or "/" in sl.path:
        continue
      size = self._slice_size(sl)
      if size is None:
        continue
      key = (sl.path, sl.weight, sl.axis)
      vec = np.zeros(size, np.float32)
      vec[sl.layout.indices(keep_of)] = 1.0
      masks[key] = masks.get(key, 1.0) * vec
    return masks

  def assign(self, keep):
    """Makes `keep` the kept channels: group state, masks, weights."""
    self.keep = dict(keep)
    for gid in self.group_ids:
      g = self.graph.group(gid)
      mask = np.zeros(g.size, np.float32)
      mask[keep.get(gid, np.arange(g.size))] = 1.0
      for name in self._kept_set_holders(g):
        self.wrappers[name].channel_mask.assign(mask)
    if self.soft:
      self._zero_once(keep, roles=("producer",))
      return
    masks = self._slice_masks(keep)
    self._assign_slice_masks(keep, masks)
    self._build_apply(masks)
    self.apply_masks()

  def _zero_once(self, keep, roles):
    """Soft pruning: zeroes the dropped positions of the live weights once.

    Args:
      keep: {group_id: kept indices}.
      roles: the slice roles to zero ('producer': the filters' kernel and
        bias, as SFP's code zeroes the filters only, leaving BN and the
        consumers so that the gradient still reaches a zeroed filter), or
        None for every slice `tps.mask_channels` zeroes.
    """
    keep_of = self.graph.keep_resolver(resolve_keep(self.graph, keep))
    factors = {}
    for sl in self.graph.weight_slices:
      if not sl.zero or "/" in sl.path or (
          roles is not None and sl.role not in roles):
        continue
      size = self._slice_size(sl)
      if size is None:
        continue
      vec = np.zeros(size, np.float32)
      vec[sl.layout.indices(keep_of)] = 1.0
      if vec.min() >= 1:
        continue
      layer = self._live_layer(sl.path)
      var = next(w for w in layer.weights
                 if Framework.short_name(w) == sl.weight)
      shape = [1] * len(var.shape)
      shape[sl.axis] = -1
      prev = factors.get(id(var), (var, 1.0))[1]
      factors[id(var)] = (var, prev * vec.reshape(shape))
    for var, factor in factors.values():
      value = np.asarray(var.numpy())
      var.assign((value * factor).astype(value.dtype))

  def _kept_set_holders(self, group):
    """The wrappers holding `group`'s kept set."""
    w = self.wrappers.get(group.id)
    return [group.id] if w is not None and w.channel_mask is not None else []

  def apply_masks(self):
    """Zeroes the dropped slices of the live weights now (hard masks; a
    no-op for soft pruning)."""
    if self._apply_fn is not None and not self.soft:
      self._apply_fn()


class MaskingController(Controller):
  """For `prune_channels(model)`: the wrappers hold per-slice masks and
  apply them in their own call."""

  def _group_ids(self):
    return list(next(iter(self.wrappers.values())).settings["groups"])

  def _slice_size(self, sl):
    wrapper = self.wrappers.get(sl.path)
    if wrapper is None:   # not wrapped: a group that is not pruned
      return None
    return next((d for w, a, d in wrapper.masked
                 if (w, a) == (sl.weight, sl.axis)), None)

  def _assign_slice_masks(self, keep, masks):
    for (path, weight, axis), m in masks.items():
      wrapper = self.wrappers[path]
      i = [(w, a) for w, a, _ in wrapper.masked].index((weight, axis))
      wrapper.mask_vars[i].assign(m)

  def _build_apply(self, masks):
    if self._apply_fn is not None:
      return   # the wrappers read their mask variables: built once
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    wrappers = list(self.wrappers.values())
    self._apply_fn = tf.function(
        lambda: [op for w in wrappers for op in w.apply_masks()])

  def remask_between_steps(self):
    # Optimizer state (momentum) can move masked weights off zero; the
    # wrappers re-mask in their call, except under a distribution strategy,
    # where it is done between steps (in cross-replica context). Soft
    # pruning holds no mask (the wrappers' mask variables stay at one).
    if self.soft:
      return False
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.distribute.has_strategy()


class MarkerController(Controller):
  """For `prune_channels(layer)`: groups all of whose producers are marked
  are pruned; the dropped slices of every layer are zeroed between steps."""

  def _group_ids(self):
    marked = {n for n, w in self.wrappers.items() if w.deferred}
    ids = [g.id for g in self.graph.prunable_groups
           if set(g.producers) <= marked]
    if not ids:
      raise ValueError(
          "no channel group can be pruned: a group is pruned when every "
          "layer that produces it was wrapped by prune_channels (e.g. "
          f"both convolutions feeding an Add); wrapped: {sorted(marked)}")
    return ids

  def _slice_size(self, sl):
    layer = self._live_layer(sl.path)
    names = [Framework.short_name(w) for w in layer.weights]
    if sl.weight not in names:
      return None
    return int(layer.weights[names.index(sl.weight)].shape[sl.axis])

  def _kept_set_holders(self, group):
    # Every producer records the group's kept set (its output channels).
    return list(group.producers)

  def _assign_slice_masks(self, keep, masks):
    del keep, masks   # applied to the live weights by `_build_apply`

  def _build_apply(self, masks):
    """One tf.function that re-zeroes every dropped slice (run per step)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    factors = {}
    for (path, weight, axis), m in masks.items():
      if m.min() >= 1:
        continue
      layer = self._live_layer(path)
      var = next(w for w in layer.weights
                 if Framework.short_name(w) == weight)
      shape = [1] * len(var.shape)
      shape[axis] = -1
      key = id(var)
      prev = factors.get(key, (var, 1.0))[1]
      factors[key] = (var, prev * m.reshape(shape))
    pairs = [(v, tf.constant(f, v.dtype)) for v, f in factors.values()]
    self._apply_fn = tf.function(
        lambda: [v.assign(v * f) for v, f in pairs]) if pairs else None

  def remask_between_steps(self):
    return not self.soft
