"""What a .tflite file holds: its size, its ops, and which ops compute in float."""

import collections
import dataclasses
import os

import numpy as np

_FLOAT = (np.float32, np.float16, np.float64)
# Quantize/Dequantize at the model's edges convert float I/O to int8 and back;
# an Edge TPU graph keeps them on the CPU, so they do not make a model float.
_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")


def check_int(value, argument, minimum):
  """`value` as an int, refusing anything but an int >= `minimum`.

  Raises:
    TypeError: `value` is not an int (a bool, float, str or None); the
      message names `argument`.
    ValueError: `value` is below `minimum`; the message names `argument`.
  """
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  return planning.check_int(value, argument, minimum)


def has_quantization(tensor):
  """Whether a tensor or I/O `tensor` detail carries quantization
  parameters (per tensor or per channel), as int8 weights and activations,
  and an int8 I/O file's inputs, do; a plain integer (token ids, a uint8
  image) does not."""
  params = tensor.get("quantization_parameters")
  if params is not None:
    return np.size(params["scales"]) > 0
  return tensor["quantization"][0] != 0


def has_free_size(detail):
  """Whether an input or output `detail` has a free (-1) size in its
  shape_signature (e.g. from `Input((None, None, 3))`)."""
  return any(int(d) < 0
             for d in detail.get("shape_signature", detail["shape"]))


def interpreter(path=None, content=None, threads=None, delegates=True,
                argument="tflite_path"):
  """An `ai_edge_litert` interpreter, allocated unless an input has a free
  size.

  A file with a free input size is left unallocated: at the default size
  (1 for each free dimension) a model may not run at all (a 'valid' 3x3
  conv on a 1x1 input). Its op and tensor details can be read as they are;
  to run it, `fit_input` each input to a size and call `allocate_tensors()`.

  With `delegates=False` the default delegate (XNNPACK) is not applied, so
  `_get_ops_details` lists the file's own ops rather than delegate nodes.

  Raises:
    FileNotFoundError: `path` is not a file (without `content`); the
      message names `argument`, the caller's name for the path.
  """
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  if content is None and not (isinstance(path, (str, os.PathLike))
                              and os.path.isfile(path)):
    raise FileNotFoundError(f"{argument} {path!r} is not a file")
  kwargs = {}
  if not delegates:
    kwargs["experimental_op_resolver_type"] = (
        litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interp = litert.Interpreter(model_path=path, model_content=content,
                              num_threads=threads, **kwargs)
  if not any(has_free_size(d) for d in interp.get_input_details()):
    interp.allocate_tensors()
  return interp


def fit_input(interp, detail, shape, argument):
  """Resizes input `detail` of `interp` to `shape` where its signature has
  a free (-1) size; returns whether its shape changed.

  It does not allocate: once every input is fitted, call
  `interp.allocate_tensors()` (at once, if nothing changed).

  Raises:
    ValueError: `shape` does not fit the file's input; the message names
      `argument`.
  """
  shape = tuple(int(d) for d in shape)
  signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
  if len(shape) != len(signature) or any(
      s >= 0 and s != d for s, d in zip(signature, shape)):
    raise ValueError(
        f"`{argument}`: shape {shape} does not fit the file's input "
        f"{detail['name']!r} of shape {tuple(signature)} (-1: free size)")
  if not has_free_size(detail):
    return False
  # The same size again is a no-op, as is `allocate_tensors()` after it.
  interp.resize_tensor_input(detail["index"], list(shape))
  return shape != tuple(int(d) for d in detail["shape"])


@dataclasses.dataclass
class ModelInfo:
  """Size and op census of one .tflite file.

  Attributes:
    path: the file.
    size_bytes: its size on disk.
    ops: {op name: count}, in order of first appearance.
    float_ops: ['INDEX:OP_NAME'] of ops that read or write a float tensor,
      other than a QUANTIZE on a model input or a DEQUANTIZE on a model
      output.
    input_dtypes, output_dtypes: numpy dtype names of the I/O tensors.
    input_shapes: each input's shape signature, -1 for a free size (from
      `Input((None, None, 3))`).
  """
  path: str
  size_bytes: int
  ops: dict
  float_ops: list
  input_dtypes: list
  output_dtypes: list
  input_shapes: list = dataclasses.field(default_factory=list)

  @property
  def free_input_size(self):
    """True when an input has a free (-1) size: the file is resized to
    each input, and is not compilable for the Edge TPU, whose compiler
    needs static tensor shapes."""
    return any(d < 0 for shape in self.input_shapes for d in shape)

  @property
  def fully_integer(self):
    """True when every op computes in integers (I/O conversions aside)."""
    return not self.float_ops

  @property
  def integer_io(self):
    return all(d in ("int8", "uint8", "int16")
               for d in self.input_dtypes + self.output_dtypes)


def describe(path):
  """Returns a `ModelInfo` for the .tflite file at `path`."""
  interp = interpreter(path, delegates=False, argument="path")
  tensors = {t["index"]: t for t in interp.get_tensor_details()}
  inputs = {d["index"] for d in interp.get_input_details()}
  outputs = {d["index"] for d in interp.get_output_details()}
  details = interp._get_ops_details()  # pylint: disable=protected-access
  produced = {i for op in details for i in op["outputs"]}
  constant = lambda i: i not in produced and i not in inputs  # pylint: disable=unnecessary-lambda-assignment
  ops = collections.Counter()
  order = []
  float_ops = []
  for op in details:
    name = op["op_name"]
    if name not in ops:
      order.append(name)
    ops[name] += 1
    ins = [i for i in op["inputs"] if i >= 0]
    outs = [i for i in op["outputs"] if i >= 0]
    if name == "QUANTIZE" and set(ins) <= inputs:
      continue
    if name == "DEQUANTIZE" and set(outs) <= outputs:
      continue
    if name == "DEQUANTIZE" and all(constant(i) for i in ins):
      # A float16 or dynamic-range weight being expanded: still float math
      # in the op that reads it, which is reported there.
      continue
    if any(i in tensors and np.dtype(tensors[i]["dtype"]) in _FLOAT
           for i in ins + outs):
      float_ops.append(f"{op['index']}:{name}")
  return ModelInfo(
      path=path, size_bytes=os.path.getsize(path),
      ops={k: ops[k] for k in order}, float_ops=float_ops,
      input_dtypes=[np.dtype(d["dtype"]).name
                    for d in interp.get_input_details()],
      output_dtypes=[np.dtype(d["dtype"]).name
                     for d in interp.get_output_details()],
      input_shapes=[tuple(int(s) for s in d.get("shape_signature", d["shape"]))
                    for d in interp.get_input_details()])

