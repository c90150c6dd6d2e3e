"""Data plumbing: batches from tf.data or numpy, and the offline data sets."""

import gzip
import numbers
import os

import numpy as np
import tensorflow as tf

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def iterate_batches(data, steps=None, batch_size=32, arg_name="data"):
  """Yields (x, y) batches; y is None when the data has no labels.

  Args:
    data: a `tf.data.Dataset` of (x, y) or (x,) or x batches; a numpy tuple
      (x, y) or (x,); a numpy array x; or what `checked` returns (each batch
      is then checked against the model before it is yielded). For a model
      with several inputs, x is a tuple, list or dict of arrays (or
      tensors), as Keras' `fit` takes it: numpy `([x1, x2], y)` or
      `({'a': x1, 'b': x2},)`, or a dataset of `((x1, x2), y)`; a dict
      dataset element is x alone. Numpy data is batched at `batch_size`.
    steps: optional maximum number of batches.
    batch_size: batch size for numpy data. Defaults to 32.
    arg_name: name used in error messages.

  Raises:
    TypeError: for an unsupported data type, or a `steps` that is not an int.
    ValueError: for an empty data source, mismatched x and y, `steps` < 1,
      or (checked data) a batch that does not fit the model.
  """
  if steps is not None:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
      raise TypeError(f"`steps` must be a positive int or None, got "
                      f"{steps!r} of type {type(steps).__name__}")
    if steps < 1:
      raise ValueError(f"`steps` must be a positive int or None, got "
                       f"{steps!r}")
  check = None
  if isinstance(data, CheckedData):
    check, arg_name, data = data.check_batch, data.arg_name, data.data
  count = 0
  for x, y in _batches(data, batch_size, arg_name):
    if check is not None:
      x, y = check(x, y)   # y: the first output's labels, for labels
    yield x, y
    count += 1
    if steps is not None and count >= steps:
      break
  if count == 0:
    raise ValueError(f"`{arg_name}` yielded no batches")


