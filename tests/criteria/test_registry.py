"""Loops over the registry: every criterion is checked automatically."""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import zoo

EXPECTED = ["apoz", "entropy", "fpgm", "kfac_obd", "l1", "l2", "lasso", "obd",
            "random", "slimming", "sss", "taylor", "taylor_fo", "thinet",
            "variance"]


@pytest.fixture(scope="module")
def model():
  return zoo.residual_cnn(input_shape=(12, 12, 1), width=8)


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  return (rng.random((24, 12, 12, 1)).astype("float32"),
          rng.integers(0, 10, 24))


def test_names_are_the_survey_criteria():
  assert tps.criteria.names() == EXPECTED


@pytest.mark.parametrize("name", tps.criteria.names())
def test_shape_determinism_serialization_and_no_mutation(model, data, name):
  crit = tps.criteria.get(name)
  assert isinstance(crit, tps.criteria.Criterion)
  assert tps.criteria.get(crit) is crit
  assert crit.__doc__ and "(" in crit.__doc__  # cites its paper
  before = [w.copy() for w in model.get_weights()]
  d = data if crit.requires_data else None
  first = tps.score(model, name, d)
  second = tps.score(model, name, d)
  graph = tps.ChannelGraph(model)
  assert first, name
  for gid, s in first.items():
    assert s.shape == (graph.group(gid).size,)
    assert np.isfinite(s).all()
    np.testing.assert_array_equal(s, second[gid])
  clone = type(crit).from_config(crit.get_config())
  assert clone.get_config() == crit.get_config()
  again = tps.score(model, clone, d)
  for gid in first:
    np.testing.assert_array_equal(first[gid], again[gid])
  restored = tps.criteria.deserialize(tps.criteria.serialize(crit))
  assert restored.get_config() == crit.get_config()
  assert all(np.array_equal(a, b) for a, b in zip(before,
                                                  model.get_weights()))


@pytest.mark.parametrize("name", [n for n in tps.criteria.names()
                                  if tps.criteria.get(n).requires_data])
def test_data_criteria_without_data_name_the_criterion(model, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    tps.score(model, name)


def test_unknown_criterion_is_a_value_error(model):
  with pytest.raises(ValueError, match="unknown criterion 'nope'"):
    tps.score(model, "nope")
  with pytest.raises(TypeError):
    tps.criteria.get(3)


def test_register_a_users_criterion(model):
  @tps.criteria.register_criterion("first_weight")
  class FirstWeight(tps.criteria.Criterion):
    """Toy criterion (Nobody, 2026): the first weight of each filter."""
    name = "first_weight"

    def score_parts(self, group, ctx):
      return [f[:, 0] for f in ctx.producer_filters(group)]
  try:
    assert "first_weight" in tps.criteria.names()
    scores = tps.score(model, "first_weight")
    w = model.get_layer("head_conv").get_weights()[0]
    np.testing.assert_allclose(scores["head_conv"],
                               w.reshape(-1, w.shape[-1])[0], rtol=1e-6)
  finally:
    from tfprune_survey.criteria import registry
    registry._REGISTRY.pop("first_weight")  # pylint: disable=protected-access


@pytest.mark.parametrize("name, arg, value, error, text", [
    ("random", "seed", None, TypeError, "got None of type NoneType"),
    ("random", "seed", "a", TypeError, "got 'a' of type str"),
    ("random", "seed", 1.7, TypeError, "got 1.7 of type float"),
    ("random", "seed", -1, ValueError, "got -1"),
    ("entropy", "bins", None, TypeError, "got None of type NoneType"),
    ("entropy", "bins", 2.5, TypeError, "got 2.5 of type float"),
    ("entropy", "bins", "x", TypeError, "got 'x' of type str"),
    ("entropy", "bins", 1, ValueError, "got 1"),
    ("entropy", "bins", True, TypeError, "got True of type bool")])
def test_bad_arguments_are_named_at_construction(name, arg, value, error,
                                                 text):
  # A seed or a bin count that is no whole number used to be truncated
  # (seed 1.7 ran as 1, bins 2.5 as 2) or fail inside int() without naming
  # the argument; a negative seed failed only when scoring.
  with pytest.raises(error) as info:
    tps.criteria.deserialize({"class_name": name, "config": {arg: value}})
  msg = str(info.value)
  assert f"criterion '{name}': `{arg}` must be an int >=" in msg, msg
  assert text in msg, msg


def test_whole_number_arguments_are_taken_as_ints(model):
  crit = tps.criteria.deserialize({"class_name": "random",
                                   "config": {"seed": 3.0}})
  assert crit.get_config()["seed"] == 3 and type(crit.seed) is int
  assert tps.criteria.deserialize(
      {"class_name": "entropy", "config": {"bins": np.int64(7)}}).bins == 7
  want = tps.score(model, tps.criteria.deserialize(
      {"class_name": "random", "config": {"seed": 3}}))
  got = tps.score(model, crit)
  assert got.keys() == want.keys()
  for gid in want:
    np.testing.assert_array_equal(got[gid], want[gid])
