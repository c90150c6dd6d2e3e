"""Fine-tuning a slim student against its unpruned teacher (Hinton et al.,
2015), and re-initialising a slim architecture (Liu et al., 2019)."""

import copy
import math
import numbers

from tfprune_survey import frameworks
from tfprune_survey.frameworks import classes
from tfprune_survey.graph import walker
from tfprune_survey.losses import _ends_in_softmax


def _logits(model, outputs):
  # A model that ends in a softmax gives probabilities; their log equals
  # the logits up to a per-sample constant, which a softmax ignores.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if _ends_in_softmax(model):
    return tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))
  return outputs


def distillation_loss(y, student_logits, teacher_logits, temperature, alpha,
                      sample_weight=None):
  """(1 - alpha) * CE(y, student) + alpha * T^2 * KL(teacher_T || student_T).

  `*_T` are the softmax of logits / T. The T^2 factor keeps the soft term's
  gradients on the same scale as the hard term's when T changes (Hinton et
  al. 2015, section 2). Returns the batch mean, each sample's loss
  multiplied by its `sample_weight` if given (the mean is over the batch,
  as Keras' default reduction takes it). (TensorFlow ops: tf_keras.)
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  t = tf.cast(temperature, student_logits.dtype)
  hard = keras.losses.sparse_categorical_crossentropy(
      y, student_logits, from_logits=True)
  p_teacher = tf.nn.softmax(teacher_logits / t)
  log_p_teacher = tf.nn.log_softmax(teacher_logits / t)
  log_p_student = tf.nn.log_softmax(student_logits / t)
  kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
  return tf.reduce_mean(_weighted((1.0 - alpha) * hard + alpha * t * t * kl,
                                  sample_weight))


def _weighted(per_sample, sample_weight):
  """Per-sample losses times their weights (one weight per sample)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if sample_weight is None:
    return per_sample
  return per_sample * tf.reshape(tf.cast(sample_weight, per_sample.dtype),
                                 [-1])


def _check_args(student, teacher, temperature, alpha):
  frameworks.check_model(student, "student")
  frameworks.check_model(teacher, "teacher")
  if frameworks.detect(student) != frameworks.detect(teacher):
    raise TypeError("`student` and `teacher` must come from the same Keras; "
                    f"got {frameworks.detect(student)} and "
                    f"{frameworks.detect(teacher)}")
  for value, name in ((temperature, "temperature"), (alpha, "alpha")):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      raise TypeError(f"`{name}` must be a number, got {value!r} of type "
                      f"{type(value).__name__}")
  # An infinite T makes T^2 * KL = inf * 0: a NaN loss from the first step.
  if not (math.isfinite(temperature) and temperature > 0):
    raise ValueError(f"`temperature` must be a finite number > 0, got "
                     f"{temperature!r}")
  if not 0.0 <= float(alpha) <= 1.0:
    raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}")
  s_out, t_out = student.outputs[0].shape[-1], teacher.outputs[0].shape[-1]
  if s_out != t_out:
    raise ValueError(f"student {student.name!r} has {s_out} outputs, teacher "
                     f"{teacher.name!r} has {t_out}")


