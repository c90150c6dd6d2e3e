"""Distillation into a slim student (Hinton et al., 2015) and re-initialisation
(Liu et al., 2019), in tf_keras and Keras 3."""

# `digits` and `trained` (the digits CNN, once per Keras) are fixtures of
# tests/conftest.py.

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import same_weights as _same
from tests.conftest import weights_of as _weights
from tfprune_survey import frameworks
from tfprune_survey import zoo



def _np_distill_loss(y, s, t, temp, alpha):
  def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
  hard = -np.log(softmax(s)[np.arange(len(y)), y])
  pt, ps = softmax(t / temp), softmax(s / temp)
  kl = (pt * (np.log(pt) - np.log(ps))).sum(-1)
  return float(np.mean((1 - alpha) * hard + alpha * temp ** 2 * kl))


def test_distillation_train_step_loss_matches_formula(trained, digits, tmp_path):
  (x, y), _ = digits
  student = tps.prune(trained, "l1", target_macs=0.5).model
  xb, yb = x[:64], y[:64]
  keras = frameworks.of(trained).keras
  s = np.asarray(student(xb, training=True), np.float64)
  t = np.asarray(trained(xb, training=False), np.float64)
  want = _np_distill_loss(yb, s, t, 3.0, 0.7)
  teacher_before = _weights(trained)
  dm = tps.DistillationModel(student, trained, temperature=3.0, alpha=0.7)
  dm.compile(keras.optimizers.SGD(0.0))
  got = dm.train_on_batch(xb, yb, return_dict=True)["loss"]
  assert got == pytest.approx(want, rel=1e-4)
  # A real step trains the student only.
  student_before = _weights(student)
  dm.compile(keras.optimizers.SGD(0.1), metrics=["accuracy"])
  logs = dm.fit(xb, yb, epochs=1, batch_size=32, verbose=0).history
  assert "accuracy" in logs and "loss" in logs
  assert not _same(student_before, _weights(student))
  assert _same(teacher_before, _weights(trained))
  assert trained.trainable and all(l.trainable for l in trained.layers)
  # Saving writes the student alone: it loads with no custom objects.
  path = str(tmp_path / "student.keras")
  dm.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, keras.Model)
  np.testing.assert_allclose(np.asarray(loaded(xb)), np.asarray(student(xb)),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="alpha"):
    tps.DistillationModel(student, trained, alpha=1.5)
  with pytest.raises(ValueError, match="outputs"):
    tps.DistillationModel(zoo.residual_cnn(
        (8, 8, 1), classes=3, framework=frameworks.detect(trained)), trained)


def test_distillation_handles_softmax_outputs():
  rng = np.random.default_rng(0)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  logits = tf.constant(rng.standard_normal((5, 4)), tf.float32)
  from tfprune_survey.distill import distillation_loss
  y = tf.constant([0, 1, 2, 3, 0])
  ref = distillation_loss(y, logits, logits * 2, 4.0, 0.5).numpy()
  shifted = tf.math.log(tf.nn.softmax(logits))  # what a softmax model gives
  got = distillation_loss(y, shifted, tf.math.log(tf.nn.softmax(logits * 2)),
                          4.0, 0.5).numpy()
  assert got == pytest.approx(ref, rel=1e-5)


def _small_pair(fw, head):
  """(teacher, student): two small CNNs of `fw` whose last layer is a Dense
  with `head` activation ("softmax": probabilities, None: logits)."""
  keras = frameworks.get(fw).keras
  layers = keras.layers

  def make(width, seed):
    init = keras.initializers.GlorotUniform(seed=seed)
    inp = layers.Input((8, 8, 3))
    h = layers.Conv2D(width, 3, activation="relu", kernel_initializer=init)(inp)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(4, activation=head, kernel_initializer=init)(h)
    return keras.Model(inp, out)

  return make(8, 1), make(4, 2)


def _small_data(n=48):
  rng = np.random.default_rng(0)
  return rng.random((n, 8, 8, 3)).astype("float32"), rng.integers(0, 4, n)


