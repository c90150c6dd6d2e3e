"""Shared helpers for the tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfprune_survey as tps  # noqa: E402


def random_keep(graph, seed=0, fraction=0.5):
  """Keeps a random ~fraction of every prunable group."""
  rng = np.random.default_rng(seed)
  keep = {}
  for g in graph.prunable_groups:
    n = max(1, int(round(g.size * fraction)))
    keep[g.id] = np.sort(rng.choice(g.size, n, replace=False))
  return keep


def max_rel_diff(a, b):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def assert_equivalent(model, keep, x, rtol=1e-5, graph=None):
  """materialize(model, keep) must compute what mask_channels computes."""
  graph = graph if graph is not None else tps.ChannelGraph(model)
  masked = tps.mask_channels(model, keep, graph=graph)
  slim = tps.materialize(model, keep, graph=graph)
  ref = masked(x, training=False)
  got = slim(x, training=False)
  refs = ref if isinstance(ref, (list, tuple)) else [ref]
  gots = got if isinstance(got, (list, tuple)) else [got]
  for r, g in zip(refs, gots):
    rel = max_rel_diff(np.asarray(r), np.asarray(g))
    assert rel <= rtol, f"slim differs from masked by {rel:.2e} (rtol {rtol})"
  return masked, slim


@pytest.fixture
def rng():
  return np.random.default_rng(0)