def _tf_keras_class():
  """The tf_keras DistillationModel: a custom train_step on a GradientTape."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top

  class DistillationModel(_StudentIO, keras.Model):  # pylint: disable=redefined-outer-name
    """tf_keras form of `tps.DistillationModel`."""

    def __init__(self, student, teacher, *, temperature=4.0, alpha=0.9,
                 **kwargs):
      super().__init__(**kwargs)
      self.student = student
      # The teacher is only ever called with training=False and never given
      # gradients; it is not marked non-trainable, since that would change
      # the caller's model (and every model built from its config later).
      self.teacher = teacher
      self.temperature = float(temperature)
      self.alpha = float(alpha)
      self._loss_tracker = keras.metrics.Mean(name="loss")

    def compile(self, optimizer="adam", metrics=None, **kwargs):  # pylint: disable=arguments-differ
      if "loss" in kwargs:
        raise ValueError("DistillationModel computes its own loss; set "
                         "`temperature` and `alpha` instead of `loss`")
      super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def call(self, inputs, training=False):
      return self.student(inputs, training=training)

    def compute_loss_value(self, x, y, training=True, sample_weight=None):
      """The distillation loss on one batch (what `train_step` minimises),
      and the student's outputs (what it emits, as `call` returns them)."""
      outputs = self.student(x, training=training)
      s = _logits(self.student, outputs)
      t = _logits(self.teacher, self.teacher(x, training=False))
      return distillation_loss(y, s, t, self.temperature, self.alpha,
                               sample_weight), outputs

    def train_step(self, data):
      x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
      with tf.GradientTape() as tape:
        loss, outputs = self.compute_loss_value(x, y, training=True,
                                                sample_weight=sample_weight)
      variables = self.student.trainable_variables
      self.optimizer.apply_gradients(zip(tape.gradient(loss, variables),
                                         variables))
      return self._update_metrics(loss, y, outputs, sample_weight)

    def test_step(self, data):
      x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
      outputs = self.student(x, training=False)
      loss = tf.reduce_mean(_weighted(
          keras.losses.sparse_categorical_crossentropy(
              y, _logits(self.student, outputs), from_logits=True),
          sample_weight))
      return self._update_metrics(loss, y, outputs, sample_weight)

    def _update_metrics(self, loss, y, outputs, sample_weight=None):
      # Compiled metrics see what the student emits (as with Keras 3 and a
      # plain compiled student); only the loss works on logits.
      self._loss_tracker.update_state(loss)
      self.compiled_metrics.update_state(y, outputs, sample_weight)
      out = {m.name: m.result() for m in self.metrics}
      out["loss"] = self._loss_tracker.result()
      return out

    @property
    def metrics(self):
      return [self._loss_tracker] + list(super().metrics)

  return DistillationModel


def _keras3_class():
  """The Keras 3 DistillationModel: `compute_loss`, so any backend trains it.

  The teacher is a frozen copy (same weights), so the default train step,
  which updates every trainable variable, never touches it, and the caller's
  teacher is not modified.
  """
  import keras  # pylint: disable=g-import-not-at-top
  ops = keras.ops

  class DistillationModel(_StudentIO, keras.Model):  # pylint: disable=redefined-outer-name
    """Keras 3 form of `tps.DistillationModel`."""

    def __init__(self, student, teacher, *, temperature=4.0, alpha=0.9,
                 **kwargs):
      super().__init__(**kwargs)
      self.student = student
      # lottery's copy, not clone_model: clone_model rebuilds a nested
      # model from its config, unsharing a layer it shares with its parent
      # (and set_weights then fails on the extra weights).
      from tfprune_survey.lottery import _copy  # pylint: disable=g-import-not-at-top
      frozen = _copy(teacher)
      frozen.trainable = False
      self.teacher = frozen
      self._softmax_out = (_ends_in_softmax(student), _ends_in_softmax(teacher))
      self.temperature = float(temperature)
      self.alpha = float(alpha)

    def compile(self, optimizer="adam", metrics=None, **kwargs):  # pylint: disable=arguments-differ
      if "loss" in kwargs:
        raise ValueError("DistillationModel computes its own loss; set "
                         "`temperature` and `alpha` instead of `loss`")
      super().compile(optimizer=optimizer, metrics=metrics,
                      loss=self._student_loss, **kwargs)

    @staticmethod
    def _student_loss(y, logits):   # compute_loss passes the logits
      return keras.losses.sparse_categorical_crossentropy(y, logits,
                                                          from_logits=True)

    def call(self, inputs, training=False):
      # What the student emits (probabilities for a softmax head): predict
      # and the compiled metrics see it; compute_loss takes the logits.
      return self.student(inputs, training=training)

    def _as_logits(self, outputs, which):
      if self._softmax_out[which]:
        return ops.log(ops.clip(outputs, 1e-12, 1.0))
      return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
      student = self._as_logits(y_pred, 0)   # y_pred: the student's outputs
      hard = self._student_loss(y, student)
      if not training:   # evaluate: the student's own hard-label loss
        return ops.mean(self._weighted(hard, sample_weight))
      t = self.temperature
      teacher = ops.stop_gradient(
          self._as_logits(self.teacher(x, training=False), 1))
      p_t = ops.softmax(teacher / t)
      kl = ops.sum(p_t * (ops.log_softmax(teacher / t) -
                          ops.log_softmax(student / t)), axis=-1)
      return ops.mean(self._weighted(
          (1.0 - self.alpha) * hard + self.alpha * t * t * kl, sample_weight))

    @staticmethod
    def _weighted(per_sample, sample_weight):
      # Each sample's loss times its weight; the mean stays over the batch,
      # as Keras' default reduction takes it.
      if sample_weight is None:
        return per_sample
      return per_sample * ops.reshape(
          ops.cast(sample_weight, per_sample.dtype), (-1,))

  return DistillationModel


