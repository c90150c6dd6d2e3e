"""The lottery ticket: iterative magnitude pruning with rewinding.

Frankle and Carbin (2019), "The lottery ticket hypothesis: finding sparse,
trainable neural networks", ICLR. Train the dense net; prune a fraction p
of the remaining weights of smallest magnitude; rewind the survivors to
their initial values (or, after Frankle et al. 2019, "Stabilizing the
lottery ticket hypothesis", to those of an early epoch: a
`tps.RewindCheckpoint`); retrain with the pruned weights held at zero;
repeat. The controls: the same masks with a fresh initialization
(`random_reinit`) and random masks of the same per-layer sparsity
(`random_mask`).

How the masks are held during training:

- tf_keras: tfmot's own masks. The masked layers are wrapped by
  `tfmot.sparsity.keras.prune_low_magnitude` with a schedule that never
  updates a mask (ConstantSparsity(0, begin_step=2**31 - 1)), their
  `PruneLowMagnitude` mask variables are set to the ticket's masks, and
  tfmot applies them (weights * mask in every training call, and at each
  epoch end through `UpdatePruningStep`). tfmot is imported only then.
  tfmot does not prune a DepthwiseConv2D: its `depthwise_kernel` is held
  by a constraint on the trained copy instead, as in Keras 3, and the
  trained model returned is a plain copy without it.
- Keras 3: tfmot does not work there. Each masked kernel gets a Keras
  constraint multiplying it by its mask, which Keras 3's optimizer applies
  right after every update; the weights start masked. The constraint is
  removed (the layer's own restored) after training. Nothing here is
  specific to TensorFlow, but the tests run on the TensorFlow backend.

Only kernels (`kernel` of Dense and convolutions, a DepthwiseConv2D's
depthwise kernel included in both Kerases) are pruned, as in the paper
(a SeparableConv2D, with two kernels, is not pruned); biases and BatchNormalization parameters are not, nor layers whose
kernels belong to cells or inner layers (LSTM, GRU, MultiHeadAttention). Kernels of layers
inside nested Sequential/Functional sub-models (at any depth) are pruned
too; the masks name them by path, 'outer/inner' (a top-level layer by its
name). A layer shared between a nested model and its parent (or between
two nested models) is one kernel, named by the first path that reaches it;
the copies trained here keep it shared.

`find_channel_ticket` is the same loop over whole channels: prune a
fraction of the remaining channels (`tps.prune` on the trained slim
model), rewind the survivors with `tps.rewind`, retrain the slimmer model.
"""

import dataclasses

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey import losses as losses_lib

SCOPES = ("global", "layer")
# tfmot schedule that never fires: the masks are set by hand.
_NEVER = 2 ** 31 - 1


@dataclasses.dataclass
class TrainedModel:
  """One training run of a (masked) model.

  Attributes:
    model: the trained model (plain, of the input's Keras; masked weights
      exactly zero).
    masks: {layer path: bool array of its kernel's shape}, True = kept;
      a layer of a nested model is named 'outer/inner'.
    accuracy: top-1 accuracy on `eval_data` after training, or None.
    history: the `fit` history dict (None for a `train_fn`).
  """
  model: object
  masks: dict
  accuracy: object = None
  history: object = None

  @property
  def remaining(self):
    """Fraction of the prunable weights kept."""
    return remaining_fraction(self.masks)


