"""A callback base class that both Kerases' `fit` accept.

tf_keras' and Keras 3's `CallbackList` only call methods on the objects in
`callbacks=` (duck typing; neither checks the class): `set_model`,
`set_params` and the `on_*` hooks in both, and in tf_keras also
`_implements_{train,test,predict}_batch_hooks()` and `_supports_tf_logs`,
which it reads to skip batch hooks nobody implements. So one class, made
before the user says which Keras (and without importing one), serves both:
`UpdateChannelPruningStep()` is built before there is a model to follow.
"""


def _default(fn):
  # Keras 3 reads `_is_default` to know a hook is not overridden (and may
  # then dispatch batch ends asynchronously).
  fn._is_default = True  # pylint: disable=protected-access
  return fn


_TRAIN_BATCH = ("on_batch_begin", "on_batch_end", "on_train_batch_begin",
                "on_train_batch_end")
_TEST_BATCH = ("on_test_batch_begin", "on_test_batch_end")
_PREDICT_BATCH = ("on_predict_batch_begin", "on_predict_batch_end")


class Callback:
  """Base class of tfprune_survey's callbacks, for either Keras.

  Attributes:
    model: the model being trained (set by `fit`).
    params: the training parameters `fit` passes (epochs, steps, ...).
  """

  # tf_keras: hooks get numpy logs, and the callback runs on every worker.
  _supports_tf_logs = False
  _chief_worker_only = None

  def __init__(self):
    self.params = None
    self._model = None

  def set_params(self, params):
    self.params = params

  def set_model(self, model):
    self._model = model

  @property
  def model(self):
    # Keras 3 on JAX keeps the state out of the model during an epoch; the
    # model syncs it on request, as keras.callbacks.Callback.model does.
    sync = getattr(self._model, "jax_state_sync", None)
    if sync is not None and _backend_of(self._model) == "jax":
      sync()
    return self._model

  @model.setter
  def model(self, model):
    self._model = model

  def _overrides(self, names):
    return any(not getattr(getattr(self, n), "_is_default", False)
               for n in names)

  def _implements_train_batch_hooks(self):
    return self._overrides(_TRAIN_BATCH)

  def _implements_test_batch_hooks(self):
    return self._overrides(_TEST_BATCH)

  def _implements_predict_batch_hooks(self):
    return self._overrides(_PREDICT_BATCH)

  @_default
  def on_batch_begin(self, batch, logs=None):
    pass

  @_default
  def on_batch_end(self, batch, logs=None):
    pass

  @_default
  def on_epoch_begin(self, epoch, logs=None):
    pass

  @_default
  def on_epoch_end(self, epoch, logs=None):
    pass

  @_default
  def on_train_batch_begin(self, batch, logs=None):
    pass

  @_default
  def on_train_batch_end(self, batch, logs=None):
    pass

  @_default
  def on_test_batch_begin(self, batch, logs=None):
    pass

  @_default
  def on_test_batch_end(self, batch, logs=None):
    pass

  @_default
  def on_predict_batch_begin(self, batch, logs=None):
    pass

  @_default
  def on_predict_batch_end(self, batch, logs=None):
    pass

  @_default
  def on_train_begin(self, logs=None):
    pass

  @_default
  def on_train_end(self, logs=None):
    pass

  @_default
  def on_test_begin(self, logs=None):
    pass

  @_default
  def on_test_end(self, logs=None):
    pass

  @_default
  def on_predict_begin(self, logs=None):
    pass

  @_default
  def on_predict_end(self, logs=None):
    pass


def _backend_of(model):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  name = frameworks.detect(model)
  return None if name is None else frameworks.get(name).backend()
