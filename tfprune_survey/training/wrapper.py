"""ChannelPruneWrapper: per-channel masks applied to a layer's weights.

One concrete class per Keras (tf_keras, Keras 3 on the TensorFlow backend),
each registered as `tfprune_survey>ChannelPruneWrapper` in its Keras, so a
model saved mid-pruning loads with no `custom_objects`. The masking runs in
TensorFlow ops inside the training graph in both. A Keras 3 model saved on
TensorFlow and loaded on another backend runs inference (masked, in Keras
ops) and strips; training it there is a NotImplementedError saying so.
"""

import inspect

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.frameworks import classes as keras_classes

CALLBACK_MISSING = (
    "Channel pruning needs tps.UpdateChannelPruningStep() in the callbacks "
    "of model.fit: it advances the pruning step and updates the masks.")



def backend_error(fw, what):
  """The NotImplementedError for `what` on a Keras 3 model loaded on a
  backend other than TensorFlow (the wrappers mask in TensorFlow ops)."""
  return NotImplementedError(
      f"{what} needs the TensorFlow backend, and Keras 3 runs on the "
      f"'{fw.backend()}' backend here (KERAS_BACKEND): the "
      "ChannelPruneWrapper layers of a model from tps.prune_channels mask "
      "and prune in TensorFlow ops. To go on training and pruning it, load "
      "it with KERAS_BACKEND=tensorflow; to use the channels pruned so far "
      "on this backend, strip it first (slim = tps.strip_channel_pruning("
      "model), which works on any backend) and run or fine-tune `slim`.")


_DOC = """Holds 0/1 channel masks and zeroes the masked slices of `layer`'s weights.

  Each entry of `masked` is (weight name, axis, size): a non-trainable mask
  vector over that axis of that weight. Before every call the weights are
  multiplied by their masks (as tfmot's weight masks are), so a dropped
  channel is dead at both ends exactly as in `tps.mask_channels`: producer
  kernel/bias and BN gamma/beta/moving_mean slices, and consumer input
  slices. Coupled producers receive identical masks from the controller.

  The kept channels of each pruned group are stored explicitly: the wrapper
  of the group's first producer (the layer whose name is the group's id)
  holds `channel_mask`, 1 for each kept channel of the group. Layer-form
  wrappers (`masked=None`, made by `prune_channels(layer)`) always hold one,
  over their output channels.

  Args:
    layer: the layer to wrap (tf_keras or Keras 3; the wrapper is of the
      same Keras).
    masked: [(weight name, axis, size)] to mask; None for a layer-form
      marker (the controller zeroes every dropped slice between steps).
      Defaults to ().
    settings: the pruning configuration (criterion, schedule, scope,
      round_to, min_channels, groups), so that a saved model resumes with
      no custom_objects and no extra arguments. Defaults to None.
    observe: the channels of the feature map whose statistics this wrapper
      keeps for a data-dependent criterion, or None.
    observe_at: where that feature map is read: 'input' (the wrapped
      layer's input; the default) or 'output' (its output: the point the
      activation criteria read, e.g. a ReLU before a pooling).
    observe_output: taylor_fo: the channels of the output whose per-batch
      (sum of dL/dY * Y)^2 this wrapper accumulates, or None.
    group_channels: the size of the channel group whose id is this layer's
      name, when this wrapper holds its kept set; None otherwise.
    data: optional data for data-dependent criteria, kept in memory only
      (not in the config). Defaults to None.
    schedule: the pruning schedule object, kept in memory only (the config
      holds it serialized), so that a schedule class of the user's own
      needs no registration in the process that wrapped it. Defaults to
      None.
    **kwargs: standard layer arguments (name defaults to
      'chprune_<layer name>').
"""


class _InMemory:
  """Holds a Python value out of Keras' attribute tracking."""

  def __init__(self, value):
    self.value = value


