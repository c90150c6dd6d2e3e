"""Latency of a .tflite file, batch 1, as LiteRT runs it (XNNPACK)."""

import dataclasses
import numbers
import time

import numpy as np

from tflite_export.inspect_model import check_int
from tflite_export.inspect_model import fit_input
from tflite_export.inspect_model import has_quantization
from tflite_export.inspect_model import interpreter


@dataclasses.dataclass
class BenchmarkReport:
  """Per-invoke latency in milliseconds over `runs` timed runs.

  `input_shapes` holds the shape each input was timed at.
  """
  median_ms: float
  p90_ms: float
  mean_ms: float
  min_ms: float
  runs: int
  warmup: int
  threads: int
  input_shapes: list = dataclasses.field(default_factory=list)

  def __str__(self):
    return (f"median {self.median_ms:.3f} ms, p90 {self.p90_ms:.3f} ms "
            f"({self.runs} runs, {self.threads} thread"
            f"{'s' if self.threads != 1 else ''})")


def _shapes(input_shape, count):
  """`input_shape` as a list of `count` shapes (or Nones)."""
  if input_shape is None:
    return [None] * count
  if not isinstance(input_shape, (list, tuple)) or not input_shape:
    raise ValueError(f"`input_shape` must be a shape such as (1, 224, 224, "
                     f"3), or a list of one per input; got {input_shape!r}")
  if all(isinstance(d, numbers.Integral) for d in input_shape):
    input_shape = [input_shape]
  if len(input_shape) != count or not all(
      isinstance(s, (list, tuple)) and
      all(isinstance(d, numbers.Integral) and d > 0 for d in s)
      for s in input_shape):
    raise ValueError(f"`input_shape` must give {count} shape(s) of positive "
                     f"ints, one per input; got {input_shape!r}")
  return [tuple(int(d) for d in s) for s in input_shape]


def benchmark(tflite_path, *, runs=200, warmup=20, threads=1, seed=0,
              input_shape=None):
  """Times `invoke` on a random batch-1 input after `warmup` untimed runs.

  The interpreter is LiteRT's default, which applies the XNNPACK delegate
  to float and int8 graphs.

  Each input is filled by its dtype: a float input with random values in
  [0, 1); a quantized integer input (int8 I/O) with random values over its
  dtype's range; an integer input without quantization parameters (token
  ids for an Embedding, an index, a uint8 image) with zeros, which every
  id-taking op accepts (random ids would fall outside a vocabulary, and
  LiteRT's GATHER would fail on them).

  Args:
    tflite_path: the .tflite file.
    runs: timed runs; >= 1. Defaults to 200.
    warmup: untimed runs first; >= 0. Defaults to 20.
    threads: interpreter threads; >= 1. Defaults to 1.
    seed: seed of the random input; an int >= 0. Defaults to 0.
    input_shape: the shape to time each input at, batch included (e.g.
      (1, 224, 224, 3)), or a list of one per input. Needed for a file
      with a free input size (a model built on `Input((None, None, 3))`);
      a fixed size may be given too, and must then match. Defaults to
      None: the file's own shapes.

  Returns:
    A `BenchmarkReport`.

  Raises:
    FileNotFoundError: `tflite_path` is not a file.
    TypeError: `runs`, `warmup`, `threads` or `seed` is not an int (a
      bool, float, str or None); the message names it.
    ValueError: `runs`, `warmup`, `threads` or `seed` is out of range (the
      message names it); an input with a free size and no `input_shape`,
      or an `input_shape` that does not fit.
  """
  # Before the file is opened: a bad count is an error however the file is.
  runs = check_int(runs, "runs", 1)
  warmup = check_int(warmup, "warmup", 0)
  threads = check_int(threads, "threads", 1)
  seed = check_int(seed, "seed", 0)
  interp = interpreter(tflite_path, threads=threads)
  details = interp.get_input_details()
  for d, shape in zip(details, _shapes(input_shape, len(details))):
    if shape is not None:
      fit_input(interp, d, shape, "input_shape")
    elif any(int(s) < 0 for s in d.get("shape_signature", d["shape"])):
      raise ValueError(
          f"{str(tflite_path)!r} has a free input size: input "
          f"{d['name']!r} is {tuple(int(s) for s in d['shape_signature'])} "
          "(-1: free); pass input_shape=(1, H, W, C) (one per input) to say "
          "what size to time")
  interp.allocate_tensors()   # once every input has its size
  rng = np.random.default_rng(seed)
  details = interp.get_input_details()
  for d in details:
    dtype = np.dtype(d["dtype"])
    if dtype.kind in "iu" and not has_quantization(d):
      value = np.zeros(d["shape"])   # ids, indices: zero is always valid
    elif dtype.kind in "iu":
      info = np.iinfo(dtype)
      value = rng.integers(info.min, info.max, d["shape"], endpoint=True)
    else:
      value = rng.random(d["shape"])
    interp.set_tensor(d["index"], value.astype(dtype))
  for _ in range(warmup):
    interp.invoke()
  times = np.empty(runs)
  for i in range(runs):
    t0 = time.perf_counter()
    interp.invoke()
    times[i] = time.perf_counter() - t0
  times *= 1e3
  return BenchmarkReport(median_ms=float(np.median(times)),
                         p90_ms=float(np.percentile(times, 90)),
                         mean_ms=float(times.mean()), min_ms=float(times.min()),
                         runs=runs, warmup=warmup, threads=threads,
                         input_shapes=[tuple(int(s) for s in d["shape"])
                                       for d in details])
