"""Lottery-ticket rewinding: RewindCheckpoint and rewind."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import every_step
from tests.training.conftest import keras_of


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rewind_copies_exactly_the_kept_slices(xy, framework):
  x, y = xy
  pm = compile_model(tps.prune_channels(build(framework), "l1", every_step()))
  ckpt = tps.RewindCheckpoint(epoch=1)
  pm.fit(x, y, batch_size=32, epochs=3, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(), ckpt])
  slim = tps.strip_channel_pruning(pm)
  trained = [w.copy() for w in slim.get_weights()]
  # The checkpoint recorded the kept channels of the run it was in.
  keep = ckpt.keep
  assert keep and keep.keys() == tps.training.current_keep(pm)[1].keys()
  assert tps.rewind(slim, ckpt) is slim
  source = ckpt.model_at_epoch
  assert type(source).__module__.split(".")[0] == type(pm).__module__.split(
      ".")[0]
  graph = tps.ChannelGraph(source)
  g = graph.group("stem_conv")
  kept = keep[g.id]
  np.testing.assert_array_equal(
      slim.get_layer("stem_conv").kernel.numpy(),
      source.get_layer("stem_conv").kernel.numpy()[..., kept])
  nxt = graph.group("block_conv1")
  np.testing.assert_array_equal(
      slim.get_layer("block_conv1").kernel.numpy(),
      source.get_layer("block_conv1").kernel.numpy()[..., kept, :][
          ..., keep.get(nxt.id, np.arange(nxt.size))])
  assert not all(np.array_equal(a, b) for a, b in
                 zip(trained, slim.get_weights()))
  with pytest.raises(ValueError, match="not recorded"):
    tps.rewind(slim, tps.RewindCheckpoint(epoch=5))
  # A slim model cut elsewhere: its keep must be given.
  result = tps.prune(build(framework), "l1", ratio=0.5)
  with pytest.raises(ValueError, match="keep="):
    tps.rewind(result.model, source)      # a model: no keep of its own
  rewound = tps.rewind(result.model, source, keep=result.keep)
  np.testing.assert_array_equal(
      rewound.get_layer("stem_conv").kernel.numpy(),
      source.get_layer("stem_conv").kernel.numpy()[
          ..., result.keep["stem_conv"]])
  with pytest.raises(TypeError, match="checkpoint"):
    tps.rewind(slim, "checkpoint.keras")
  with pytest.raises(ValueError, match="epoch"):
    tps.RewindCheckpoint(epoch=-1)


def test_rewind_checkpoint_takes_a_numpy_integer_epoch(xy):
  # np.int64(1) (e.g. from np.argmin over a schedule) was refused: "must
  # be an int >= 0, got np.int64(1)".
  x, y = xy
  model = compile_model(build("keras3"))
  ckpt, plain = tps.RewindCheckpoint(np.int64(1)), tps.RewindCheckpoint(1)
  assert ckpt.epoch == 1 and type(ckpt.epoch) is int
  model.fit(x[:16], y[:16], batch_size=16, epochs=2, verbose=0,
            callbacks=[ckpt, plain])
  assert ckpt.model_at_epoch is not None
  for a, b in zip(ckpt.model_at_epoch.get_weights(),
                  plain.model_at_epoch.get_weights()):
    np.testing.assert_array_equal(a, b)
  for bad in (1.0, True, np.int32(-1), "1"):
    with pytest.raises(ValueError, match="epoch"):
      tps.RewindCheckpoint(bad)


def test_rewind_checkpoint_on_a_plain_model_records_no_keep(xy):
  x, y = xy
  model = compile_model(build("keras3"))
  before = [w.copy() for w in model.get_weights()]
  ckpt = tps.RewindCheckpoint()
  model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[ckpt])
  assert ckpt.keep is None
  assert all(np.array_equal(a, b) for a, b in
             zip(before, ckpt.model_at_epoch.get_weights()))
  slim = tps.prune(model, "l1", ratio=0.5)
  with pytest.raises(ValueError, match="keep="):
    tps.rewind(slim.model, ckpt)
  tps.rewind(slim.model, ckpt, keep=slim.keep)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_checkpoint_listed_first_records_the_final_soft_prune(xy, framework):
  # Soft pruning re-selects the channels in UpdateChannelPruningStep's
  # on_train_end (SFP's final prune). A RewindCheckpoint listed before it
  # read the keep of the last pruning step: with local scope the counts
  # match, so rewind copied the wrong channels without a word.
  x, y = xy
  keras = keras_of(framework)
  schedule = tps.schedules.ConstantSparsity(0.5, 0, frequency=100)
  pm = compile_model(tps.prune_channels(build(framework), "l1", schedule,
                                        soft=True, scope="local"))
  wrapper = pm.get_layer("chprune_stem_conv")

  class Revive(keras.callbacks.Callback):
    # A dropped channel comes back (soft pruning lets it): the dropped
    # filters become the largest, the kept ones small.
    def on_train_batch_end(self, batch, logs=None):
      if batch == 1:
        dropped = wrapper.channel_mask.numpy() == 0
        k = wrapper.layer.kernel.numpy()
        k[..., dropped] = 1.0
        k[..., ~dropped] *= 0.01
        wrapper.layer.kernel.assign(k)
        self.dropped = np.flatnonzero(dropped)

  ckpt, revive = tps.RewindCheckpoint(epoch=0), Revive()
  pm.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0,
         callbacks=[ckpt, tps.UpdateChannelPruningStep(), revive])
  final = tps.training.current_keep(pm)[1]
  # The final prune kept exactly the revived filters of stem_conv.
  np.testing.assert_array_equal(final["stem_conv"], revive.dropped)
  assert {k: v.tolist() for k, v in ckpt.keep.items()} == {
      k: v.tolist() for k, v in final.items()}
  slim = tps.rewind(tps.strip_channel_pruning(pm), ckpt)
  np.testing.assert_array_equal(
      slim.get_layer("stem_conv").kernel.numpy(),
      ckpt.model_at_epoch.get_layer("stem_conv").kernel.numpy()[
          ..., revive.dropped])
  # A later fit of the same model without the checkpoint leaves its keep.
  pm.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  np.testing.assert_array_equal(ckpt.keep["stem_conv"], revive.dropped)