def _make(fw):
  keras = fw.keras
  keras3 = fw.name == frameworks.KERAS3

  add = fw.add_state_weight
  tf_var = fw.tf_variable

  @keras_classes.register(fw, "ChannelPruneWrapper")
  class ChannelPruneWrapper(keras.layers.Wrapper):  # pylint: disable=redefined-outer-name
    __doc__ = _DOC

    def __init__(self, layer, masked=(), settings=None, observe=None,
                 observe_output=None, group_channels=None, data=None,
                 observe_at="input", schedule=None, **kwargs):
      kwargs.setdefault("name", f"chprune_{layer.name}")
      super().__init__(layer, **kwargs)
      self.deferred = masked is None
      self.masked = [(str(w), int(a), int(d)) for w, a, d in (masked or ())]
      self.settings = dict(settings or {})
      self.observe = None if observe is None else int(observe)
      if observe_at not in ("input", "output"):
        raise ValueError("`observe_at` must be 'input' or 'output', got "
                         f"{observe_at!r}")
      self.observe_at = observe_at
      self.observe_output = (None if observe_output is None
                             else int(observe_output))
      self.group_channels = (None if group_channels is None
                             else int(group_channels))
      self._data = _InMemory(data)
      self._schedule = _InMemory(schedule)
      self.stat_vars = {}
      self.channel_mask = None
      self._criterion = None
      params = inspect.signature(layer.call).parameters
      self._inner_args = set(params)
      self._inner_takes_training = "training" in params or any(
          p.kind == p.VAR_KEYWORD for p in params.values())

    @property
    def data(self):
      """Data for data-dependent criteria given to `prune_channels`."""
      return self._data.value

    @property
    def schedule(self):
      """The schedule object given to `prune_channels` (or found in the
      `custom_objects` of the load), or None."""
      return self._schedule.value

    def build(self, input_shape):
      if not self.layer.built:
        self.layer.build(input_shape)
      self.mask_vars = [add(self, f"mask_{w}_{a}", (d,), "ones",
                            "only_first_replica")
                        for w, a, d in self.masked]
      if self.observe is not None:
        from tfprune_survey import criteria as criteria_lib  # pylint: disable=g-import-not-at-top
        self._criterion = criteria_lib.deserialize(self.settings["criterion"])
        for name, (shape, value) in self._criterion.stream_spec(
            self.observe).items():
          self.stat_vars[name] = add(self, f"stat_{name}", shape,
                                     keras.initializers.Constant(value),
                                     "sum")
      width = self.group_channels
      if self.deferred:
        out = self.layer.compute_output_shape(input_shape)
        if isinstance(out, (list, tuple)) and out and not isinstance(
            out[0], (int, type(None))):
          out = out[0]
        width = int(tuple(out)[-1])
      if width is not None:
        self.channel_mask = add(self, "channel_mask", (width,), "ones",
                                "only_first_replica")
      if self.observe_output is not None:
        self.stat_vars["fo_sq"] = add(self, "stat_fo_sq",
                                      (self.observe_output,), "zeros", "sum")
        self.stat_vars["fo_n"] = add(self, "stat_fo_n", (), "zeros",
                                     "only_first_replica")
      self.pruning_step = add(self, "pruning_step", (), keras.initializers.
                              Constant(-1), "only_first_replica", "int64")
      self.built = True

    def _weight(self, name):
      for w in self.layer.weights:
        if frameworks.Framework.short_name(w) == name:
          return w
      raise ValueError(f"layer '{self.layer.name}' has no weight '{name}'")

    def masked_values(self):
      """[(weight variable, masked value tensor)] for the masked weights."""
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      factors = {}
      for (name, axis, _), mask in zip(self.masked, self.mask_vars):
        w = self._weight(name)
        shape = [1] * len(w.shape)
        shape[axis] = -1
        m = tf.reshape(tf.cast(tf_var(mask), w.dtype), shape)
        factors[name] = m if name not in factors else factors[name] * m
      return [(self._weight(n), self._weight(n) * m)
              for n, m in factors.items()]

    def apply_masks(self):
      """Multiplies the masked weights by their masks (assign ops)."""
      return [w.assign(v) for w, v in self.masked_values()]

    def call(self, inputs, training=None, **kwargs):
      if keras3 and fw.backend() != "tensorflow":
        # A model saved on TensorFlow and loaded on JAX or PyTorch: it runs
        # (masked, in Keras ops); training it needs TensorFlow. (Raising
        # in inference would leave a JAX model's weights purged.)
        if training is True:
          raise backend_error(fw, f"training layer {self.name!r}")
        return self._call_other_backend(inputs, **kwargs)
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      if training is None:
        training = False if keras3 else keras.backend.learning_phase()
      training = training if isinstance(training, bool) else None
      checks = []
      if training:
        checks.append(tf.debugging.assert_greater_equal(
            tf_var(self.pruning_step), tf.constant(0, tf.int64),
            message=CALLBACK_MISSING))
      with tf.control_dependencies(checks):
        # Under a tf.distribute strategy the weights are mirrored, and a
        # plain assign from a replica is not allowed: UpdateChannelPruningStep
        # applies the masks between steps instead (cross-replica context).
        assigns = [] if tf.distribute.has_strategy() else self.apply_masks()
        assigns = assigns + checks
      if self.observe is not None and training and (
          self.observe_at == "input"):
        inputs = self._observed(inputs)
      kwargs = {k: v for k, v in kwargs.items() if k in self._inner_args}
      if self._inner_takes_training and training is not None:
        kwargs["training"] = training
      with tf.control_dependencies(assigns):
        out = self.layer(inputs, **kwargs)
      if self.observe is not None and training and (
          self.observe_at == "output"):
        out = self._observed(out)
      if self.observe_output is not None and training:
        out = self._observed_output(out)
      return out

    def _call_other_backend(self, inputs, **kwargs):
      """Inference on a backend other than TensorFlow: the masked weights
      (as `apply_masks`, in Keras ops), then the layer."""
      ops = keras.ops
      factors = {}
      for (name, axis, _), mask in zip(self.masked, self.mask_vars):
        w = self._weight(name)
        shape = [1] * len(w.shape)
        shape[axis] = -1
        m = ops.reshape(ops.cast(mask, w.dtype), shape)
        factors[name] = m if name not in factors else factors[name] * m
      for name, m in factors.items():
        w = self._weight(name)
        w.assign(w * m)
      kwargs = {k: v for k, v in kwargs.items() if k in self._inner_args}
      if self._inner_takes_training:
        kwargs["training"] = False
      return self.layer(inputs, **kwargs)

    def _observed_output(self, out):
      """For taylor_fo: the sum over a filter's (or its BN's gamma and beta)
      parameters of g * w equals the sum over the batch and positions of
      dL/dY * Y for the layer's output Y (Y is linear in those parameters),
      so it is read on the backward pass of the output."""
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      sq = tf_var(self.stat_vars["fo_sq"])
      n = tf_var(self.stat_vars["fo_n"])
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
      """`inputs` (the observed feature map), with the criterion's statistics
      of this batch folded into the running variables (on the backward pass
      for gradient criteria)."""
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      crit, width = self._criterion, self.observe
      stats = {k: tf_var(v) for k, v in self.stat_vars.items()}

      def flat(t):
        return tf.reshape(tf.cast(t, tf.float32), [tf.shape(t)[0], -1, width])

      if not crit.needs_gradients:
        ops = crit.stream_update(stats, flat(inputs), None)
        with tf.control_dependencies(ops):
          return tf.identity(inputs)

      @tf.custom_gradient
      def watch(x):
        def grad(dy):
          ops = crit.stream_update(stats, flat(x), flat(dy))
          with tf.control_dependencies(ops):
            return tf.identity(dy)
        return tf.identity(x), grad
      return watch(inputs)

    def reset_stats(self):
      """Sets the running statistics back to their initial values."""
      spec = self._criterion.stream_spec(self.observe) if self.observe else {}
      for name, var in self.stat_vars.items():
        value = spec[name][1] if name in spec else 0.0
        var.assign(np.full(tuple(var.shape), value, np.float32))

    def stats_numpy(self):
      return {k: np.asarray(v.numpy()) for k, v in self.stat_vars.items()}

    def compute_output_shape(self, input_shape):
      return self.layer.compute_output_shape(input_shape)

    def get_config(self):
      config = super().get_config()
      config["masked"] = (None if self.deferred
                          else [list(m) for m in self.masked])
      config["settings"] = dict(self.settings)
      config["observe"] = self.observe
      config["observe_at"] = self.observe_at
      config["observe_output"] = self.observe_output
      config["group_channels"] = self.group_channels
      return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
      config = dict(config)
      layer = keras.layers.deserialize(config.pop("layer"),
                                       custom_objects=custom_objects)
      schedule = _load_schedule(fw, config.get("settings"), custom_objects)
      return cls(layer, schedule=schedule, **config)

  ChannelPruneWrapper.__module__ = __name__
  ChannelPruneWrapper.__qualname__ = f"ChannelPruneWrapper[{fw.name}]"
  return ChannelPruneWrapper


