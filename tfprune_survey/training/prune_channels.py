"""prune_channels: tfmot's prune_low_magnitude, for whole channels."""

from tfprune_survey import frameworks
from tfprune_survey import planning
from tfprune_survey import schedules as schedules_lib
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.training.wrapper import ChannelPruneWrapper


def default_schedule():
  """tfmot's default: ConstantSparsity(0.5, begin_step=0, frequency=100)."""
  return schedules_lib.ConstantSparsity(0.5, begin_step=0)


def check_backend(fw):
  """Training-time pruning runs in TensorFlow graphs: raise elsewhere."""
  backend = fw.backend()
  if backend != "tensorflow":
    raise NotImplementedError(
        f"training-time channel pruning (prune_channels) needs the "
        f"TensorFlow backend, and Keras 3 runs on the '{backend}' backend "
        "here (KERAS_BACKEND). Prune one-shot instead: slim = "
        "tps.prune(model, criterion, ratio=... or target_macs=...).model, "
        "then fine-tune `slim` with model.fit; or set KERAS_BACKEND="
        "tensorflow.")


def prune_channels(to_prune, criterion="l1", pruning_schedule=None, *,
                   data=None, scope="global", round_to=1, min_channels=1,
                   pruning_policy=None, soft=False):
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

  Works with tf_keras and with Keras 3 on the TensorFlow backend; the
  wrappers are of the model's (or layer's) own Keras.

  Args:
    to_prune: a Sequential/Functional model of tf_keras or Keras 3 (not
      mutated), a layer, or a list of layers.
    criterion: a name from `tps.criteria.names()` or a Criterion. Defaults
      to 'l1'.
    pruning_schedule: a pruning schedule: `tps.schedules.ConstantSparsity`,
      `tps.schedules.PolynomialDecay`, one of tfmot's, or any object with
      `schedule(step) -> (should_prune, sparsity)` and `get_config()`.
      Defaults to `tps.schedules.ConstantSparsity(0.5, begin_step=0)`
      (frequency 100), as in tfmot.
    data: optional data for data-dependent criteria, read in one extra pass
      at each pruning step. Without it, `apoz`, `entropy`, `variance` and
      `taylor` collect their statistics from the training batches
      themselves, inside the training graph (the wrappers of the layers
      that read each feature map keep running statistics; `taylor` reads
      dL/dY on the backward pass), and so does `taylor_fo` (per batch,
      (sum of dL/dY * Y)^2 over the output Y of the BN or filter holding
      the parameters, which equals (sum of g * w)^2 over them). They are
      reset after each pruning step, and a pruning step with no batch seen
      since is deferred to the next. The layer form needs `data`. Kept in
      memory only: pass it to `UpdateChannelPruningStep` after loading.
    scope, round_to, min_channels: as in `tps.prune`.
    pruning_policy: optional collection of layer names; only groups whose
      producers include one of them are pruned. An InputLayer's name is
      accepted and selects nothing (the model's input channels are never
      pruned).
    soft: False (default) holds hard masks: a dropped channel stays zero
      (re-masked in every training step) and the selection only grows.
      True is soft filter pruning (He, Kang, Dong, Fu, Yang 2018, "Soft
      filter pruning for accelerating deep convolutional neural networks",
      IJCAI): at each pruning step the channels are selected afresh from
      the current weights and the producer slices (kernel, bias) of the
      selected ones are zeroed once, as SFP's code zeroes the filters; they
      stay trainable (no mask is held, BN and consumer slices are left so
      the gradient reaches them), so a channel can come back at a later
      step. At the end of each `fit` the selection is made once more from
      the final weights and zeroed everywhere (BN, consumers: SFP's final
      prune), so the model computes what `strip_channel_pruning` builds. A
      later `fit` (or one resumed from a saved model) goes on pruning
      softly from that model, but a channel zeroed everywhere gets no
      gradient (ReLU's is 0 at 0), so soft pruning is meant to run in one
      `fit`, as SFP trains. A filter zeroed before any training (BN beta
      still 0) likewise only moves through optimizer momentum: start the
      schedule after some training. With `criterion='fpgm'` this is
      FPGM's own schedule: He, Liu, Wang, Hu, Yang (2019) prune softly as
      SFP does. SFP prunes once per epoch: use a schedule whose `frequency`
      is the number of steps per epoch.

  Returns:
    A new model of the same Keras with wrapped layers, weights copied; or
    the wrapper(s) of the given layer(s).

  Raises:
    TypeError: for a schedule that is not one, or an argument of the wrong
      type.
    ValueError: for a bad argument value, unknown `pruning_policy` layers,
      a model with nothing to prune, a model that already holds
      `ChannelPruneWrapper`s, a data criterion without `data` that
      cannot read the training batches (and any in the layer form), or
      `data` whose input shape or labels do not fit the model.
    NotImplementedError: for Keras 3 on the JAX or PyTorch backend.
  """
  if isinstance(to_prune, (list, tuple)) or _is_plain_layer(to_prune):
    return _wrap_layers(to_prune, criterion, pruning_schedule, data, scope,
                        round_to, min_channels, soft)
  fw = frameworks.check_model(to_prune, "to_prune")
  check_backend(fw)
  _check_not_wrapped(to_prune)
  crit, schedule, args = _check_args(criterion, pruning_schedule, scope,
                                     round_to, min_channels)
  soft = _check_soft(soft)
  graph = ChannelGraph(to_prune)
  groups = graph.prunable_groups
  if pruning_policy is not None:
    wanted = set(planning.check_names(pruning_policy, "pruning_policy"))
    # An InputLayer is a layer of the model (get_layer finds it) but no
    # layer call: a known name that selects nothing (the model's input
    # channels are never pruned), as in tps.prune's `ignore`.
    from tfprune_survey.graph.walker import input_layer_paths  # pylint: disable=g-import-not-at-top
    names = {c.path for c in graph.calls} | input_layer_paths(to_prune)
    unknown = sorted(wanted - names)
    if unknown:
      raise ValueError(f"`pruning_policy` names unknown layers {unknown}")
    selected = [g for g in groups if wanted & set(g.producers)]
    if not selected:
      producers = sorted({p for g in groups for p in g.producers})
      raise ValueError(
          f"`pruning_policy` {sorted(wanted)} selects no prunable channel "
          "group: a group is selected by naming a layer that produces its "
          "channels (a convolution or Dense, not its BatchNormalization, "
          "activation or pooling); the producers of prunable groups are "
          f"{producers}")
    groups = selected
  # Layers inside nested models are not wrapped (clone_model does not
  # descend into them), so groups that reach into one stay whole.
  nested = {graph.root_of(seg.var) for sl in graph.weight_slices
            if "/" in sl.path for seg in sl.layout.segments}
  if groups and all(g.root in nested for g in groups):
    raise ValueError(
        f"every channel group of model {to_prune.name!r} that would be "
        "pruned reaches into a nested model, and those stay whole in "
        "training-time pruning: prune one-shot with tps.prune instead")
  groups = [g for g in groups if g.root not in nested]
  if not groups:
    raise ValueError(f"model {to_prune.name!r} has no prunable channel group "
                     "to prune")
  masked = _masked_slices(to_prune, graph, {g.root for g in groups}, fw)
  # The first producer of each group (named as the group) holds its kept set.
  owners = {g.id: g.size for g in groups}
  observe, observe_output, sides = _observed(to_prune, graph, groups, crit,
                                             data, masked)
  in_graph = bool(observe or observe_output)
  _check_data(to_prune, crit, data, in_graph)
  settings = _settings(crit, schedule, args, sorted(owners), in_graph, soft)

  def clone(layer):
    fresh = type(layer).from_config(layer.get_config())
    name = getattr(layer, "name", None)
    if name in masked or name in owners or name in observe:
      return ChannelPruneWrapper(
          fresh, masked.get(name, []), settings, observe=observe.get(name),
          observe_at=sides.get(name, "input"),
          observe_output=observe_output.get(name),
          group_channels=owners.get(name), data=data, schedule=schedule)
    return fresh

  wrapped = fw.keras.models.clone_model(to_prune, clone_function=clone)
  for layer in to_prune.layers:
    if not layer.weights:   # (Keras 3's clone_model renames InputLayers)
      continue
    wrapped_name = (f"chprune_{layer.name}" if layer.name in masked or
                    layer.name in owners or layer.name in observe
                    else layer.name)
    target = wrapped.get_layer(wrapped_name)
    inner = target.layer if isinstance(target, ChannelPruneWrapper) else target
    inner.set_weights(layer.get_weights())
  return wrapped


def _check_not_wrapped(model):
  """A model from prune_channels (or with its wrappers) is not wrapped
  again: its wrappers would hide every group (as tfmot refuses to wrap a
  pruning wrapper)."""
  wrapped = [layer.name for layer in model.layers
             if isinstance(layer, ChannelPruneWrapper)]
  if wrapped:
    raise ValueError(
        f"model {model.name!r} already holds channel pruning wrappers "
        f"{wrapped}: pass the model before tps.prune_channels, or "
        "tps.strip_channel_pruning(model) first")


def _is_plain_layer(obj):
  name = frameworks.detect(obj)
  if name is None:
    return False
  fw = frameworks.get(name)
  return fw.is_layer(obj) and not fw.is_model(obj)


def _check_args(criterion, schedule, scope, round_to, min_channels):
  from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
  args = planning.check_plan_args(scope=scope, round_to=round_to,
                                  min_channels=min_channels, target="none")
  crit = criteria_lib.get(criterion)
  planning.check_local_only(crit, args.scope)
  if schedule is None:
    schedule = default_schedule()
  if not schedules_lib.is_schedule(schedule):
    raise TypeError(
        "`pruning_schedule` must be a PruningSchedule (e.g. tps.schedules."
        "ConstantSparsity or PolynomialDecay, or a tfmot schedule): an object "
        "with schedule(step) -> (should_prune, sparsity) and get_config(); "
        f"got {type(schedule).__name__}")
  return crit, schedule, args


def _masked_slices(model, graph, roots, fw):
  """{layer name: [(weight, axis, size)]} of the zeroed slices to mask."""
  masked = {}
  for sl in graph.weight_slices:
    if not sl.zero or "/" in sl.path:
      continue
    if not any(graph.root_of(seg.var) in roots for seg in sl.layout.segments):
      continue
    layer = model.get_layer(sl.path)
    found = fw.find_weight(layer, sl.weight)
    if found is None:
      raise ValueError(f"layer {sl.path!r} has no weight {sl.weight!r} "
                       f"(it has {[w.name for w in layer.weights]})")
    entry = (found[1], sl.axis, int(layer.weights[found[0]].shape[sl.axis]))
    masked.setdefault(sl.path, [])
    if entry not in masked[sl.path]:
      masked[sl.path].append(entry)
  return masked


def _observed(model, graph, groups, crit, data, masked):
  """In-graph statistics: {layer: feature-map width}, {layer: output width}
  and {layer: 'input' | 'output'} (where the feature map is read) of the
  wrappers that keep them (none when `data` is given), as the criterion's
  streaming protocol (`stream_site`, `stream_layers`, `stream_sides`) says.
  A layer observed at its output (e.g. the ReLU before a pooling) is
  wrapped even when it has no weight to mask."""
  from tfprune_survey.criteria.context import ScoringContext  # pylint: disable=g-import-not-at-top
  observe, observe_output = {}, {}
  if data is not None or crit.stream_site is None:
    return observe, observe_output, {}
  ctx = ScoringContext(model, graph)
  ctx.groups = list(groups)
  sides = crit.stream_sides(ctx)
  top = {layer.name for layer in model.layers}
  layers = {path: width for path, width in crit.stream_layers(ctx).items()
            if "/" not in path and (path in masked or (
                path in top and sides.get(path) == "output"))}
  if crit.stream_site == "inputs":
    observe.update(layers)
  else:
    observe_output.update(layers)
  return observe, observe_output, {p: sides[p] for p in layers if p in sides}


def _check_data(model, crit, data, in_graph):
  """Checks `data` against `model` now, as `tps.score` will at each pruning
  step: a data criterion that reads no training batch needs it, and its
  input shape (and, for a criterion that differentiates the loss, its
  labels) must fit."""
  if not crit.requires_data:
    return
  if data is None:
    if in_graph:
      return
    raise ValueError(
        f"criterion '{crit.name}' needs data: pass `data` to "
        "tps.prune_channels (it collects no statistics from the training "
        "batches)")
  from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfprune_survey.scoring import needs_labels  # pylint: disable=g-import-not-at-top
  data_lib.checked(model, data, labels=needs_labels(crit), arg_name="data",
                   criterion=crit.name)


def _check_soft(soft):
  if not isinstance(soft, bool):
    raise TypeError(f"`soft` must be True or False, got {soft!r}")
  return soft


def _settings(crit, schedule, args, groups, in_graph, soft=False):
  from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
  return {"criterion": criteria_lib.serialize(crit),
          "in_graph_statistics": in_graph,
          "schedule": schedules_lib.serialize(schedule),
          "scope": args.scope, "round_to": args.round_to,
          "min_channels": args.min_channels, "groups": groups,
          "soft": soft}


def _wrap_layers(layers, criterion, schedule, data, scope, round_to,
                 min_channels, soft=False):
  """prune_channels(layer or [layers]): marker wrappers, as tfmot's
  prune_low_magnitude(layer) is used inside a model definition."""
  single = not isinstance(layers, (list, tuple))
  layers = [layers] if single else list(layers)
  for layer in layers:
    if not _is_plain_layer(layer) or isinstance(layer, ChannelPruneWrapper):
      raise ValueError("prune_channels takes a model, a layer or a list of "
                       f"layers; got {type(layer).__name__}")
    check_backend(frameworks.of(layer, "to_prune"))
  crit, schedule, args = _check_args(criterion, schedule, scope, round_to,
                                     min_channels)
  if crit.requires_data and data is None:
    raise ValueError(
        f"criterion '{crit.name}' needs data: pass `data` to "
        "tps.prune_channels (layers wrapped one by one collect no "
        "statistics from the training batches)")
  settings = _settings(crit, schedule, args, None, False, _check_soft(soft))
  wrappers = [ChannelPruneWrapper(l, None, settings, data=data,
                                  schedule=schedule) for l in layers]
  return wrappers[0] if single else wrappers
