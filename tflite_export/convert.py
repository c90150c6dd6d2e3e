"""Keras model (tf_keras, or Keras 3 on TensorFlow) -> .tflite file, in float
or quantized form."""

import dataclasses
import logging
import os
import time
import uuid
import warnings

import numpy as np
import tensorflow as tf

from tflite_export.inspect_model import ModelInfo, check_int, describe

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


@dataclasses.dataclass
class ConversionReport(ModelInfo):
  """What `convert` wrote. Adds to `ModelInfo`:

  Attributes:
    quantization: the mode used.
    int8_io: whether inputs and outputs were made int8.
    seconds: conversion wall time.
  """
  quantization: str = "none"
  int8_io: bool = False
  seconds: float = 0.0

  @property
  def edge_tpu_ready(self):
    """Full-integer with static shapes: what the Edge TPU compiler maps
    (int8 I/O or not). A free input size (`free_input_size`) is not: the
    compiler needs every tensor's size fixed."""
    return (self.quantization == "int8" and self.fully_integer
            and not self.free_input_size)

  def __str__(self):
    ops = ", ".join(f"{k} x{v}" for k, v in self.ops.items())
    lines = [f"{self.path}: {self.size_bytes:,} bytes, quantization="
             f"{self.quantization}{' (int8 I/O)' if self.int8_io else ''}",
             f"  ops: {ops}"]
    if self.quantization == "int8" and not self.fully_integer:
      lines.append("  NOT fully integer; float ops: "
                   + ", ".join(self.float_ops))
    elif self.quantization == "int8" and self.free_input_size:
      lines.append("  fully integer; free input size, not Edge "
                   "TPU-compilable (it needs static shapes)")
    elif self.quantization == "int8":
      lines.append("  fully integer (Edge TPU-ready)")
    return "\n".join(lines)


def representative_samples(data, limit=100, dtype="float32"):
  """Yields up to `limit` single samples (batch 1, of `dtype`) from `data`.

  `data`: an array of inputs, an `(x, y)` tuple, a `tf.data.Dataset` of
  batches (`x` or `(x, y)`), or any iterable of such batches.
  `dtype`: the model input's dtype (e.g. 'uint8' for an `Input(dtype=
  'uint8')` image model); defaults to float32.
  """
  if isinstance(data, tuple) and len(data) == 2 and not isinstance(
      data[0], (tuple, list)):
    data = data[0]
  if isinstance(data, np.ndarray) or tf.is_tensor(data):
    data = [data]
  count = 0
  for batch in data:
    if isinstance(batch, (tuple, list)):
      batch = batch[0]
    batch = np.asarray(batch, dtype)
    for row in batch:
      if count >= limit:
        return
      yield row[None]
      count += 1


def _is_array(x):
  return isinstance(x, np.ndarray) or tf.is_tensor(x)


def input_dtypes(model):
  """The numpy dtype of each of `model`'s inputs (tf_keras or Keras 3)."""
  return [np.dtype(tf.as_dtype(t.dtype).as_numpy_dtype) for t in model.inputs]


def input_shapes(model):
  """Each of `model`'s input shapes without the batch axis; None for a free
  size."""
  return [tuple(None if d is None else int(d) for d in t.shape[1:])
          for t in model.inputs]


def _check_shapes(samples, shapes):
  """Raises a ValueError naming `representative_data` for the first sample
  whose array for an input does not fit that input's shape."""
  for sample in samples:
    for i, (array, want) in enumerate(zip(sample, shapes)):
      got = tuple(array.shape[1:])
      if len(got) == len(want) and all(
          w is None or g == w for g, w in zip(got, want)):
        continue
      hint = (" (an unbatched tf.data.Dataset or a list of single samples? "
              "pass batches: `dataset.batch(32)` or an array)"
              if len(got) + 1 == len(want) else "")
      raise ValueError(
          f"`representative_data`: input {i} of the model takes samples of "
          f"shape {want} (None: free size), got a sample of shape "
          f"{got}{hint}")


