"""Iterative and layer-wise prune / fine-tune schedules, in tf_keras and
Keras 3."""

# `digits` and `trained` (the digits CNN, once per Keras) are fixtures of
# tests/conftest.py.

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import dead_branch_model
from tests.conftest import same_weights as _same
from tests.conftest import weights_of as _weights
from tfprune_survey import frameworks
from tfprune_survey.sensitivity import depth_order
from tests.conftest import two_input_arrays
from tests.conftest import two_input_model



@pytest.mark.parametrize("mode", ["global", "layerwise"])
def test_iterative_prune_reaches_target(trained, digits, mode):
  (x, y), (xt, yt) = digits
  before = _weights(trained)
  calls = []

  def finetune(model):
    calls.append(tps.count_macs(model))
    keras = frameworks.of(model).keras
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)

  result = tps.iterative_prune(trained, "l1", target_macs=0.5, rounds=3,
                               finetune=finetune, mode=mode,
                               eval_data=(xt, yt), verbose=0)
  assert _same(before, _weights(trained))
  macs0 = tps.count_macs(trained)
  got = 1 - tps.count_macs(result.model) / macs0
  assert abs(got - 0.5) <= 0.02, got
  assert len(calls) == len(result.history)
  assert all(h["metric"] is not None for h in result.history)
  reductions = [h["macs_reduction"] for h in result.history]
  assert reductions == sorted(reductions)
  if mode == "global":
    assert len(result.history) == 3
    assert reductions[0] == pytest.approx(0.5 / 3, abs=0.02)
    assert result.visited == []
  else:
    graph = tps.ChannelGraph(trained)
    order = [g.id for g in depth_order(graph)]
    assert result.visited == [g for g in order if g in result.visited]
    assert len(result.visited) == len(graph.prunable_groups)
    layer_pos = {l.name: i for i, l in enumerate(trained.layers)}
    first = [min(layer_pos[p] for p in graph.group(g).producers)
             for g in result.visited]
    assert first == sorted(first)   # visited in order of depth


def test_iterative_prune_with_fit_dict_and_errors(trained, digits):
  (x, y), _ = digits
  result = tps.iterative_prune(
      trained, "l1", target_macs=0.3, rounds=2, verbose=0,
      finetune={"x": x[:128], "y": y[:128], "epochs": 1, "batch_size": 64})
  assert abs(result.macs_reduction - 0.3) <= 0.02
  assert "step" in str(result)
  with pytest.raises(ValueError, match="mode"):
    tps.iterative_prune(trained, "l1", target_macs=0.3, finetune={},
                        mode="sideways")
  with pytest.raises(TypeError, match="finetune"):
    tps.iterative_prune(trained, "l1", target_macs=0.3, finetune=3)
  with pytest.raises(ValueError, match="target_macs"):
    tps.iterative_prune(trained, "l1", target_macs=1.2, finetune={})


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("arg", ["recalibrate", "eval_data"])
def test_malformed_data_of_a_two_input_model_fails_before_pruning(
    framework, arg, monkeypatch):
  # Both meet the model only after a round of scoring and pruning; a list
  # read as (x=xa, y=xb) gives one array for two inputs.
  model = two_input_model(frameworks.get(framework).keras)
  xa, xb = two_input_arrays()
  crit = tps.criteria.get("l1")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  tuned = []
  with pytest.raises(ValueError, match=f"`{arg}` gives one input array"):
    tps.iterative_prune(model, crit, target_macs=0.3, rounds=1,
                        finetune=tuned.append, verbose=0, **{arg: [xa, xb]})
  assert not tuned


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_unreachable_target_fails_before_any_round(framework):
  # min_channels=1 everywhere leaves about 5% of the MACs: 0.99 cannot be
  # reached, and the error names the caller's target, not a round's.
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                        framework=framework)
  tuned = []
  with pytest.raises(ValueError,
                     match=r"`target_macs`=0.99 is unreachable") as info:
    tps.iterative_prune(model, "l1", target_macs=0.99, rounds=3,
                        finetune=tuned.append, verbose=0)
  assert not tuned
  assert "0.949" in str(info.value)


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_layerwise_mode_on_a_model_with_a_dead_branch(framework):
  # The dead branch's group 'b1' is gone after the first pruning; it was
  # planned anyway and its step failed ("`ratios` names ['b1']").
  model = dead_branch_model(framework)
  macs0 = tps.count_macs(model)
  before = _weights(model)
  result = tps.iterative_prune(model, "l1", target_macs=0.6,
                               finetune=lambda m: None, mode="layerwise",
                               verbose=0)
  assert result.visited == ["stem", "c3"]
  assert "b1" not in [layer.name for layer in result.model.layers]
  got = 1 - tps.count_macs(result.model) / macs0
  assert result.macs_reduction == pytest.approx(got)
  assert got >= 0.6
  assert _same(before, _weights(model))
  # Dropping the branch alone removes more than 30%: nothing is pruned, and
  # the history still tells the reduction.
  small = tps.iterative_prune(model, "l1", target_macs=0.3,
                              finetune=lambda m: None, mode="layerwise",
                              verbose=0)
  assert small.visited == []
  assert small.macs_reduction == pytest.approx(
      1 - tps.count_macs(small.model) / macs0)
  assert small.macs_reduction > 0.3


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("mode", ["global", "layerwise"])
@pytest.mark.parametrize("steps, error", [(0, ValueError), (1.5, TypeError),
                                          ("2", TypeError)])
