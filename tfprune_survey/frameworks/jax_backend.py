"""What the criteria need from a Keras 3 model on the JAX backend.

The TensorFlow path traces probe, loss and gradients in one `tf.function`;
here the same quantities come from `jax.grad`:

- feature maps and dL/dY at chosen tensors of a Functional model: the graph
  is run node by node (`keras3.run_graph`), a zero tensor is added at every
  observed tensor, and the gradient with respect to those zeros is dL/dY;
- dL/dW for variables: `model.stateless_call` under `jax.grad`, compiled
  once with `jax.jit` (`variable_grads_fn`).

Both run in inference mode (`training=False`), so no state is updated.
The activation criteria compile the feature maps, dL/dY and their
reduction into one `jax.jit` (`stats_fn`).
"""

import numpy as np

from tfprune_survey.frameworks.keras3 import run_graph


def features_and_grads(model, tensors, loss_fn, x, y, as_numpy=True):
  """Feature maps at `tensors` and the gradient of the summed loss there.

  Args:
    model: a Keras 3 Functional model (JAX backend).
    tensors: KerasTensors of `model`'s graph.
    loss_fn: fn(y_true, y_pred) -> per-sample losses, or None (no grads).
    x, y: one batch (numpy or jax arrays, tracers under `jax.jit`); x is
      one array, or a tuple, list or dict of them for several inputs.
    as_numpy: True (default) gives numpy arrays; False leaves them jax
      arrays, for statistics taken on the device with `keras.ops`.

  Returns:
    ([feature map], [gradient or None]).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  index = {id(t): i for i, t in enumerate(tensors)}
  x = jax.tree_util.tree_map(jnp.asarray, x)  # one array, or one per input

  def forward(eps):
    feats = [None] * len(tensors)

    def tap(tid, value):
      i = index.get(tid)
      if i is None:
        return value
      if eps is not None and eps[i] is not None:
        value = value + eps[i]
      feats[i] = value
      return value
    outs = run_graph(model, x, tap)
    return outs, feats

  out = np.asarray if as_numpy else (lambda a: a)
  if loss_fn is None:
    _, feats = forward(None)
    return [out(f) for f in feats], [None] * len(tensors)
  _, feats0 = forward(None)
  # An integer tensor (an int Input read by a Dense) takes no gradient:
  # zeros, as TensorFlow's tape gives.
  eps = [jnp.zeros_like(f) if jnp.issubdtype(f.dtype, jnp.inexact) else None
         for f in feats0]
  y = jnp.asarray(y)

  def loss_of(eps):
    outs, feats = forward(eps)
    return jnp.sum(loss_fn(y, outs[0])), feats
  grads, feats = jax.grad(loss_of, has_aux=True)(eps)
  grads = [jnp.zeros_like(f) if g is None else g for f, g in zip(feats, grads)]
  return [out(f) for f in feats], [out(g) for g in grads]


def stats_fn(model, tensors, loss_fn, reduce):
  """callable(x, y) -> reduce(feature maps, dL/dY), one `jax.jit` for all.

  The graph run, the gradient and the reduction of `features_and_grads`
  compile into one XLA function, so a batch costs about one jitted forward
  (or forward-backward) pass instead of the graph's ops run one by one.
  Each callable compiles on its first batch, and again for a batch of a
  new shape (a shorter last batch). The model's variables are arguments,
  read through a `keras.StatelessScope` and taken afresh at every call,
  not constants folded into the compiled function.

  Args:
    model, tensors, loss_fn: as for `features_and_grads`.
    reduce: fn([feature map], [gradient or None]) -> statistics, in
      `keras.ops` (traceable).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  variables = list(model.variables)

  @jax.jit
  def step(values, x, y):
    with keras.StatelessScope(state_mapping=list(zip(variables, values))):
      feats, grads = features_and_grads(model, tensors, loss_fn, x, y,
                                        as_numpy=False)
    return reduce(feats, grads)

  return lambda x, y: step(
      [v.value for v in variables], jax.tree_util.tree_map(jnp.asarray, x),
      None if y is None or loss_fn is None else jnp.asarray(y))


def variable_grads_fn(model, variables, loss_fn):
  """callable(x, y) -> dL/dv of a batch's loss for each of `variables`.

  The gradient of `model.stateless_call` compiles once with `jax.jit`
  (again only for a new batch shape); the model's variables are its
  arguments, taken afresh at every call. Integer state (a random layer's
  seed) gets no gradient. Results are numpy arrays.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  trainable = list(model.trainable_variables)
  frozen = list(model.non_trainable_variables)
  by_id = {id(v): (0, i) for i, v in enumerate(trainable)}
  by_id.update({id(v): (1, i) for i, v in enumerate(frozen)})
  where = [by_id[id(v)] for v in variables]

  @jax.jit
  def grads(tv, ntv, x, y):
    def loss_of(tv, ntv):
      pred, _ = model.stateless_call(tv, ntv, x, training=False)
      if isinstance(pred, (list, tuple)):
        pred = pred[0]
      return loss_fn(y, pred)
    both = jax.grad(loss_of, argnums=(0, 1), allow_int=True)(tv, ntv)
    return [both[k][i] for k, i in where]

  return lambda x, y: [np.asarray(g) for g in grads(
      [v.value for v in trainable], [v.value for v in frozen],
      jax.tree_util.tree_map(jnp.asarray, x), jnp.asarray(y))]


def activation_vjp(activation, z, d):
  """d(activation)/dz applied to `d` at pre-activations `z` (numpy, float32).

  How `kfac_obd` takes an output gradient back through a layer's fused
  activation.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  _, vjp = jax.vjp(activation, jnp.asarray(z, jnp.float32))
  return np.asarray(vjp(jnp.asarray(d, jnp.float32))[0])
