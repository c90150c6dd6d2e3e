"""Data plumbing: batches from tf.data or numpy, and the offline data sets."""

import gzip
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def iterate_batches(data, steps=None, batch_size=32, arg_name="data"):
  """Yields (x, y) batches; y is None when the data has no labels.

  Args:
    data: a `tf.data.Dataset` of (x, y) or (x,) or x batches; a numpy tuple
      (x, y); or a numpy array x. Numpy data is batched at `batch_size`.
    steps: optional maximum number of batches.
    batch_size: batch size for numpy data. Defaults to 32.
    arg_name: name used in error messages.

  Raises:
    TypeError: for an unsupported data type.
    ValueError: for an empty data source or mismatched x and y.
  """
  if steps is not None and (not isinstance(steps, int) or steps < 1):
    raise ValueError(f"`steps` must be a positive int or None, got {steps!r}")
  count = 0
  for x, y in _batches(data, batch_size, arg_name):
    yield x, y
    count += 1
    if steps is not None and count >= steps:
      break
  if count == 0:
    raise ValueError(f"`{arg_name}` yielded no batches")


def _batches(data, batch_size, arg_name):
  if isinstance(data, tf.data.Dataset):
    for element in data:
      yield _split(element)
    return
  if isinstance(data, (tuple, list)) and len(data) in (1, 2) and all(
      isinstance(d, np.ndarray) for d in data):
    x = data[0]
    y = data[1] if len(data) == 2 else None
    if y is not None and len(y) != len(x):
      raise ValueError(f"`{arg_name}`: x has {len(x)} samples but y has "
                       f"{len(y)}")
  elif isinstance(data, np.ndarray):
    x, y = data, None
  else:
    raise TypeError(
        f"`{arg_name}` must be a tf.data.Dataset of (x, y) batches, a numpy "
        f"tuple (x, y) or a numpy array x; got {type(data).__name__}")
  for start in range(0, len(x), batch_size):
    yield (x[start:start + batch_size],
           None if y is None else y[start:start + batch_size])


def _split(element):
  if isinstance(element, (tuple, list)):
    if len(element) == 1:
      return element[0], None
    return element[0], element[1]
  if isinstance(element, dict):
    raise TypeError("dict dataset elements are not supported; map them to "
                    "(x, y) tuples")
  return element, None


def fashion_mnist_available():
  return all(os.path.exists(os.path.join(FASHION_MNIST_DIR, f))
             for f in _FASHION_FILES)


def _read_idx(path):
  with gzip.open(path, "rb") as f:
    raw = f.read()
  ndim = raw[3]
  dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(directory=FASHION_MNIST_DIR):
  """Fashion-MNIST from Debian's `dataset-fashion-mnist` (offline).

  Returns:
    ((x_train, y_train), (x_test, y_test)) with x as float32 in [0, 1] of
    shape (N, 28, 28, 1) and y as int64.

  Raises:
    FileNotFoundError: naming the package to install when the files are absent.
  """
  paths = [os.path.join(directory, f) for f in _FASHION_FILES]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise FileNotFoundError(
        f"Fashion-MNIST files not found ({missing[0]}); install Debian's "
        "package: apt-get install -y dataset-fashion-mnist")
  xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
  prep = lambda x: (x.astype("float32") / 255.0)[..., None]
  return (prep(xtr), ytr.astype("int64")), (prep(xte), yte.astype("int64"))


def load_digits():
  """sklearn's bundled 8x8 digits as ((x_train, y_train), (x_test, y_test)).

  x is float32 in [0, 1] of shape (N, 8, 8, 1); the last 20% is the test split.
  """
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  d = datasets.load_digits()
  x = (d.images.astype("float32") / 16.0)[..., None]
  y = d.target.astype("int64")
  n = int(len(x) * 0.8)
  return (x[:n], y[:n]), (x[n:], y[n:])


def load_npz(path):
  """An .npz with x_train/y_train/x_test/y_test, or x/y (split 80/20)."""
  with np.load(path) as f:
    keys = set(f.files)
    if {"x_train", "y_train"} <= keys:
      train = (f["x_train"], f["y_train"])
      test = (f["x_test"], f["y_test"]) if "x_test" in keys else train
      return train, test
    if {"x", "y"} <= keys:
      x, y = f["x"], f["y"]
      n = int(len(x) * 0.8)
      return (x[:n], y[:n]), (x[n:], y[n:])
  raise ValueError(f"{path}: expected arrays x_train/y_train[/x_test/y_test] "
                   f"or x/y, found {sorted(keys)}")


def load(name):
  """Loads 'fashion_mnist', 'digits' or a path to an .npz file."""
  if name == "fashion_mnist":
    return load_fashion_mnist()
  if name == "digits":
    return load_digits()
  if name.endswith(".npz"):
    if not os.path.exists(name):
      raise FileNotFoundError(f"data file {name!r} does not exist")
    return load_npz(name)
  raise ValueError(f"unknown data {name!r}; use 'fashion_mnist', 'digits' or "
                   "a PATH.npz")


def keras_fashion_mnist_cache():
  """Copies the Debian files where tf_keras.datasets.fashion_mnist finds them.

  Returns the cache_dir to pass to `tf_keras.datasets.fashion_mnist.load_data`.
  """
  cache = os.path.join(tempfile.gettempdir(), "tfprune_survey_keras")
  target = os.path.join(cache, "datasets", "fashion-mnist")
  os.makedirs(target, exist_ok=True)
  for f in _FASHION_FILES:
    dst = os.path.join(target, f)
    if not os.path.exists(dst):
      shutil.copy(os.path.join(FASHION_MNIST_DIR, f), dst)
  return cache
