"""tps.Planner, tps.search_macs and the one validator of planning arguments."""

import dataclasses

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import planning
from tfprune_survey import pruner
from tfprune_survey.metrics.macs_model import MacsModel


# ---- a hand-built graph with a linear MACs model ------------------------------

@dataclasses.dataclass
class FakeGroup:
  id: str
  size: int


class FakeGraph:

  def __init__(self, sizes):
    self.groups = {gid: FakeGroup(gid, n) for gid, n in sizes.items()}

  def group(self, gid):
    return self.groups[gid]


class LinearMacs:
  """MACs = base + sum(cost[g] * kept[g])."""

  def __init__(self, base, cost):
    self.base, self.cost = base, cost

  def macs(self, counts):
    return self.base + sum(self.cost[g] * n for g, n in counts.items())


SIZES = {"a": 4, "b": 8, "c": 2}
SCORES = {"a": np.array([4.0, 1.0, 3.0, 2.0]),
          "b": np.arange(1.0, 9.0),
          "c": np.array([5.0, 6.0])}


def make(round_to=1, min_channels=1):
  return planning.Planner(FakeGraph(SIZES), SCORES, round_to, min_channels)


def test_global_order_is_by_normalised_score():
  p = make()
  # a / mean|a| = [1.6, .4, 1.2, .8]; b / 4.5 = [.22, .44, ...]; c / 5.5:
  # the lowest are b0, a1, b1.
  first = [(p.groups[gi].id, c) for _, gi, c in p.order[:3]]
  assert first == [("b", 0), ("a", 1), ("b", 1)]
  assert p.counts_global(3) == {"a": 3, "b": 6, "c": 2}
  assert p.total == 14


def test_keep_indices_are_the_top_scores():
  p = make()
  keep = p.keep_indices({"a": 2, "b": 8, "c": 1})
  assert keep["a"].tolist() == [0, 2]
  assert keep["c"].tolist() == [1]
  assert "b" not in keep  # kept whole


def test_local_and_per_group_counts():
  p = make()
  assert p.counts_local(0.5) == {"a": 2, "b": 4, "c": 1}
  assert p.counts_per_group({"b": 0.25}) == {"a": 4, "b": 6, "c": 2}


def test_round_to_and_min_channels():
  p = make(round_to=4, min_channels=3)
  # min_channels rounds up to 4; 'c' (2 channels) is smaller: kept whole.
  assert p.min_keep == {"a": 4, "b": 4, "c": 2}
  assert p.floor_counts() == {"a": 4, "b": 4, "c": 2}
  counts = p.counts_local(0.9)
  assert counts == {"a": 4, "b": 4, "c": 2}
  for n, g in ((counts["b"], "b"), (p.counts_global(1)["b"], "b")):
    assert n % 4 == 0 or n == SIZES[g]


def test_counts_removing_undoes_no_removal_by_rounding():
  p = make(round_to=4)
  # The first 3 along the ranking (b0, a1, b1) round back up to a 4, b 8.
  assert p.counts_global(3) == {"a": 4, "b": 8, "c": 2}
  # The fewest that remove at least 3 after rounding: 'b' down to 4.
  counts = p.counts_removing(3)
  assert counts == {"a": 4, "b": 4, "c": 2}
  assert make().counts_removing(3) == make().counts_global(3)
  # More than can go: everything the rounding allows (a 4 -> 4, c 2 -> 2).
  assert p.counts_removing(13) == {"a": 4, "b": 4, "c": 2}
  assert p.counts_removing(0) == {"a": 4, "b": 8, "c": 2}


def _removing_reference(p, n):
  """The fewest channels along the ranking whose rounded counts remove n."""
  removed = lambda c: sum(g.size - c[g.id] for g in p.groups)
  for m in range(min(n, p.total), p.total + 1):
    if removed(p.counts_global(m)) >= n:
      return p.counts_global(m)
  return p.counts_global(p.total)


def test_counts_removing_takes_one_pass_where_nothing_is_rounded(
    monkeypatch):
  for round_to, min_channels in ((1, 1), (1, 3), (4, 1), (2, 1), (4, 3)):
    for n in range(0, 16):
      want = _removing_reference(make(round_to, min_channels), n)
      p = make(round_to, min_channels)
      calls = []
      orig = p.counts_global
      monkeypatch.setattr(
          p, "counts_global",
          lambda m, order=None: calls.append(m) or orig(m, order))
      assert p.counts_removing(n) == want, (round_to, min_channels, n)
      if round_to == 1:
        # Without rounding it is counts_global(n): one pass, no search.
        assert calls == [min(n, p.total)], (min_channels, n, calls)
        assert want == make(1, min_channels).counts_global(n)
  # Rounded, but counts_global(n) already removes n: no search either.
  p = make(round_to=4)
  calls = []
  orig = p.counts_global
  monkeypatch.setattr(p, "counts_global",
                      lambda m, order=None: calls.append(m) or orig(m, order))
  assert p.counts_removing(4) == {"a": 4, "b": 4, "c": 2}
  assert calls == [4]


