"""tfprune_survey.schedules: the same steps and sparsities as tfmot's schedules.

tfmot is imported inside the tests (through the `tfmot_api` fixture), never
at module level: importing it sets TF_USE_LEGACY_KERAS=1 for the process.
"""

import doctest
import json
import math
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

from tfprune_survey import schedules
from tfprune_survey.schedules import ConstantSparsity
from tfprune_survey.schedules import PolynomialDecay
from tfprune_survey.schedules import PruningSchedule

_MODULE_PATH = (pathlib.Path(__file__).resolve().parents[1]
                / "tfprune_survey" / "schedules.py")

CONSTANT_ARGS = [
    dict(target_sparsity=0.5, begin_step=0),
    dict(target_sparsity=0.0, begin_step=0, end_step=-1, frequency=1),
    dict(target_sparsity=0.9, begin_step=100, end_step=500, frequency=7),
    dict(target_sparsity=0.3, begin_step=999, end_step=-1, frequency=1000),
    dict(target_sparsity=0.75, begin_step=10, end_step=10, frequency=3),
    dict(target_sparsity=0.25, begin_step=3, end_step=1000, frequency=1),
]

POLY_ARGS = [
    dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0,
         end_step=1000),
    dict(initial_sparsity=0.1, final_sparsity=0.9, begin_step=100,
         end_step=500, power=1, frequency=10),
    dict(initial_sparsity=0.5, final_sparsity=0.2, begin_step=50,
         end_step=800, power=0.5, frequency=7),
    dict(initial_sparsity=0.0, final_sparsity=0.99, begin_step=0, end_step=1,
         power=3, frequency=1),
    dict(initial_sparsity=0.3, final_sparsity=0.3, begin_step=0,
         end_step=100, power=2, frequency=1),
    dict(initial_sparsity=0.2, final_sparsity=0.8, begin_step=7,
         end_step=993, power=4, frequency=3),
    dict(initial_sparsity=0.2, final_sparsity=0.8, begin_step=0,
         end_step=300, power=0, frequency=2),
]


def _steps(args):
  """0..1000 plus the edges of `args`'s range and some far-away steps."""
  begin, end = args["begin_step"], args.get("end_step", -1)
  edges = {begin - 1, begin, begin + 1, end - 1, end, end + 1, 1001, 1099,
           10**6, 10**6 + 1, 2**31 - 1, 2**40}
  return sorted(set(range(1001)) | {s for s in edges if s >= 0})


@pytest.fixture(scope="module")
def tfmot_api():
  # pylint: disable-next=g-import-not-at-top
  import tensorflow_model_optimization as tfmot
  return tfmot.sparsity.keras


