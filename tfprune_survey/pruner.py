"""tps.prune: one-shot structured pruning to a channel or MACs target."""

import dataclasses

import numpy as np

from tfprune_survey import criteria as criteria_lib
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey import planning
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.errors import UnknownSizeError
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.graph.walker import input_layer_paths
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.reconstruct import check_option as check_reconstruct
from tfprune_survey.reconstruct import reconstruct as reconstruct_fn
from tfprune_survey.scoring import score as score_fn
from tfprune_survey.strip import branches
from tfprune_survey.strip.materialize import materialize

SCOPES = planning.SCOPES


@dataclasses.dataclass
class PruneReport:
  """Before/after figures of a pruning run.

  `macs_before` and `macs_after` (and `macs_reduction`) are None for a model
  whose MACs cannot be counted (a free input size, `Input((None, None, 3))`).
  """
  criterion: str
  params_before: int
  params_after: int
  macs_before: int
  macs_after: int
  groups: list  # (group_id, kept, total)
  latency_before_ms: float = None   # measured, with target_latency
  latency_after_ms: float = None
  latency_predicted_ratio: float = None
  latency_replans: int = None       # plans re-made on measured latency

  @property
  def macs_reduction(self):
    if self.macs_before is None or self.macs_after is None:
      return None
    return 1.0 - self.macs_after / self.macs_before

  @property
  def params_reduction(self):
    return 1.0 - self.params_after / self.params_before

  def __str__(self):
    lines = [f"criterion: {self.criterion}",
             f"{'':10s} {'before':>14s} {'after':>14s} {'reduction':>10s}",
             f"{'params':10s} {self.params_before:14,d} "
             f"{self.params_after:14,d} {self.params_reduction:10.1%}",
             (f"{'MACs':10s} {self.macs_before:14,d} {self.macs_after:14,d} "
              f"{self.macs_reduction:10.1%}" if self.macs_reduction is not None
              else f"{'MACs':10s} {'n/a':>14s} {'n/a':>14s} {'n/a':>10s}"
              "  (free input size)")]
    if self.latency_before_ms is not None:
      lines.append(
          f"{'latency ms':10s} {self.latency_before_ms:14.3f} "
          f"{self.latency_after_ms:14.3f} "
          f"{1 - self.latency_after_ms / self.latency_before_ms:10.1%}"
          f"  (predicted {1 - self.latency_predicted_ratio:.1%}"
          + (f"; re-planned {self.latency_replans}x on measured latency"
             if self.latency_replans else "") + ")")
    lines += ["", f"{'group':40s} {'kept':>6s} / {'total':<6s}"]
    for gid, kept, total in self.groups:
      lines.append(f"{gid[:40]:40s} {kept:6d} / {total:<6d}")
    return "\n".join(lines)


@dataclasses.dataclass
class PruneResult:
  """What `tps.prune` returns.

  Attributes:
    model: the materialized slim model, of the input model's Keras.
    keep: {group_id: np.ndarray of kept indices} (pruned groups only).
    report: a `PruneReport` (printable).
    scores: {group_id: scores} the ranking used.
  """
  model: object
  keep: dict
  report: PruneReport
  scores: dict


def _check_recalibrate(model, recalibrate):
  """`recalibrate`, checked now (type and input shape) and per batch, so
  that every error names it, and none comes after the pruning."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  checked = data_lib.checked(model, recalibrate, arg_name="recalibrate")
  if not isinstance(recalibrate, tf.data.Dataset):
    # Numpy data: one batch is a slice, so its type is checked at no cost.
    next(data_lib.iterate_batches(recalibrate, steps=1,
                                  arg_name="recalibrate"))
  return checked


def _count_macs_or_none(model):
  """count_macs(model), or None when a layer's input size is free."""
  try:
    return count_macs(model)
  except UnknownSizeError:
    return None


