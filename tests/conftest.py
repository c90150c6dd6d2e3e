"""Shared helpers for the tests."""

import contextlib
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfprune_survey as tps  # noqa: E402


def backend_env(backend, **extra):
  """os.environ for a subprocess under KERAS_BACKEND=`backend`, plus `extra`.

  TF_USE_LEGACY_KERAS is dropped (Keras 3 is wanted there), and XLA's CPU
  backend compiles at optimization level 0: compiling a JAX test process's
  many small programs is most of its time (backend_job: 47 of 74 s under
  cProfile), and level 0 ran it in 40.5 s against 70.8 s, its scores within
  1.4e-6 relative of the default level's. A level already in XLA_FLAGS is
  kept.
  """
  env = dict(os.environ, KERAS_BACKEND=backend, **extra)
  env.pop("TF_USE_LEGACY_KERAS", None)
  flags = env.get("XLA_FLAGS", "")
  if "xla_backend_optimization_level" not in flags:
    env["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()
  return env


def random_keep(graph, seed=0, fraction=0.5):
  """Keeps a random ~fraction of every prunable group."""
  rng = np.random.default_rng(seed)
  keep = {}
  for g in graph.prunable_groups:
    n = max(1, int(round(g.size * fraction)))
    keep[g.id] = np.sort(rng.choice(g.size, n, replace=False))
  return keep


def to_numpy(t):
  """A model output as numpy, on any backend (torch outputs track grads)."""
  if hasattr(t, "detach"):
    t = t.detach().cpu()
  return np.asarray(t)


def max_rel_diff(a, b):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def assert_equivalent(model, keep, x, rtol=1e-5, graph=None):
  """materialize(model, keep) must compute what mask_channels computes."""
  graph = graph if graph is not None else tps.ChannelGraph(model)
  masked = tps.mask_channels(model, keep, graph=graph)
  slim = tps.materialize(model, keep, graph=graph)
  ref = masked(x, training=False)
  got = slim(x, training=False)
  refs = ref if isinstance(ref, (list, tuple)) else [ref]
  gots = got if isinstance(got, (list, tuple)) else [got]
  for r, g in zip(refs, gots):
    rel = max_rel_diff(to_numpy(r), to_numpy(g))
    assert rel <= rtol, f"slim differs from masked by {rel:.2e} (rtol {rtol})"
  return masked, slim


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@functools.lru_cache(maxsize=None)
def trained_digits_model(framework="tf_keras"):
  """A small residual CNN trained on sklearn's digits (about 95% top-1).

  Cached per framework for the whole run: tests must not modify it (they
  check that they do not).
  """
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  (x, y), _ = tps.data.load_digits()
  keras = frameworks.get(framework).keras
  keras.utils.set_random_seed(0)
  model = zoo.residual_cnn(input_shape=(8, 8, 1), width=16,
                           framework=framework)
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  model.fit(x, y, epochs=8, batch_size=32, verbose=0)
  tps.recalibrate_bn(model, x)
  return model


@pytest.fixture(scope="module")
def digits():
  return tps.data.load_digits()


@pytest.fixture(scope="module", params=("tf_keras", "keras3"))
def trained(request):
  """The digits CNN (about 95% top-1), once per Keras."""
  return trained_digits_model(request.param)


def weights_of(model):
  return [np.array(w, copy=True) for w in model.get_weights()]


def same_weights(a, b):
  return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def two_input_model(keras):
  """Inputs 'a' (6, 6, 3) and 'b' (6, 6, 2), a BN after their concat."""
  keras.utils.set_random_seed(0)
  a = keras.Input((6, 6, 3), name="a")
  b = keras.Input((6, 6, 2), name="b")
  x = keras.layers.Concatenate()([
      keras.layers.Conv2D(4, 3, padding="same", name="ca")(a),
      keras.layers.Conv2D(4, 3, padding="same", name="cb")(b)])
  x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
  x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
  out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
  return keras.Model([a, b], out)


def two_input_arrays(n=8, seed=0):
  """(xa, xb): n random samples for `two_input_model`'s inputs."""
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, 6, 6, 3)).astype("float32"),
          rng.normal(size=(n, 6, 6, 2)).astype("float32"))


def dead_branch_model(framework, conv_after_add=True, projection=False):
  """stem -> [b1 -> b2 -> sss (ChannelScale at exactly 0, SSS)] + stem
  [-> c3] -> gap -> out. With c3: 59640 MACs, of which b1 and b2 (dropped
  by materialize) are 2 x 15552.

  With `projection`, the Add is [branch, proj(stem)] for a 1x1 conv 'proj':
  the Add's group is then 'b2' (its first producer, in the dead branch) in
  the model, and 'proj' in the model without the branch."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  L = k.layers
  k.utils.set_random_seed(0)
  inp = k.Input((6, 6, 3))
  s = L.Conv2D(8, 3, padding="same", name="stem", activation="relu")(inp)
  b = L.Conv2D(6, 3, padding="same", name="b1", activation="relu")(s)
  b = L.Conv2D(8, 3, padding="same", name="b2")(b)
  b = tps.ChannelScale(0.0, shared=True, framework=framework, name="sss")(b)
  if projection:
    x = L.Add(name="add")([b, L.Conv2D(8, 1, name="proj")(s)])
  else:
    x = L.Add(name="add")([s, b])
  if conv_after_add:
    x = L.Conv2D(8, 3, padding="same", name="c3", activation="relu")(x)
  x = L.GlobalAveragePooling2D()(x)
  return k.Model(inp, L.Dense(3, name="out")(x))


def tied_ranking_model(framework):
  """Two 16-filter convs 'a' -> 'b' -> gap -> 'out' whose filter c has L1
  norm proportional to c + 1 in both: their normalised scores tie, so a
  global l1 ranking alternates a0, b0, a1, b1, ..."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inp = k.Input((8, 8, 3))
  x = k.layers.Conv2D(16, 3, padding="same", name="a")(inp)
  x = k.layers.Conv2D(16, 3, padding="same", name="b")(x)
  x = k.layers.GlobalAveragePooling2D()(x)
  model = k.Model(inp, k.layers.Dense(3, name="out")(x))
  for name in ("a", "b"):
    layer = model.get_layer(name)
    kernel, bias = layer.get_weights()
    layer.set_weights([np.broadcast_to(np.arange(1.0, 17.0), kernel.shape)
                       .astype("float32"), np.zeros_like(bias)])
  return model


@contextlib.contextmanager
def callers_pyplot():
  """Stands for a caller's own pyplot (backend 'pdf', an open figure of
  its own) in its block, and asserts at the end that the block left both
  alone: the same backend, and the same open figures (another test of the
  worker may have left one open too)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  saved = matplotlib.get_backend()
  try:
    plt.switch_backend("pdf")
    mine = plt.figure()
    before = plt.get_fignums()
    assert mine.number in before
    yield
    assert matplotlib.get_backend() == "pdf"
    assert plt.get_fignums() == before
  finally:
    plt.close("all")
    plt.switch_backend(saved)


def png_size(path):
  """(width, height) in pixels of the PNG at `path`; asserts it is one."""
  with open(path, "rb") as f:
    head = f.read(24)
  assert head[:8] == b"\x89PNG\r\n\x1a\n"
  return (int.from_bytes(head[16:20], "big"),
          int.from_bytes(head[20:24], "big"))