def batch_count(data, steps=None, batch_size=32):
  """How many batches `iterate_batches(data, steps, batch_size)` yields, as
  far as is known before reading: numpy data and datasets of known
  cardinality give their count (at most `steps`); otherwise `steps`, which
  may be None (a progress bar then counts up to 'Unknown')."""
  if isinstance(data, CheckedData):
    data = data.data
  count = None
  try:
    if isinstance(data, tf.data.Dataset):
      card = int(data.cardinality())
      count = card if card >= 0 else None
    elif (xy := _numpy_xy(data)) is not None:
      count = -(-batch_size_of(xy[0]) // batch_size)
  except (TypeError, ValueError, IndexError):
    count = None   # malformed data: `iterate_batches` says what is wrong
  if not count:
    return steps
  return count if steps is None else min(count, steps)


def batches_with_progress(data, steps, verbose, keras):
  """`iterate_batches(data, steps)` under a progress bar (`with_progress`)
  whose target is `batch_count(data, steps)`."""
  return with_progress(iterate_batches(data, steps), batch_count(data, steps),
                       verbose, keras)


def with_progress(items, steps, verbose, keras):
  """Yields `items` (a data pass's batches), showing a Keras progress bar.

  The bar counts each item once its consumer is done with it, and ends, with
  its line ended, at the number of items actually read: without `steps`, or
  with more `steps` than the data has, it would otherwise stay at e.g.
  '1/Unknown' or '1/10' and the next output would continue its line.

  Args:
    items: an iterable of batches.
    steps: the expected number of batches (the bar's target), or None;
      `batch_count` gives it for a data source.
    verbose: falsy for no bar (the items are then yielded as they are).
    keras: the Keras module whose `utils.Progbar` draws the bar.
  """
  if not verbose:
    yield from items
    return
  bar = keras.utils.Progbar(steps, unit_name="batch")
  count = 0
  for item in items:
    yield item
    count += 1
    if count != steps:   # reaching `steps` is left to the final update
      bar.update(count)
  bar.update(count, finalize=True)


def _is_arrays(value):
  """True for a numpy array, or a non-empty tuple/list/dict of them."""
  if isinstance(value, np.ndarray):
    return True
  if isinstance(value, (tuple, list, dict)) and value:
    return all(_is_arrays(v) for v in (
        value.values() if isinstance(value, dict) else value))
  return False


def batch_size_of(x):
  """The number of samples of batch `x`: an array, or a structure of them."""
  return int(np.shape(tf.nest.flatten(x)[0])[0])


def map_inputs(fn, x):
  """`fn` applied to each array of `x` (one, or a tuple/list/dict of them)."""
  return tf.nest.map_structure(fn, x)


def to_tensors(x):
  """`x` (an array or a structure of arrays) as tf tensors, same structure."""
  return map_inputs(tf.convert_to_tensor, x)


def _batches(data, batch_size, arg_name):
  if isinstance(data, tf.data.Dataset):
    for element in data:
      yield _split(element)
    return
  xy = _numpy_xy(data)
  if xy is None:
    raise TypeError(
        f"`{arg_name}` must be a tf.data.Dataset of (x, y) batches, a numpy "
        f"tuple (x, y) or (x,), or a numpy array x (x being a tuple, list "
        f"or dict of arrays for a model with several inputs); got "
        f"{type(data).__name__}")
  x, y = xy
  for what, part in (("x", x), ("y", y)):
    for a in tf.nest.flatten(part) if part is not None else ():
      if np.ndim(a) == 0:
        raise ValueError(
            f"`{arg_name}`: {what} is a scalar array, with no batch axis; "
            f"give {what} one entry per sample (shape (samples, ...))")
  n = batch_size_of(x)
  for what, part in (("an array of x", x), ("y", y)):
    for a in tf.nest.flatten(part) if part is not None else ():
      if len(a) != n:
        raise ValueError(f"`{arg_name}`: x has {n} samples but {what} has "
                         f"{len(a)}")
  for start in range(0, n, batch_size):
    cut = lambda a, s=start: a[s:s + batch_size]
    yield (map_inputs(cut, x), None if y is None else map_inputs(cut, y))


def _numpy_xy(data):
  """(x, y) of numpy data, y None without labels: a tuple or list (x, y) or
  (x,), or x alone (an array, or a dict of arrays); None for anything else
  (e.g. a dataset)."""
  if isinstance(data, (tuple, list)) and len(data) in (1, 2) and all(
      _is_arrays(d) for d in data):
    return data[0], (data[1] if len(data) == 2 else None)
  if isinstance(data, (np.ndarray, dict)) and _is_arrays(data):
    return data, None
  return None


def _split(element):
  """(x, y) of a dataset element, as Keras unpacks it: a tuple or list is
  (x,), (x, y) or (x, y, sample_weight); anything else (a tensor, a dict of
  inputs) is x alone."""
  if isinstance(element, (tuple, list)):
    if len(element) == 1:
      return element[0], None
    return element[0], element[1]
  return element, None


# ---- checking data against a model ----------------------------------------
# These run at the boundary (tps.score and the functions built on it) so
# that data which cannot fit the model gets a ValueError naming what the
# model expects, before any work, instead of an error from inside a traced
# function.


class CheckedData:
  """Data with a per-batch check, for `iterate_batches` (see `checked`)."""

  def __init__(self, data, check_batch, arg_name):
    self.data = data
    self.check_batch = check_batch
    self.arg_name = arg_name


def _dims(shape):
  try:
    return tuple(None if d is None else int(d) for d in shape)
  except (TypeError, ValueError):  # unknown rank
    return None


def _show(shape):
  return "(" + ", ".join("batch" if i == 0 and d is None else
                         "None" if d is None else str(d)
                         for i, d in enumerate(shape)) + (
                             ",)" if len(shape) == 1 else ")")


def model_input_shape(model):
  """(None, d1, ...) of a single-input model's input; None otherwise."""
  inputs = list(getattr(model, "inputs", None) or [])
  if len(inputs) != 1:
    return None
  return _dims(inputs[0].shape)


def model_classes(model):
  """The last dim of the model's first output (its classes), or None."""
  outputs = list(getattr(model, "outputs", None) or [])
  if not outputs:
    return None
  shape = _dims(outputs[0].shape)
  return shape[-1] if shape else None


def _fits(given, expected):
  return len(given) == len(expected) and all(
      e is None or g is None or g == e for g, e in zip(given, expected))


def _check_shape(model, given, arg_name, what="inputs"):
  expected = model_input_shape(model)
  if expected is None or given is None or _fits(given, expected):
    return
  hint = ""
  if len(given) == len(expected) - 1 and _fits((None,) + given, expected):
    hint = (" (one sample, or a dataset that is not batched: add a batch "
            "dimension or call `.batch(n)`)")
  raise ValueError(
      f"`{arg_name}` has {what} of shape {_show(given)}, but model "
      f"'{model.name}' expects inputs of shape {_show(expected)}{hint}")


def _input_name(tensor):
  name = str(getattr(tensor, "name", "") or "")
  return name.split(":")[0]


def _check_inputs_of(model, x, arg_name):
  """Checks a batch's x given as a structure (or for several inputs).

  For a model of several inputs, x must be a list or tuple of one array
  per input, in the model's order, or a dict by input name, each of the
  input's shape. A model of one input takes a bare array (whose shape
  `_check_shape` checks), a one-entry list or tuple, or a dict holding its
  input's name, as Keras' `fit` does; the array in it must have the
  input's shape.
  """
  inputs = list(getattr(model, "inputs", None) or [])
  if not inputs or x is None:
    return
  names = [_input_name(t) for t in inputs]
  if len(inputs) == 1:
    if isinstance(x, dict):
      if names[0] not in x:
        raise ValueError(
            f"`{arg_name}` gives inputs {sorted(map(str, x))}, but model "
            f"'{model.name}' has one input, {names[0]!r}: pass x as an "
            f"array, or as a dict {{{names[0]!r}: x}}")
      arrays = [x[names[0]]]
    elif isinstance(x, (list, tuple)):
      if len(x) != 1:
        raise ValueError(
            f"`{arg_name}` gives {len(x)} input arrays, but model "
            f"'{model.name}' has one input, {names[0]!r}")
      arrays = list(x)
    else:
      return   # a bare array
  elif isinstance(x, dict):
    missing = [n for n in names if n not in x]
    if missing:
      raise ValueError(
          f"`{arg_name}` gives inputs {sorted(map(str, x))}, but model "
          f"'{model.name}' has inputs {names}: no {missing}")
    arrays = [x[n] for n in names]
  elif isinstance(x, (list, tuple)):
    if len(x) != len(inputs):
      raise ValueError(
          f"`{arg_name}` gives {len(x)} input arrays, but model "
          f"'{model.name}' has {len(inputs)} inputs {names}")
    arrays = list(x)
  else:
    raise ValueError(
        f"`{arg_name}` gives one input array, but model '{model.name}' has "
        f"{len(inputs)} inputs {names}: pass x as a list (in that order) "
        "or a dict by input name")
  for name, tensor, array in zip(names, inputs, arrays):
    given = getattr(array, "shape", None)
    given = None if given is None else _dims(given)
    expected = _dims(tensor.shape)
    if given is not None and expected is not None and not _fits(
        given, expected):
      raise ValueError(
          f"`{arg_name}` has input '{name}' of shape {_show(given)}, but "
          f"model '{model.name}' expects {_show(expected)} there")


def _x_spec(element_spec):
  if isinstance(element_spec, (tuple, list)):
    return element_spec[0] if element_spec else None, len(element_spec) > 1
  return element_spec, False


def check_inputs(model, data, arg_name="data"):
  """Raises unless `data`'s inputs have the model's input shape.

  Looks at the arrays' shapes, or a `tf.data.Dataset`'s `element_spec`;
  reads no batch. For a model of one input, x given as a one-entry list,
  tuple or dict (by the input's name) is checked as `_check_inputs_of`
  checks each batch. Models with several inputs are checked batch by batch
  only (`checked`).

  Raises:
    ValueError: naming the given and the expected input shape.
  """
  if isinstance(data, CheckedData):
    data = data.data
  one_input = len(list(getattr(model, "inputs", None) or [])) == 1
  if isinstance(data, tf.data.Dataset):
    spec, _ = _x_spec(data.element_spec)
    if isinstance(spec, tf.TensorSpec):
      _check_shape(model, _dims(spec.shape), arg_name, "batches")
    elif isinstance(spec, (tuple, list, dict)) and one_input:
      _check_inputs_of(model, spec, arg_name)
    return
  if isinstance(data, (tuple, list)) and data and (
      isinstance(data[0], np.ndarray) or (len(data) in (1, 2) and all(
          _is_arrays(d) for d in data))):
    data = data[0]   # x of (x, y) or (x,), as `iterate_batches` reads it
  if isinstance(data, np.ndarray):
    _check_shape(model, data.shape, arg_name)
  elif isinstance(data, (tuple, list, dict)) and _is_arrays(data) and (
      one_input):
    _check_inputs_of(model, data, arg_name)


def check_data_now(model, data, arg_name):
  """Raises now, naming `arg_name`, unless `data`'s x can feed `model`.

  `check_inputs` compares the input shape of a model of
  one input. For a model of several inputs, x of the first batch (a numpy
  slice, or a dataset's `element_spec`: nothing is read) gets the check
  `checked` gives every batch as it streams: one array
  per input, in the model's order or by input name, each of that input's
  shape. Used for data that only meets the model after the scoring and
  pruning (`eval_data`, `recalibrate`), so that a malformed value fails
  before that work, in words that name it.

  Raises:
    TypeError: for numpy data of an unsupported type.
    ValueError: naming `arg_name`, the inputs given and those expected.
  """
  check_inputs(model, data, arg_name)
  if len(list(getattr(model, "inputs", None) or [])) < 2:
    return
  if isinstance(data, CheckedData):
    data = data.data
  if isinstance(data, tf.data.Dataset):
    x = _x_spec(data.element_spec)[0]
  else:
    x, _ = next(iterate_batches(data, steps=1, arg_name=arg_name))
  _check_inputs_of(model, x, arg_name)


def label_kind(model):
  """'sparse', 'onehot' or None: the labels the scoring loss takes.

  The scoring loss is the model's compiled loss, else sparse categorical
  cross-entropy (see `tfprune_survey.losses`). None for other losses,
  whose labels are not class labels and are not checked.
  """
  from tfprune_survey import losses  # pylint: disable=g-import-not-at-top
  loss = losses.compiled_loss(model)   # that of the first output
  if loss is None:
    return "sparse"
  name = loss if isinstance(loss, str) else (
      getattr(loss, "name", None) or getattr(loss, "__name__", None) or
      type(loss).__name__)
  name = str(name).lower().replace("_", "")
  if "sparsecategoricalcrossentropy" in name:
    return "sparse"
  if "categoricalcrossentropy" in name:
    return "onehot"
  return None


def check_labels(model, y, arg_name="data", criterion=None):
  """Raises unless labels `y` are classes of the model's first output.

  Class indices must be whole numbers (of any dtype) in [0, classes) and,
  for a (batch, classes) output, have shape (batch,) or (batch, 1); one-hot
  labels (a compiled categorical cross-entropy) must have `classes`
  columns. `classes` is the last dim of the model's first output.

  Raises:
    ValueError: naming the label range or shape found and the number of
      outputs.
  """
  kind = label_kind(model)
  classes = model_classes(model)
  if kind is None or not classes:
    return
  y = np.asarray(y)
  if y.size == 0 or not (np.issubdtype(y.dtype, np.number) or
                         y.dtype == bool):
    return
  who = f" (criterion '{criterion}')" if criterion else ""
  out_rank = len(_dims(model.outputs[0].shape) or ())
  if kind == "onehot":
    if y.ndim < 2 or y.shape[-1] != classes:
      raise ValueError(
          f"`{arg_name}` has labels of shape {y.shape}, but the model's "
          f"categorical loss{who} takes one-hot labels with {classes} "
          f"columns, one per output of model '{model.name}'")
    return
  if out_rank == 2 and y.ndim >= 2 and y.shape[-1] != 1:
    looks = (" They look one-hot: pass np.argmax(y, axis=-1), or compile "
             "the model with a categorical cross-entropy loss."
             if y.shape[-1] == classes else "")
    raise ValueError(
        f"`{arg_name}` has labels of shape {y.shape}, but the loss{who} "
        f"(sparse categorical cross-entropy) takes one class index per "
        f"sample in [0, {classes - 1}] for the {classes} outputs of model "
        f"'{model.name}'.{looks}")
  if np.issubdtype(y.dtype, np.floating):
    finite = y[np.isfinite(y)]   # NaN and inf get their own message
    fractional = finite[finite != np.round(finite)]
    if fractional.size:
      raise ValueError(
          f"`{arg_name}` has labels that are not whole numbers (e.g. "
          f"{fractional.flat[0]}), but the loss{who} (sparse categorical "
          f"cross-entropy) takes class indices in [0, {classes - 1}] for "
          f"model '{model.name}'; it would truncate them to ints")
  lo, hi = y.min(), y.max()
  if lo < 0 or hi >= classes:
    raise ValueError(
        f"`{arg_name}` has labels from {lo} to {hi}, but model "
        f"'{model.name}' has {classes} outputs{who}: class labels must be "
        f"in [0, {classes - 1}]")


def first_output_labels(model, y, arg_name="data"):
  """The labels of `model`'s first output (whose loss scores channels), from
  y given per output as Keras' `fit` takes it: a list or tuple in the
  model's output order, or a dict by output name (or key of a dict of
  outputs). Other y is returned as it is.

  Raises:
    ValueError: naming `arg_name`, for a list of another length than the
      outputs, or a dict without the first output's labels.
  """
  if not isinstance(y, (list, tuple, dict)):
    return y
  outputs = list(getattr(model, "outputs", None) or [])
  if isinstance(y, dict):
    from tfprune_survey import losses  # pylint: disable=g-import-not-at-top
    keys = losses._first_output_keys(model)  # pylint: disable=protected-access
    for key in keys:
      if key in y:
        return y[key]
    raise ValueError(
        f"`{arg_name}` gives labels for {sorted(map(str, y))}, but none for "
        f"the first output of model '{model.name}' "
        f"({' or '.join(map(repr, keys)) or 'unnamed'}), whose loss the "
        "gradient criteria use")
  if outputs and len(y) != len(outputs):
    raise ValueError(
        f"`{arg_name}` gives {len(y)} label arrays, but model "
        f"'{model.name}' has {len(outputs)} output"
        f"{'s' if len(outputs) > 1 else ''}: give one per output, or the "
        "first output's labels alone")
  return y[0]


def _non_finite(v):
  """How many NaN/inf values a floating array holds (0 for other dtypes)."""
  v = np.asarray(v)
  if not np.issubdtype(v.dtype, np.floating):
    try:   # bfloat16 (and other ml_dtypes floats) are not np.floating
      floating = tf.as_dtype(v.dtype).is_floating
    except TypeError:
      floating = False
    if not floating:
      return 0
    v = v.astype(np.float32)
  return int(v.size - np.count_nonzero(np.isfinite(v)))


def checked(model, data, labels=False, arg_name="data", criterion=None,
            purpose=None):
  """Checks `data` against `model` now, and its batches as they stream.

  At once, before any work: the input shape (from the arrays or the
  dataset's `element_spec`), and with `labels`, that there are labels and,
  for numpy data, that they are classes of the model. Then each batch,
  before it is used: its input shape, that it holds no NaN or inf, and with
  `labels`, its labels.

  Args:
    model: the model the data is for.
    data: data as `iterate_batches` takes it.
    labels: True when the data's labels feed a classification loss.
    arg_name: the argument's name, for messages.
    criterion: the criterion's name, for messages.
    purpose: what the data is for, for the NaN message ("no layer can be
      re-fitted"); by default the scoring of channels.

  Returns:
    A `CheckedData` for `iterate_batches`.

  Raises:
    ValueError: for inputs of the wrong shape, labels that are missing or
      not classes of the model (see `check_labels`); when streamed, also
      for a batch holding NaN or inf.
  """
  check_inputs(model, data, arg_name)
  need = f"criterion '{criterion}' needs labels" if criterion else (
      "labels are needed")
  if labels:
    if isinstance(data, (np.ndarray, dict)) or (
        isinstance(data, (tuple, list)) and len(data) == 1):
      raise ValueError(f"{need}: pass `{arg_name}` as (x, y)")
    if isinstance(data, tf.data.Dataset) and not _x_spec(
        data.element_spec)[1]:
      raise ValueError(f"{need}: `{arg_name}` yields batches without labels;"
                       " make it yield (x, y)")
    if isinstance(data, (tuple, list)) and len(data) == 2:
      y = first_output_labels(model, data[1], arg_name)
      if isinstance(y, np.ndarray):
        check_labels(model, y, arg_name, criterion)
  numpy_labels = not isinstance(data, tf.data.Dataset)
  seen = [0]
  user = f" for criterion '{criterion}'" if criterion else ""
  purpose = purpose or f"no channel can be scored{user}"

  def check_batch(x, y):
    seen[0] += 1
    shape = getattr(x, "shape", None)
    _check_shape(model, None if shape is None else _dims(shape), arg_name)
    _check_inputs_of(model, x, arg_name)
    for name, v in (("x", x), ("y", y)):
      bad = 0 if v is None else sum(
          _non_finite(a) for a in tf.nest.flatten(v)
          if getattr(a, "shape", None) is not None)
      if bad:
        raise ValueError(
            f"`{arg_name}` holds NaN or inf: {bad} value"
            f"{'s' if bad > 1 else ''} in the {name} of batch {seen[0]}, "
            f"from which {purpose}. Replace or drop "
            "them (e.g. with np.nan_to_num) first")
    if labels:
      if y is None:
        raise ValueError(f"{need}: `{arg_name}` yielded a batch without "
                         "labels")
      y = first_output_labels(model, y, arg_name)
      if not numpy_labels:  # numpy labels were all checked above
        check_labels(model, y, arg_name, criterion)
    return x, y

  return CheckedData(data, check_batch, arg_name)


_REINSTALL = ("is it truncated or corrupt? Reinstall Debian's package: "
              "apt-get install --reinstall dataset-fashion-mnist")


def _read_idx(path):
  """The uint8 array of a gzipped IDX file; ValueError naming `path` when
  the file is not one or is cut short."""
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:   # not gzip, or a cut gzip stream
    raise ValueError(f"{path} could not be read as a gzipped IDX file "
                     f"({e}): {_REINSTALL}") from e
  if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
    raise ValueError(f"{path} is not an IDX file of unsigned bytes: "
                     f"{_REINSTALL}")
  ndim = raw[3]
  start = 4 + 4 * ndim
  if len(raw) < start:
    raise ValueError(f"{path} ends inside its header: {_REINSTALL}")
  dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  size = int(np.prod(dims))
  if len(raw) - start != size:
    raise ValueError(f"{path} holds {len(raw) - start} values, but its header "
                     f"gives shape {tuple(dims)} ({size} values): {_REINSTALL}")
  return np.frombuffer(raw, np.uint8, offset=start).reshape(dims)


def load_fashion_mnist(directory=FASHION_MNIST_DIR):
  """Fashion-MNIST from Debian's `dataset-fashion-mnist` (offline).

  Returns:
    ((x_train, y_train), (x_test, y_test)) with x as float32 in [0, 1] of
    shape (N, 28, 28, 1) and y as int64.

  Raises:
    FileNotFoundError: naming the package to install when the files are absent.
    ValueError: naming the file, when one is truncated or corrupt (or the
      images and labels do not pair up).
  """
  paths = [os.path.join(directory, f) for f in _FASHION_FILES]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise FileNotFoundError(
        f"Fashion-MNIST files not found ({missing[0]}); install Debian's "
        "package: apt-get install -y dataset-fashion-mnist")
  xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
  for x, y, xp, yp in ((xtr, ytr, paths[0], paths[1]),
                       (xte, yte, paths[2], paths[3])):
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
      raise ValueError(f"{xp} (shape {x.shape}) and {yp} (shape {y.shape}) "
                       "do not give one label per image: "
                       f"{_REINSTALL}")
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
  def pair(f, x_key, y_key):
    x, y = f[x_key], f[y_key]
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) != len(y):
      raise ValueError(
          f"{path}: {x_key} (shape {np.shape(x)}) and {y_key} (shape "
          f"{np.shape(y)}) must hold one label per sample")
    return x, y

  with np.load(path) as f:
    keys = set(f.files)
    if {"x_train", "y_train"} <= keys:
      train = pair(f, "x_train", "y_train")
      if ("x_test" in keys) != ("y_test" in keys):
        raise ValueError(f"{path}: x_test and y_test come together; found "
                         f"{sorted(keys)}")
      test = pair(f, "x_test", "y_test") if "x_test" in keys else train
      return train, test
    if {"x", "y"} <= keys:
      x, y = pair(f, "x", "y")
      n = int(len(x) * 0.8)
      return (x[:n], y[:n]), (x[n:], y[n:])
  raise ValueError(f"{path}: expected arrays x_train/y_train[/x_test/y_test] "
                   f"or x/y, found {sorted(keys)}")


def load(name):
  """Loads 'fashion_mnist', 'digits' or a path to an .npz file."""
  name = os.fspath(name)   # a pathlib.Path too
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

