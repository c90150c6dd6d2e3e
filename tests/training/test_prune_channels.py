"""prune_channels: wrapping, schedules, fit, save/load/resume, both Kerases."""

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tests.training.conftest import FRAMEWORKS
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import every_step
from tests.training.conftest import kept_fraction
from tests.training.conftest import keras_of
from tests.training.conftest import outputs
from tfprune_survey.training.strip import current_keep


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_masks_follow_a_tfmot_polynomial_decay(xy, framework):
  # tfmot's own schedules are accepted (duck-typed), in both Kerases.
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  x, y = xy
  keras = keras_of(framework)
  base = build(framework)
  before = [w.copy() for w in base.get_weights()]
  schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, begin_step=0,
                                                  end_step=6, frequency=1)
  pm = compile_model(tps.prune_channels(base, "l1", schedule))
  fractions = []

  class Probe(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      fractions.append(kept_fraction(self.model))

  pm.fit(x, y, batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep(), Probe()])
  total = sum(g.size for g in tps.ChannelGraph(base).prunable_groups)
  assert len(fractions) == 8
  for step, got in enumerate(fractions):
    _, sparsity = schedule(tf.constant(min(step, 6), tf.int64))
    want = 1 - int(round(float(sparsity) * total)) / total
    assert got == pytest.approx(want, abs=1e-9), (step, got, want)
  assert fractions[-1] == pytest.approx(0.5, abs=1 / total)
  assert all(np.array_equal(a, b) for a, b in zip(before, base.get_weights()))


def test_default_schedule_is_tfmots_constant_sparsity():
  pm = tps.prune_channels(build("keras3"), "l1")
  settings = [l for l in pm.layers
              if isinstance(l, tps.ChannelPruneWrapper)][0].settings
  assert settings["schedule"] == {
      "class_name": "ConstantSparsity",
      "config": {"target_sparsity": 0.5, "begin_step": 0, "end_step": -1,
                 "frequency": 100}}
  assert isinstance(tps.schedules.deserialize(settings["schedule"]),
                    tps.schedules.ConstantSparsity)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wrappers_are_of_the_models_keras(framework):
  keras = keras_of(framework)
  pm = tps.prune_channels(build(framework), "l1", every_step())
  wrappers = [l for l in pm.layers if isinstance(l, tps.ChannelPruneWrapper)]
  assert wrappers and isinstance(pm, keras.Model)
  assert all(isinstance(w, keras.layers.Wrapper) for w in wrappers)
  # Each pruned group's first producer holds the group's kept set.
  graph = tps.ChannelGraph(build(framework))
  owners = {w.layer.name: w for w in wrappers if w.channel_mask is not None}
  assert set(owners) == {g.id for g in graph.prunable_groups}
  for g in graph.prunable_groups:
    assert owners[g.id].group_channels == g.size
    assert owners[g.id].get_config()["group_channels"] == g.size


