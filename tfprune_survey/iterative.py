"""Iterative and layer-wise prune / fine-tune schedules (Han et al. 2015;
Li et al. 2017; Polyak and Wolf 2015; Luo et al. 2017, ThiNet)."""

import dataclasses
import inspect
import warnings

import numpy as np

from tfprune_survey import criteria as criteria_lib
from tfprune_survey import data as data_lib
from tfprune_survey import frameworks
from tfprune_survey import planning
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.losses import per_sample_loss
from tfprune_survey.metrics.macs import count_macs, count_params
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.pruner import _check_recalibrate
from tfprune_survey.pruner import prune
from tfprune_survey.scoring import score as score_fn
from tfprune_survey.metrics.accuracy import evaluate_accuracy
from tfprune_survey.sensitivity import depth_order
from tfprune_survey.strip import branches

MODES = ("global", "layerwise")
_COMPILE_KEYS = ("optimizer", "loss", "metrics")


def make_finetune(finetune, model=None):
  """A callable (model) -> model from a callable or a dict of fit arguments.

  A dict is passed to `model.fit` after compiling the model with its
  'optimizer' (default Adam(1e-3)), 'loss' (default: sparse categorical
  cross-entropy, from logits unless the model ends in a softmax) and
  'metrics' entries, which are taken out of the dict first. A fresh
  optimizer is made for every call, since each call may see a new model.

  With `model` (the model the fine-tuned ones are pruned from), a dict is
  checked now: its keys against `model.fit`'s arguments, its 'optimizer',
  'loss' and 'metrics' names as Keras resolves them, that there is an 'x',
  and an array 'x' against the model's input shape and its 'y' (needed
  unless a 'loss' is given; as many rows); the errors name the key.
  """
  if callable(finetune):
    def run(model):
      out = finetune(model)
      return model if out is None or not frameworks.of(model).is_model(
          out) else out
    return run
  if not isinstance(finetune, dict):
    raise TypeError("`finetune` must be a callable (model) -> None/model or a "
                    "dict of model.fit arguments, got "
                    f"{type(finetune).__name__}")
  spec = dict(finetune)
  compile_args = {k: spec.pop(k) for k in _COMPILE_KEYS if k in spec}
  spec.setdefault("verbose", 0)

  def make_optimizer(keras):
    optimizer = compile_args.get("optimizer", "adam")
    if isinstance(optimizer, keras.optimizers.Optimizer):
      return type(optimizer).from_config(optimizer.get_config())
    return keras.optimizers.get(optimizer)

  if model is not None:
    _check_fit_spec(model, spec, compile_args, make_optimizer)

  def run(model):
    keras = frameworks.of(model).keras
    optimizer = make_optimizer(keras)
    loss = compile_args.get("loss")
    if loss is None:
      fn = per_sample_loss(model)
      loss = lambda y, p: fn(y, p)  # pylint: disable=unnecessary-lambda-assignment
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=compile_args.get("metrics"))
    model.fit(**spec)
    return model
  return run