def test_search_macs_reaches_the_target_on_a_linear_model():
  p = make()
  macs = LinearMacs(100, {"a": 10, "b": 5, "c": 20})
  before = macs.macs({"a": 4, "b": 8, "c": 2})  # 220
  counts = planning.search_macs(p, macs, before, 0.25)
  after = macs.macs(counts)
  # Within 2% of the model's MACs below the goal of 165: the binary search
  # alone stops at 160 (its 7th channel, c1, costs 20), so the ranking is
  # walked on with channels that do not overshoot.
  assert macs.macs(p.counts_global(7)) == 160
  assert before * (0.75 - 0.02) <= after <= before * 0.75


def test_search_macs_says_what_is_reachable():
  p = make(min_channels=2)
  macs = LinearMacs(100, {"a": 10, "b": 5, "c": 20})
  # Every group at 2 channels: 100 + 20 + 10 + 40 = 170 MACs of 220.
  with pytest.raises(planning.UnreachableTargetError) as info:
    planning.search_macs(p, macs, 220, 0.9, left_whole={"c": "by `ignore`"})
  assert isinstance(info.value, ValueError)
  assert tps.UnreachableTargetError is planning.UnreachableTargetError
  assert info.value.best == pytest.approx(1 - 170 / 220)
  assert (info.value.argument, info.value.target) == ("target_macs", 0.9)
  assert str(info.value) == (
      "`target_macs`=0.9 is unreachable: the largest reachable MACs "
      "reduction is 0.227, with min_channels=2; round_to=1; groups left "
      "whole: 'c' (by `ignore`)")


def test_planner_names_groups_in_messages_by_names():
  p = planning.Planner(FakeGraph(SIZES), SCORES, 1, 2, names={"c": "cc"})
  assert [p.name(g) for g in ("a", "c")] == ["a", "cc"]
  with pytest.raises(ValueError) as info:
    planning.check_reachable(p, LinearMacs(100, {"a": 10, "b": 5, "c": 20}),
                             220, 0.9, left_whole={"c": "by `ignore`"})
  assert str(info.value).endswith("groups left whole: 'cc' (by `ignore`)")


def _dense_model(keras):
  inp = keras.Input((4,))
  x = keras.layers.Dense(8, name="d1")(inp)
  x = keras.layers.Dense(6, name="d2")(x)
  return keras.Model(inp, keras.layers.Dense(3, name="out")(x))


@pytest.fixture(params=["tf_keras", "keras3"])
def dense_model(request):
  if request.param == "tf_keras":
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  else:
    import keras  # pylint: disable=g-import-not-at-top
  return _dense_model(keras)


def test_planner_and_search_on_a_model_with_known_macs(dense_model):
  # MACs of one sample: 4*d1 + d1*d2 + 3*d2 = 32 + 48 + 18 = 98.
  assert tps.count_macs(dense_model) == 98
  graph = tps.ChannelGraph(dense_model)
  macs_model = MacsModel(dense_model, graph)
  assert macs_model.macs({"d1": 4, "d2": 3}) == 4 * 4 + 4 * 3 + 3 * 3
  scores = {g.id: np.arange(g.size, dtype=float) for g in
            graph.prunable_groups}
  planner = tps.Planner(graph, scores, 1, 1)
  counts = tps.search_macs(planner, macs_model, 98, 0.5)
  assert macs_model.macs(counts) <= 49
  slim = tps.materialize(dense_model, planner.keep_indices(counts),
                         graph=graph)
  assert tps.count_macs(slim) == macs_model.macs(counts)


def test_private_names_stay_importable_from_pruner():
  assert pruner._Planner is planning.Planner
  assert pruner._search_macs is planning.search_macs
  assert pruner.SCOPES == planning.SCOPES == ("global", "local")
  assert pruner._check_int(3, "round_to", 1) == 3
  with pytest.raises(TypeError, match="`round_to`"):
    pruner._check_int(2.5, "round_to", 1)
  assert tps.Planner is planning.Planner and "Planner" in tps.__all__
  assert tps.search_macs is planning.search_macs
  assert "search_macs" in tps.__all__


# ---- the validator -----------------------------------------------------------