@dataclasses.dataclass
class TicketResult:
  """The rounds of `find_ticket`.

  Attributes:
    masks: one {layer path: bool array} per round ('outer/inner' for a
      layer of a nested model); round 0 (the dense
      training) keeps everything, and each round's mask is a subset of
      the previous one's.
    remaining: the fraction of prunable weights kept in each round.
    accuracy: the accuracy on `eval_data` after each round's training, or
      Nones.
    histories: the `fit` history dict of each round (None for train_fn).
    rewind_model: a plain model holding the weights the survivors are
      rewound to (the initial ones, or the RewindCheckpoint's).
    model: the trained model of the last round.
    models: every round's trained model when `keep_models=True`, else [].
  """
  masks: list
  remaining: list
  accuracy: list
  histories: list
  rewind_model: object
  model: object
  models: list
  _trainer: object = dataclasses.field(default=None, repr=False)

  def rewound_weights(self, round_index=-1):
    """{layer path: [weights]} a round started from: the rewind weights
    with that round's pruned kernel entries set to zero. Every layer with
    weights is named, those of nested models by 'outer/inner' paths."""
    masks = self.masks[round_index]
    return {path: _masked_weights(layer, masks.get(path))
            for path, layer in _leaves(self.rewind_model).items()}

  def ticket(self, round_index=-1):
    """The untrained ticket of a round: a new model holding
    `rewound_weights(round_index)`."""
    model = _copy(self.rewind_model)
    leaves = _leaves(model)
    for path, values in self.rewound_weights(round_index).items():
      leaves[path].set_weights(values)
    return model


@dataclasses.dataclass
class ChannelTicketResult:
  """The rounds of `find_channel_ticket`.

  Attributes:
    keep: one {group_id: kept indices of the original model} per round
      (round 0: {}), each a subset of the previous one.
    remaining: the fraction of the prunable channels kept in each round.
    accuracy: accuracy on `eval_data` after each round, or Nones.
    histories: the `fit` history dict of each round (None for train_fn).
    model: the trained slim model of the last round.
    models: every round's trained model when `keep_models=True`, else [].
  """
  keep: list
  remaining: list
  accuracy: list
  histories: list
  model: object
  models: list


def remaining_fraction(masks):
  """The fraction of True entries over all the masks of a round."""
  total = sum(m.size for m in masks.values())
  return float(sum(int(m.sum()) for m in masks.values()) / max(total, 1))