def test_data_criterion_without_data_is_a_clear_error(xy, tmp_path):
  # The data is held in memory only: a loaded model needs it again.
  x, y = xy
  keras = keras_of("tf_keras")
  pm = tps.prune_channels(build(), "obd", data=(x[:8], y[:8]))
  path = str(tmp_path / "m.keras")
  pm.save(path)
  loaded = compile_model(keras.models.load_model(path))
  with pytest.raises(ValueError, match="'obd' needs data"):
    loaded.fit(x, y, epochs=1, verbose=0,
               callbacks=[tps.UpdateChannelPruningStep()])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fit_without_callback_raises_clear_error(xy, framework):
  x, y = xy
  pm = compile_model(tps.prune_channels(build(framework), "l1"))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="UpdateChannelPruningStep"):
    pm.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_save_load_resume(xy, tmp_path, fmt):
  x, y = xy
  keras = keras_of("tf_keras")
  pm = compile_model(tps.prune_channels(
      build(), "l1", tps.schedules.PolynomialDecay(0.0, 0.5, 0, 8,
                                                   frequency=1)))
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  path = str(tmp_path / ("m" if fmt == "savedmodel" else f"m.{fmt}"))
  pm.save(path, **({"save_format": "tf"} if fmt == "savedmodel" else {}))
  loaded = keras.models.load_model(path)
  _, keep_a = current_keep(pm)
  _, keep_b = current_keep(loaded)
  assert keep_a.keys() == keep_b.keys() and keep_a
  for k in keep_a:
    np.testing.assert_array_equal(keep_a[k], keep_b[k])
  step = [w for w in loaded.layers if isinstance(w, tps.ChannelPruneWrapper)
          ][0].pruning_step.numpy()
  assert step == 3   # 4 batches: steps 0..3
  np.testing.assert_allclose(outputs(loaded, x), outputs(pm, x), rtol=1e-5,
                             atol=1e-6)
  # Training resumes at the saved step and reaches the final sparsity.
  compile_model(loaded).fit(x, y, batch_size=16, epochs=2, verbose=0,
                            callbacks=[tps.UpdateChannelPruningStep()])
  assert kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)


def test_keras3_prune_fit_save_load_resume_strip(xy, tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  x, y = xy
  base = build("keras3")
  schedule = tps.schedules.PolynomialDecay(0.0, 0.5, 0, 8, frequency=1)
  # 1. prune_channels + fit: a Keras 3 model with Keras 3 wrappers.
  pm = compile_model(tps.prune_channels(base, "l1", schedule))
  assert isinstance(pm, keras.Model)
  pm.fit(x, y, batch_size=16, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(pm)
  assert keep and 0.6 < kept_fraction(pm) < 1.0
  # 2. saved mid-way (4 of 8 pruning steps) to .keras ...
  path = str(tmp_path / "mid.keras")
  pm.save(path)
  # 3. ... loads without custom_objects, with the masks, keep and step.
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, keras.Model)
  wrappers = [l for l in loaded.layers
              if isinstance(l, tps.ChannelPruneWrapper)]
  assert wrappers and all(w.pruning_step.numpy() == 3 for w in wrappers)
  _, again = current_keep(loaded)
  assert {k: v.tolist() for k, v in again.items()} == {
      k: v.tolist() for k, v in keep.items()}
  np.testing.assert_allclose(outputs(loaded, x), outputs(pm, x), rtol=1e-5,
                             atol=1e-6)
  # 4. resume: the schedule goes on from step 4 to its final sparsity.
  compile_model(loaded).fit(x, y, batch_size=16, epochs=2, verbose=0,
                            callbacks=[tps.UpdateChannelPruningStep()])
  assert wrappers[0].pruning_step.numpy() == 11
  assert kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)
  # 5. strip: a slim Keras 3 model computing what the wrapped one does.
  slim = tps.strip_channel_pruning(loaded)
  masked = tps.strip_channel_pruning(loaded, materialize=False)
  assert isinstance(slim, keras.Model) and not any(
      isinstance(l, tps.ChannelPruneWrapper) for l in slim.layers)
  want = outputs(loaded, x)
  scale = np.abs(want).max()
  assert np.abs(outputs(slim, x) - want).max() <= 1e-5 * scale
  assert np.abs(outputs(masked, x) - want).max() <= 1e-5 * scale
  assert tps.count_macs(slim) < 0.6 * tps.count_macs(base)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layer_form_inside_a_model_definition(xy, tmp_path, framework):
  x, y = xy
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  inp = keras.Input((12, 12, 1))
  h = tps.prune_channels(L.Conv2D(8, 3, name="c1"), "l1", every_step())(inp)
  h = L.ReLU()(L.BatchNormalization(name="bn1")(h))
  convs = tps.prune_channels([L.Conv2D(12, 3, padding="same", name="c2"),
                              L.Conv2D(12, 1, name="c3")], "l1", every_step())
  a = convs[0](h)
  b = L.Conv2D(12, 1, name="c4")(h)     # not wrapped: the Add group stays
  h = L.ReLU()(L.Add()([a, b]))
  h = L.GlobalAveragePooling2D()(convs[1](h))
  model = compile_model(keras.Model(inp, L.Dense(10, name="out")(h)))
  assert isinstance(convs[0], tps.ChannelPruneWrapper)
  assert isinstance(convs[0], keras.layers.Layer)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="UpdateChannelPruningStep"):
    model.fit(x, y, epochs=1, verbose=0)
  model.fit(x, y, batch_size=16, epochs=2, verbose=0,
            callbacks=[tps.UpdateChannelPruningStep()])
  _, keep = current_keep(model)
  assert set(keep) == {"c1", "c3"}     # c2's group also needs c4 wrapped
  # Half of the 20 channels of the two pruned groups go (global scope).
  assert len(keep["c1"]) + len(keep["c3"]) == 10
  if framework == "tf_keras":   # these initial weights split it 4 + 6
    assert len(keep["c1"]) == 4 and len(keep["c3"]) == 6
  slim = tps.strip_channel_pruning(model)
  np.testing.assert_allclose(outputs(slim, x), outputs(model, x), rtol=1e-4,
                             atol=1e-6)
  assert slim.get_layer("c1").filters == len(keep["c1"])
  assert slim.get_layer("bn1").gamma.shape[0] == len(keep["c1"])
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  _, again = current_keep(loaded)
  assert {k: v.tolist() for k, v in again.items()} == {
      k: v.tolist() for k, v in keep.items()}


