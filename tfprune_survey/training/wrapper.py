"""ChannelPruneWrapper: per-channel masks applied to a layer's weights."""

import tensorflow as tf

from tfprune_survey._compat import keras
from tfprune_survey.graph.builder import short_weight_name

CALLBACK_MISSING = (
    "Channel pruning needs tps.UpdateChannelPruningStep() in the callbacks "
    "of model.fit: it advances the pruning step and updates the masks.")


@keras.utils.register_keras_serializable(package="tfprune_survey")
class ChannelPruneWrapper(keras.layers.Wrapper):
  """Holds 0/1 channel masks and zeroes the masked slices of `layer`'s weights.

  Each entry of `masked` is (weight name, axis, size): a non-trainable mask
  vector over that axis of that weight. Before every call the weights are
  multiplied by their masks (as tfmot's weight masks are), so a dropped
  channel is dead at both ends exactly as in `tps.mask_channels`: producer
  kernel/bias and BN gamma/beta/moving_mean slices, and consumer input
  slices. Coupled producers receive identical masks from the controller.

  `settings` carries the pruning configuration (criterion, schedule, scope,
  round_to, min_channels), so that a saved model resumes with no
  custom_objects and no extra arguments.
  """

  def __init__(self, layer, masked=(), settings=None, observe=None,
               observe_output=None, **kwargs):
    kwargs.setdefault("name", f"chprune_{layer.name}")
    super().__init__(layer, **kwargs)
    # masked=None: made by prune_channels(layer); the wrapper only records
    # its layer's kept output channels (`channel_mask`), and the callback
    # zeroes every dropped slice of every layer between training steps.
    self.deferred = masked is None
    self.masked = [(str(w), int(a), int(d)) for w, a, d in (masked or ())]
    self.settings = dict(settings or {})
    # Channels of the input feature map whose statistics this wrapper keeps
    # for a data-dependent criterion (None: it keeps none).
    self.observe = None if observe is None else int(observe)
    # taylor_fo: channels of this layer's output, whose per-batch
    # (sum of dL/dY * Y)^2 is accumulated (None: not observed).
    self.observe_output = (None if observe_output is None
                           else int(observe_output))
    self.stat_vars = {}
    self._criterion = None

  def build(self, input_shape):
    if not self.layer.built:
      self.layer.build(input_shape)
    self.mask_vars = [
        self.add_weight(name=f"mask_{w}_{a}", shape=(d,), initializer="ones",
                        trainable=False, dtype=tf.float32,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for w, a, d in self.masked]
    if self.observe is not None:
      from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
      self._criterion = criteria_lib.deserialize(self.settings["criterion"])
      for name, (shape, value) in self._criterion.stream_spec(
          self.observe).items():
        self.stat_vars[name] = self.add_weight(
            name=f"stat_{name}", shape=shape, trainable=False,
            initializer=keras.initializers.Constant(value), dtype=tf.float32,
            aggregation=tf.VariableAggregation.SUM)
    if self.deferred:
      out = self.layer.compute_output_shape(input_shape)
      out = out[0] if isinstance(out, (list, tuple)) and out and isinstance(
          out[0], (list, tuple, tf.TensorShape)) else out
      self.channel_mask = self.add_weight(
          name="channel_mask", shape=(int(tf.TensorShape(out)[-1]),),
          initializer="ones", trainable=False, dtype=tf.float32,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    if self.observe_output is not None:
      self.stat_vars["fo_sq"] = self.add_weight(
          name="stat_fo_sq", shape=(self.observe_output,), trainable=False,
          initializer="zeros", aggregation=tf.VariableAggregation.SUM)
      self.stat_vars["fo_n"] = self.add_weight(
          name="stat_fo_n", shape=(), trainable=False, initializer="zeros",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.pruning_step = self.add_weight(
        name="pruning_step", shape=(), dtype=tf.int64, trainable=False,
        initializer=keras.initializers.Constant(-1),
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.built = True

  def _weight(self, name):
    for w in self.layer.weights:
      if short_weight_name(w.name) == name:
        return w
    raise ValueError(f"layer '{self.layer.name}' has no weight '{name}'")

  def masked_values(self):
    """[(weight variable, masked value tensor)] for the masked weights."""
    factors = {}
    for (name, axis, _), mask in zip(self.masked, self.mask_vars):
      w = self._weight(name)
      shape = [1] * len(w.shape)
      shape[axis] = -1
      m = tf.reshape(tf.cast(mask, w.dtype), shape)
      factors[name] = m if name not in factors else factors[name] * m
    return [(self._weight(n), self._weight(n) * m) for n, m in factors.items()]

  def apply_masks(self):
    return [w.assign(v) for w, v in self.masked_values()]

  def call(self, inputs, training=None):
    if training is None:
      training = keras.backend.learning_phase()
    checks = []
    if isinstance(training, bool) and training:
      checks.append(tf.debugging.assert_greater_equal(
          self.pruning_step, tf.constant(0, tf.int64),
          message=CALLBACK_MISSING))
    with tf.control_dependencies(checks):
      # Under a tf.distribute strategy the weights are mirrored, and a plain
      # assign from a replica is not allowed: UpdateChannelPruningStep
      # applies the masks between steps instead (in cross-replica context).
      assigns = [] if tf.distribute.has_strategy() else self.apply_masks()
      assigns = assigns + checks
    if self.observe is not None and isinstance(training, bool) and training:
      inputs = self._observed(inputs)
    with tf.control_dependencies(assigns):
      if "training" in self.layer.call.__code__.co_varnames:
        out = self.layer(inputs, training=training)
      else:
        out = self.layer(inputs)
    if self.observe_output is not None and isinstance(
        training, bool) and training:
      out = self._observed_output(out)
    return out

  def _observed_output(self, out):
    """For taylor_fo: the sum over a filter's (or its BN's gamma and beta)
    parameters of g * w equals the sum over the batch and positions of
    dL/dY * Y for the layer's output Y (Y is linear in those parameters),
    so it is read on the backward pass of the output."""
    sq, n = self.stat_vars["fo_sq"], self.stat_vars["fo_n"]
    width = self.observe_output

    @tf.custom_gradient
    def watch(y):
      def grad(dy):
        flat = tf.reshape(tf.cast(dy * y, tf.float32), [-1, width])
        total = tf.reduce_sum(flat, axis=0)
        ops = [sq.assign_add(total * total), n.assign_add(1.0)]
        with tf.control_dependencies(ops):
          return tf.identity(dy)
      return tf.identity(y), grad
    return watch(out)

  def _observed(self, inputs):
    """`inputs`, with the criterion's statistics of this batch folded into
    the running variables (on the backward pass for gradient criteria)."""
    crit, width = self._criterion, self.observe

    def flat(t):
      return tf.reshape(tf.cast(t, tf.float32), [tf.shape(t)[0], -1, width])

    if not crit.needs_gradients:
      ops = crit.stream_update(self.stat_vars, flat(inputs), None)
      with tf.control_dependencies(ops):
        return tf.identity(inputs)

    @tf.custom_gradient
    def watch(x):
      def grad(dy):
        ops = crit.stream_update(self.stat_vars, flat(x), flat(dy))
        with tf.control_dependencies(ops):
          return tf.identity(dy)
      return tf.identity(x), grad
    return watch(inputs)

  def reset_stats(self):
    spec = self._criterion.stream_spec(self.observe) if self.observe else {}
    for name, var in self.stat_vars.items():
      value = spec[name][1] if name in spec else 0.0
      var.assign(tf.fill(var.shape, tf.cast(value, var.dtype)))

  def stats_numpy(self):
    return {k: v.numpy() for k, v in self.stat_vars.items()}

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def get_config(self):
    config = super().get_config()
    config["masked"] = (None if self.deferred
                        else [list(m) for m in self.masked])
    config["settings"] = self.settings
    config["observe"] = self.observe
    config["observe_output"] = self.observe_output
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    layer = keras.layers.deserialize(config.pop("layer"))
    return cls(layer, **config)