def test_bad_steps_is_refused_even_when_no_round_prunes(framework, mode,
                                                        steps, error):
  # Dropping the dead branch alone removes more than 30%: no round calls
  # `prune`, which was the only place that checked `steps`.
  model = dead_branch_model(framework)
  with pytest.raises(error, match=r"`steps` must be an int >= 1"):
    tps.iterative_prune(model, "l1", target_macs=0.3, rounds=1, mode=mode,
                        finetune=lambda m: None, steps=steps, verbose=0)


@pytest.mark.parametrize("verbose, error", [("0", TypeError),
                                            (0.5, TypeError),
                                            (-1, ValueError)])
def test_bad_verbose_is_refused_before_any_work(verbose, error, capsys):
  # A string was truthy: verbose='0' printed every step; 0.5 too.
  model = dead_branch_model("keras3")
  tuned = []
  with pytest.raises(error, match=r"`verbose` must be 0 \(quiet\) or 1 "
                     r"\(progress\)"):
    tps.iterative_prune(model, "l1", target_macs=0.3, rounds=1,
                        finetune=tuned.append, verbose=verbose)
  assert not tuned
  assert "[iterative_prune]" not in capsys.readouterr().out


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("spec, error, match", [
    ({"epochs": 1, "bogus": 3}, TypeError,
     r"`finetune` has unknown key\(s\) \['bogus'\]"),
    ({"optimizer": "nosuch"}, ValueError,
     r"`finetune\['optimizer'\]`='nosuch' is no optimizer"),
    ({"loss": "no_such_loss"}, ValueError,
     r"`finetune\['loss'\]`='no_such_loss' is no loss"),
    ({"x": "shape", "y": "labels"}, ValueError, r"`finetune\['x'\]`"),
    # Compile kept a misspelt metric name until fit (Keras 3: 'Could not
    # interpret metric identifier'; tf_keras: "'str' object is not callable"
    # in the train function).
    ({"metrics": ["accuracy", "acuracy"]}, ValueError,
     r"`finetune\['metrics'\]` has 'acuracy', which is no metric"),
    ({"metrics": [42]}, ValueError,
     r"`finetune\['metrics'\]` has 42, which is no metric"),
    # After a round of pruning, model.fit failed: "pop from an empty set"
    # (KeyError) without 'x', "None values not supported" without 'y',
    # "Data cardinality is ambiguous" for 8 samples and 5 labels.
    ({"epochs": 1}, ValueError, r"`finetune` has no 'x'"),
    ({"x": "ok"}, ValueError,
     r"`finetune\['x'\]` is an array but `finetune\['y'\]` is missing"),
    ({"x": "ok", "y": np.zeros(5, np.int64)}, ValueError,
     r"`finetune\['y'\]` has 5 rows but `finetune\['x'\]` 8"),
])
def test_bad_finetune_dict_fails_before_any_scoring(framework, spec, error,
                                                    match, monkeypatch):
  spec = dict(spec)
  # Each failed at the first fine-tuning, after a round of scoring and
  # pruning (Model.fit's 'unexpected keyword argument', Keras's 'Unknown
  # optimizer', ...).
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                        framework=framework)
  if isinstance(spec.get("x"), str) and spec["x"] == "shape":
    spec = {"x": np.zeros((4, 5, 5, 1), np.float32),   # 8x8 model
            "y": np.zeros(4, np.int64)}
  elif isinstance(spec.get("x"), str) and spec["x"] == "ok":
    spec = dict(spec, x=np.zeros((8, 8, 8, 1), np.float32))
  crit = tps.criteria.get("l1")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  with pytest.raises(error, match=match):
    tps.iterative_prune(model, crit, target_macs=0.3, rounds=1,
                        finetune=spec, verbose=0)


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("metrics", (["accuracy", None], {"dense_1": None}))
def test_none_metric_is_refused_first_by_keras3_only(framework, metrics,
                                                     monkeypatch):
  # Keras 3 compiled it and failed at the first fit, after a round of
  # pruning: "Expected metric, received `None`". tf_keras skips it.
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                        framework=framework)
  crit = tps.criteria.get("l1")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  spec = {"x": np.zeros((8, 8, 8, 1), np.float32), "y": np.zeros(8, np.int64),
          "metrics": metrics}
  if framework == "keras3":
    with pytest.raises(ValueError, match=r"`finetune\['metrics'\]` has None"):
      tps.iterative_prune(model, crit, target_macs=0.3, rounds=1,
                          finetune=spec, verbose=0)
  else:   # the checks pass, and scoring is reached
    with pytest.raises(ZeroDivisionError):
      tps.iterative_prune(model, crit, target_macs=0.3, rounds=1,
                          finetune=spec, verbose=0)


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_finetune_dict_of_known_names_and_objects_still_runs(framework):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                        framework=framework)
  keras = frameworks.get(framework).keras
  x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype(np.float32)
  y = np.arange(8) % 10
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  for opt, lo, metrics in (
      ("sgd", "sparse_categorical_crossentropy", ["acc", "sparse_categorical_accuracy"]),
      (keras.optimizers.SGD(0.01), loss,
       [keras.metrics.SparseCategoricalAccuracy(), "Accuracy"])):
    result = tps.iterative_prune(
        model, "l1", target_macs=0.3, rounds=1, verbose=0,
        finetune={"x": x, "y": y, "epochs": 1, "batch_size": 8,
                  "optimizer": opt, "loss": lo, "metrics": metrics})
    assert result.macs_reduction >= 0.3


