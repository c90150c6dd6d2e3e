"""Latency of a .tflite file, batch 1, as LiteRT runs it (XNNPACK)."""

import dataclasses
import time

import numpy as np

from tflite_export.inspect_model import interpreter


@dataclasses.dataclass
class BenchmarkReport:
  """Per-invoke latency in milliseconds over `runs` timed runs."""
  median_ms: float
  p90_ms: float
  mean_ms: float
  min_ms: float
  runs: int
  warmup: int
  threads: int

  def __str__(self):
    return (f"median {self.median_ms:.3f} ms, p90 {self.p90_ms:.3f} ms "
            f"({self.runs} runs, {self.threads} thread"
            f"{'s' if self.threads != 1 else ''})")


def benchmark(tflite_path, *, runs=200, warmup=20, threads=1, seed=0):
  """Times `invoke` on a random batch-1 input after `warmup` untimed runs.

  The interpreter is LiteRT's default, which applies the XNNPACK delegate
  to float and int8 graphs.
  """
  if runs < 1 or warmup < 0 or threads < 1:
    raise ValueError(f"need runs >= 1, warmup >= 0, threads >= 1; got "
                     f"runs={runs}, warmup={warmup}, threads={threads}")
  interp = interpreter(tflite_path, threads=threads)
  rng = np.random.default_rng(seed)
  for d in interp.get_input_details():
    dtype = np.dtype(d["dtype"])
    if dtype.kind in "iu":
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
                         runs=runs, warmup=warmup, threads=threads)