def test_prune_channels_errors():
  model = build()
  with pytest.raises(ValueError, match="a model, a layer or a list"):
    tps.prune_channels([model])
  with pytest.raises(ValueError, match="pruning_policy"):
    tps.prune_channels(model, "l1", pruning_policy=["no_such_layer"])
  with pytest.raises(TypeError, match="PruningSchedule"):
    tps.prune_channels(model, "l1", pruning_schedule=0.5)
  with pytest.raises(TypeError, match="PruningSchedule"):
    tps.prune_channels(model, "l1",
                       pruning_schedule=tps.schedules.ConstantSparsity)
  with pytest.raises(ValueError, match="scope"):
    tps.prune_channels(model, "l1", scope="everywhere")
  with pytest.raises(ValueError, match="criterion"):
    tps.prune_channels(model, "no_such_criterion")
  with pytest.raises(ValueError, match="strip|prune_channels"):
    tps.strip_channel_pruning(model)
  with pytest.raises(TypeError, match="to_prune"):
    tps.prune_channels("model.keras")


def test_pruning_policy_limits_the_groups():
  pm = tps.prune_channels(build("keras3"), "l1", every_step(),
                          pruning_policy=["stem_conv"])
  owners = [l.layer.name for l in pm.layers
            if isinstance(l, tps.ChannelPruneWrapper)
            and l.channel_mask is not None]
  assert owners == ["stem_conv"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pruning_policy_accepts_an_input_layers_name(framework):
  # model.get_layer finds the InputLayer, but it is no layer call: it was
  # refused as an unknown layer. It selects nothing (input channels are
  # never pruned).
  model = build(framework)
  name = model.layers[0].name
  assert type(model.get_layer(name)).__name__ == "InputLayer"
  pm = tps.prune_channels(model, "l1", every_step(),
                          pruning_policy=[name, "stem_conv"])
  owners = [l.layer.name for l in pm.layers
            if isinstance(l, tps.ChannelPruneWrapper)
            and l.channel_mask is not None]
  assert owners == ["stem_conv"]
  with pytest.raises(ValueError, match="selects no prunable channel group"):
    tps.prune_channels(model, "l1", pruning_policy=[name])
  with pytest.raises(ValueError, match=r"unknown layers \['nope'\]"):
    tps.prune_channels(model, "l1", pruning_policy=[name, "nope"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sequential_and_nested_models_strip_exactly(framework):
  keras = keras_of(framework)
  L = keras.layers
  keras.utils.set_random_seed(0)
  seq = keras.Sequential([keras.Input((10, 10, 3)), L.Conv2D(8, 3),
                          L.BatchNormalization(), L.ReLU(),
                          L.Conv2D(12, 3, activation="relu"), L.Flatten(),
                          L.Dense(5)])
  inner = keras.Sequential([keras.Input((8, 8, 8)),
                            L.Conv2D(8, 1, name="in_conv"), L.ReLU()],
                           name="inner")
  i = keras.Input((10, 10, 3))
  h = inner(L.Conv2D(8, 3, name="a")(i))
  h = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, name="b")(h))
  nested = keras.Model(i, L.Dense(5)(h))
  rng = np.random.default_rng(0)
  x = rng.random((32, 10, 10, 3)).astype("float32")
  y = rng.integers(0, 5, 32)
  for model in (seq, nested):
    pm = compile_model(tps.prune_channels(model, "l1", every_step()))
    pm.fit(x, y, epochs=1, batch_size=8, verbose=0,
           callbacks=[tps.UpdateChannelPruningStep()])
    slim = tps.strip_channel_pruning(pm)
    np.testing.assert_allclose(outputs(slim, x), outputs(pm, x), rtol=1e-4,
                               atol=1e-6)
    assert tps.count_macs(slim) < tps.count_macs(model)
  # The group that reaches into the nested model stays whole.
  _, keep = current_keep(pm)
  assert "a" not in keep and "b" in keep


class _EveryStep(tps.schedules.PruningSchedule):
  """A user's own schedule: prunes to `sparsity` at every step."""

  def __init__(self, sparsity):
    self._validate_sparsity(sparsity, "sparsity")
    self.sparsity = sparsity

  def __call__(self, step):
    return True, float(self.sparsity)

  def get_config(self):
    return {"class_name": "_EveryStep", "config": {"sparsity": self.sparsity}}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_custom_schedule_subclass_prunes_during_fit(xy, tmp_path, framework):
  x, y = xy
  keras = keras_of(framework)
  pm = compile_model(tps.prune_channels(build(framework), "l1",
                                        _EveryStep(0.5)))
  pm.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  assert kept_fraction(pm) == pytest.approx(0.5, abs=0.05)
  # A loaded model finds the class through the load's custom_objects.
  path = str(tmp_path / "m.keras")
  pm.save(path)
  loaded = compile_model(keras.models.load_model(
      path, custom_objects={"_EveryStep": _EveryStep}))
  loaded.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0,
             callbacks=[tps.UpdateChannelPruningStep()])
  assert kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_schedule_registered_under_a_package_is_found_after_load(
    xy, tmp_path, framework):
  # register_keras_serializable files the class as 'package>name', while
  # the saved config names the class only: a load with no custom_objects
  # must still find it (the error message for unknown classes advises it).
  x, y = xy
  keras = keras_of(framework)

  class _PackagedEveryStep(_EveryStep):

    def get_config(self):
      return {"class_name": "_PackagedEveryStep",
              "config": {"sparsity": self.sparsity}}

  registry = keras.utils.get_custom_objects()
  keras.utils.register_keras_serializable(package="tps_tests")(
      _PackagedEveryStep)
  try:
    assert "tps_tests>_PackagedEveryStep" in registry
    pm = compile_model(tps.prune_channels(build(framework), "l1",
                                          _PackagedEveryStep(0.5)))
    pm.save(str(tmp_path / "m.keras"))
    loaded = compile_model(keras.models.load_model(str(tmp_path / "m.keras")))
    loaded.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
               callbacks=[tps.UpdateChannelPruningStep()])
    assert kept_fraction(loaded) == pytest.approx(0.5, abs=0.05)
  finally:
    registry.pop("tps_tests>_PackagedEveryStep", None)