def find_ticket(model, data, *, rounds, prune_fraction=0.2, scope="global",
                rewind="init", epochs=1, batch_size=32, optimizer=None,
                loss=None, validation_data=None, eval_data=None,
                callbacks=(), seed=0, keep_models=False, verbose=0):
  """Iterative magnitude pruning with rewinding (Frankle and Carbin 2019).

  Round 0 trains the dense model; each later round prunes `prune_fraction`
  of the kernel weights still kept, by magnitude of the last trained
  weights, rewinds the survivors and retrains with the pruned ones held at
  zero (tfmot's masks for tf_keras, a masking constraint for Keras 3; see
  the module docstring). After r rounds (1 - prune_fraction)^r of the
  weights remain, e.g. 51%, 21%, 6.9% after 3, 7, 12 rounds at 0.2.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3; its
      weights are the initial ones. The kernels of nested sub-models are
      pruned too (named 'outer/inner' in the masks). Not mutated.
    data: the training data, (x, y) arrays or a tf.data.Dataset of (x, y)
      batches, given to `fit`; or a callable `train_fn(model, callbacks)`
      that compiles and trains `model` in place, passing `callbacks` to its
      `fit` (they hold the masks).
    rounds: the number of pruning rounds, an int >= 1.
    prune_fraction: the fraction of the remaining weights pruned per
      round, in (0, 1). With scope='layer' also a {layer path: fraction}
      dict (layers not named are not pruned), e.g. the paper's half rate
      for the output layer. Defaults to 0.2.
    scope: 'global' ranks all kernels' weights together; 'layer' prunes
      each layer's kernel by the same (or its own) fraction. Defaults to
      'global'.
    rewind: 'init' (the weights of `model`) or a `tps.RewindCheckpoint`,
      which is put in the callbacks of round 0's training and records the
      weights at the start of its epoch (late rewinding). Defaults to
      'init'.
    epochs, batch_size: for `fit` in every round (ignored by a train_fn).
      Default to 1 and 32.
    optimizer: a callable returning a new optimizer of the model's Keras,
      called per round; defaults to Adam(1.2e-3), the paper's.
    loss: the loss; defaults to sparse categorical cross-entropy, from
      logits unless the output layer's activation is softmax.
    validation_data: given to `fit` (the history then has val_loss per
      epoch, from which an early-stopping epoch can be read).
    eval_data: optional (x, y) on which each round's trained model is
      scored (top-1 accuracy).
    callbacks: more callbacks for every round's `fit`.
    seed: the random seed set (keras.utils.set_random_seed) before each
      training, so every round and control sees the same batch order.
    keep_models: keep every round's trained model in `.models`.
    verbose: 1 shows a progress bar over the rounds.

  Returns:
    A `TicketResult`; `random_reinit(result)` and `random_mask(result)`
    retrain its controls the same way.

  Raises:
    TypeError: for a model of neither Keras, data that is neither data nor
      a callable, or a `rewind` of the wrong type.
    ValueError: for `rounds` below 1, a `prune_fraction` outside (0, 1) or
      naming unknown layers, an unknown `scope` or `rewind`, a model with
      no kernel to prune, or a RewindCheckpoint that did not record.
  """
  fw = frameworks.check_model(model, "model")
  rounds = _check_rounds(rounds)
  scope = _check_scope(scope, SCOPES)
  _check_rewind(rewind)
  base = _copy(model)
  prunable = _prunable_layers(base)
  fractions = _check_fraction(prune_fraction, scope, prunable)
  trainer = _Trainer(fw, data, epochs, batch_size, optimizer, loss,
                     validation_data, eval_data, callbacks, seed, verbose)
  leaves = _leaves(base)
  masks = {path: np.ones(tuple(_kernel(leaves[path]).shape), bool)
           for path in prunable}
  bar = trainer.progbar(rounds + 1)
  extra = [rewind] if not isinstance(rewind, str) else []
  first = trainer.train(base, None, extra_callbacks=extra)
  rewind_model = _rewind_source(rewind, model)
  runs = [first]
  bar.update(1)
  for r in range(1, rounds + 1):
    masks = prune_masks(runs[-1].model, masks, fractions, scope)
    start = _copy(rewind_model)
    runs.append(trainer.train(start, masks))
    if not keep_models:
      runs[-2] = dataclasses.replace(runs[-2], model=None)
    bar.update(r + 1)
  return TicketResult(
      masks=[run.masks for run in runs],
      remaining=[run.remaining for run in runs],
      accuracy=[run.accuracy for run in runs],
      histories=[run.history for run in runs],
      rewind_model=rewind_model, model=runs[-1].model,
      models=[run.model for run in runs] if keep_models else [],
      _trainer=trainer)


def prune_masks(trained, masks, fractions, scope):
  """The next round's masks: `masks` less the smallest-magnitude weights.

  Args:
    trained: the model trained under `masks`.
    masks: {layer path: bool array}, True = kept.
    fractions: {layer path: fraction of its kept weights to prune} (scope
      'layer'), or one fraction (scope 'global').
    scope: 'global' or 'layer'.

  Returns:
    New masks, each a subset of the old (ties broken by position).
  """
  new = {name: m.copy() for name, m in masks.items()}
  leaves = _leaves(trained)

  def drop(names, fraction):
    values = np.concatenate([
        np.where(masks[n], np.abs(np.asarray(_kernel(leaves[n]))),
                 np.inf).ravel() for n in names])
    kept = int(sum(masks[n].sum() for n in names))
    count = int(round(fraction * kept))
    order = np.argsort(values, kind="stable")[:count]
    flat = np.ones(values.size, bool)
    flat[order] = False
    start = 0
    for n in names:
      size = masks[n].size
      new[n] &= flat[start:start + size].reshape(masks[n].shape)
      start += size

  if scope == "global":
    drop(list(masks), float(fractions))
  else:
    for name, fraction in fractions.items():
      drop([name], fraction)
  return new


