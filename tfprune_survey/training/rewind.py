"""Lottery-ticket rewinding: RewindCheckpoint and rewind."""

import numbers
import weakref

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.strip.materialize import materialize
from tfprune_survey.training.callback_base import Callback
from tfprune_survey.training.strip import current_keep
from tfprune_survey.training.strip import unwrap
from tfprune_survey.training.wrapper import wrappers_of


class RewindCheckpoint(Callback):
  """Records the weights at the start of epoch `epoch` (0: before training).

  Frankle and Carbin (2019) rewind to the initial weights; Frankle et al.
  (2019), "Stabilizing the lottery ticket hypothesis", to an early epoch k,
  which works better for deeper nets. Works in the `fit` of either Keras,
  on plain models and on models from `tps.prune_channels` (the weights of
  the wrapped layers are kept).

  Args:
    epoch: the epoch at whose start the weights are recorded, an int >= 0.
      Defaults to 0.

  Attributes:
    model_at_epoch: a plain copy of the model (same Keras) at that epoch;
      None until recorded.
    keep: for a model from `tps.prune_channels`, the {group_id: kept
      indices} it had when the fit ended (what `strip_channel_pruning`
      keeps, after soft pruning's final prune too, whatever the order of
      the callbacks); None otherwise. `tps.rewind` uses it when given no
      `keep=`.

  Raises:
    ValueError: for an `epoch` that is not an int >= 0.
  """

  def __init__(self, epoch=0):
    super().__init__()
    if (isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral)
        or epoch < 0):
      raise ValueError(f"`epoch` must be an int >= 0, got {epoch!r}")
    self.epoch = int(epoch)   # numpy integers too
    self.model_at_epoch = None
    self.keep = None
    self._ended = None

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch and self.model_at_epoch is None:
      self.model_at_epoch = unwrap(self.model)

  def on_train_end(self, logs=None):
    if wrappers_of(self.model):
      self.keep = current_keep(self.model)[1]
      # Soft pruning's final prune runs in UpdateChannelPruningStep's
      # on_train_end, which Keras may call after this one (the order of
      # `callbacks`): that one records the keep again once it is done.
      self._ended = weakref.ref(self.model)
      _ENDED.add(self)


# RewindCheckpoints whose fit ended, with the model they read `keep` from.
_ENDED = weakref.WeakSet()


def forget_ended(model):
  """Called when `model` starts a fit with UpdateChannelPruningStep: the
  checkpoints of its earlier fits hold their final keep already."""
  for ckpt in list(_ENDED):
    if ckpt._ended() is model:  # pylint: disable=protected-access
      _ENDED.discard(ckpt)


def record_final_keep(model):
  """Called by UpdateChannelPruningStep at the end of a fit of `model`,
  after its last change of the kept channels (soft pruning's final prune):
  the checkpoints of this fit that ended before it record the keep again."""
  for ckpt in list(_ENDED):
    if ckpt._ended() is model:  # pylint: disable=protected-access
      ckpt.keep = current_keep(model)[1]
      _ENDED.discard(ckpt)


def rewind(slim_model, checkpoint, keep=None):
  """Copies the kept slices of earlier weights into `slim_model`.

  Args:
    slim_model: a slim model from `tps.strip_channel_pruning`,
      `tps.materialize` or `tps.prune` (updated in place and returned).
    checkpoint: where the weights come from: a `RewindCheckpoint` that has
      recorded its epoch, or a full-size model of the architecture
      `slim_model` was cut from (e.g. a copy of it before training).
    keep: the {group_id: kept indices} that made `slim_model` (e.g.
      `PruneResult.keep`). Defaults to None: the checkpoint's `keep`, which
      a `RewindCheckpoint` records from the `prune_channels` run it was in.

  Returns:
    `slim_model`, with the rewound weights, ready to be retrained.

  Raises:
    TypeError: when `checkpoint` is neither a RewindCheckpoint nor a model.
    ValueError: when the checkpoint has not recorded its epoch, when no
      `keep` is known, or when the sliced weights do not fit `slim_model`.
  """
  if isinstance(checkpoint, RewindCheckpoint):
    if checkpoint.model_at_epoch is None:
      raise ValueError(f"the checkpoint has not recorded epoch "
                       f"{checkpoint.epoch} yet: was it in the callbacks of a "
                       "fit that reached that epoch?")
    source = checkpoint.model_at_epoch
    if keep is None:
      keep = checkpoint.keep
  elif frameworks.detect(checkpoint) is not None:
    frameworks.check_model(checkpoint, "checkpoint")
    source = unwrap(checkpoint) if wrappers_of(checkpoint) else checkpoint
  else:
    raise TypeError(f"`checkpoint` must be a tps.RewindCheckpoint or a "
                    f"model, got {type(checkpoint).__name__}")
  if keep is None:
    raise ValueError(
        f"cannot tell which channels {slim_model.name!r} kept: pass keep= "
        "(e.g. PruneResult.keep), or a RewindCheckpoint that was in the "
        "callbacks of the prune_channels fit")
  rewound = materialize(source, keep)
  for layer in slim_model.layers:
    try:
      origin = rewound.get_layer(layer.name)
    except ValueError as e:
      raise ValueError(f"layer {layer.name!r} of {slim_model.name!r} is not "
                       "in the checkpoint's model") from e
    values = origin.get_weights()
    shapes = [tuple(w.shape) for w in layer.weights]
    if [np.shape(v) for v in values] != shapes:
      raise ValueError(
          f"layer {layer.name!r}: the checkpoint sliced by `keep` gives "
          f"shapes {[np.shape(v) for v in values]}, the slim model has "
          f"{shapes}; was {slim_model.name!r} cut with these channels? "
          "Pass the keep= that made it")
    layer.set_weights(values)
  return slim_model