def registered_class(fw, name, custom_objects=None):
  """The class known to `fw`'s Keras as `name`, or None.

  Looked up in `custom_objects`, Keras' custom-object scope and its global
  registry, where `register_keras_serializable` files a class under
  'package>name' (the saved schedule config names the class only): a
  single class registered as '<any package>>name' is found too.
  """
  klass = fw.keras.utils.get_registered_object(name, custom_objects)
  if klass is not None:
    return klass
  found = {id(v): v for k, v in fw.keras.utils.get_custom_objects().items()
           if isinstance(k, str) and ">" in k and k.rsplit(">", 1)[1] == name}
  return next(iter(found.values())) if len(found) == 1 else None


def _load_schedule(fw, settings, custom_objects):
  """The schedule in `settings` when its class is a user's own class
  named in `custom_objects` or Keras' custom-object scope, else None (the
  built-in ones are rebuilt by the controller)."""
  config = (settings or {}).get("schedule")
  name = config.get("class_name") if isinstance(config, dict) else None
  if not isinstance(name, str) or name in ("ConstantSparsity",
                                            "PolynomialDecay"):
    return None
  klass = registered_class(fw, name, custom_objects)
  if klass is None:
    return None
  from tfprune_survey import schedules as schedules_lib  # pylint: disable=g-import-not-at-top
  return schedules_lib.deserialize(config, custom_objects={name: klass})


wrapper_class = keras_classes.PerFramework(_make)


class ChannelPruneWrapper(metaclass=keras_classes.dispatcher_meta(
    wrapper_class)):
  __doc__ = _DOC + """
  Returns:
    A wrapper of `layer`'s Keras; `isinstance(w, tps.ChannelPruneWrapper)`
    holds for the wrappers of both Kerases.
  """

  def __new__(cls, layer, *args, **kwargs):
    return wrapper_class(frameworks.of(layer, "layer"))(layer, *args,
                                                        **kwargs)


def wrappers_of(model):
  """The ChannelPruneWrappers among `model`'s top-level layers."""
  return [l for l in model.layers if isinstance(l, ChannelPruneWrapper)]
