"""strip_channel_pruning and the explicit kept-channel state."""

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import every_step
from tests.training.conftest import outputs
from tfprune_survey.training.strip import current_keep

# Keras 3 runs a representative subset: a weight criterion, an activation
# criterion and the gradient criteria, all with in-graph statistics.
_CASES = ([("tf_keras", c) for c in tps.criteria.names()] +
          [("keras3", c) for c in ("l1", "apoz", "taylor", "taylor_fo")])


@pytest.mark.parametrize("framework, criterion", _CASES)
def test_every_criterion_strips_to_the_wrapped_function(xy, framework,
                                                        criterion):
  x, y = xy
  base = build(framework)
  # Data criteria read the training batches inside the graph: no `data`,
  # except those with no in-graph form (e.g. obd), which take `data`.
  crit = tps.criteria.get(criterion)
  data = (x, y) if crit.requires_data and crit.stream_site is None else None
  # A criterion that ranks within groups only (thinet) needs scope='local'.
  scope = "local" if crit.local_only else "global"
  pm = compile_model(tps.prune_channels(
      base, criterion, tps.schedules.ConstantSparsity(0.5, 0, frequency=2),
      data=data, scope=scope))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  slim = tps.strip_channel_pruning(pm)
  masked = tps.strip_channel_pruning(pm, materialize=False)
  want = outputs(pm, x)
  np.testing.assert_allclose(outputs(slim, x), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(outputs(masked, x), want, rtol=1e-4, atol=1e-5)
  assert tps.count_macs(slim) < 0.6 * tps.count_macs(base)
  assert tps.count_macs(masked) == tps.count_macs(base)
  assert not any(isinstance(l, tps.ChannelPruneWrapper) for l in slim.layers)
  assert type(slim).__module__.split(".")[0] == type(base).__module__.split(
      ".")[0]


def test_kept_channels_are_stored_per_group(xy):
  x, y = xy
  pm = compile_model(tps.prune_channels(build("keras3"), "l1", every_step()))
  pm.fit(x, y, batch_size=32, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  graph, keep = current_keep(pm)
  assert keep
  wrappers = {l.layer.name: l for l in pm.layers
              if isinstance(l, tps.ChannelPruneWrapper)}
  for g in graph.prunable_groups:
    # The group's state, not a weight-slice mask read back.
    mask = wrappers[g.id].channel_mask.numpy()
    np.testing.assert_array_equal(np.flatnonzero(mask),
                                  keep.get(g.id, np.arange(g.size)))
  slim = tps.strip_channel_pruning(pm)
  for gid, kept in keep.items():
    assert slim.get_layer(gid).filters == len(kept)
