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