def _not_a_group(graph, name):
  """Why `name` is no prunable group: which group(s) a layer belongs to."""
  ids = {g.id: g for g in graph.groups}
  if name in ids:
    return f"{name!r} is a group that cannot be pruned ({ids[name].reason})"
  prunable = graph.prunable_groups
  calls = [c for c in graph.calls
           if name in (c.path, c.path.split("/")[-1])]
  if not calls:
    inside = [g.id for g in prunable
              if any(name in m.split("/")[:-1]
                     for m in g.producers + g.consumers + g.params)]
    if any(name in c.path.split("/")[:-1] for c in graph.calls):
      return (f"{name!r} is a nested model"
              + (f", whose layers are in groups {inside}" if inside else
                 ", with no prunable group"))
    inputs = input_layer_paths(graph.model)
    if name in inputs or name in {p.split("/")[-1] for p in inputs}:
      return f"{name!r} is an input layer, with no channels to prune"
    return f"{name!r} is no group or layer of the model"
  paths = {c.path for c in calls}
  # The groups the layer writes or carries per-channel parameters of...
  owned = [g.id for g in prunable
           if paths & (set(g.producers) | set(g.params))]
  if owned:
    return (f"{name!r} is a layer of group{'s' * (len(owned) > 1)} " +
            ", ".join(repr(gid) for gid in owned))
  # ... else the groups whose channels it passes on (ReLU, pooling, ...).
  passed = []
  for c in calls:
    for value in c.inputs:
      for var in (value.variables() if value is not None else ()):
        try:
          gid = graph.group_of_var(var).id
        except KeyError:
          continue
        if gid in {g.id for g in prunable} and gid not in passed:
          passed.append(gid)
  if passed:
    return (f"{name!r} is a layer that passes on the channels of "
            f"group{'s' * (len(passed) > 1)} " +
            ", ".join(repr(gid) for gid in passed))
  return f"{name!r} is a layer of no prunable group"


def _live_ids(original_graph, graph):
  """({original group id: [live group ids]}, {live id: caller's id}).

  A group's id is the name of its first producer: when that producer lies
  in a dropped (dead) branch, the same group is named after another of its
  producers in the model without the branch. Groups are matched by the
  producers they keep. A live group goes back to its original id when it
  is the only live part of exactly one original group.
  """
  old_of = {p: g.id for g in original_graph.prunable_groups
            for p in g.producers}
  to_live, olds_of = {}, {}
  for g in graph.prunable_groups:
    olds = []
    for p in g.producers:
      oid = old_of.get(p)
      if oid is not None and oid not in olds:
        olds.append(oid)
        to_live.setdefault(oid, []).append(g.id)
    olds_of[g.id] = olds
  live = {g.id for g in graph.prunable_groups}
  to_caller = {}
  for gid, olds in olds_of.items():
    if len(olds) == 1 and to_live[olds[0]] == [gid]:
      to_caller[gid] = olds[0]
  # A rename must not take an id another live group keeps.
  to_caller = {gid: oid for gid, oid in to_caller.items()
               if oid == gid or oid not in live}
  return to_live, to_caller


def _rename_tables(latency, to_live, graph):
  """`latency` with its group ids (the caller's model's) replaced by the
  ids of the model without the dead branches."""
  if all(v == [k] for k, v in to_live.items()):
    return latency
  producer_of = {p: g.id for g in graph.prunable_groups for p in g.producers}

  def one(oid, layer_name):
    ids = to_live.get(oid)
    if not ids:
      return oid
    if len(ids) > 1 and producer_of.get(layer_name) in ids:
      return producer_of[layer_name]
    return ids[0]

  layers = [dataclasses.replace(
      l, in_axis=[[one(g, l.name), n, r] for g, n, r in l.in_axis],
      out_axis=[[one(g, l.name), n, r] for g, n, r in l.out_axis])
            for l in latency.layers]
  steps = {}
  for oid, step in latency.steps.items():
    for gid in to_live.get(oid, [oid]):
      steps.setdefault(gid, step)
  return type(latency)(layers, fixed_ms=latency.fixed_ms, arch=latency.arch,
                       runtime=latency.runtime, steps=steps,
                       measured_ms=latency.measured_ms,
                       seconds=latency.seconds)


