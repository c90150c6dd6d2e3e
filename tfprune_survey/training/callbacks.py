"""TensorBoard summaries of channel pruning, and lottery-ticket rewinding."""

import numpy as np
import tensorflow as tf

from tfprune_survey._compat import keras
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs_model import MacsModel
from tfprune_survey.strip.materialize import materialize
from tfprune_survey.training import api


def _scalar(tag, value):
  """A TensorBoard scalar through core TF (the tensorboard package, which
  `tf.summary.scalar` needs, is not a TensorFlow dependency)."""
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "scalars"
  tf.summary.write(tag, tf.constant(float(value), tf.float32),
                   metadata=metadata.SerializeToString())


class ChannelPruningSummaries(keras.callbacks.Callback):
  """Writes TensorBoard scalars at the end of every epoch.

  Tags: `channel_pruning/kept_fraction/<group id>` for each pruned group,
  `channel_pruning/effective_macs` (the MACs of the model its masks
  describe, i.e. of the slim model `strip_channel_pruning` would build) and
  `channel_pruning/macs_reduction`.

  Args:
    log_dir: the TensorBoard log directory.
  """

  def __init__(self, log_dir):
    super().__init__()
    self.log_dir = log_dir
    self._writer = None
    self._graph = None
    self._macs = None

  def on_train_begin(self, logs=None):
    self._writer = tf.summary.create_file_writer(self.log_dir)
    # The architecture does not change during fit: analyse it once.
    self._graph = ChannelGraph(api.unwrap(self.model))
    self._macs = (MacsModel(self._graph.model, self._graph),
                  count_macs(self._graph.model))

  def on_epoch_end(self, epoch, logs=None):
    graph, keep = api.current_keep(self.model, self._graph)
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


class RewindCheckpoint(keras.callbacks.Callback):
  """Records the weights at the start of epoch `epoch` (0: before training).

  Frankle and Carbin (2019) rewind to the initial weights; Frankle et al.
  (2019), "Stabilizing the lottery ticket hypothesis", to an early epoch k,
  which works better for deeper nets. Works on plain models and on models
  from `tps.prune_channels` (the weights of the wrapped layers are kept).

  Attributes:
    model_at_epoch: a plain tf_keras copy of the model at that epoch (None
      until recorded).
  """

  def __init__(self, epoch=0):
    super().__init__()
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
      raise ValueError(f"`epoch` must be an int >= 0, got {epoch!r}")
    self.epoch = epoch
    self.model_at_epoch = None

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch and self.model_at_epoch is None:
      self.model_at_epoch = api.unwrap(self.model)


def rewind(slim_model, checkpoint, keep=None):
  """Copies the kept slices of `checkpoint`'s weights into `slim_model`.

  Args:
    slim_model: a slim model from `tps.materialize`, `tps.prune` or
      `tps.strip_channel_pruning` (updated in place and returned).
    checkpoint: a `RewindCheckpoint` that has recorded its epoch.
    keep: the {group_id: kept indices} that made `slim_model`; read from it
      when it was built in this process.

  Returns:
    `slim_model`, with the rewound weights, ready to be retrained.
  """
  if not isinstance(checkpoint, RewindCheckpoint):
    raise TypeError(f"`checkpoint` must be a tps.RewindCheckpoint, got "
                    f"{type(checkpoint).__name__}")
  if checkpoint.model_at_epoch is None:
    raise ValueError(f"the checkpoint has not recorded epoch "
                     f"{checkpoint.epoch} yet: was it in the callbacks of a "
                     "fit that reached that epoch?")
  if keep is None:
    keep = getattr(slim_model, "_tps_keep", None)
  if keep is None:
    raise ValueError(
        f"cannot tell which channels {slim_model.name!r} kept: pass keep= "
        "(e.g. PruneResult.keep)")
  rewound = materialize(checkpoint.model_at_epoch, keep)
  for layer in slim_model.layers:
    try:
      source = rewound.get_layer(layer.name)
    except ValueError as e:
      raise ValueError(f"layer {layer.name!r} of {slim_model.name!r} is not "
                       "in the checkpoint's model") from e
    values = source.get_weights()
    shapes = [tuple(w.shape) for w in layer.weights]
    if [np.shape(v) for v in values] != shapes:
      raise ValueError(
          f"layer {layer.name!r}: the checkpoint sliced by `keep` gives "
          f"shapes {[np.shape(v) for v in values]}, the slim model has "
          f"{shapes}")
    layer.set_weights(values)
  return slim_model
