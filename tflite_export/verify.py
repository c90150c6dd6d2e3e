"""Does a .tflite file compute what its Keras model computes?"""

import dataclasses
import numbers

import numpy as np

from tflite_export.convert import input_dtypes
from tflite_export.convert import representative_samples
from tflite_export.inspect_model import fit_input
from tflite_export.inspect_model import has_quantization
from tflite_export.inspect_model import interpreter



@dataclasses.dataclass
class VerifyReport:
  """Agreement between a Keras model and its TFLite file on some inputs.

  Attributes:
    samples: inputs compared.
    max_abs_diff: max |tflite - keras| over all outputs.
    max_rel_diff: max_abs_diff / max |keras|.
    top1_agreement: fraction of samples whose arg-max class agrees (None
      for a single-unit output).
    correlation: Pearson correlation of all TFLite and Keras output values:
      scale-free, near 1 when the file computes nearly the same function.
    quantized: whether the file holds quantized tensors: ones with
      quantization parameters (int8 weights or activations), or float16
      weights. An integer input or output without them (a uint8 image, an
      int32 class index) does not make a file quantized.
    passed: float files: max_rel_diff <= `rtol`; quantized files:
      top1_agreement >= `min_agreement`, or, for a single-unit output (no
      classes to agree on), max_rel_diff <= `quantized_rtol`.
  """
  samples: int
  max_abs_diff: float
  max_rel_diff: float
  top1_agreement: object
  correlation: float
  quantized: bool
  passed: bool

  def __str__(self):
    top1 = ("n/a" if self.top1_agreement is None
            else f"{self.top1_agreement:.1%}")
    judged = ("top-1" if self.top1_agreement is not None
              else "max rel diff")
    return (f"verify on {self.samples} samples: max abs diff "
            f"{self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g}, "
            f"top-1 agreement {top1}, correlation {self.correlation:.4f} -> "
            f"{'PASS' if self.passed else 'FAIL'}"
            f"{f' (quantized: judged on {judged})' if self.quantized else ''}")


def _is_quantized(interp):
  return any(has_quantization(t) or np.dtype(t["dtype"]) == np.float16
             for t in interp.get_tensor_details())


def _affine(detail):
  """(scale, zero point) of a quantized I/O tensor; None for one without
  quantization parameters (float, or a plain integer such as a uint8 image
  or an int32 class index), which is taken as it is."""
  scale, zero = detail["quantization"]
  if np.dtype(detail["dtype"]).kind in "iu" and scale != 0:
    return scale, zero
  return None


def _to_input(x, detail):
  dtype = np.dtype(detail["dtype"])
  affine = _affine(detail)
  if affine is not None:
    scale, zero = affine
    info = np.iinfo(dtype)
    x = np.clip(np.round(x / scale + zero), info.min, info.max)
  return x.astype(dtype)


def _from_output(y, detail):
  y = np.asarray(y)
  affine = _affine(detail)
  if affine is not None:
    scale, zero = affine
    return (y.astype(np.float64) - zero) * scale
  return y.astype(np.float64)


def _single_io_interpreter(tflite_path):
  """An interpreter of the file, which must have one input and one output.

  Raises:
    FileNotFoundError: `tflite_path` is not a file.
    ValueError: the file has several inputs or outputs.
  """
  interp = interpreter(tflite_path)
  ins, outs = interp.get_input_details(), interp.get_output_details()
  if len(ins) != 1 or len(outs) != 1:
    raise ValueError(
        f"`tflite_path` {str(tflite_path)!r} has {len(ins)} inputs and "
        f"{len(outs)} outputs; run_tflite and verify take a file of one "
        "input and one output")
  return interp


def run_tflite(tflite_path, inputs):
  """Runs single samples (batch 1) through the file; returns (N, ...) outputs.

  A file with a free input size (e.g. from `Input((None, None, 3))`) is
  resized to the samples' size.

  Raises:
    FileNotFoundError: `tflite_path` is not a file.
    ValueError: the file has several inputs or outputs.
  """
  interp = _single_io_interpreter(tflite_path)
  inp = interp.get_input_details()[0]
  results = []
  for sample in inputs:
    if fit_input(interp, inp, sample[None].shape, "data"):
      inp = interp.get_input_details()[0]
    interp.allocate_tensors()   # a no-op while the size is unchanged
    out = interp.get_output_details()[0]
    interp.set_tensor(inp["index"], _to_input(sample[None], inp))
    interp.invoke()
    results.append(_from_output(interp.get_tensor(out["index"]), out)[0])
  return np.stack(results), _is_quantized(interp)


def verify(model, tflite_path, data, *, max_samples=256, rtol=1e-4,
           min_agreement=0.9, quantized_rtol=0.05):
  """Compares `model` with its TFLite file on up to `max_samples` inputs.

  Args:
    model: the Keras model (either Keras, any backend) the file was
      converted from.
    tflite_path: the .tflite file.
    data: inputs as in `tflite_export.representative_samples` (an array,
      `(x, y)`, or a dataset of batches).
    max_samples: how many inputs to compare at most; >= 1.
    rtol: float files must agree to max_abs_diff <= rtol * max |keras|.
    min_agreement: quantized files must reach this top-1 agreement.
    quantized_rtol: quantized files whose output has a single unit (a
      score or a regression, with no arg-max class) must agree to
      max_abs_diff <= quantized_rtol * max |keras|. Defaults to 0.05.

  Returns:
    A `VerifyReport`.

  Raises:
    ValueError: `max_samples` is not an int >= 1; `data` holds no
      samples; a model or file of several inputs or outputs; a file whose
      output shape is not the model's.
    FileNotFoundError: `tflite_path` is not a file.
  """
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  frameworks.check_model(model, "model")
  if (isinstance(max_samples, bool) or not isinstance(max_samples,
                                                      numbers.Integral)
      or max_samples < 1):
    raise ValueError(f"`max_samples` must be an int >= 1, got "
                     f"{max_samples!r}")
  if len(model.inputs) != 1 or len(model.outputs) != 1:
    raise ValueError("verify supports models with one input and one output; "
                     f"{model.name!r} has {len(model.inputs)} and "
                     f"{len(model.outputs)}")
  _single_io_interpreter(tflite_path)   # before the model runs
  samples = list(representative_samples(data, max_samples,
                                        input_dtypes(model)[0]))
  if not samples:
    raise ValueError("`data` holds no samples to compare on")
  x = np.concatenate(samples)
  want = np.asarray(model(x, training=False), np.float64)
  got, quantized = run_tflite(tflite_path, x)
  if got.shape != want.shape:
    raise ValueError(f"{tflite_path!r} gives outputs of shape {got.shape}, "
                     f"the model {want.shape}: not converted from this model?")
  diff = float(np.max(np.abs(got - want)))
  rel = diff / max(float(np.max(np.abs(want))), 1e-12)
  a, b = got.ravel(), want.ravel()
  corr = (float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0
          else float(np.array_equal(a, b)))
  top1 = None
  if want.ndim >= 2 and want.shape[-1] > 1:
    top1 = float(np.mean(np.argmax(got, -1) == np.argmax(want, -1)))
  if quantized and top1 is not None:
    passed = top1 >= min_agreement
  elif quantized:
    passed = rel <= quantized_rtol
  else:
    passed = rel <= rtol
  return VerifyReport(samples=len(x), max_abs_diff=diff, max_rel_diff=rel,
                      top1_agreement=top1, correlation=corr,
                      quantized=quantized,
                      passed=bool(passed))