def random_reinit(result, round_index=-1, seed=1):
  """Control 1: the same masks, weights from `tps.reinitialize`.

  Args:
    result: a `TicketResult`.
    round_index: the round whose masks are used. Defaults to the last.
    seed: the re-initialization seed. Defaults to 1.

  Returns:
    A `TrainedModel`, trained as the ticket rounds were.
  """
  from tfprune_survey.distill import reinitialize  # pylint: disable=g-import-not-at-top
  _check_result(result)
  masks = result.masks[round_index]
  # Into a copy of the rewind model: the rebuilt one holds two unshared
  # copies of a layer shared with a nested model.
  fresh = _copy(result.rewind_model)
  _assign(fresh, reinitialize(result.rewind_model, seed=seed))
  return result._trainer.train(fresh, masks)  # pylint: disable=protected-access


def random_mask(result, round_index=-1, seed=1):
  """Control 2: random masks of the round's per-layer sparsity.

  Each layer keeps as many kernel weights as the ticket's mask does, at
  positions drawn at random; the weights are the same rewind weights as
  the ticket's, so only the mask differs.

  Args:
    result: a `TicketResult`.
    round_index: the round whose per-layer sparsity is matched. Defaults
      to the last.
    seed: the seed of the random masks. Defaults to 1.

  Returns:
    A `TrainedModel`, trained as the ticket rounds were.
  """
  _check_result(result)
  masks = random_masks_like(result.masks[round_index], seed)
  return result._trainer.train(_copy(result.rewind_model), masks)  # pylint: disable=protected-access