def _check_fit_spec(model, spec, compile_args, make_optimizer):
  """Raises, naming the key of `finetune`, for what would fail at the first
  fine-tuning, after a round of scoring and pruning."""
  keras = frameworks.of(model).keras
  params = inspect.signature(type(model).fit).parameters
  if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
    known = [n for n in params if n != "self"]
    unknown = [k for k in spec if k not in known]
    if unknown:
      raise TypeError(
          f"`finetune` has unknown key(s) {unknown}: a dict of fine-tuning "
          f"arguments takes {list(_COMPILE_KEYS)} (for compile) and "
          f"model.fit's {known}")
  for key, resolve in (("optimizer", make_optimizer),
                       ("loss", lambda k: k.losses.get(
                           compile_args["loss"]))):
    if key not in compile_args or (key == "loss" and not isinstance(
        compile_args[key], str)):   # None, a callable, a dict per output
      continue
    try:
      resolve(keras)
    except (ValueError, TypeError) as e:
      raise ValueError(f"`finetune['{key}']`={compile_args[key]!r:.80} is "
                       f"no {key} Keras knows: {e}") from None
  if compile_args.get("metrics") is not None:
    tf_keras = frameworks.detect(model) == frameworks.TF_KERAS
    if not tf_keras and not isinstance(compile_args["metrics"],
                                       (list, tuple, dict)):
      raise TypeError("`finetune['metrics']` must be a list, tuple or dict "
                      "of metrics for a Keras 3 model, got "
                      f"{compile_args['metrics']!r:.80}; e.g. ['accuracy']")
    _check_metrics(keras, compile_args["metrics"], tf_keras)
  x = spec.get("x")
  if x is None:
    raise ValueError("`finetune` has no 'x': a dict of fine-tuning "
                     "arguments is passed to model.fit, which needs the "
                     "training data, e.g. {'x': x_train, 'y': y_train, "
                     "'epochs': 1}")
  if isinstance(x, np.ndarray) or (
      isinstance(x, (list, tuple, dict)) and x and all(
          isinstance(v, np.ndarray)
          for v in (x.values() if isinstance(x, dict) else x))):
    data_lib.check_data_now(model, (x,), "finetune['x']")
    y = spec.get("y")
    if y is None and "loss" not in compile_args:
      raise ValueError("`finetune['x']` is an array but `finetune['y']` is "
                       "missing: the default loss compares the outputs to "
                       "labels; give 'y'")
    if isinstance(y, np.ndarray):
      first = next(iter(x.values())) if isinstance(x, dict) else (
          x if isinstance(x, np.ndarray) else x[0])
      if y.shape[:1] != first.shape[:1]:
        raise ValueError(f"`finetune['y']` has {y.shape[0] if y.ndim else 0} "
                         f"rows but `finetune['x']` {first.shape[0]}: give "
                         "one label row per sample")


def _check_metrics(keras, metrics, tf_keras):
  """Raises, naming `finetune['metrics']`, for an entry compile would refuse
  only at the first fit (Keras 3) or whose first update would fail (tf_keras
  returns an unknown name as it is)."""
  if isinstance(metrics, dict):
    leaves = metrics.values()
  elif isinstance(metrics, (list, tuple)):
    leaves = metrics
  else:
    leaves = [metrics]
  for m in leaves:
    if isinstance(m, (dict, list, tuple)):
      _check_metrics(keras, m, tf_keras)
      continue
    if m is None and not tf_keras:
      # tf_keras skips it; Keras 3 refuses it only at the first fit
      # ('Expected metric, received `None`').
      raise ValueError("`finetune['metrics']` has None, which Keras 3 "
                       "refuses (at the first fit): leave the entry out")
    if m is None or callable(m):
      continue
    if isinstance(m, str):
      # Names compile resolves itself, by the labels' and outputs' shapes.
      special = ["accuracy", "acc"] + (
          ["crossentropy", "ce"] if tf_keras else [])
      if m.lower() in special:
        continue
      try:
        resolved = keras.metrics.get(m)
      except (ValueError, TypeError):
        resolved = None
      if resolved is not None and not isinstance(resolved, str):
        continue
    raise ValueError(f"`finetune['metrics']` has {m!r:.80}, which is no "
                     "metric Keras knows: give a metric name (e.g. "
                     "'accuracy'), a keras.metrics.Metric or a function "
                     "(y_true, y_pred)")


@dataclasses.dataclass
class IterativeResult:
  """What `iterative_prune` returns.

  Attributes:
    model: the final slim model.
    history: one dict per step: step, group (layer-wise mode), macs,
      macs_reduction, params, metric (when eval_data was given).
    visited: group ids in the order they were pruned (layer-wise mode).
  """
  model: object
  history: list
  visited: list

  @property
  def macs_reduction(self):
    return self.history[-1]["macs_reduction"] if self.history else 0.0

  def __str__(self):
    lines = [f"{'step':>4s} {'group':24s} {'MACs':>14s} {'reduction':>9s} "
             f"{'metric':>8s}"]
    for h in self.history:
      metric = "-" if h.get("metric") is None else f"{h['metric']:.4f}"
      lines.append(f"{h['step']:4d} {(h.get('group') or '-')[:24]:24s} "
                   f"{h['macs']:14,d} {h['macs_reduction']:9.1%} {metric:>8s}")
    return "\n".join(lines)