def _tfmot_values(schedule, steps):
  """tfmot's (should_prune, sparsity) arrays over `steps`, in one call."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  prune, sparsity = schedule(tf.constant(steps, tf.int64))
  prune = np.broadcast_to(prune.numpy(), (len(steps),))
  sparsity = np.broadcast_to(sparsity.numpy(), (len(steps),))
  return prune, sparsity.astype(np.float64)


def _assert_same_as_tfmot(ours, theirs, steps, skip=()):
  ref_prune, ref_sparsity = _tfmot_values(theirs, steps)
  for i, step in enumerate(steps):
    if step in skip:
      continue
    got_prune, got_sparsity = ours(step)
    assert type(got_prune) is bool and type(got_sparsity) is float
    assert got_prune == bool(ref_prune[i]), f"should_prune at step {step}"
    assert got_sparsity == pytest.approx(ref_sparsity[i], abs=1e-6), (
        f"sparsity at step {step}")


@pytest.mark.parametrize("args", CONSTANT_ARGS)
def test_constant_sparsity_matches_tfmot(tfmot_api, args):
  steps = _steps(args)
  _assert_same_as_tfmot(ConstantSparsity(**args),
                        tfmot_api.ConstantSparsity(**args), steps)


@pytest.mark.parametrize("args", POLY_ARGS)
def test_polynomial_decay_matches_tfmot(tfmot_api, args):
  steps = _steps(args)
  _assert_same_as_tfmot(PolynomialDecay(**args),
                        tfmot_api.PolynomialDecay(**args), steps)


def test_polynomial_decay_begin_equals_end(tfmot_api):
  # tfmot divides 0 by 0 at begin_step == end_step and returns NaN there;
  # ours returns final_sparsity. Every other step agrees.
  args = dict(initial_sparsity=0.1, final_sparsity=0.9, begin_step=10,
              end_step=10, frequency=1)
  ours = PolynomialDecay(**args)
  theirs = tfmot_api.PolynomialDecay(**args)
  steps = _steps(args)
  _assert_same_as_tfmot(ours, theirs, steps, skip={10})
  _, ref_sparsity = _tfmot_values(theirs, [10])
  assert math.isnan(ref_sparsity[0])
  assert ours(10) == (True, 0.9)
  assert ours(9) == (False, 0.1)


@pytest.mark.parametrize("args", POLY_ARGS[:2])
def test_scalar_tfmot_step_matches(tfmot_api, args):
  # tfmot called one scalar step at a time, as its wrapper does.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ours = PolynomialDecay(**args)
  theirs = tfmot_api.PolynomialDecay(**args)
  for step in (0, 99, 100, 110, 250, 500, 501, 1200):
    prune, sparsity = theirs(tf.constant(step, tf.int64))
    assert ours(step)[0] == bool(prune.numpy())
    assert ours(step)[1] == pytest.approx(float(sparsity.numpy()), abs=1e-6)


def test_step_types():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ours = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, power=1,
                         frequency=50)
  steps = [50, np.int64(50), np.int32(50), np.array(50), np.uint16(50),
           tf.constant(50), tf.constant(50, tf.int64), tf.Variable(50)]
  try:
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    steps.append(jnp.asarray(50))
  except ImportError:
    pass
  for step in steps:
    prune, sparsity = ours(step)
    assert type(prune) is bool and type(sparsity) is float, type(step)
    assert (prune, sparsity) == (True, 0.4), type(step)
  const = ConstantSparsity(np.float32(0.5), 0, frequency=2)
  assert const(tf.constant(4)) == (True, 0.5)
  assert type(const(np.int64(3))[1]) is float


def test_symbolic_step_is_a_clear_type_error():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ours = ConstantSparsity(0.5, 0)

  @tf.function
  def call(step):
    return ours(step)

  with pytest.raises(TypeError, match="concrete"):
    call(tf.constant(3))


@pytest.mark.parametrize("klass, args", (
    [(ConstantSparsity, a) for a in CONSTANT_ARGS]
    + [(PolynomialDecay, a) for a in POLY_ARGS]))
def test_config_round_trip(tfmot_api, klass, args):
  schedule = klass(**args)
  config = schedule.get_config()
  # The same layout and values as tfmot's get_config.
  assert config == getattr(tfmot_api, klass.__name__)(**args).get_config()
  assert config["class_name"] == klass.__name__
  # from_config takes the inner dict (as tfmot's does) or the whole one.
  for cfg in (config["config"], config):
    again = klass.from_config(cfg)
    assert type(again) is klass
    assert again.get_config() == config
  # JSON and back.
  text = json.dumps(config)
  assert klass.from_config(json.loads(text)["config"]).get_config() == config
  # serialize / deserialize.
  data = schedules.serialize(schedule)
  assert data == config
  assert json.loads(json.dumps(data)) == data
  again = schedules.deserialize(json.loads(json.dumps(data)))
  assert type(again) is klass and again.get_config() == config
  steps = [0, 1, args["begin_step"], 500, 1000]
  assert [again(s) for s in steps] == [schedule(s) for s in steps]
  # serialize returns a copy.
  data["config"]["begin_step"] = 12345
  assert schedule.begin_step == args["begin_step"]


def test_from_config_rejects_other_class():
  config = ConstantSparsity(0.5, 0).get_config()
  with pytest.raises(ValueError, match="ConstantSparsity"):
    PolynomialDecay.from_config(config)


def test_tfmot_schedules_serialize_to_ours(tfmot_api):
  for theirs in (tfmot_api.ConstantSparsity(0.5, 10, 200, 5),
                 tfmot_api.PolynomialDecay(0.1, 0.7, 10, 200, 2, 5)):
    data = schedules.serialize(theirs)
    assert data == theirs.get_config()
    json.dumps(data)
    ours = schedules.deserialize(data)
    assert type(ours).__module__ == "tfprune_survey.schedules"
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.get_config() == theirs.get_config()


def test_serialize_wraps_flat_config_and_rejects_non_schedules():

  class Flat:

    def __call__(self, step):
      return True, 0.5

    def get_config(self):
      return {"sparsity": 0.5}

  assert schedules.serialize(Flat()) == {"class_name": "Flat",
                                         "config": {"sparsity": 0.5}}
  for bad in (3, lambda step: (True, 0.5), ConstantSparsity):
    with pytest.raises(TypeError, match="schedule"):
      schedules.serialize(bad)


class _Custom(PruningSchedule):

  def __init__(self, sparsity):
    self._validate_sparsity(sparsity, "sparsity")
    self.sparsity = sparsity

  def __call__(self, step):
    return True, float(self.sparsity)

  def get_config(self):
    return {"class_name": "_Custom", "config": {"sparsity": self.sparsity}}


def test_deserialize_custom_and_unknown(monkeypatch):
  data = schedules.serialize(_Custom(0.25))
  got = schedules.deserialize(data, custom_objects={"_Custom": _Custom})
  assert isinstance(got, _Custom) and got(3) == (True, 0.25)
  assert repr(got) == "_Custom(sparsity=0.25)"

  # Without tfmot imported: a ValueError naming the class and saying how to
  # register it; tfmot is not imported as a side effect.
  monkeypatch.delitem(sys.modules, "tensorflow_model_optimization",
                      raising=False)
  with pytest.raises(ValueError, match=r"'_Custom'.*custom_objects"):
    schedules.deserialize(data)
  assert "tensorflow_model_optimization" not in sys.modules

  # With (a stand-in for) tfmot imported, its schedule classes are used.
  class TfmotBase:
    pass

  class Special(TfmotBase):

    def __init__(self, x):
      self.x = x

    @classmethod
    def from_config(cls, config):
      return cls(**config)

  fake = types.ModuleType("tensorflow_model_optimization")
  fake.sparsity = types.SimpleNamespace(keras=types.SimpleNamespace(
      PruningSchedule=TfmotBase, Special=Special, NotASchedule=dict))
  monkeypatch.setitem(sys.modules, "tensorflow_model_optimization", fake)
  got = schedules.deserialize({"class_name": "Special", "config": {"x": 1}})
  assert isinstance(got, Special) and got.x == 1
  # Ours still replace tfmot's ConstantSparsity.
  got = schedules.deserialize(ConstantSparsity(0.5, 0).get_config())
  assert type(got) is ConstantSparsity
  for name in ("NotASchedule", "Missing"):
    with pytest.raises(ValueError, match=name):
      schedules.deserialize({"class_name": name, "config": {}})


def test_deserialize_rejects_malformed():
  for bad in ({"config": {}}, {"class_name": "ConstantSparsity"}, "x",
              {"class_name": 1, "config": {}}):
    with pytest.raises(TypeError, match="class_name"):
      schedules.deserialize(bad)


@pytest.mark.parametrize("klass, args, name", [
    (ConstantSparsity, dict(target_sparsity=1.5, begin_step=0),
     "target_sparsity"),
    (ConstantSparsity, dict(target_sparsity=1.0, begin_step=0),
     "target_sparsity"),
    (ConstantSparsity, dict(target_sparsity=-0.1, begin_step=0),
     "target_sparsity"),
    (ConstantSparsity, dict(target_sparsity=float("nan"), begin_step=0),
     "target_sparsity"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=-1),
     "begin_step"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0, frequency=0),
     "frequency"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0, frequency=-3),
     "frequency"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0, end_step=-2),
     "end_step"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=10, end_step=5),
     "end_step"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=0.5,
                           begin_step=10, end_step=5), "end_step"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=0.5,
                           begin_step=0, end_step=-1), "end_step"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=0.5,
                           begin_step=-1, end_step=5), "begin_step"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=0.5,
                           begin_step=0, end_step=5, frequency=0),
     "frequency"),
    (PolynomialDecay, dict(initial_sparsity=1.2, final_sparsity=0.5,
                           begin_step=0, end_step=5), "initial_sparsity"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=1.0,
                           begin_step=0, end_step=5), "final_sparsity"),
])
def test_bad_arguments(tfmot_api, klass, args, name):
  with pytest.raises(ValueError, match=name):
    klass(**args)
  with pytest.raises(ValueError):  # tfmot rejects the same arguments
    getattr(tfmot_api, klass.__name__)(**args)


@pytest.mark.parametrize("klass, args, name", [
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0.5,
                            frequency=1), "begin_step"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0,
                            frequency=2.5), "frequency"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0,
                            frequency=float("nan")), "frequency"),
    (ConstantSparsity, dict(target_sparsity=0.5, begin_step=0,
                            end_step=10.0), "end_step"),
    (PolynomialDecay, dict(initial_sparsity=0.0, final_sparsity=0.5,
                           begin_step=0, end_step=10.5, frequency=1),
     "end_step"),
])
def test_non_integer_steps_are_rejected(tfmot_api, klass, args, name):
  # tfmot fails at its first call (it casts the steps to int64); ours
  # computed with them: begin_step=0.5 or frequency=nan never pruned, and
  # frequency=2.5 pruned at steps 0, 5, 10.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with pytest.raises(TypeError, match=f"`{name}` must be an integer"):
    klass(**args)
  with pytest.raises(TypeError):
    getattr(tfmot_api, klass.__name__)(**args)(tf.constant(0, tf.int64))
  # numpy integers are integers.
  ours = ConstantSparsity(0.5, np.int64(1), np.int32(9), frequency=np.uint8(4))
  assert [s for s in range(12) if ours(s)[0]] == [1, 5, 9]


@pytest.mark.parametrize("name", ["target_sparsity", "begin_step",
                                  "frequency"])
def test_wrong_types_name_the_argument(name):
  args = dict(target_sparsity=0.5, begin_step=0, frequency=1)
  args[name] = "1" if name != "frequency" else None
  with pytest.raises(TypeError, match=f"`{name}`"):
    ConstantSparsity(**args)


def test_is_schedule(tfmot_api):
  assert schedules.is_schedule(ConstantSparsity(0.5, 0))
  assert schedules.is_schedule(PolynomialDecay(0.0, 0.5, 0, 10))
  assert schedules.is_schedule(_Custom(0.1))
  assert schedules.is_schedule(tfmot_api.ConstantSparsity(0.5, 0))
  assert schedules.is_schedule(tfmot_api.PolynomialDecay(0.0, 0.5, 0, 10))
  assert not schedules.is_schedule(lambda step: (True, 0.5))
  assert not schedules.is_schedule(3)
  assert not schedules.is_schedule(None)
  assert not schedules.is_schedule(ConstantSparsity)  # a class, not a schedule


def test_repr():
  assert repr(ConstantSparsity(0.5, 0)) == (
      "ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, "
      "frequency=100)")


def test_docstring_examples():
  result = doctest.testmod(schedules, raise_on_error=False)
  assert result.attempted >= 5 and result.failed == 0


def test_import_pulls_in_no_keras():
  # Loaded by path so that the package __init__ (which may import Keras)
  # does not run.
  code = (
      "import importlib.util, sys\n"
      "spec = importlib.util.spec_from_file_location(\n"
      f"    'sched', {str(_MODULE_PATH)!r})\n"
      "mod = importlib.util.module_from_spec(spec)\n"
      "spec.loader.exec_module(mod)\n"
      "s = mod.PolynomialDecay(0.0, 0.5, 0, 10, frequency=1)\n"
      "assert s(5)[0] is True\n"
      "mod.deserialize(mod.serialize(s))\n"
      "heavy = ('tensorflow_model_optimization', 'tf_keras', 'keras')\n"
      "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, timeout=60)
  assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("power, error, text", [
    ("3", TypeError, "`power` must be a real number, got str: '3'"),
    (None, TypeError, "`power` must be a real number, got NoneType: None"),
    (2 + 1j, TypeError, "`power` must be a real number, got complex"),
    (True, TypeError, "`power` must be a real number, got bool: True"),
    (float("nan"), ValueError, "`power` must be a number, got nan"),
])
def test_bad_power_is_rejected_naming_it(power, error, text):
  # Accepted before, then a TypeError naming no argument at the first
  # pruning step ("3", None, complex), or NaN sparsities (nan).
  with pytest.raises(error) as info:
    PolynomialDecay(0.0, 0.5, begin_step=0, end_step=10, power=power)
  assert text in str(info.value)
  # Real numbers of any kind (negative too, as in tfmot) still work.
  for ok in (np.float32(0.5), np.int64(2), -1, math.inf):
    sched = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=10, power=ok,
                            frequency=5)
    assert sched(10) == (True, 0.5 if ok != -1 else -math.inf)