def test_unknown_custom_schedule_after_load_is_a_clear_error(xy, tmp_path):
  x, y = xy
  keras = keras_of("tf_keras")
  pm = tps.prune_channels(build(), "l1", _EveryStep(0.5))
  path = str(tmp_path / "m.keras")
  pm.save(path)
  loaded = compile_model(keras.models.load_model(path))
  with pytest.raises(ValueError, match="_EveryStep.*load_model"):
    loaded.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
               callbacks=[tps.UpdateChannelPruningStep()])


def test_data_is_checked_when_wrapping(xy):
  x, y = xy
  model = build("keras3")
  # 'obd' collects nothing from the training batches: it needs data.
  with pytest.raises(ValueError, match="'obd' needs data.*`data`"):
    tps.prune_channels(model, "obd")
  with pytest.raises(ValueError, match="`data` has inputs of shape"):
    tps.prune_channels(model, "apoz", data=np.zeros((2, 4, 4, 1), "float32"))
  with pytest.raises(ValueError, match="'obd' needs labels.*`data`"):
    tps.prune_channels(model, "obd", data=x)   # differentiates the loss
  with pytest.raises(ValueError, match="'apoz' needs data.*`data`"):
    tps.prune_channels(keras_of("tf_keras").layers.Conv2D(4, 3), "apoz")
  # Criteria that read the training batches need none; good data passes.
  assert tps.prune_channels(model, "apoz") is not None
  assert tps.prune_channels(model, "obd", data=(x[:8], y[:8])) is not None


