"""materialize == mask_channels on every tf_keras.applications architecture.

Every architecture that builds offline with `weights=None` is analysed, about
half of every prunable group is kept at random (half of each block, for the
groups of grouped convs, as RegNet's), and the slim model's logits must match
the masked model's within 1e-4 relative, with strictly fewer MACs. The
smallest member of each family runs in `make test`, every member in `make
test-all` (the others are marked slow).
"""

import inspect

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey._compat import keras
from tests.conftest import max_rel_diff

APPS = keras.applications
NAMES = sorted(n for n in dir(APPS)
               if n[:1].isupper() and inspect.isfunction(getattr(APPS, n)))
# Smallest input each family accepts with weights=None.
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
# Each family's smallest member runs in `make test`; the larger members
# (more blocks or wider ones of the same kinds) are marked slow, and run in
# `make test-all`.
QUICK = {"ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0",
         "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2",
         "MobileNetV3Small",
         "NASNetMobile", "RegNetX002", "RegNetY002", "ResNet50",
         "ResNet50V2", "ResNetRS50", "VGG16", "Xception"}


def random_keep(graph, seed):
  """Keeps a random half of every block of every prunable group."""
  rng = np.random.default_rng(seed)
  keep = {}
  for g in graph.prunable_groups:
    per = g.size // g.blocks
    n = max(1, int(round(per * 0.5)))
    keep[g.id] = np.sort(np.concatenate(
        [b * per + rng.choice(per, n, replace=False)
         for b in range(g.blocks)]))
  return keep


def build(name):
  fn = getattr(APPS, name)
  size = MIN_SIZE.get(name, 32)
  kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
  if "classifier_activation" in inspect.signature(fn).parameters:
    kwargs["classifier_activation"] = None  # compare logits, not softmax
  return fn(**kwargs)


def test_every_architecture_is_covered():
  assert len(NAMES) >= 60, NAMES


@pytest.mark.parametrize("name", [
    n if n in QUICK else pytest.param(n, marks=pytest.mark.slow)
    for n in NAMES])
def test_materialize_matches_mask(name):
  model = build(name)
  graph = tps.ChannelGraph(model)
  keep = random_keep(graph, seed=len(name))
  assert keep, f"{name}: no prunable group found"
  masked = tps.mask_channels(model, keep, graph=graph)
  slim = tps.materialize(model, keep, graph=graph)
  size = model.input_shape[1]
  x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(
      "float32")
  ref = masked(x, training=False).numpy()
  got = slim(x, training=False).numpy()
  assert np.isfinite(ref).all()
  assert max_rel_diff(ref, got) <= 1e-4
  # The pruning really changed the function (the check is not vacuous).
  # Only "changed", not "by so much": ConvNeXt's layer scales start at
  # 1e-6, so its pruned branches move the logits by about 1e-6 relative.
  orig = model(x, training=False).numpy()
  assert not np.array_equal(orig, ref)
  assert tps.count_macs(slim) < tps.count_macs(model)