class _StudentIO:
  """What both Kerases' DistillationModel share: the student is what is
  saved, and the wrapper itself is not serialized."""

  def save(self, filepath, *args, **kwargs):  # pylint: disable=signature-differs
    """Saves the student alone, in any format its Keras supports."""
    return self.student.save(filepath, *args, **kwargs)

  def get_config(self):
    raise NotImplementedError(
        "DistillationModel is a training wrapper and is not serialized; "
        "save or serialize `.student` (DistillationModel.save does).")


_CLASSES = classes.PerFramework(
    lambda fw: _tf_keras_class() if fw.name == frameworks.TF_KERAS
    else _keras3_class())


class DistillationModel(metaclass=classes.dispatcher_meta(_CLASSES)):
  """Trains `student` on hard labels mixed with the teacher's soft outputs.

    loss = (1 - alpha) * CE(y, student)
           + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

  The teacher runs in inference mode and is never trained. Calling the
  model (or `predict`) returns exactly what the student emits, e.g.
  probabilities for a softmax student, and compiled metrics are given those
  same outputs; only the loss converts them to logits. `evaluate` reports
  the student's hard-label loss and metrics. Sample weights (`fit` and
  `evaluate`'s `sample_weight`, or a dataset's third element) multiply each
  sample's loss, the mean staying over the batch as in Keras' default
  reduction, and weight the compiled metrics. `save` writes the student
  alone, so the file loads as a plain model with no custom objects. Works for tf_keras and Keras 3 (any
  backend: the Keras 3 form overrides `compute_loss` and keeps a frozen
  copy of the teacher); the result is a model of the student's Keras.

  Reference: G. Hinton, O. Vinyals, J. Dean (2015), "Distilling the
  knowledge in a neural network", arXiv:1503.02531.

  Args:
    student: the slim model to train (updated in place).
    teacher: the unpruned model (not modified), of the same Keras.
    temperature: T > 0. Defaults to 4.0.
    alpha: weight of the soft (distillation) term in [0, 1]. Defaults to 0.9.

  Raises:
    TypeError: for non-models or models of two different Kerases, or a
      `temperature` or `alpha` that is not a number (the message names it).
    ValueError: for a temperature that is not finite and > 0, an alpha
      outside [0, 1], or different output sizes.

  Usage:
    dm = tps.DistillationModel(slim, original)
    dm.compile(optimizer="adam", metrics=["accuracy"])
    dm.fit(x, y, epochs=2)
  """

  def __new__(cls, student, teacher, *, temperature=4.0, alpha=0.9, **kwargs):
    _check_args(student, teacher, temperature, alpha)
    klass = _CLASSES(frameworks.detect(student))
    return klass(student, teacher, temperature=temperature, alpha=alpha,
                 **kwargs)


def reinitialize(model, seed=0):
  """The same architecture with fresh initial weights (nothing copied).

  Every initializer in the config is given its own seed derived from
  `seed`, so the result is reproducible without touching global random
  state. BatchNormalization statistics restart at 0 / 1. This is the
  "train the slim architecture from scratch" control of Liu et al. (2019),
  "Rethinking the value of network pruning". A layer shared between a
  nested model and its parent stays shared (one set of fresh weights).
  """
  frameworks.check_model(model)
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise ValueError(f"`seed` must be an int, got {seed!r}")
  config = copy.deepcopy(walker.model_config(model))
  counter = [0]

  def seed_initializers(node):
    if isinstance(node, dict):
      for key, value in node.items():
        if key.endswith("_initializer") and isinstance(value, dict) and (
            "seed" in (value.get("config") or {})):  # random initializers
          value["config"]["seed"] = seed * 100003 + counter[0]
          counter[0] += 1
        else:
          seed_initializers(value)
    elif isinstance(node, list):
      for value in node:
        seed_initializers(value)

  seed_initializers(config)
  from tfprune_survey.strip.surgery import rebuild  # pylint: disable=g-import-not-at-top
  fresh = rebuild(model, config)
  if len(fresh.weights) != len(model.weights):
    # Rebuilt from its config, a nested model holds its own copy of a layer
    # it shares with its parent: the fresh weights go into a copy that
    # keeps it shared, each shared layer taking those of its first path.
    from tfprune_survey import lottery  # pylint: disable=g-import-not-at-top
    shared = lottery._copy(model)  # pylint: disable=protected-access
    lottery._assign(shared, fresh)  # pylint: disable=protected-access
    fresh = shared
  return fresh