def _without_dead_layers(latency, dropped, target, to_live=None, graph=None):
  """(tables of the layers not in `dropped`, the target cut of them).

  The target is the fraction of the live tables' prediction to remove so
  that the whole model's prediction (`latency`'s, dead branches included)
  loses `target`; at most 0 when dropping the dead layers is enough.
  """
  if not dropped:
    return latency, target
  from tfprune_survey.latency import LatencyModel  # pylint: disable=g-import-not-at-top
  gone = set(dropped)
  live = LatencyModel(
      [l for l in latency.layers if l.name.split("/")[0] not in gone],
      fixed_ms=latency.fixed_ms, runtime=latency.runtime,
      steps=latency.steps)
  if to_live is not None:
    # The tables name the caller's groups; the planner names the live ones.
    live = _rename_tables(live, to_live, graph)
  full, live_full = latency.predict_counts({}), live.predict_counts({})
  if live_full <= 0:
    return live, 0.0
  return live, 1.0 - (1.0 - target) * full / live_full


class _dead_branches_in_message:  # pylint: disable=invalid-name
  """Gives an unreachable `target_latency` planned on the live tables in
  the figures of the whole model (dead branches included)."""

  def __init__(self, latency, live_latency, target):
    self.dead = live_latency is not latency   # the same: nothing dropped
    self.full = latency.predict_counts({})
    self.live_full = live_latency.predict_counts({})
    self.target = target

  def __enter__(self):
    return self

  def __exit__(self, kind, e, tb):
    if not self.dead or not isinstance(e, planning.UnreachableTargetError):
      return False
    best = 1.0 - (1.0 - e.best) * self.live_full / self.full
    raise planning.UnreachableTargetError(
        e.argument, self.target, best, e.quantity, e.limits,
        note=" (the residual branches scaled by 0, which are dropped, "
        "included)") from None


# Kept importable for code written against the private names.
_check_int = planning.check_int
_Planner = planning.Planner
_search_macs = planning.search_macs