# (kwargs, exception type, argument named in the message)
PRUNE_CASES = [
    (dict(ratio="half"), TypeError, "ratio"),
    (dict(ratio=True), TypeError, "ratio"),
    (dict(ratio=1.5), ValueError, "ratio"),
    (dict(ratio=-0.1), ValueError, "ratio"),
    (dict(ratio=float("nan")), ValueError, "ratio"),
    (dict(target_macs="0.5"), TypeError, "target_macs"),
    (dict(target_macs=0.0), ValueError, "target_macs"),
    (dict(target_macs=1.0), ValueError, "target_macs"),
    (dict(ratios=[0.5]), TypeError, "ratios"),
    (dict(ratios={"d1": "x"}), TypeError, "ratios"),
    (dict(ratios={"d1": 1.2}), ValueError, "ratios"),
    (dict(ratios={"nope": 0.5}), ValueError, "ratios"),
    (dict(ratio=0.5, scope="galactic"), ValueError, "scope"),
    (dict(ratio=0.5, scope=None), TypeError, "scope"),
    (dict(ratio=0.5, round_to=2.5), TypeError, "round_to"),
    (dict(ratio=0.5, round_to=0), ValueError, "round_to"),
    (dict(ratio=0.5, min_channels="1"), TypeError, "min_channels"),
    (dict(ratio=0.5, min_channels=0), ValueError, "min_channels"),
    (dict(ratio=0.5, ignore=5), TypeError, "ignore"),
    (dict(ratio=0.5, ignore=[5]), TypeError, "ignore"),
    (dict(ratio=0.5, ignore=["no_such_layer"]), ValueError, "ignore"),
    # `steps` is checked even for a criterion that reads no data (l1).
    (dict(ratio=0.5, steps=0), ValueError, "steps"),
    (dict(ratio=0.5, steps=-1), ValueError, "steps"),
    (dict(ratio=0.5, steps=1.5), TypeError, "steps"),
    (dict(ratio=0.5, steps="2"), TypeError, "steps"),
    (dict(), ValueError, "exactly one"),
    (dict(ratio=0.2, target_macs=0.2), ValueError, "exactly one"),
]


def _named(message, name, value=None):
  assert name in message, message
  if value is not None and not isinstance(value, (dict, list)):
    assert repr(value) in message or repr(float(value)) in message, message


@pytest.mark.parametrize("kwargs,exc,name", PRUNE_CASES,
                         ids=[f"{k}-{e.__name__}" for k, e, _ in PRUNE_CASES])
def test_prune_bad_arguments(dense_model, kwargs, exc, name):
  with pytest.raises(exc) as info:
    tps.prune(dense_model, "l1", **kwargs)
  assert type(info.value) is exc  # not a subclass standing in for the other
  value = kwargs.get(name) if name in kwargs and name != "ratios" else None
  _named(str(info.value), name, value)


ITERATIVE_CASES = [
    (dict(target_macs="half"), TypeError, "target_macs"),
    (dict(target_macs=1.5), ValueError, "target_macs"),
    (dict(target_macs=0.3, scope="galactic"), ValueError, "scope"),
    (dict(target_macs=0.3, scope=1), TypeError, "scope"),
    (dict(target_macs=0.3, round_to=2.5), TypeError, "round_to"),
    (dict(target_macs=0.3, round_to=0), ValueError, "round_to"),
    (dict(target_macs=0.3, min_channels=1.0), TypeError, "min_channels"),
    (dict(target_macs=0.3, min_channels=-2), ValueError, "min_channels"),
    (dict(target_macs=0.3, rounds=1.5), TypeError, "rounds"),
    (dict(target_macs=0.3, rounds=0), ValueError, "rounds"),
    (dict(target_macs=0.3, mode="sideways"), ValueError, "mode"),
    (dict(target_macs=0.3, mode=None), TypeError, "mode"),
]


@pytest.mark.parametrize(
    "kwargs,exc,name", ITERATIVE_CASES,
    ids=[f"{k}-{e.__name__}" for k, e, _ in ITERATIVE_CASES])
def test_iterative_prune_bad_arguments(dense_model, kwargs, exc, name):
  calls = []
  with pytest.raises(exc) as info:
    tps.iterative_prune(dense_model, "l1", finetune=calls.append, verbose=0,
                        **kwargs)
  assert type(info.value) is exc
  _named(str(info.value), name, kwargs.get(name))
  assert not calls  # raised before any pruning or fine-tuning


def test_check_plan_args_normalises():
  args = planning.check_plan_args(ratio=np.float32(0.25), round_to=np.int64(8),
                                  ignore="conv1")
  assert args.ratio == 0.25 and isinstance(args.ratio, float)
  assert args.round_to == 8 and type(args.round_to) is int
  assert args.ignore == ("conv1",)
  assert planning.check_plan_args(target_macs=0.5,
                                  target="target_macs").target_macs == 0.5
  assert planning.check_plan_args(scope="local", target="none").scope == "local"
  with pytest.raises(ValueError, match="schedule"):
    planning.check_plan_args(ratio=0.5, target="none")
  with pytest.raises(ValueError, match="required"):
    planning.check_plan_args(target="target_macs")


def test_sensitivity_ratios_are_checked_before_any_work(dense_model):
  x = np.zeros((4, 4), "float32")
  y = np.zeros(4, "int64")
  with pytest.raises(TypeError, match="`ratios`"):
    tps.sensitivity(dense_model, "l1", ratios=0.5, eval_data=(x, y),
                    verbose=0)
  with pytest.raises(TypeError, match="`ratios`"):
    tps.sensitivity(dense_model, "l1", ratios=("a",), eval_data=(x, y),
                    verbose=0)
  with pytest.raises(ValueError, match="`ratios`"):
    tps.sensitivity(dense_model, "l1", ratios=(0.5, 1.2), eval_data=(x, y),
                    verbose=0)
  with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 4\)"):
    tps.sensitivity(dense_model, "l1", eval_data=(np.zeros((4, 5)), y),
                    verbose=0)