@pytest.mark.parametrize("head", ["softmax", None])
@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_distillation_model_outputs_and_metrics_are_the_students(fw, head):
  # Calling or predicting with the wrapper gives what the student emits
  # (probabilities for a softmax head, not their log), and compiled metrics
  # see those same outputs, in both Kerases.
  keras = frameworks.get(fw).keras
  teacher, student = _small_pair(fw, head)
  x, y = _small_data()
  dm = tps.DistillationModel(student, teacher)
  want = np.asarray(student(x, training=False), np.float64)
  np.testing.assert_allclose(np.asarray(dm(x, training=False)), want,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(dm.predict(x, verbose=0), want,
                             rtol=1e-5, atol=1e-6)
  from_logits = head is None

  def mean_output(y_true, y_pred):  # what a metric is given, averaged
    del y_true
    return y_pred

  dm.compile("adam", metrics=[
      "accuracy", mean_output,
      keras.metrics.SparseCategoricalCrossentropy(name="xent",
                                                  from_logits=from_logits)])
  got = dm.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
  assert got["mean_output"] == pytest.approx(want.mean(), rel=1e-4, abs=1e-6)
  probs = want if head else np.exp(want) / np.exp(want).sum(-1, keepdims=True)
  xent = float(np.mean(-np.log(probs[np.arange(len(y)), y])))
  assert got["accuracy"] == pytest.approx(np.mean(want.argmax(-1) == y))
  assert got["xent"] == pytest.approx(xent, rel=1e-4)
  assert got["loss"] == pytest.approx(xent, rel=1e-4)  # the hard-label loss


@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_distillation_loss_of_softmax_models_matches_numpy(fw):
  # Softmax teacher and student: the loss is the formula on their logits,
  # which log(probabilities) equal up to a per-row constant.
  keras = frameworks.get(fw).keras
  teacher, student = _small_pair(fw, "softmax")
  x, y = _small_data()
  s = np.log(np.asarray(student(x, training=True), np.float64))
  t = np.log(np.asarray(teacher(x, training=False), np.float64))
  want = _np_distill_loss(y, s, t, 3.0, 0.7)
  dm = tps.DistillationModel(student, teacher, temperature=3.0, alpha=0.7)
  dm.compile(keras.optimizers.SGD(0.0), metrics=["accuracy"])
  got = dm.train_on_batch(x, y, return_dict=True)
  assert got["loss"] == pytest.approx(want, rel=1e-4)
  assert got["accuracy"] == pytest.approx(np.mean(s.argmax(-1) == y))


@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_sample_weights_weight_the_loss_and_metrics(fw):
  keras = frameworks.get(fw).keras
  teacher, student = _small_pair(fw, None)
  x, y = _small_data()
  w = np.random.default_rng(1).random(len(x)).astype("float32")
  w[::3] = 0.0
  s = np.asarray(student(x, training=True), np.float64)
  t = np.asarray(teacher(x, training=False), np.float64)
  per = np.array([_np_distill_loss(y[i:i + 1], s[i:i + 1], t[i:i + 1], 3.0,
                                   0.7) for i in range(len(x))])
  dm = tps.DistillationModel(student, teacher, temperature=3.0, alpha=0.7)
  # As in Keras: `metrics` ignore sample weights, `weighted_metrics` use them.
  acc = keras.metrics.SparseCategoricalAccuracy
  dm.compile(keras.optimizers.SGD(0.0), metrics=[acc(name="acc")],
             weighted_metrics=[acc(name="wacc")])
  got = dm.train_on_batch(x, y, sample_weight=w, return_dict=True)
  assert got["loss"] == pytest.approx(np.mean(per * w), rel=1e-4)
  hit = (s.argmax(-1) == y).astype(np.float64)
  assert got["acc"] == pytest.approx(np.mean(hit), rel=1e-5)
  assert got["wacc"] == pytest.approx(np.sum(hit * w) / np.sum(w), rel=1e-5)
  # evaluate: the weighted hard-label loss, through a dataset's third element
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(len(x))
  ev = dm.evaluate(ds, verbose=0, return_dict=True)
  z = s - s.max(-1, keepdims=True)
  hard = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(y)), y]
  assert ev["loss"] == pytest.approx(np.mean(hard * w), rel=1e-4)
  assert ev["acc"] == pytest.approx(np.mean(hit), rel=1e-5)
  assert ev["wacc"] == pytest.approx(np.sum(hit * w) / np.sum(w), rel=1e-5)



@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_temperature_and_alpha_are_checked_by_name(fw):
  teacher, student = _small_pair(fw, None)
  for kwargs, kind, words in [
      (dict(temperature=None), TypeError, "`temperature` must be a number"),
      (dict(temperature="4"), TypeError, "`temperature` must be a number"),
      (dict(alpha=None), TypeError, "`alpha` must be a number"),
      (dict(alpha=[0.5]), TypeError, "`alpha` must be a number"),
      (dict(alpha=True), TypeError, "`alpha` must be a number"),
      # T = inf gives T^2 * KL = inf * 0: NaN from the first step.
      (dict(temperature=float("inf")), ValueError,
       "`temperature` must be a finite number > 0, got inf"),
      (dict(temperature=0.0), ValueError, "`temperature` must be a finite"),
      (dict(alpha=float("nan")), ValueError, "`alpha` must be in [0, 1]"),
  ]:
    with pytest.raises(kind) as info:
      tps.DistillationModel(student, teacher, **kwargs)
    assert words in str(info.value), (kwargs, str(info.value))
  dm = tps.DistillationModel(student, teacher, temperature=np.float32(2),
                             alpha=np.float64(0.5))   # numpy scalars are fine
  assert (dm.temperature, dm.alpha) == (2.0, 0.5)


