"""What the criteria need from a Keras 3 model on the PyTorch backend.

The same quantities as `jax_backend`, from torch's autograd: a zero tensor
that requires grad is added at every observed tensor of the graph (run node
by node, `keras3.run_graph`), so its gradient is dL/dY; and dL/dW is read
from the `.grad` of the torch parameters behind the Keras variables. Both
in inference mode (`training=False`); nothing is trained or updated.
"""

import numpy as np


def _numpy(t):
  return t.detach().cpu().numpy()


def _tensors(x):
  """x (one array, or a tuple, list or dict of them) as torch tensors."""
  import torch  # pylint: disable=g-import-not-at-top
  from keras import tree  # pylint: disable=g-import-not-at-top
  return tree.map_structure(
      lambda a: torch.as_tensor(np.ascontiguousarray(a)), x)


def features_and_grads(model, tensors, loss_fn, x, y, as_numpy=True):
  """As `jax_backend.features_and_grads`, with torch autograd; with
  `as_numpy=False` the arrays are detached torch tensors."""
  import torch  # pylint: disable=g-import-not-at-top
  from tfprune_survey.frameworks.keras3 import run_graph  # pylint: disable=g-import-not-at-top
  index = {id(t): i for i, t in enumerate(tensors)}
  x = _tensors(x)
  feats = [None] * len(tensors)
  eps = [None] * len(tensors)

  def tap(tid, value):
    i = index.get(tid)
    if i is None:
      return value
    if loss_fn is not None and value.is_floating_point():
      eps[i] = torch.zeros_like(value, requires_grad=True)
      value = value + eps[i]
    feats[i] = value
    return value
  out = _numpy if as_numpy else (lambda t: t.detach())
  if loss_fn is None:
    with torch.no_grad():
      run_graph(model, x, tap)
    return [out(f) for f in feats], [None] * len(tensors)
  outs = run_graph(model, x, tap)
  loss = loss_fn(torch.as_tensor(np.asarray(y)), outs[0]).sum()
  # An integer tensor takes no gradient (zeros, as TensorFlow's tape gives).
  taken = [e for e in eps if e is not None]
  found = iter(torch.autograd.grad(loss, taken, allow_unused=True)
               if taken else ())
  grads = [None if e is None else next(found) for e in eps]
  return ([out(f) for f in feats],
          [out(torch.zeros_like(f)) if g is None else out(g)
           for f, g in zip(feats, grads)])


def stats_fn(model, tensors, loss_fn, reduce):
  """callable(x, y) -> reduce(feature maps, dL/dY) of a batch (as on JAX,
  where it compiles; here each batch runs eagerly)."""
  return lambda x, y: reduce(*features_and_grads(
      model, tensors, loss_fn, x, y, as_numpy=False))


def variable_grads(model, variables, loss_fn, x, y):
  """dL/dv of the batch's mean loss for each of `variables` (numpy)."""
  import torch  # pylint: disable=g-import-not-at-top
  params = [v.value for v in variables]
  # A frozen layer's (trainable=False) parameters do not require grad;
  # they get gradients all the same, as on TensorFlow and JAX.
  frozen = [p for p in params if not p.requires_grad]
  for p in frozen:
    p.requires_grad_(True)
  try:
    pred = model(_tensors(x), training=False)
    if isinstance(pred, (list, tuple)):
      pred = pred[0]
    loss = loss_fn(torch.as_tensor(np.asarray(y)), pred)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
  finally:
    for p in frozen:
      p.requires_grad_(False)
  return [np.zeros(tuple(v.shape), np.float32) if g is None else _numpy(g)
          for v, g in zip(variables, grads)]


def variable_grads_fn(model, variables, loss_fn):
  """callable(x, y) -> `variable_grads` of a batch (as on JAX)."""
  return lambda x, y: variable_grads(model, variables, loss_fn, x, y)


def activation_vjp(activation, z, d):
  """As `jax_backend.activation_vjp`, with torch autograd."""
  import torch  # pylint: disable=g-import-not-at-top
  z = torch.as_tensor(np.ascontiguousarray(z, np.float32)).requires_grad_(True)
  (g,) = torch.autograd.grad(activation(z), z, grad_outputs=torch.as_tensor(
      np.ascontiguousarray(d, np.float32)))
  return _numpy(g)
