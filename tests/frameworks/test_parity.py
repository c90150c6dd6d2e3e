"""The same network in tf_keras and in Keras 3, with the same weights.

Every criterion gives the same scores (rtol 1e-5) and `prune` the same keep
sets, so a result does not depend on which Keras the user wrote.
"""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import zoo


@pytest.fixture(scope="module")
def pair():
  rng = np.random.default_rng(0)
  k3 = zoo.resnet_cifar(8, input_shape=(12, 12, 1), widths=(8, 16, 16),
                        framework="keras3")
  k2 = zoo.resnet_cifar(8, input_shape=(12, 12, 1), widths=(8, 16, 16),
                        framework="tf_keras")
  weights = [rng.standard_normal(w.shape).astype("float32") * 0.3
             if len(w.shape) != 1 else
             rng.random(w.shape).astype("float32") + 0.5
             for w in k3.weights]
  k3.set_weights(weights)
  k2.set_weights(weights)
  x = rng.random((48, 12, 12, 1)).astype("float32")
  y = rng.integers(0, 10, 48)
  return k2, k3, (x, y)


def test_same_function_groups_and_costs(pair):
  k2, k3, (x, _) = pair
  np.testing.assert_allclose(np.asarray(k3(x)), np.asarray(k2(x)),
                             rtol=1e-5, atol=1e-5)
  g2, g3 = tps.ChannelGraph(k2), tps.ChannelGraph(k3)
  assert [(g.id, g.size, g.prunable) for g in g2.groups] == [
      (g.id, g.size, g.prunable) for g in g3.groups]
  assert tps.count_macs(k2) == tps.count_macs(k3)
  assert tps.count_params(k2) == tps.count_params(k3)


@pytest.mark.parametrize("name", tps.criteria.names())
def test_every_criterion_scores_the_same(pair, name):
  k2, k3, data = pair
  s2, s3 = tps.score(k2, name, data), tps.score(k3, name, data)
  assert sorted(s2) == sorted(s3) and s2
  for gid in s2:
    np.testing.assert_allclose(s3[gid], s2[gid], rtol=1e-5, atol=1e-7,
                               err_msg=f"{name}: group {gid}")


@pytest.mark.parametrize("name,kwargs", [
    ("taylor", dict(target_macs=0.5)),
    ("fpgm", dict(ratio=0.4, scope="local")),
    ("apoz", dict(target_macs=0.3, round_to=4)),
])
def test_prune_keeps_the_same_channels(pair, name, kwargs):
  k2, k3, data = pair
  r2 = tps.prune(k2, name, data=data, **kwargs)
  r3 = tps.prune(k3, name, data=data, **kwargs)
  assert sorted(r2.keep) == sorted(r3.keep)
  for gid in r2.keep:
    np.testing.assert_array_equal(r2.keep[gid], r3.keep[gid])
  assert r2.report.macs_after == r3.report.macs_after
  x = data[0][:8]
  np.testing.assert_allclose(np.asarray(r3.model(x)),
                             np.asarray(r2.model(x)), rtol=1e-4, atol=1e-5)