@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_teacher_sharing_a_layer_with_a_nested_model(fw):
  # A teacher whose Dense 'shared' is called both by the parent and inside
  # its nested model 'sub': Keras 3's clone_model unshares it (6 weights for
  # the 4 of the teacher), which made the frozen copy fail in set_weights.
  from tests.test_lottery import layer_at, nested_mlp  # pylint: disable=g-import-not-at-top
  keras = frameworks.get(fw).keras
  teacher = nested_mlp(fw, shared=True)
  keras.utils.set_random_seed(3)
  inp = keras.Input((12,))
  student = keras.Model(inp, keras.layers.Dense(3, name="s_out")(
      keras.layers.Dense(4, activation="relu")(inp)))
  rng = np.random.default_rng(0)
  x = rng.standard_normal((32, 12)).astype("float32")
  y = rng.integers(0, 3, 32)
  before = _weights(teacher)
  n_weights = len(teacher.weights)
  dm = tps.DistillationModel(student, teacher, temperature=2.0, alpha=0.5)
  # The teacher dm holds computes what the caller's teacher computes.
  np.testing.assert_array_equal(
      np.asarray(dm.teacher(x, training=False)),
      np.asarray(teacher(x, training=False)))
  s = np.asarray(student(x, training=True), np.float64)
  t = np.asarray(teacher(x, training=False), np.float64)
  dm.compile(keras.optimizers.SGD(0.0))
  got = dm.train_on_batch(x, y, return_dict=True)["loss"]
  assert got == pytest.approx(_np_distill_loss(y, s, t, 2.0, 0.5), rel=1e-4)
  dm.compile(keras.optimizers.SGD(0.1))
  dm.fit(x, y, epochs=1, batch_size=16, verbose=0)
  # The caller's teacher is untouched: weights, sharing and trainability.
  assert _same(before, _weights(teacher))
  assert len(teacher.weights) == n_weights
  assert layer_at(teacher, "sub/shared") is teacher.get_layer("shared")
  assert teacher.trainable and all(l.trainable for l in teacher.layers)


# --- reinitialize ---------------------------------------------------------------


def test_reinitialize_keeps_architecture_changes_weights(trained):
  before = _weights(trained)
  fresh = tps.reinitialize(trained, seed=1)
  assert _same(before, _weights(trained))
  assert [l.name for l in fresh.layers] == [l.name for l in trained.layers]
  assert [w.shape for w in fresh.weights] == [w.shape for w in trained.weights]
  assert tps.count_macs(fresh) == tps.count_macs(trained)
  kernels = [(np.asarray(a), np.asarray(b)) for a, b in
             zip(trained.weights, fresh.weights) if "kernel" in a.name]
  assert kernels and all(not np.allclose(a, b) for a, b in kernels)
  again = tps.reinitialize(trained, seed=1)
  other = tps.reinitialize(trained, seed=2)
  assert _same(_weights(fresh), _weights(again))
  assert not _same(_weights(fresh), _weights(other))


@pytest.mark.parametrize("fw", ["tf_keras", "keras3"])
def test_reinitialize_keeps_a_layer_shared_with_a_nested_model(fw):
  # A Dense 'shared' called by the parent and inside the nested 'sub': the
  # model rebuilt from its config held two unshared copies of it (419
  # parameters for 347), not the same architecture.
  from tests.test_lottery import layer_at, nested_mlp  # pylint: disable=g-import-not-at-top
  model = nested_mlp(fw, shared=True)
  before = _weights(model)
  fresh = tps.reinitialize(model, seed=1)
  assert _same(before, _weights(model))
  assert fresh.count_params() == model.count_params() == 347
  assert [w.shape for w in fresh.weights] == [w.shape for w in model.weights]
  assert layer_at(fresh, "sub/shared") is fresh.get_layer("shared")
  for path in ("fc1", "shared", "sub/fc2", "sub/deep/fc3", "out"):
    assert not np.allclose(layer_at(fresh, path).kernel.numpy(),
                           layer_at(model, path).kernel.numpy()), path
  # The same function of its input as the model given its weights.
  x = np.random.default_rng(0).standard_normal((4, 12)).astype("float32")
  model.set_weights(fresh.get_weights())
  np.testing.assert_allclose(np.asarray(model(x)), np.asarray(fresh(x)),
                             rtol=1e-6, atol=1e-6)
  model.set_weights(before)
  assert _same(_weights(tps.reinitialize(model, seed=1)), _weights(fresh))