def test_bare_metric_name_of_a_keras3_finetune_dict_fails_first(
    monkeypatch):
  # Keras 3's compile takes a list, tuple or dict only; it refused 'accuracy'
  # after the first round of scoring and pruning. tf_keras takes it.
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.vgg_small(input_shape=(8, 8, 1), widths=(4, 8, 8), fc=8,
                        framework="keras3")
  crit = tps.criteria.get("l1")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  with pytest.raises(TypeError, match=r"`finetune\['metrics'\]` must be a "
                     r"list, tuple or dict of metrics for a Keras 3 model, "
                     r"got 'accuracy'"):
    tps.iterative_prune(model, crit, target_macs=0.3, rounds=1, verbose=0,
                        finetune={"epochs": 1, "metrics": "accuracy"})


def bn_and_plain_model(framework):
  """Group 'a' (4 channels) has a BN, 'b' (32) none: 'slimming' scores only
  'a', and 'b' stays whole; one channel of 'a' is about 25% of the MACs."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(4, 3, padding="same", name="a")(inp)
  x = L.ReLU()(L.BatchNormalization(name="bn_a")(x))
  x = L.Conv2D(32, 3, padding="same", name="b", activation="relu")(x)
  x = L.GlobalAveragePooling2D()(x)
  return keras.Model(inp, L.Dense(3, name="out")(x))


class OnlyA(tps.criteria.Criterion):
  """A data criterion (nothing is read) that scores group 'a' only."""
  name = "only_a"
  requires_data = True

  def score(self, ctx):
    return {"a": tps.criteria.get("l1").score(ctx)["a"]}


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
@pytest.mark.parametrize("mode", ["global", "layerwise"])
@pytest.mark.parametrize("crit", ["slimming", "data"])
def test_plan_leaves_out_the_groups_the_criterion_does_not_score(
    framework, mode, crit):
  # Reachable with every group pruned (about 95%), not with 'b' whole: at
  # most 1 - 1/4 of the MACs of 'a' and its consumer. The check planned over
  # every group, so 'global' failed in round 3, after two fine-tunings,
  # with that round's target (0.203); 'layerwise' planned 'b' too and
  # failed at it ("`ratios` names group 'b', which has no 'slimming'
  # scores"), also at 0.5, which pruning 'a' alone reaches.
  import numpy as np  # pylint: disable=g-import-not-at-top
  model = bn_and_plain_model(framework)
  macs0 = tps.count_macs(model)
  if crit == "data":
    crit, name = OnlyA(), "only_a"
    data = np.zeros((4, 8, 8, 3), np.float32)
  else:
    name, data = crit, None
  tuned = []
  kw = dict(rounds=3, mode=mode, data=data, verbose=0,
            finetune=lambda m: tuned.append(tps.count_macs(m)))
  with pytest.raises(ValueError, match=r"`target_macs`=0.8 is unreachable: "
                     r"the largest reachable MACs reduction is 0.749") as e:
    tps.iterative_prune(model, crit, target_macs=0.8, **kw)
  assert f"'b' (no '{name}' scores)" in str(e.value)
  assert not tuned
  if name == "only_a" and mode == "global":
    assert "found by round 1's 'only_a' scores" in str(e.value)
  result = tps.iterative_prune(model, crit, target_macs=0.5, **kw)
  filters = {l.name: l.filters for l in result.model.layers
             if l.name in ("a", "b")}
  # 2 of 4 channels of 'a' removed cut 0.499 < 0.5; 'b' is whole.
  assert filters == {"a": 1, "b": 32}
  assert result.macs_reduction == pytest.approx(
      1 - tps.count_macs(result.model) / macs0)
  assert result.macs_reduction >= 0.5