def random_masks_like(masks, seed=0):
  """Random masks with the same number of True entries per layer."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, m in masks.items():
    flat = np.zeros(m.size, bool)
    flat[rng.choice(m.size, int(m.sum()), replace=False)] = True
    out[name] = flat.reshape(m.shape)
  return out


def find_channel_ticket(model, data, *, rounds, prune_fraction=0.2,
                        criterion="l1", scope="global", rewind="init",
                        score_data=None, epochs=1, batch_size=32,
                        optimizer=None, loss=None, validation_data=None,
                        eval_data=None, callbacks=(), seed=0,
                        keep_models=False, verbose=0):
  """The lottery-ticket loop over whole channels.

  Round 0 trains the dense model; each later round removes
  `prune_fraction` of the channels the trained slim model still has
  (`tps.prune(..., ratio=prune_fraction)` with `criterion`), rewinds the
  surviving channels to the rewind weights (`tps.rewind`) and retrains the
  slimmer model. No masks are needed: the model is physically smaller.

  Args:
    model: a Sequential/Functional model of tf_keras or Keras 3. Not
      mutated.
    data: as in `find_ticket`.
    rounds: the number of pruning rounds, an int >= 1.
    prune_fraction: the fraction of the remaining prunable channels
      removed per round, in (0, 1). Defaults to 0.2.
    criterion: a name from `tps.criteria.names()` or a Criterion. Defaults
      to 'l1'.
    scope: 'global' (channels ranked across groups) or 'layer' (the same
      fraction from every group: `tps.prune`'s 'local'). Defaults to
      'global'.
    rewind: 'init' or a `tps.RewindCheckpoint` (put in round 0's
      callbacks). Defaults to 'init'.
    score_data: data for data-dependent criteria (`tps.prune`'s `data`);
      required by them (checked before any training), not read otherwise.
    epochs, batch_size, optimizer, loss, validation_data, eval_data,
      callbacks, seed, keep_models, verbose: as in `find_ticket`.

  Returns:
    A `ChannelTicketResult`.

  Raises:
    TypeError, ValueError: as `find_ticket`, and as `tps.prune` for a bad
      criterion; ValueError naming `score_data` and the criterion for a
      data-dependent criterion without `score_data`, before any training.
  """
  from tfprune_survey.pruner import prune  # pylint: disable=g-import-not-at-top
  from tfprune_survey.training.rewind import rewind as rewind_fn  # pylint: disable=g-import-not-at-top
  fw = frameworks.check_model(model, "model")
  rounds = _check_rounds(rounds)
  scope = _check_scope(scope, SCOPES)
  from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  crit = criteria_lib.get(criterion)
  planning.check_local_only(crit, "local" if scope == "layer" else "global")
  if crit.requires_data and score_data is None:
    # Checked before round 0's training, which `tps.prune` would follow
    # with an error naming its own `data`, not `score_data`.
    raise ValueError(
        f"criterion '{crit.name}' is data-dependent: pass `score_data` (a "
        "tf.data.Dataset of (x, y) batches or numpy (x, y)) to score the "
        "channels with; `data` is only trained on")
  _check_rewind(rewind)
  fraction = _check_fraction(prune_fraction, "global", None)
  trainer = _Trainer(fw, data, epochs, batch_size, optimizer, loss,
                     validation_data, eval_data, callbacks, seed, verbose)
  base = _copy(model)
  from tfprune_survey.graph.channel_graph import ChannelGraph  # pylint: disable=g-import-not-at-top
  sizes = {g.id: g.size for g in ChannelGraph(base).prunable_groups}
  if not sizes:
    raise ValueError(f"model {model.name!r} has no prunable channel group")
  total = sum(sizes.values())
  bar = trainer.progbar(rounds + 1)
  extra = [rewind] if not isinstance(rewind, str) else []
  runs = [trainer.train(base, None, extra_callbacks=extra)]
  source = _rewind_source(rewind, model)
  keeps = [{}]
  bar.update(1)
  for r in range(1, rounds + 1):
    result = prune(runs[-1].model, criterion, data=score_data,
                   ratio=fraction,
                   scope="local" if scope == "layer" else "global")
    previous = keeps[-1]
    keep = {}
    for gid, size in sizes.items():
      before = np.asarray(previous.get(gid, np.arange(size)))
      now = result.keep.get(gid)
      keep[gid] = before if now is None else before[np.asarray(now)]
    keep = {g: k for g, k in keep.items() if len(k) < sizes[g]}
    slim = rewind_fn(result.model, source, keep=keep)
    runs.append(trainer.train(slim, None))
    keeps.append(keep)
    if not keep_models:
      runs[-2] = dataclasses.replace(runs[-2], model=None)
    bar.update(r + 1)
  remaining = [sum(len(k.get(g, range(s))) for g, s in sizes.items()) / total
               for k in keeps]
  return ChannelTicketResult(
      keep=keeps, remaining=remaining,
      accuracy=[run.accuracy for run in runs],
      histories=[run.history for run in runs], model=runs[-1].model,
      models=[run.model for run in runs] if keep_models else [])


# ---- training ---------------------------------------------------------------
class _Trainer:
  """Trains a model under kernel masks, the same way every time."""

  def __init__(self, fw, data, epochs, batch_size, optimizer, loss,
               validation_data, eval_data, callbacks, seed, verbose):
    self.fw = fw
    if callable(data) and not _is_data(data):
      self.train_fn, self.data = data, None
    elif _is_data(data):
      self.train_fn, self.data = None, data
    else:
      raise TypeError("`data` must be (x, y) arrays, a tf.data.Dataset or a "
                      "callable train_fn(model, callbacks), got "
                      f"{type(data).__name__}")
    self.epochs = _check_int(epochs, "epochs")
    self.batch_size = _check_int(batch_size, "batch_size")
    if optimizer is not None and not callable(optimizer):
      raise TypeError("`optimizer` must be a callable returning a new "
                      f"optimizer, got {type(optimizer).__name__}")
    self.optimizer = optimizer
    self.loss = loss
    self.validation_data = validation_data
    self.eval_data = eval_data
    self.callbacks = list(callbacks)
    if isinstance(seed, bool) or not isinstance(seed, int):
      raise ValueError(f"`seed` must be an int, got {seed!r}")
    self.seed = seed
    self.verbose = verbose

  def progbar(self, n):
    if self.verbose == 1:
      return self.fw.keras.utils.Progbar(n, unit_name="round")

    class _Silent:
      def update(self, *args, **kwargs):
        del args, kwargs
    return _Silent()

  def train(self, model, masks, extra_callbacks=()):
    """Trains `model` (a fresh copy owned here) with `masks` held."""
    self.fw.keras.utils.set_random_seed(self.seed)
    leaves = _leaves(model)
    for path, m in (masks or {}).items():
      leaves[path].set_weights(_masked_weights(leaves[path], m))
    callbacks = self.callbacks + list(extra_callbacks)
    if masks and self.fw.name == frameworks.TF_KERAS:
      trained, history = self._train_tfmot(model, masks, callbacks)
    else:
      undo = _constrain(model, masks) if masks else None
      history = self._fit(model, callbacks)
      if undo:
        undo()
      trained = model
    accuracy = None
    if self.eval_data is not None:
      from tfprune_survey.metrics.accuracy import evaluate_accuracy  # pylint: disable=g-import-not-at-top
      accuracy = evaluate_accuracy(trained, self.eval_data)
    if masks is None:
      leaves = _leaves(trained)
      masks = {n: np.ones(tuple(_kernel(leaves[n]).shape), bool)
               for n in _prunable_layers(trained)}
    return TrainedModel(trained, masks, accuracy, history)

  def _fit(self, model, callbacks, loss_model=None):
    """Compiles and fits `model`; the default loss is judged from
    `loss_model` (the plain model `model` wraps), else from `model`."""
    if self.train_fn is not None:
      self.train_fn(model, callbacks)
      return None
    keras = self.fw.keras
    optimizer = (self.optimizer() if self.optimizer is not None
                 else keras.optimizers.Adam(1.2e-3))
    loss = self.loss if self.loss is not None else _default_loss(
        model if loss_model is None else loss_model)
    model.compile(optimizer, loss, metrics=["accuracy"])
    kwargs = dict(epochs=self.epochs, verbose=0, callbacks=callbacks,
                  validation_data=self.validation_data)
    if isinstance(self.data, tuple):
      x, y = self.data
      history = model.fit(x, y, batch_size=self.batch_size, **kwargs)
    else:
      history = model.fit(self.data, **kwargs)
    return dict(history.history)

  def _train_tfmot(self, model, masks, callbacks):
    """tf_keras: tfmot's PruneLowMagnitude wrappers hold the masks."""
    import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
    sparsity = tfmot.sparsity.keras
    schedule = sparsity.ConstantSparsity(0.0, begin_step=_NEVER)
    leaves = _leaves(model)
    # tfmot wraps the layers whose kernel is `kernel`; it does not prune a
    # DepthwiseConv2D's `depthwise_kernel`, held by a constraint instead
    # (set before the clone is built, so that its variable carries it).
    constrained = {id(leaves[path]): masks[path] for path in masks
                   if _kernel(leaves[path]) is not getattr(
                       leaves[path], "kernel", None)}
    wrapped_ids = {id(leaves[path]) for path in masks} - set(constrained)
    clones = {}   # id(layer of `model`) -> its (wrapped) clone

    def clone(layer):
      fresh = type(layer).from_config(layer.get_config())
      if id(layer) in constrained:
        fresh.depthwise_constraint = _tf_mask_constraint(
            constrained[id(layer)], fresh.depthwise_constraint)
      elif id(layer) in wrapped_ids:
        fresh = sparsity.prune_low_magnitude(fresh, pruning_schedule=schedule)
      clones[id(layer)] = fresh
      return fresh
    wrapped = _clone(model, clone)
    for path, layer in leaves.items():
      target = clones[id(layer)]
      is_wrapped = id(layer) in wrapped_ids
      inner = target.layer if is_wrapped else target
      inner.set_weights(layer.get_weights())
      if is_wrapped:
        (weight, mask, _), = target.pruning_vars
        mask.assign(masks[path].astype(mask.dtype.as_numpy_dtype))
        weight.assign(weight.numpy() * masks[path])
    # tfmot's wrapper hides the output layer's activation: the default loss
    # is judged from the plain model, as in round 0.
    history = self._fit(wrapped, [sparsity.UpdatePruningStep()] + callbacks,
                        loss_model=model)
    trained = sparsity.strip_pruning(wrapped)
    if constrained:   # a plain copy, without the mask constraints
      plain = _copy(model)
      _assign(plain, trained)
      trained = plain
    return trained, history


def _tf_mask_constraint(mask, inner):
  """tf_keras: a constraint multiplying a kernel by `mask` (after the
  layer's own constraint `inner`), applied by the optimizer after every
  update."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top

  class MaskConstraint(keras.constraints.Constraint):

    def __call__(self, w):
      if inner is not None:
        w = inner(w)
      return w * tf.constant(mask, w.dtype)
  return MaskConstraint()


def _constrain(model, masks):
  """Keras 3: a constraint multiplying each masked kernel by its mask,
  applied by the optimizer after every update. Returns the undo."""
  keras = frameworks.of(model).keras

  class MaskConstraint(keras.constraints.Constraint):

    def __init__(self, mask, inner):
      self.mask = mask
      self.inner = inner

    def __call__(self, w):
      if self.inner is not None:
        w = self.inner(w)
      return w * keras.ops.cast(self.mask, w.dtype)

  saved = []
  leaves = _leaves(model)
  for name, m in masks.items():
    var = _kernel(leaves[name])
    saved.append((var, var.constraint))
    var.constraint = MaskConstraint(m.astype("float32"), var.constraint)

  def undo():
    for var, constraint in saved:
      var.constraint = constraint
  return undo


def _default_loss(model):
  keras = frameworks.of(model).keras
  return keras.losses.SparseCategoricalCrossentropy(
      from_logits=not losses_lib._ends_in_softmax(model))


# ---- helpers ----------------------------------------------------------------
def _copy(model):
  """A plain copy of `model` in its Keras, weights copied; nested models
  are copied too, and a layer they share with their parent stays shared."""
  copy = _clone(model, lambda layer: type(layer).from_config(
      layer.get_config()))
  _assign(copy, model)
  return copy


def _clone(model, clone_layer):
  """`clone_model` with `clone_layer(layer)` applied to every layer of the
  nested models as well, each layer object cloned once: Keras' own
  clone_model rebuilds a nested model from its config, which unshares a
  layer it shares with its parent."""
  fw = frameworks.of(model)
  clones = {}

  def clone(layer):
    if id(layer) not in clones:
      if fw.is_submodel(layer):
        clones[id(layer)] = fw.keras.models.clone_model(
            layer, clone_function=clone)
      else:
        clones[id(layer)] = clone_layer(layer)
    return clones[id(layer)]
  return fw.keras.models.clone_model(model, clone_function=clone)


def _assign(target, source):
  """Copies the weights of `source` into `target` (the same architecture),
  layer by layer by path. A layer `target` shares with a nested model is
  read from its first path, also where `source` holds two copies of it."""
  layers = _leaves(source)
  for path, layer in _leaves(target).items():
    layer.set_weights(layers[path].get_weights())


def _leaves(model):
  """{path: layer} of the layers with weights of `model` and of its nested
  Sequential/Functional models (any depth), in layer order. A top-level
  layer's path is its name, a nested one's 'outer/inner'. A layer object
  met twice (shared between a nested model and its parent, or by two
  nested models) is listed once, under the first path."""
  fw = frameworks.of(model)
  out, seen = {}, set()

  def walk(parent, prefix):
    for layer in parent.layers:
      if id(layer) in seen:
        continue
      seen.add(id(layer))
      path = prefix + layer.name
      if fw.is_submodel(layer):
        walk(layer, path + "/")
      elif layer.weights:
        out[path] = layer
  walk(model, "")
  return out


def _masked_weights(layer, mask):
  values = layer.get_weights()
  if mask is None:
    return values
  kernel = _kernel(layer)
  i = next(i for i, w in enumerate(layer.weights) if w is kernel)
  values[i] = values[i] * mask
  return values


def _kernel(layer):
  """The layer's own `kernel` variable (a Dense's or a convolution's), or
  None. A depthwise convolution's kernel is one too, whether its Keras
  calls it `kernel` (Keras 3) or `depthwise_kernel` (tf_keras, where
  tfmot does not prune it and a constraint holds its mask). A separable convolution, with a depthwise and
  a pointwise kernel, has no single kernel and is not pruned, in either
  Keras. A layer whose kernels belong to inner layers or cells
  (MultiHeadAttention, LSTM, GRU) has none of its own and is not pruned."""
  for name in ("kernel", "depthwise_kernel"):
    if name == "depthwise_kernel" and hasattr(layer, "pointwise_kernel"):
      return None
    try:
      kernel = getattr(layer, name, None)
    except Exception:  # pylint: disable=broad-except
      kernel = None
    if kernel is not None and any(w is kernel for w in layer.weights):
      return kernel
  return None


def _prunable_layers(model):
  """The paths (see `_leaves`) of the layers with a kernel, nested ones
  included, each layer once."""
  names = [path for path, layer in _leaves(model).items()
           if _kernel(layer) is not None
           and not frameworks.of(model).is_model(layer)]
  if not names:
    raise ValueError(f"model {model.name!r} has no layer with a kernel to "
                     "prune")
  return names


def _rewind_source(rewind, model):
  if isinstance(rewind, str):
    return _copy(model)
  if rewind.model_at_epoch is None:
    raise ValueError(
        f"the `rewind` checkpoint did not record epoch {rewind.epoch}: "
        "round 0 trained for fewer epochs (raise `epochs`)")
  # A copy of `model` holding the recorded weights: the checkpoint's own
  # copy may hold two unshared copies of a layer shared with a nested model.
  source = _copy(model)
  _assign(source, rewind.model_at_epoch)
  return source


def _is_data(data):
  if isinstance(data, tuple) and len(data) == 2:
    return True
  return type(data).__name__.endswith("Dataset") or hasattr(
      data, "element_spec")


def _check_rounds(rounds):
  if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
    raise ValueError(f"`rounds` must be an int >= 1, got {rounds!r}")
  return rounds


def _check_int(value, name):
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"`{name}` must be an int >= 1, got {value!r}")
  return value


def _check_scope(scope, scopes):
  if scope not in scopes:
    raise ValueError(f"`scope` must be one of {scopes}, got {scope!r}")
  return scope


def _check_rewind(rewind):
  from tfprune_survey.training.rewind import RewindCheckpoint  # pylint: disable=g-import-not-at-top
  if isinstance(rewind, RewindCheckpoint):
    return
  if isinstance(rewind, str):
    if rewind != "init":
      raise ValueError("`rewind` must be 'init' or a tps.RewindCheckpoint, "
                       f"got {rewind!r}")
    return
  raise TypeError("`rewind` must be 'init' or a tps.RewindCheckpoint, got "
                  f"{type(rewind).__name__}")


def _check_one_fraction(value, what):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      0.0 < float(value) < 1.0):
    raise ValueError(f"`prune_fraction` must be in (0, 1), got {what}"
                     f"{value!r}")
  return float(value)


def _check_fraction(fraction, scope, prunable):
  """One fraction (scope 'global') or {layer: fraction} (scope 'layer')."""
  if isinstance(fraction, dict):
    if scope != "layer":
      raise ValueError("`prune_fraction` as a {layer: fraction} dict needs "
                       "scope='layer'")
    unknown = sorted(set(fraction) - set(prunable))
    if unknown:
      raise ValueError(f"`prune_fraction` names layers {unknown} that have "
                       f"no kernel to prune (prunable: {prunable})")
    return {name: _check_one_fraction(f, f"{name!r}: ")
            for name, f in fraction.items()}
  value = _check_one_fraction(fraction, "")
  if scope == "layer":
    return {name: value for name in prunable}
  return value


def _check_result(result):
  if not isinstance(result, TicketResult) or result._trainer is None:  # pylint: disable=protected-access
    raise TypeError("`result` must be the TicketResult of "
                    f"tps.lottery.find_ticket, got {type(result).__name__}")
