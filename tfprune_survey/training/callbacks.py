"""UpdateChannelPruningStep and ChannelPruningSummaries, as in tfmot's
pruning_callbacks.py; they work in the `fit` of either Keras."""

import os

from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.training.callback_base import Callback
from tfprune_survey.training.controller import make_controller
from tfprune_survey.training.rewind import forget_ended
from tfprune_survey.training.rewind import record_final_keep
from tfprune_survey.training.strip import current_keep
from tfprune_survey.training.strip import unwrap


class UpdateChannelPruningStep(Callback):
  """Advances the pruning step and updates the masks when the schedule says.

  Needed in the callbacks of every `fit` of a model from `prune_channels`
  (tf_keras or Keras 3 on the TensorFlow backend); training without it
  fails with a message naming it. For `prune_channels(..., soft=True)` the
  selected channels are zeroed once at each pruning step and stay
  trainable, and the end of `fit` selects once more from the final weights
  and zeroes that selection (SFP's final prune).

  The pruning step is the index of the training batch, counted over the
  whole of training (and on from the saved step after loading), read from
  the batch index `fit` passes. With `compile(steps_per_execution=n)`
  Keras runs n batches in one call and calls the batch hooks once around
  it, so the masks can only change between executions: the schedule is
  quantised to them. A pruning step that falls inside an execution is
  applied when it ends, before the next one (once, with the sparsity of
  the latest such step when several fall in it); none is skipped, and
  the step saved with the model is that of the last trained batch.

  Args:
    data: data for data-dependent criteria, if not given to
      `prune_channels` (scored at each pruning step). Defaults to None.

  Example:
    >>> pm.fit(x, y, callbacks=[tps.UpdateChannelPruningStep()])
  """

  def __init__(self, data=None):
    super().__init__()
    self.data = data
    self.controller = None
    self.step = 0   # the next step to train
    self._checked = -1   # the schedule was asked up to this step
    self._epoch_start = 0   # the step of the epoch's batch 0
    self._begin = 0   # the step of the execution's first batch
    self._counter = None   # the optimizer's step count at the epoch's start

  def on_train_begin(self, logs=None):
    self.controller = make_controller(self.model, self.data)
    forget_ended(self.model)
    # The wrappers hold the step of the last trained batch (-1: none), so a
    # loaded model resumes with the next one.
    self.step = self.controller.step_of() + 1
    self._checked = self.step - 1
    self.on_epoch_begin(None)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = self.step
    self._counter = _optimizer_steps(self.model)

  def on_train_batch_begin(self, batch, logs=None):
    # A training loop that numbers its batches otherwise still advances
    # one step per call.
    # `self.step` moves only when a batch has trained (on_train_batch_end):
    # Keras 3 ends an epoch of unknown length with one more call here for
    # an execution that finds no data and has no end call.
    step = max(self._epoch_start + int(batch), self.step)
    self._begin = step
    self.controller.set_step(step)
    updated = self.controller.maybe_update(step, first=self._checked + 1)
    self._checked = step
    if not updated and self.controller.remask_between_steps():
      self.controller.apply_masks()

  def on_train_batch_end(self, batch, logs=None):
    trained = self._trained(int(batch))
    self.step = self._begin + trained
    self.controller.batches_seen += trained
    if trained > 1:   # steps_per_execution: the steps due inside it
      last = self.step - 1
      self.controller.set_step(last)
      self.controller.maybe_update(last, first=self._checked + 1)
      self._checked = last

  def _trained(self, batch):
    """How many batches the execution that just ended trained.

    Both Kerases pass the index of its last batch, but Keras 3 passes it
    as if the execution were full even when the data ran out inside it
    (the last of an epoch): there the optimizer's step count tells.
    """
    window = self._epoch_start + batch - self._begin + 1
    if window <= 1:
      return 1
    steps = (self.params or {}).get("steps")
    if steps is not None and batch < steps:
      return window   # ends inside the epoch
    counted = _optimizer_steps(self.model)
    if counted is not None and self._counter is not None:
      done = counted - self._counter - (self._begin - self._epoch_start)
      if 1 <= done <= window:
        return done
    if steps is not None:
      return max(1, min(window, self._epoch_start + steps - self._begin))
    return window

  def on_epoch_end(self, epoch, logs=None):
    # The saved step is that of the last trained batch, also after a call
    # for an execution that found no data.
    self.controller.set_step(self.step - 1)
    self.controller.apply_masks()

  def on_train_end(self, logs=None):
    self.controller.finish()   # soft pruning: SFP's final prune
    self.controller.apply_masks()
    # A RewindCheckpoint listed before this callback read the kept
    # channels before the final prune: it reads them again.
    record_final_keep(self.model)


def _optimizer_steps(model):
  """The number of training steps the model's optimizer has taken, or
  None when it cannot say (every step counted, also those that only
  accumulate gradients; a loss-scale optimizer's inner one is asked)."""
  opt = getattr(model, "optimizer", None)
  opt = getattr(opt, "inner_optimizer", opt)
  var = getattr(opt, "_iterations", None)
  if var is None:
    var = getattr(opt, "iterations", None)
  try:
    return int(var.numpy())
  except (AttributeError, TypeError, ValueError):
    return None


def _scalar(tag, value):
  """A TensorBoard scalar through core TF (the tensorboard package, which
  `tf.summary.scalar` needs, is not a TensorFlow dependency)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "scalars"
  tf.summary.write(tag, tf.constant(float(value), tf.float32),
                   metadata=metadata.SerializeToString())


class ChannelPruningSummaries(Callback):
  """Writes TensorBoard scalars at the end of every epoch.

  Tags: `channel_pruning/kept_fraction/<group id>` for each pruned group,
  `channel_pruning/effective_macs` (the MACs of the model its masks
  describe, i.e. of the slim model `strip_channel_pruning` would build) and
  `channel_pruning/macs_reduction`. Needs TensorFlow (tf_keras, or Keras 3
  on the TensorFlow backend).

  Args:
    log_dir: the TensorBoard log directory: a non-empty str or path.

  Raises:
    ValueError: for a `log_dir` that is not a non-empty str or path (as
      tfmot's PruningSummaries).
  """

  def __init__(self, log_dir):
    super().__init__()
    if isinstance(log_dir, os.PathLike):
      log_dir = os.fspath(log_dir)
    if not isinstance(log_dir, str) or not log_dir:
      raise ValueError("`log_dir` must be a non-empty str or path, got "
                       f"{log_dir!r}")
    self.log_dir = log_dir
    self._writer = None
    self._graph = None
    self._macs = None

  def on_train_begin(self, logs=None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._writer = tf.summary.create_file_writer(self.log_dir)
    # The architecture does not change during fit: analyse it once.
    self._graph = ChannelGraph(unwrap(self.model))
    self._macs = (MacsModel(self._graph.model, self._graph),
                  count_macs(self._graph.model))

  def on_epoch_end(self, epoch, logs=None):
    graph, keep = current_keep(self.model, self._graph)
    macs_model, full = self._macs
    counts = {g.id: len(keep.get(g.id, range(g.size)))
              for g in graph.prunable_groups}
    effective = macs_model.macs(counts)
    with self._writer.as_default(step=epoch):
      for g in graph.prunable_groups:
        _scalar(f"channel_pruning/kept_fraction/{g.id}", counts[g.id] / g.size)
      _scalar("channel_pruning/effective_macs", effective)
      _scalar("channel_pruning/macs_reduction", 1.0 - effective / full)
    self._writer.flush()

  def on_train_end(self, logs=None):
    if self._writer is not None:
      self._writer.close()
