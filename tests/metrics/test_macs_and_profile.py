"""MACs against published figures, params, and the profile table."""

import pytest

import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras

L = keras.layers


@pytest.mark.parametrize("build,published", [
    (lambda: keras.applications.VGG16(weights=None), 15.47e9),
    (lambda: keras.applications.MobileNetV2(weights=None), 0.30e9),
    (lambda: zoo.resnet_cifar(56), 125e6),
], ids=["VGG16-224", "MobileNetV2-224", "ResNet56-CIFAR"])
def test_macs_match_published_figures_within_2_percent(build, published):
  macs = tps.count_macs(build())
  assert abs(macs - published) / published <= 0.02, macs


def test_macs_of_each_layer_type_by_hand():
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, padding="same", name="conv")(inp)          # 8*8*3*3*3*4
  x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)  # 8*8*9*8
  x = L.SeparableConv2D(5, 3, padding="same")(x)              # 64*(9*8+8*5)
  x = L.Conv2DTranspose(2, 3, strides=2, padding="same")(x)   # 64*9*2*5
  x = L.BatchNormalization()(x)
  x = L.GlobalAveragePooling2D()(x)
  out = L.Dense(7)(x)                                         # 2*7
  model = keras.Model(inp, out)
  expected = (64 * 27 * 4 + 64 * 9 * 8 + 64 * (9 * 8 + 8 * 5) +
              64 * 9 * 2 * 5 + 14)
  assert tps.count_macs(model) == expected


def test_count_params_includes_non_trainable():
  model = zoo.residual_cnn()
  assert tps.count_params(model) == model.count_params()
  assert tps.count_params(model) > sum(
      int(w.shape.num_elements()) for w in model.trainable_weights)


def test_profile_rows_and_totals():
  model = zoo.residual_cnn()
  prof = tps.profile(model)
  names = [r.name for r in prof]
  assert names[0] == "stem_conv"
  assert prof.total_macs == tps.count_macs(model)
  assert prof.total_params == model.count_params()
  row = prof[names.index("stem_conv")]
  assert row.macs == 32 * 32 * 3 * 3 * 3 * 32
  assert row.output_shape == (None, 32, 32, 32)
  text = str(prof)
  assert "stem_conv" in text and "total" in text


def test_macs_drop_after_materialize():
  model = zoo.resnet_cifar(20)
  graph = tps.ChannelGraph(model)
  keep = {g.id: list(range(g.size // 2)) for g in graph.prunable_groups}
  slim = tps.materialize(model, keep, graph=graph)
  assert tps.count_macs(slim) < 0.3 * tps.count_macs(model)