def _layerwise_counts(model, graph, macs_before, target, round_to,
                      min_channels, scored=None, crit_name=None):
  """Kept counts per group, equal fractions, reaching `target` MACs cut.

  `target` is a fraction of `macs_before`, the MACs of the caller's model
  (which may still have the dead branches `model` lacks). With `scored`
  (the group ids criterion `crit_name` scores) only those are planned; the
  others keep all their channels and are absent from the result.

  Raises:
    ValueError: naming `target_macs` when it is unreachable (and the
      groups left whole for want of scores).
  """
  left_whole = {} if scored is None else {
      g.id: f"no '{crit_name}' scores" for g in graph.prunable_groups
      if g.id not in scored}
  scores = {g.id: [0.0] * g.size for g in graph.prunable_groups
            if g.id not in left_whole}
  planner = planning.Planner(graph, scores, round_to, min_channels)
  return planning.search_macs(planner, MacsModel(model, graph),
                              macs_before, target, "local", left_whole)


def _scored_groups(model, graph, crit, data, steps, verbose):
  """The ids of the groups `crit` scores on `model` (warnings left to the
  rounds, which score again)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return set(score_fn(model, crit, data, steps=steps, graph=graph,
                        verbose=verbose))


def iterative_prune(model, criterion, *, target_macs, rounds=3, finetune,
                    data=None, mode="global", scope="global", eval_data=None,
                    recalibrate=None, round_to=1, min_channels=1, steps=None,
                    verbose=1):
  """Alternates pruning and fine-tuning until `target_macs` is removed.

  'global' mode (Han et al. 2015's schedule, for channels): `rounds`
  rounds; after round k the model has lost k/rounds of the target fraction
  of the original MACs, each round ranking channels afresh on the current,
  fine-tuned model, then calling `finetune(model)`.

  'layerwise' mode (Li et al. 2017; ThiNet): the per-group kept counts that
  remove the target with equal fractions everywhere are computed on the
  original model; then the groups are pruned one at a time in order of
  depth, each re-scored on the current model and followed by
  `finetune(model)`. `rounds` is ignored.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3. Not
      modified.
    criterion: a criterion name or instance.
    target_macs: fraction of the original MACs to remove, in (0, 1).
    rounds: number of prune / fine-tune rounds in 'global' mode.
    finetune: a callable (model) -> None (trains in place) or a new model;
      or a dict of `model.fit` arguments (see `make_finetune`).
    data: data for data-dependent criteria (see `tps.score`).
    mode: 'global' or 'layerwise'.
    scope: ranking scope of each 'global' round (see `tps.prune`).
    eval_data: optional (x, y) to log top-1 accuracy after each step.
    recalibrate: optional data to re-estimate BN statistics after each
      pruning, before fine-tuning.
    round_to, min_channels: as in `tps.prune`.
    steps: optional maximum number of batches for scoring.
    verbose: 1 prints one line per step (MACs and accuracy) and shows the
      scoring progress bar. An int >= 0 or a bool.

  Returns:
    An `IterativeResult` with the slim `.model`, `.history` and `.visited`.

  Raises:
    TypeError: for an argument of the wrong type (e.g. target_macs='half',
      rounds=2.5, a `finetune` that is neither callable nor a dict).
    ValueError: for a value out of range (target_macs outside (0, 1),
      rounds or round_to below 1, an unknown mode or scope), data that does
      not fit the model (see `tps.prune`; `eval_data` and `recalibrate`
      are checked before any pruning, for a model of several inputs too,
      and the message names the argument), or an unreachable target. The
      target is checked against the groups the criterion scores (the
      others, e.g. groups without a BN for 'slimming', stay whole and are
      named): before any work for a criterion that reads no data; for a
      data criterion on the first round's scores, before any fine-tuning
      ('global'), or on one extra scoring pass of the model before the
      first step ('layerwise', whose plan fixes every group's count).
  """
  frameworks.check_model(model)
  args = planning.check_plan_args(target_macs=target_macs, scope=scope,
                                  round_to=round_to,
                                  min_channels=min_channels,
                                  target="target_macs")
  target_macs, scope = args.target_macs, args.scope
  round_to, min_channels = args.round_to, args.min_channels
  mode = planning.check_choice(mode, "mode", MODES)
  rounds = planning.check_int(rounds, "rounds", 1)
  verbose = planning.check_verbose(verbose)
  if steps is not None:
    # `prune` checks it only when it runs: a round whose model already meets
    # its goal (dead branches dropped) runs none.
    steps = planning.check_int(steps, "steps", 1)
  # Checked before any pruning: both meet the model only after it.
  for value, name in ((eval_data, "eval_data"), (recalibrate, "recalibrate")):
    if value is not None:
      data_lib.check_data_now(model, value, name)
  if recalibrate is not None:
    recalibrate = _check_recalibrate(model, recalibrate)
  run_finetune = make_finetune(finetune, model)
  crit = criteria_lib.get(criterion)
  if mode == "global":
    planning.check_local_only(crit, scope)
  # Reachable? (Raises naming `target_macs` before any pruning; a round
  # would raise only after the earlier ones, with its own relative target.)
  # Residual branches scaled by exactly 0 (SSS) add nothing and the first
  # pruning drops them: plan on the model without them, whose groups are
  # those of every pruned model.
  current, _ = branches.remove_dead_branches(model)
  graph = ChannelGraph(current)
  macs0 = count_macs(model)
  counts = _layerwise_counts(current, graph, macs0, target_macs, round_to,
                             min_channels)
  # A criterion may score only some groups (e.g. 'slimming' those with a
  # BN); the others stay whole in every round, so the plan and the check
  # above must leave them out. A criterion that reads no data scores in a
  # moment: it is asked now. A data criterion is asked by the first round's
  # scoring ('global'; checked before its fine-tuning) or, since the
  # layer-wise plan fixes every group's count up front, by one more pass.
  first, all_ids = current, {g.id for g in graph.prunable_groups}

  def replan(scored, when=""):
    if scored >= all_ids:
      return counts
    try:
      return _layerwise_counts(first, graph, macs0, target_macs, round_to,
                               min_channels, scored, crit.name)
    except ValueError as e:
      raise ValueError(f"{e}{when}") from None

  if not crit.requires_data or (mode == "layerwise" and any(
      counts[g.id] < g.size for g in graph.prunable_groups)):
    counts = replan(_scored_groups(current, graph, crit, data, steps,
                                   verbose))
    checked = True
  else:
    checked = False
  history, visited = [], []

  def log(step, group, total):
    macs = count_macs(current)
    row = {"step": step, "group": group, "macs": macs,
           "macs_reduction": 1.0 - macs / macs0,
           "params": count_params(current),
           "metric": (evaluate_accuracy(current, eval_data)
                      if eval_data is not None else None)}
    history.append(row)
    if verbose:
      acc = "" if row["metric"] is None else f", accuracy {row['metric']:.4f}"
      where = f" ({group})" if group else ""
      print(f"[iterative_prune] step {step}/{total}{where}: MACs "
            f"{macs:,} (-{row['macs_reduction']:.1%}){acc}", flush=True)

  def after_prune(slim):
    if recalibrate is not None:
      recalibrate_bn(slim, recalibrate)
    return run_finetune(slim)

  common = dict(data=data, round_to=round_to, min_channels=min_channels,
                steps=steps, verbose=verbose)
  if mode == "global":
    for k in range(1, rounds + 1):
      goal = macs0 * (1.0 - target_macs * k / rounds)
      relative = 1.0 - goal / count_macs(current)
      if relative > 1e-9:
        result = prune(current, crit, target_macs=relative, scope=scope,
                       **common)
        if not checked:
          replan(set(result.scores), f" (found by round {k}'s "
                 f"'{crit.name}' scores, before any fine-tuning)")
          checked = True
        current = after_prune(result.model)
      log(k, None, rounds)
  else:
    order = [g for g in depth_order(graph)
             if counts.get(g.id, g.size) < g.size]
    for k, g in enumerate(order, start=1):
      ratio = (g.size - counts[g.id]) / g.size
      current = prune(current, crit, ratios={g.id: ratio}, **common).model
      current = after_prune(current)
      visited.append(g.id)
      log(k, g.id, len(order))
    if not order:  # dropping the dead branches reached the target
      log(0, None, 0)
  return IterativeResult(model=current, history=history, visited=visited)
