"""The callbacks: accepted by both Kerases' fit; TensorBoard summaries."""

import pytest
import tensorflow as tf

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import every_step
from tests.training.conftest import keras_of


def test_callbacks_are_made_without_a_keras():
  # Built before fit, with no model to follow: plain objects that both
  # Kerases' CallbackList drive.
  for cb in (tps.UpdateChannelPruningStep(), tps.RewindCheckpoint(),
             tps.ChannelPruningSummaries("logs")):
    assert not any(k.__module__.startswith(("keras", "tf_keras"))
                   for k in type(cb).__mro__)
  update = tps.UpdateChannelPruningStep()
  assert update._implements_train_batch_hooks()  # pylint: disable=protected-access
  assert not update._implements_test_batch_hooks()  # pylint: disable=protected-access
  assert not tps.RewindCheckpoint()._implements_train_batch_hooks()  # pylint: disable=protected-access


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_summaries_write_kept_fraction_and_macs(xy, tmp_path, framework):
  x, y = xy
  base = build(framework)
  pm = compile_model(tps.prune_channels(base, "l1", every_step()))
  history = pm.fit(x, y, batch_size=32, epochs=2, verbose=0,
                   validation_data=(x[:8], y[:8]),
                   callbacks=[tps.UpdateChannelPruningStep(),
                              tps.ChannelPruningSummaries(str(tmp_path)),
                              keras_of(framework).callbacks.History()])
  assert len(history.history["val_loss"]) == 2
  values = {}
  for path in tmp_path.rglob("events.out.tfevents*"):
    for record in tf.data.TFRecordDataset(str(path)):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for v in event.summary.value:
        values[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
  slim = tps.strip_channel_pruning(pm)
  full = tps.count_macs(base)
  assert values[("channel_pruning/effective_macs", 1)] == tps.count_macs(slim)
  assert values[("channel_pruning/macs_reduction", 1)] == pytest.approx(
      1 - tps.count_macs(slim) / full, abs=1e-6)
  fractions = [v for (tag, step), v in values.items()
               if tag.startswith("channel_pruning/kept_fraction/") and step == 1]
  assert len(fractions) == len(tps.ChannelGraph(base).prunable_groups)
  assert min(fractions) < 1.0


def test_summaries_check_the_log_dir(tmp_path):
  # '' wrote the event files into the working directory, and 3 failed at
  # fit with "Cannot convert 3 to EagerTensor of dtype string".
  for bad in ("", None, 3, b"logs"):
    with pytest.raises(ValueError, match="`log_dir` must be a non-empty"):
      tps.ChannelPruningSummaries(bad)
  assert tps.ChannelPruningSummaries(tmp_path / "logs").log_dir == str(
      tmp_path / "logs")