def prune(model, criterion, *, data=None, ratio=None, target_macs=None,
          ratios=None, scope="global", round_to=1, min_channels=1, ignore=(),
          reduction=None, steps=None, recalibrate=None, reconstruct=None,
          target_latency=None, latency=None, latency_scale="mean",
          verbose=0):
  """Scores, ranks and removes channels in one shot; returns a slim model.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3. Not
      modified. Residual branches scaled by exactly 0 (a shared
      `ChannelScale`, SSS) are dropped, as `materialize` does: targets are
      fractions of the whole model's MACs or latency, the dropped branches'
      share included (a target below that share prunes nothing more), and
      `keep`, `scores` and the report name only the groups of the slim
      model, by their ids in `model` (so `tps.materialize(model, keep)`
      gives `.model`); `ratios` and `ignore` take `model`'s group ids and
      layer names, the dropped ones included (ignoring a dropped layer
      leaves its group in `model` whole).
    criterion: a name from `tps.criteria.names()` or a Criterion instance.
    data: data for data-dependent criteria (see `tps.score`); its input
      shape, and for 'taylor' and 'taylor_fo' its labels, are checked
      against the model before any scoring.
    ratio: fraction of the prunable channels to remove, in [0, 1). With
      scope='global' and `round_to` or grouped convs, the fewest channels
      along the ranking whose rounded widths remove at least that fraction
      (or all that `min_channels` and `round_to` allow, where less).
    target_macs: fraction of the model's MACs to remove, in (0, 1). Reached
      by removing the lowest-ranked channels with MACs re-counted after each
      step (binary search over the ranking), within 2% of the model's MACs
      where the rounding allows.
    ratios: {group_id: fraction of that group's channels to remove}, e.g.
      from `tps.ratios_from_sensitivity`; groups not named keep all their
      channels. Exactly one of `ratio`, `target_macs`, `ratios` and
      `target_latency` is given, or `ratios` with `target_latency`: then
      the named groups lose exactly their fractions (as Torch-Pruning's
      per-layer ratios do beside a global target), their cuts count
      towards the latency goal, and the other groups are allocated by
      latency.
    target_latency: fraction of the model's measured float TFLite latency
      to remove, in (0, 1), as NetAdapt (Yang et al. 2018) and HALP (Shen
      et al. 2022) do: channels go where the criterion's score lost per
      millisecond saved is lowest (see `latency_scale`), widths snap to
      the latency staircase, and the slim model is measured at the end
      (`report.latency_*`).
      Needs scope='global'.
    latency: a `tps.latency.LatencyModel` of `model` for `target_latency`
      (an error without it); by default one is measured here (LiteRT, 1
      thread, cached on disk).
    latency_scale: how `target_latency` counts one group's scores against
      another's: 'mean' (default; each group's scores normalised to mean 1)
      or 'producers' (those times the number of layers producing the
      group's channels, as HALP sums a coupled group's importance; it
      spares residual streams, and was faster at equal MACs on trained
      ResNet-20 and MobileNetV2). See `tps.latency.search_latency`.
    scope: 'global' ranks normalised scores across groups (each group's
      scores divided by their mean absolute value); 'local' removes the same
      fraction from every group (with `target_macs`, groups take turns
      losing their lowest-ranked channel, so fractions stay within one
      channel of each other). Defaults to 'global'.
    round_to: kept counts are multiples of this (hardware-friendly widths);
      'auto' (with `target_latency`) takes each group's step from the
      LatencyModel. Defaults to 1.
    min_channels: every group keeps at least this many channels (rounded
      up to a multiple of `round_to`). A group with fewer channels than
      that is clipped, not an error: it keeps all its channels and is not
      pruned. Defaults to 1.
    ignore: a layer name or a sequence of layer names whose groups are left
      whole; a nested model's name leaves whole every group of its layers.
      A layer's path ('conv', 'outer/inner/conv') means that layer only; a
      name that is no path ('inner', 'conv') means every layer or nested
      model of that own name. An InputLayer's name is accepted and leaves
      nothing whole (the model's input channels are never pruned).
      Defaults to ().
    reduction: optional override of the criterion's reduction ('mean',
      'sum' or 'max') across coupled layers.
    steps: optional maximum number of data batches for scoring, an int >= 1
      (checked for every criterion).
    recalibrate: optional data (as for `data`) on which the slim model's
      BatchNormalization statistics are re-estimated after materializing
      (`tps.recalibrate_bn`). Recommended before judging its accuracy.
    reconstruct: True, or a dict of `tps.reconstruct` options (`samples`,
      `positions_per_sample`, `ridge`, `steps`, `seed`), to re-fit every
      consumer of a pruned group by least squares on `data` after
      materializing (ThiNet; He et al. 2017), before any recalibration.
      Needs `data`. Defaults to None (no re-fit).
    verbose: 1 shows a progress bar while data is scored.

  Returns:
    A `PruneResult` with `.model` (materialized), `.keep` and `.report`.

  Raises:
    TypeError: for an argument of the wrong type (e.g. ratio='half',
      round_to=2.5, ignore=5, scope=None), or a model of neither Keras.
    ValueError: for a value out of range (a ratio outside [0, 1), a
      target_macs or target_latency outside (0, 1), round_to or
      min_channels below 1, a round_to string other than 'auto'), not
      exactly one of ratio, target_macs, ratios
      and target_latency (or ratios with target_latency), an unknown scope,
      layer,
      group or criterion, missing data, data whose input shape or labels do
      not fit the model, scores that are not finite (NaN or inf in the data
      or the weights), or an unreachable target (the message gives the
      largest reachable and what limits it; target_macs and target_latency
      are checked before any data is scored); `target_macs` for a model of
      free input size (its MACs cannot be counted; `ratio` and `ratios` work, and the
      report's MACs are None); with `target_latency`: scope='local', round_to=
      'auto' without it, or a `latency` of another architecture; a
      `latency` or a `latency_scale` other than 'mean' without
      `target_latency`, or an unknown `latency_scale`.
    UnsupportedModelError: for a subclassed or unbuilt model.
  """
  frameworks.check_model(model)
  from tfprune_survey import latency_planning as latency_lib  # pylint: disable=g-import-not-at-top
  args = planning.check_plan_args(
      ratio=ratio, target_macs=target_macs, ratios=ratios, scope=scope,
      round_to=latency_lib.check_round_to(round_to, target_latency),
      min_channels=min_channels, ignore=ignore, target_latency=target_latency)
  ratio, target_macs, ratios = args.ratio, args.target_macs, args.ratios
  if steps is not None:
    # Checked here too: a criterion that reads no data never looks at it.
    steps = planning.check_int(steps, "steps", 1)
  if latency is not None and target_latency is None:
    raise ValueError(
        "`latency` (a tps.latency.LatencyModel) is used only with "
        f"`target_latency`; got latency={latency!r:.80} without it. Pass "
        "target_latency=<fraction of latency to remove>, or drop `latency`")
  latency_lib.check_scale(latency_scale, "latency_scale")
  if latency_scale != "mean" and target_latency is None:
    raise ValueError(
        f"`latency_scale`={latency_scale!r} weighs groups for "
        "`target_latency` only; pass target_latency=<fraction of latency to "
        "remove>, or drop `latency_scale`")
  scope, ignore = args.scope, args.ignore
  crit = criteria_lib.get(criterion)
  if reduction is not None:
    crit = type(crit).from_config({**crit.get_config(),
                                   "reduction": reduction})
  if recalibrate is not None:
    recalibrate = _check_recalibrate(model, recalibrate)
  if ratios is None or target_latency is not None:
    # With target_latency the groups `ratios` leaves out are still weighed
    # against each other.
    planning.check_local_only(crit, scope)
  refit = check_reconstruct(reconstruct, data)
  # Residual branches scaled by exactly 0 (SSS) add nothing and materialize
  # drops them: plan, score and count on the model without them (as
  # cluster_prune and iterative_prune do), so that their MACs are not
  # counted as still to cut. `dead_groups` are the model's groups that lie
  # wholly in them (`ratios` may name them: they go whole).
  original, original_graph = model, None
  model, dropped = branches.remove_dead_branches(model)
  graph = ChannelGraph(model)
  dead_groups = set()
  # The caller's model's group ids <-> those of the model without the dead
  # branches (they differ where a group's first producer was dropped).
  to_live, to_caller = {}, {}
  if dropped:
    original_graph = ChannelGraph(original)
    dead_groups = {g.id for g in original_graph.prunable_groups
                   if set(g.producers) <= set(dropped)}
    to_live, to_caller = _live_ids(original_graph, graph)
  if ratios is not None:
    ratios = {gid: r for gid, r in ratios.items() if gid not in dead_groups}
    known = [g.id for g in graph.prunable_groups]
    live_ratios, unknown = {}, []
    for gid, r in ratios.items():
      if gid in to_live:          # a group id of the caller's model
        live_ratios.update({lid: r for lid in to_live[gid]})
      elif gid in known:          # an id of the model without the branches
        live_ratios[gid] = r
      else:
        unknown.append(gid)
    if unknown:
      caller_known = ([to_caller.get(gid, gid) for gid in known]
                      if dropped else known)
      raise ValueError(
          f"`ratios` names {unknown}, which are not prunable groups: " +
          "; ".join(_not_a_group(original_graph or graph, name)
                    for name in unknown) +
          f"; ratios are keyed by group id (prunable: {caller_known})")
    ratios = live_ratios
  # A name is a layer's path ('conv', 'outer/inner/conv') or a nested
  # model's ('outer/inner'), and then means that layer or every layer in that
  # model; a name that is no path is a layer's or nested model's own name
  # ('inner', 'conv') at any depth.
  paths = set()
  for c in graph.calls:
    parts = c.path.split("/")
    paths |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
  # An InputLayer is a layer of the model (model.get_layer finds it) but no
  # layer call: it is a known name whose channels (the model's input) are
  # never pruned, so it leaves nothing whole.
  paths |= input_layer_paths(model)
  # Layers of dead branches are known names; they go whole anyway.
  paths |= set(dropped)
  own_names = {part for p in paths for part in p.split("/")}
  unknown = [name for name in ignore
             if name not in paths and name not in own_names]
  if unknown:
    # A split group's id ('conv:2') is no layer name; say whose it is.
    ids = {g.id: g for g in graph.groups}
    raise ValueError(
        f"`ignore` names unknown layers {unknown}: " + "; ".join(
            f"{name!r} is a group id, not a layer name: name its layers "
            "(" + ", ".join(repr(p) for p in ids[name].producers) + ")"
            if name in ids else f"{name!r} is no layer of the model"
            for name in unknown) +
        "; `ignore` takes layer names or paths")
  by_path = {name for name in ignore if name in paths}
  by_name = set(ignore) - by_path

  def is_ignored(path):
    return (any(path == n or path.startswith(n + "/") for n in by_path) or
            bool(by_name.intersection(path.split("/"))))

  def members_ignored(gid, in_graph=graph):
    g = in_graph.group(gid)
    return any(is_ignored(m)
               for m in set(g.producers) | set(g.consumers) | set(g.params))

  if dropped and ignore:
    # A dropped layer's group in the caller's model may reach live layers
    # (an Add couples the branch to the other side): those go whole too.
    ignored_live = {lid for oid, lids in to_live.items()
                    if members_ignored(oid, original_graph) for lid in lids}
    live_ignored = members_ignored
    members_ignored = lambda gid: gid in ignored_live or live_ignored(gid)  # pylint: disable=unnecessary-lambda-assignment

  # Everything that does not depend on the scores is checked before data
  # is read: scoring may take long.
  for gid in ratios or ():
    if members_ignored(gid):
      raise ValueError(f"`ratios` names group {to_caller.get(gid, gid)!r}, "
                       "which is left whole "
                       "by `ignore`")
  if target_latency is not None and latency is not None:
    from tfprune_survey.latency import LatencyModel  # pylint: disable=g-import-not-at-top
    if not isinstance(latency, LatencyModel):
      raise TypeError("`latency` must be a tps.latency.LatencyModel, got "
                      f"{type(latency).__name__}")
    latency.check(original, original_graph or graph)
  macs_before = _count_macs_or_none(original)
  if macs_before is None and target_macs is not None:
    try:
      count_macs(original)
    except ValueError as e:
      raise ValueError(f"`target_macs` needs the model's MACs: {e}; or give "
                       "`ratio` or `ratios`") from None
  left_whole = {g.id: "by `ignore`" for g in graph.prunable_groups
                if members_ignored(g.id)}
  if target_macs is not None:
    # Reachable at best when every group not ignored is scored.
    macs_model = MacsModel(model, graph)
    planning.check_reachable(
        planning.Planner(graph, {g.id: np.zeros(g.size)
                                 for g in graph.prunable_groups
                                 if g.id not in left_whole},
                         args.round_to, args.min_channels, names=to_caller),
        macs_model, macs_before, target_macs, left_whole)
  if target_latency is not None and not graph.prunable_groups:
    raise ValueError(
        f"`target_latency`={target_latency} is unreachable: the model has no "
        "prunable channel group (ChannelGraph(model).prunable_groups is "
        "empty)")
  if target_latency is not None and len(left_whole) == len(
      graph.prunable_groups):
    raise ValueError(
        f"`target_latency`={target_latency} is unreachable: `ignore` leaves "
        f"every prunable group whole "
        f"({sorted(to_caller.get(g, g) for g in left_whole)})")
  if target_latency is not None:
    if latency is None:
      # Measured before scoring, so that the reachability check below comes
      # before any data is read.
      from tfprune_survey.latency import LatencyModel  # pylint: disable=g-import-not-at-top
      latency = LatencyModel.measure(original, verbose=verbose)
      latency.check(original, original_graph or graph)
    # Planned on the tables of the layers materialize keeps, for the cut
    # of the whole model's latency that is left once the dead branches
    # are dropped (<= 0: dropping them is enough).
    live_latency, live_target = _without_dead_layers(
        latency, dropped, args.target_latency, to_live, graph)
    # Reachable at best when every group not ignored is scored.
    floor_planner = planning.Planner(
        graph, {g.id: np.zeros(g.size) for g in graph.prunable_groups
                if g.id not in left_whole}, args.round_to, args.min_channels,
        names=to_caller)
    if live_target > 0:
      with _dead_branches_in_message(latency, live_latency,
                                     args.target_latency):
        latency_lib.check_reachable(
            floor_planner, live_latency, live_target, round_to,
            None if ratios is None else {
                gid: n for gid, n in floor_planner.counts_per_group(
                    ratios).items() if gid in ratios}, left_whole)
  scores = score_fn(model, crit, data, steps=steps, graph=graph,
                    verbose=verbose)
  for gid in list(scores):
    if members_ignored(gid):
      del scores[gid]
  left_whole.update({g.id: f"no '{crit.name}' scores"
                     for g in graph.prunable_groups
                     if g.id not in scores and g.id not in left_whole})

  for gid in ratios or ():
    if gid not in scores:
      raise ValueError(f"`ratios` names group {to_caller.get(gid, gid)!r}, "
                       "which has no "
                       f"'{crit.name}' scores (nothing to read for it)")
  planner = planning.Planner(graph, scores, args.round_to, args.min_channels,
                             names=to_caller)
  if target_latency is not None:
    fixed = None if ratios is None else {
        gid: n for gid, n in planner.counts_per_group(ratios).items()
        if gid in ratios}
    # `latency` was checked, and `scope`, before scoring.

    def replan(goal):
      # `goal` is a fraction of the whole prediction (dead branches too).
      _, live_goal = _without_dead_layers(latency, dropped, goal, to_live,
                                          graph)
      if live_goal <= 0:
        return {**{g.id: g.size for g in planner.groups}, **(fixed or {})}
      with _dead_branches_in_message(latency, live_latency, goal):
        return latency_lib.search_latency(planner, live_latency, live_goal,
                                          round_to, fixed,
                                          left_whole=left_whole,
                                          scale=latency_scale)

    counts = replan(args.target_latency)
  elif ratios is not None:
    counts = planner.counts_per_group(ratios)
  elif ratio is not None:
    counts = (planner.counts_removing(int(round(ratio * planner.total)))
              if scope == "global" else planner.counts_local(ratio))
  else:
    counts = planning.search_macs(planner, macs_model, macs_before,
                                  target_macs, scope, left_whole)
  keep = planner.keep_indices(counts)
  slim = materialize(model, keep, graph=graph)
  if target_latency is not None:
    whole = latency.predict_counts({})
    counts, slim, latency_fields = latency_lib.plan_to_measured(
        original, latency, args.target_latency, replan,
        lambda c: materialize(model, planner.keep_indices(c), graph=graph),
        lambda c: live_latency.predict_counts(c) / whole, counts, slim,
        verbose)
    keep = planner.keep_indices(counts)
  if refit is not None:
    slim = reconstruct_fn(slim, model, data, keep=keep, verbose=verbose,
                          **refit)
  if recalibrate is not None:
    recalibrate_bn(slim, recalibrate)
  report = PruneReport(
      criterion=crit.name or type(crit).__name__,
      params_before=int(original.count_params()),
      params_after=int(slim.count_params()),
      macs_before=macs_before,
      macs_after=None if macs_before is None else count_macs(slim),
      groups=[(g.id, counts.get(g.id, g.size), g.size)
              for g in graph.prunable_groups],
      **(latency_fields if target_latency is not None else {}))
  if to_caller:
    # Named as in the caller's model, so that tps.materialize(model, keep)
    # (which drops the dead branches too) gives result.model.
    rename = lambda gid: to_caller.get(gid, gid)  # pylint: disable=unnecessary-lambda-assignment
    keep = {rename(gid): v for gid, v in keep.items()}
    scores = {rename(gid): v for gid, v in scores.items()}
    report.groups = [(rename(gid), kept, total)
                     for gid, kept, total in report.groups]
  return PruneResult(slim, keep, report, scores)