def calibration_samples(data, count, limit=100, dtypes=None, shapes=None):
  """Up to `limit` calibration samples for a model with `count` inputs.

  Args:
    data: for one input, as in `representative_samples`; for several, one
      array per input: `(x0, x1, ...)`, `((x0, x1, ...), y)`, or an
      iterable / `tf.data.Dataset` of such batches.
    count: the model's number of inputs.
    limit: the most samples to return.
    dtypes: the dtype of each input (see `input_dtypes`); float32 if None.
    shapes: the shape of each input without the batch axis (see
      `input_shapes`); every sample must fit them. Not checked if None.

  Returns:
    A list of samples, each a list of `count` batch-1 arrays, each of its
    input's dtype.

  Raises:
    ValueError: `data` does not give `count` arrays per batch, holds no
      sample, or holds a sample that does not fit `shapes`; the message
      names `representative_data`.
  """
  dtypes = list(dtypes) if dtypes is not None else [np.float32] * count
  if count == 1:
    samples = [[s] for s in representative_samples(data, limit, dtypes[0])]
  else:
    samples = _multi_input_samples(data, count, limit, dtypes)
  if not samples:
    raise ValueError("`representative_data` holds no samples")
  if shapes is not None:
    _check_shapes(samples, shapes)
  return samples


def _multi_input_samples(data, count, limit, dtypes):
  def inputs_of(batch):
    if (isinstance(batch, (tuple, list)) and len(batch) == count
        and all(_is_array(b) for b in batch)):
      return batch
    if (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)
        and _is_array(batch[1])):   # ((x0, x1, ...), y[, weights])
      return inputs_of(batch[0])
    return None

  def bad(got):
    return ValueError(
        f"`representative_data`: the model has {count} inputs, so each "
        f"batch must give {count} arrays, one per input: (x0, x1, ...), "
        "((x0, x1, ...), y), or an iterable or tf.data.Dataset of such "
        f"batches; got {got}")

  if inputs_of(data) is not None:
    data = [data]
  elif _is_array(data) or not hasattr(data, "__iter__"):
    raise bad(f"a single {type(data).__name__}")
  samples = []
  for batch in data:
    arrays = inputs_of(batch)
    if arrays is None:
      raise bad(f"a batch of {type(batch).__name__}"
                + (f" of {len(batch)} items"
                   if isinstance(batch, (tuple, list)) else ""))
    arrays = [np.asarray(a, d) for a, d in zip(arrays, dtypes)]
    if len({len(a) for a in arrays}) != 1:
      raise bad(f"arrays of different lengths {[len(a) for a in arrays]}")
    for i in range(len(arrays[0])):
      if len(samples) >= limit:
        return samples
      samples.append([a[i:i + 1] for a in arrays])
  return samples


def _check_path(path):
  """Refuses, before any work, a `path` that cannot be written as a file."""
  if isinstance(path, os.PathLike):
    path = os.fspath(path)
  if not isinstance(path, str) or not path:
    raise ValueError(f"`path` must be a file path, got {path!r}")
  if path.endswith((os.sep, "/")) or os.path.isdir(path):
    raise IsADirectoryError(
        f"`path` {path!r} names a folder; give the .tflite file's own path "
        f"(e.g. {os.path.join(path, 'model.tflite')!r})")
  folder = os.path.dirname(os.path.abspath(path))
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise NotADirectoryError(
        f"cannot write `path` {path!r}: {folder!r} is a file, not a folder")
  if not os.path.isdir(folder):
    raise FileNotFoundError(
        f"cannot write `path` {path!r}: its directory {folder!r} does not "
        "exist")
  if not os.access(folder, os.W_OK | os.X_OK):
    # Otherwise found only when the converted file is written.
    raise PermissionError(
        f"cannot write `path` {path!r}: its directory {folder!r} is not "
        "writable")


