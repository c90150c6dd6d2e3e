"""keras.applications (Keras 3) beside tf_keras.applications.

Parity: an architecture both Kerases have gives the same MACs, the same
parameter count and the same multiset of (group size, prunable) in both.
`make test` checks the smallest member of every family (14 models); the
others are marked slow, and `make test-all` checks all 40 common ones.
Exactness: on the families of the tf_keras quick pass, the Keras 3 slim
model matches the Keras 3 masked model within 1e-4 relative, with fewer MACs.
(Keras 3 has no RegNet; ResNetRS is tf_keras only too.)
"""

import collections
import inspect

import keras
import numpy as np
import pytest
import tf_keras

import tfprune_survey as tps
from tests.conftest import max_rel_diff
from tests.conftest import random_keep


def _names(module):
  apps = module.applications
  return {n for n in dir(apps)
          if n[:1].isupper() and inspect.isfunction(getattr(apps, n))}


COMMON = sorted(_names(keras) & _names(tf_keras))
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
EXACT = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0",
         "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Small",
         "NASNetMobile", "ResNet50", "ResNet50V2", "VGG16", "Xception"]
QUICK_PARITY = set(EXACT) | {"InceptionResNetV2"}


def build(module, name):
  fn = getattr(module.applications, name)
  size = MIN_SIZE.get(name, 32)
  kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
  if "classifier_activation" in inspect.signature(fn).parameters:
    kwargs["classifier_activation"] = None
  return fn(**kwargs)


def _multiset(graph):
  return collections.Counter((g.size, g.prunable) for g in graph.groups)


def test_common_architectures_are_many():
  assert len(COMMON) >= 40, COMMON
  assert set(EXACT) <= set(COMMON)


@pytest.mark.parametrize("name", [
    n if n in QUICK_PARITY else pytest.param(n, marks=pytest.mark.slow)
    for n in COMMON])
def test_same_macs_params_and_groups_in_both_kerases(name):
  m3, m2 = build(keras, name), build(tf_keras, name)
  g3, g2 = tps.ChannelGraph(m3), tps.ChannelGraph(m2)
  assert tps.count_macs(m3) == tps.count_macs(m2)
  assert tps.count_params(m3) == tps.count_params(m2)
  assert _multiset(g3) == _multiset(g2)
  assert g3.prunable_groups, f"{name}: nothing prunable in Keras 3"


@pytest.mark.parametrize("name", EXACT)
def test_keras3_materialize_matches_mask(name):
  model = build(keras, name)
  graph = tps.ChannelGraph(model)
  keep = random_keep(graph, seed=len(name))
  masked = tps.mask_channels(model, keep, graph=graph)
  slim = tps.materialize(model, keep, graph=graph)
  assert type(slim).__module__.startswith("keras.")
  size = MIN_SIZE.get(name, 32)
  x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(
      "float32")
  ref = np.asarray(masked(x, training=False))
  got = np.asarray(slim(x, training=False))
  assert np.isfinite(ref).all()
  assert max_rel_diff(ref, got) <= 1e-4
  assert not np.array_equal(np.asarray(model(x, training=False)), ref)
  assert tps.count_macs(slim) < tps.count_macs(model)