def test_pruning_policy_that_selects_no_group_says_why():
  model = build("keras3")
  producers = sorted({p for g in tps.ChannelGraph(model).prunable_groups
                      for p in g.producers})
  bn = next(l.name for l in model.layers
            if "BatchNormalization" in type(l).__name__)
  with pytest.raises(ValueError, match=r"`pruning_policy` \[.*\] selects no "
                     r"prunable channel group") as info:
    tps.prune_channels(model, "l1", pruning_policy=[bn])
  assert str(producers) in str(info.value)


def test_a_duck_typed_schedule_works_at_fit(xy):
  class Halve:   # no base class: callable, with get_config

    def __call__(self, step):
      return True, 0.5

    def get_config(self):
      return {}

  x, y = xy
  pm = compile_model(tps.prune_channels(build(), "l1", Halve()))
  pm.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  assert kept_fraction(pm) == pytest.approx(0.5, abs=0.05)


def test_a_schedule_that_returns_no_valid_sparsity_is_a_clear_error(xy):
  # is_schedule is duck-typed, so a Keras learning-rate schedule (one
  # number per step) passes at wrapping; at fit it failed with "Cannot
  # iterate over a scalar tensor", and a sparsity of 1.5 was taken (all but
  # min_channels of every group removed).
  x, y = xy
  keras = keras_of("keras3")

  class Returns:

    def __init__(self, value):
      self.value = value

    def __call__(self, step):
      return self.value

    def get_config(self):
      return {}

  cases = [(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9),
            TypeError, r"ExponentialDecay must return \(should_prune, "
            r"sparsity\).*at step 0"),
           (Returns(0.5), TypeError, r"Returns must return"),
           (Returns((True, 1.5)), ValueError, r"Returns returned sparsity "
            r"1.5 at step 0.*\[0, 1\)"),
           (Returns((True, float("nan"))), ValueError, "sparsity nan")]
  for schedule, error, message in cases:
    pm = compile_model(tps.prune_channels(build("keras3"), "l1", schedule))
    with pytest.raises(error, match=message):
      pm.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
             callbacks=[tps.UpdateChannelPruningStep()])
  # No sparsity is read at a step that does not prune.
  pm = compile_model(tps.prune_channels(build("keras3"), "l1",
                                        Returns((False, None))))
  pm.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  assert kept_fraction(pm) == 1.0