def convert(model, path, *, quantization="none", representative_data=None,
            int8_io=False, representative_steps=100):
  """Converts a tf_keras model to TFLite, writes it to `path`, reports on it.

  The model is traced with batch size 1 (what on-device inference runs), so
  every shape in the file is static and XNNPACK can plan it ahead, unless
  the model's input has a free size (`Input((None, None, 3))`): the file
  keeps it (`free_input_size`; not Edge TPU-ready).

  Args:
    model: a tf_keras model, or a Keras 3 model on the TensorFlow backend
      (slim or not). It is not modified.
    path: where to write the .tflite file (not a folder); its directory
      must exist.
    quantization: 'none' (float32), 'dynamic' (int8 weights, float
      activations), 'float16' (float16 weights) or 'int8' (full-integer with
      calibration on `representative_data`; what Edge TPU needs). Ops that
      have no int8 kernel stay float and are named in the report.
    representative_data: calibration inputs for 'int8' (see
      `representative_samples`); up to `representative_steps` samples used.
      For a model with several inputs, one array per input:
      `(x0, x1, ...)`, `((x0, x1, ...), y)`, or an iterable or
      `tf.data.Dataset` of such batches.
    int8_io: with 'int8', make the model's inputs and outputs int8 too.
    representative_steps: how many calibration samples to use at most; an
      int >= 1. Defaults to 100.

  Returns:
    A `ConversionReport`: size, op counts, float ops, I/O dtypes.

  Raises:
    ValueError: unknown `quantization`, 'int8' without data (or with data
      that does not give one array per input, or samples of another shape
      than the model's inputs), `int8_io` without 'int8', or
      `representative_steps` below 1.
    FileNotFoundError: the directory of `path` does not exist.
    IsADirectoryError: `path` is a folder (or ends in a separator).
    NotADirectoryError: the directory of `path` is a file.
    PermissionError: the directory of `path` is not writable.
    TypeError: `model` is not a Keras model, or `representative_steps` is
      not an int.
    NotImplementedError: a Keras 3 model on the JAX or PyTorch backend.
  """
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got "
                     f"{quantization!r}")
  if quantization == "int8" and representative_data is None:
    raise ValueError("quantization='int8' needs representative_data: a few "
                     "hundred typical inputs to calibrate activation ranges")
  if int8_io and quantization != "int8":
    raise ValueError(f"int8_io=True needs quantization='int8', got "
                     f"{quantization!r}")
  representative_steps = check_int(representative_steps,
                                   "representative_steps", 1)
  _check_path(path)
  fw = frameworks.check_model(model, "model")
  if fw.backend() != "tensorflow":
    raise NotImplementedError(
        f"TFLite conversion needs the TensorFlow backend; this Keras 3 model "
        f"runs on '{fw.backend()}'. Save it (`model.save('m.keras')`) and "
        "run `KERAS_BACKEND=tensorflow tfprune-survey export --model "
        "m.keras ...` (or convert in a process started with "
        "KERAS_BACKEND=tensorflow).")
  t0 = time.perf_counter()
  samples = (calibration_samples(representative_data, len(model.inputs),
                                 representative_steps, input_dtypes(model),
                                 input_shapes(model))
             if quantization == "int8" else None)
  specs = [tf.TensorSpec([1] + list(t.shape[1:]), tf.as_dtype(t.dtype),
                         name=f"input_{i}")
           for i, t in enumerate(model.inputs)]
  # Several inputs are passed in the structure the model was built with
  # (`model.input`): a list, or a dict keyed by input name, whose flat order
  # (`tf.nest`: dict keys sorted) is that of `model.inputs`. Keras 3 refuses
  # a list for a model built on a dict.
  fn = tf.function(lambda *xs: model(
      tf.nest.pack_sequence_as(model.input, list(xs)) if len(xs) > 1
      else xs[0], training=False))
  concrete = fn.get_concrete_function(*specs)
  # Without a trackable object the converter freezes the traced variables
  # directly; with one it round-trips through a SavedModel, which took 10x
  # longer (43 s against 4.7 s for MobileNetV2 at 96x96 here) for the same
  # file. Its notice that this path is "deprecated", and the converter's
  # INFO lines, are silenced.
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    blob = _run_converter(concrete, quantization, samples, int8_io)
  finally:
    absl_logger.setLevel(level)
  info = _write(blob, str(path))
  return ConversionReport(**dataclasses.asdict(info), quantization=quantization,
                          int8_io=bool(int8_io),
                          seconds=time.perf_counter() - t0)


def _write(blob, path):
  """Writes `blob` to `path` atomically and returns its `ModelInfo`.

  The file is written beside `path` under a temporary name, described, and
  only then moved onto `path`; if that fails, the temporary file is removed
  and a file already at `path` is left as it was.
  """
  folder, name = os.path.split(os.path.abspath(path))
  tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
  try:
    with open(tmp, "xb") as f:
      f.write(blob)
    info = describe(tmp)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise
  return dataclasses.replace(info, path=path)


def _run_converter(concrete, quantization, samples, int8_io):
  """The TFLite flatbuffer of `concrete` in the requested mode; `samples`
  (from `calibration_samples`) calibrate 'int8'."""
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
  if quantization != "none":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if quantization == "int8":
    def gen():
      yield from samples
    converter.representative_dataset = gen
    # Integer kernels first; an op without one falls back to float and is
    # reported, rather than failing the conversion.
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8_io:
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Statistics for quantized")
    return converter.convert()