@pytest.mark.parametrize("spe", [1, 3])
def test_a_dataset_of_unknown_length_keeps_the_step(xy, spe):
  # Keras 3 ends each epoch of a dataset of unknown length with one more
  # on_train_batch_begin, for an execution that finds no data (no end
  # call): the step must not move there, and the saved step is that of the
  # last trained batch.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x, y = xy
  x, y = x[:64], y[:64]
  keras = keras_of("keras3")

  def batches():
    for i in range(0, 64, 8):
      yield x[i:i + 8], y[i:i + 8]

  ds = tf.data.Dataset.from_generator(batches, output_signature=(
      tf.TensorSpec((None,) + x.shape[1:], tf.float32),
      tf.TensorSpec((None,), tf.as_dtype(y.dtype))))
  pm = tps.prune_channels(build("keras3"), "l1", tps.schedules.PolynomialDecay(
      0.0, 0.5, begin_step=0, end_step=12, frequency=1))
  pm.compile(keras.optimizers.Adam(1e-3),
             keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             steps_per_execution=spe)
  upd = tps.UpdateChannelPruningStep()
  starts = []

  class Probe(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      starts.append(upd.step)

  pm.fit(ds, epochs=2, verbose=0, callbacks=[upd, Probe()])
  assert starts == [0, 8]   # 8 batches an epoch
  assert upd.step == 16 and upd.controller.step_of() == 15


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_steps_per_execution_keeps_the_schedule(xy, framework):
  # compile(steps_per_execution=3): Keras calls the batch hooks once per 3
  # batches (8 a epoch: the last execution has 2). The step still counts
  # batches, and after each execution the masks are those of its last
  # step, as with one batch per execution; the steps due inside an
  # execution (1, 4, 7, 10) are applied when it ends, none is skipped.
  x, y = xy
  keras = keras_of(framework)
  schedule = tps.schedules.PolynomialDecay(0.0, 0.5, begin_step=1,
                                           end_step=10, frequency=3)
  seen = {}
  for spe in (1, 3):
    pm = tps.prune_channels(build(framework), "l1", schedule)
    pm.compile(keras.optimizers.Adam(1e-3),
               keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               steps_per_execution=spe)
    upd = tps.UpdateChannelPruningStep()
    fractions = seen[spe] = {}

    class Probe(keras.callbacks.Callback):
      def on_train_batch_end(self, batch, logs=None):
        fractions[upd.step - 1] = kept_fraction(self.model)  # pylint: disable=cell-var-from-loop

    pm.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[upd, Probe()])
    assert upd.controller.step_of() == 15
  assert sorted(seen[3]) == [2, 5, 7, 10, 13, 15]
  assert {s: seen[1][s] for s in seen[3]} == seen[3]
  assert seen[3][15] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_model_already_wrapped_is_refused_naming_its_wrappers(framework):
  # prune_channels(pm) said the model "has no prunable channel group to
  # prune" (its wrappers hide every group), not that it was wrapped.
  model = build(framework)
  pm = tps.prune_channels(model, "l1", every_step())
  names = [l.name for l in pm.layers
           if isinstance(l, tps.ChannelPruneWrapper)]
  assert names
  with pytest.raises(ValueError) as e:
    tps.prune_channels(pm, "l1", every_step())
  assert str(e.value) == (
      f"model {pm.name!r} already holds channel pruning wrappers {names}: "
      "pass the model before tps.prune_channels, or "
      "tps.strip_channel_pruning(model) first")
  # The stripped model can be wrapped again.
  again = tps.prune_channels(tps.strip_channel_pruning(pm), "l1",
                             every_step())
  assert [l.name for l in again.layers
          if isinstance(l, tps.ChannelPruneWrapper)] == names
