"""tflite_export: conversion in every mode, verification, integer check, errors."""

import functools
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

import tflite_export
import tfprune_survey as tps
from tfprune_survey import zoo
from tfprune_survey._compat import keras

MODES = ("none", "dynamic", "float16", "int8")


def _calibrated(model, shape, seed=0):
  x = np.random.default_rng(seed).random((48,) + shape).astype("float32")
  tps.recalibrate_bn(model, x)
  return model, x


@functools.lru_cache(maxsize=None)
def _models(kind):
  """(model, inputs) for 'residual' / 'mobilenet', plain or '-slim'."""
  base, _, slim = kind.partition("-")
  # Seeded: otherwise the weights, and so whether a quantized near-tie flips
  # a class, depend on which tests ran before in the same worker.
  keras.utils.set_random_seed(0)
  if base == "residual":
    model, x = _calibrated(zoo.residual_cnn(), (32, 32, 3))
  else:
    model, x = _calibrated(keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), weights=None, classes=10,
        classifier_activation=None), (96, 96, 3))
  if slim:
    graph = tps.ChannelGraph(model)
    keep = {g.id: np.arange(0, g.size, 2) for g in graph.prunable_groups}
    model = tps.materialize(model, keep, graph=graph)
    assert tps.count_macs(model) < 0.5 * tps.count_macs(_models(base)[0])
  return model, x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["residual", "residual-slim", "mobilenet",
                                  "mobilenet-slim"])
def test_every_mode_converts_and_verifies(kind, mode, tmp_path):
  model, x = _models(kind)
  path = str(tmp_path / f"{kind}_{mode}.tflite")
  report = tflite_export.convert(model, path, quantization=mode,
                                 representative_data=x if mode == "int8"
                                 else None, representative_steps=32)
  assert os.path.getsize(path) == report.size_bytes > 0
  assert report.quantization == mode
  assert report.ops.get("CONV_2D", 0) >= 4, report.ops
  if kind.startswith("mobilenet"):
    assert report.ops.get("DEPTHWISE_CONV_2D", 0) >= 10, report.ops
  check = tflite_export.verify(model, path, x[:32])
  assert check.samples == 32
  if mode == "none":
    assert not check.quantized
    assert check.passed and check.max_rel_diff <= 1e-4, check
    assert check.top1_agreement == 1.0
  else:
    assert check.quantized
    # Quantization error is the model's own; on these untrained nets the
    # logits stay strongly correlated even where near-ties flip a class.
    assert check.correlation >= 0.85, check
    if kind.startswith("residual"):
      assert check.passed, check


def test_quantized_files_are_smaller_than_float(tmp_path):
  model, x = _models("residual")
  sizes = {m: tflite_export.convert(
      model, str(tmp_path / f"{m}.tflite"), quantization=m,
      representative_data=x).size_bytes for m in MODES}
  assert sizes["float16"] < 0.6 * sizes["none"]
  assert sizes["dynamic"] < 0.35 * sizes["none"]
  assert sizes["int8"] < 0.35 * sizes["none"]


def test_slim_file_is_smaller_and_has_the_same_ops(tmp_path):
  full = tflite_export.convert(_models("residual")[0],
                               str(tmp_path / "full.tflite"))
  slim = tflite_export.convert(_models("residual-slim")[0],
                               str(tmp_path / "slim.tflite"))
  assert slim.ops == full.ops  # surgery adds no op
  assert slim.size_bytes < 0.4 * full.size_bytes


def test_int8_plain_conv_net_is_fully_integer(tmp_path):
  model, x = _models("residual")
  path = str(tmp_path / "m.tflite")
  report = tflite_export.convert(model, path, quantization="int8",
                                 representative_data=x, int8_io=True)
  assert report.fully_integer and report.edge_tpu_ready
  assert report.integer_io and report.input_dtypes == ["int8"]
  assert report.float_ops == []
  assert "QUANTIZE" not in report.ops and "DEQUANTIZE" not in report.ops
  assert "fully integer" in str(report)
  assert tflite_export.verify(model, path, x).passed
  # With float I/O the edge Quantize/Dequantize are not counted as float.
  float_io = tflite_export.convert(model, str(tmp_path / "f.tflite"),
                                   quantization="int8", representative_data=x)
  assert float_io.fully_integer and not float_io.integer_io
  assert float_io.ops.get("QUANTIZE") == 1


def test_int8_names_an_op_that_stays_float(tmp_path):
  inputs = keras.Input((8, 8, 3))
  h = keras.layers.Conv2D(4, 3, name="conv")(inputs)
  h = tf.sin(h)  # TFLite has no integer SIN kernel
  h = keras.layers.GlobalAveragePooling2D()(h)
  model = keras.Model(inputs, keras.layers.Dense(3)(h))
  x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
  report = tflite_export.convert(model, str(tmp_path / "m.tflite"),
                                 quantization="int8", representative_data=x)
  assert not report.fully_integer and not report.edge_tpu_ready
  assert any(op.endswith(":SIN") for op in report.float_ops), report.float_ops
  assert not any(op.endswith(":CONV_2D") for op in report.float_ops)
  assert "SIN" in str(report) and "NOT fully integer" in str(report)


def test_float_model_is_not_edge_tpu_ready(tmp_path):
  report = tflite_export.convert(_models("residual")[0],
                                 str(tmp_path / "m.tflite"))
  assert not report.fully_integer and not report.edge_tpu_ready
  assert any(op.endswith(":CONV_2D") for op in report.float_ops)


def test_verify_catches_a_different_model(tmp_path):
  model, x = _models("residual")
  path = str(tmp_path / "m.tflite")
  tflite_export.convert(model, path)
  other = zoo.residual_cnn()
  other.set_weights([w * 1.5 for w in model.get_weights()])
  check = tflite_export.verify(other, path, x[:8])
  assert not check.passed and check.max_rel_diff > 1e-2
  with pytest.raises(ValueError, match="shape"):
    tflite_export.verify(zoo.residual_cnn(classes=4), path, x[:8])


def test_benchmark_reports_latency(tmp_path):
  path = str(tmp_path / "m.tflite")
  tflite_export.convert(_models("residual")[0], path)
  bench = tflite_export.benchmark(path, runs=20, warmup=2, threads=1)
  assert 0 < bench.min_ms <= bench.median_ms <= bench.p90_ms
  assert bench.runs == 20 and bench.threads == 1
  assert "median" in str(bench)
  with pytest.raises(ValueError, match="runs"):
    tflite_export.benchmark(path, runs=0)
  with pytest.raises(FileNotFoundError, match="nope"):
    tflite_export.describe(str(tmp_path / "nope.tflite"))


@pytest.mark.parametrize("argument,value,error,text", [
    ("runs", None, TypeError, "`runs` must be an int >= 1, got None"),
    ("runs", 2.5, TypeError, "`runs` must be an int >= 1, got 2.5"),
    ("runs", True, TypeError, "`runs` must be an int >= 1, got True"),
    ("runs", 0, ValueError, "`runs` must be an int >= 1, got 0"),
    ("warmup", None, TypeError, "`warmup` must be an int >= 0, got None"),
    ("warmup", -1, ValueError, "`warmup` must be an int >= 0, got -1"),
    ("threads", "2", TypeError, "`threads` must be an int >= 1, got '2'"),
    ("threads", 0, ValueError, "`threads` must be an int >= 1, got 0"),
    ("seed", "a", TypeError, "`seed` must be an int >= 0, got 'a'"),
    ("seed", -1, ValueError, "`seed` must be an int >= 0, got -1"),
])
def test_benchmark_names_a_bad_count_before_opening_the_file(
    argument, value, error, text, tmp_path):
  # The file does not exist: the argument is checked first.
  with pytest.raises(error, match=re.escape(text)):
    tflite_export.benchmark(str(tmp_path / "nope.tflite"),
                            **{argument: value})


@pytest.mark.parametrize("value,error,text", [
    (None, TypeError, "`representative_steps` must be an int >= 1, got None"),
    (2.5, TypeError, "`representative_steps` must be an int >= 1, got 2.5"),
    ("10", TypeError, "`representative_steps` must be an int >= 1, got '10'"),
    (0, ValueError, "`representative_steps` must be an int >= 1, got 0"),
    (-3, ValueError, "`representative_steps` must be an int >= 1, got -3"),
])
def test_convert_names_a_bad_representative_steps_before_converting(
    value, error, text, tmp_path, monkeypatch):
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  x = np.zeros((8, 4), "float32")
  module = sys.modules["tflite_export.convert"]
  calls = []
  monkeypatch.setattr(module, "calibration_samples",
                      lambda *a, **k: calls.append(a))
  path = tmp_path / "m.tflite"
  with pytest.raises(error, match=re.escape(text)):
    tflite_export.convert(model, str(path), quantization="int8",
                          representative_data=x,
                          representative_steps=value)
  assert not calls and not path.exists()
  monkeypatch.undo()
  # A numpy int is an int; 3 steps calibrate on 3 samples.
  seen = []
  real = module.calibration_samples
  monkeypatch.setattr(module, "calibration_samples",
                      lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
  assert tflite_export.convert(model, str(path), quantization="int8",
                               representative_data=x,
                               representative_steps=np.int64(3)).fully_integer
  assert len(seen) == 1 and len(seen[0]) == 3


def test_convert_refuses_a_folder_path_before_converting(tmp_path,
                                                        monkeypatch):
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  module = sys.modules["tflite_export.convert"]
  calls = []
  monkeypatch.setattr(module, "_run_converter",
                      lambda *a, **k: calls.append(a))
  folder = tmp_path / "out"
  folder.mkdir()
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  # A read-only folder (root writes anywhere, so its check is faked): the
  # converted file was refused only once written.
  read_only = tmp_path / "ro"
  read_only.mkdir()
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, mode, **k: (
      False if os.fspath(p) == str(read_only) and mode & os.W_OK
      else real_access(p, mode, **k)))
  cases = [
      (str(read_only / "m.tflite"), PermissionError,
       f"cannot write `path` '{read_only}/m.tflite': its directory "
       f"'{read_only}' is not writable"),
      (str(folder), IsADirectoryError,
       f"`path` '{folder}' names a folder; give the .tflite file's own path "
       f"(e.g. '{folder}/model.tflite')"),
      (folder, IsADirectoryError, f"`path` '{folder}' names a folder"),
      (str(folder) + "/", IsADirectoryError, "names a folder"),
      (str(tmp_path / "new") + "/", IsADirectoryError, "names a folder"),
      (str(a_file / "m.tflite"), NotADirectoryError,
       f"cannot write `path` '{a_file}/m.tflite': '{a_file}' is a file, "
       "not a folder"),
      (str(tmp_path / "nodir" / "m.tflite"), FileNotFoundError,
       f"cannot write `path` '{tmp_path}/nodir/m.tflite': its directory "
       f"'{tmp_path}/nodir' does not exist"),
  ]
  for path, error, text in cases:
    with pytest.raises(error, match=re.escape(text)):
      tflite_export.convert(model, path)
  assert not calls   # refused before the converter ran
  assert sorted(os.listdir(tmp_path)) == ["a_file", "out", "ro"]
  assert not os.listdir(folder) and a_file.read_text() == "x"
  monkeypatch.undo()
  # A path-like file path inside the folder is written.
  assert tflite_export.convert(model, folder / "m.tflite").size_bytes > 0
  assert os.listdir(folder) == ["m.tflite"]


def _recording_set_tensor(monkeypatch):
  """Records {input name: value} of every set_tensor `benchmark` makes."""
  module = sys.modules["tflite_export.bench"]
  real = module.interpreter
  seen = {}
  def recording(*args, **kwargs):
    interp = real(*args, **kwargs)
    names = {d["index"]: d["name"] for d in interp.get_input_details()}
    set_tensor = interp.set_tensor
    def record(index, value):
      seen[names[index]] = np.array(value)
      set_tensor(index, value)
    interp.set_tensor = record
    return interp
  monkeypatch.setattr(module, "interpreter", recording)
  return seen


def test_benchmark_times_token_ids_on_zeros(tmp_path, monkeypatch):
  # Ids from a vocabulary of 10, as int32 and int64: random values over the
  # int32 range made LiteRT's GATHER fail ("gather index out of bounds").
  ids32 = keras.Input((5,), dtype="int32", name="ids32")
  ids64 = keras.Input((3,), dtype="int64", name="ids64")
  pool = keras.layers.GlobalAveragePooling1D()
  h = keras.layers.Concatenate()([
      pool(keras.layers.Embedding(10, 4)(ids32)),
      pool(keras.layers.Embedding(7, 4)(ids64))])
  model = keras.Model([ids32, ids64], keras.layers.Dense(2)(h))
  path = str(tmp_path / "ids.tflite")
  tflite_export.convert(model, path)
  seen = _recording_set_tensor(monkeypatch)
  bench = tflite_export.benchmark(path, runs=3, warmup=1)
  assert bench.runs == 3 and bench.median_ms > 0
  assert sorted(bench.input_shapes) == [(1, 3), (1, 5)]
  assert len(seen) == 2 and all(
      v.dtype.kind == "i" and v.size and not v.any() for v in seen.values())
  # A float input keeps random values in [0, 1), and an int8 I/O file's
  # quantized input random values over the int8 range.
  seen.clear()
  inputs = keras.Input((16,))
  dense = keras.Model(inputs, keras.layers.Dense(4)(inputs))
  x = np.random.default_rng(0).random((32, 16)).astype("float32")
  for int8_io in (False, True):
    tflite_export.convert(dense, path, quantization="int8" if int8_io
                          else "none", representative_data=x if int8_io
                          else None, int8_io=int8_io)
    tflite_export.benchmark(path, runs=1, warmup=0)
    (value,) = seen.values()
    seen.clear()
    if int8_io:
      assert value.dtype == np.int8 and len(np.unique(value)) > 8
      assert value.min() < 0 < value.max()
    else:
      assert value.dtype == np.float32 and np.all((0 <= value) & (value < 1))
      assert len(np.unique(value)) == 16


def test_errors_are_clear_and_early(tmp_path):
  model, x = _models("residual")
  with pytest.raises(ValueError, match="representative_data"):
    tflite_export.convert(model, str(tmp_path / "m.tflite"),
                          quantization="int8")
  with pytest.raises(ValueError, match="quantization must be one of"):
    tflite_export.convert(model, str(tmp_path / "m.tflite"),
                          quantization="int4")
  with pytest.raises(ValueError, match="int8_io"):
    tflite_export.convert(model, str(tmp_path / "m.tflite"), int8_io=True)
  missing = tmp_path / "no_such_dir" / "m.tflite"
  with pytest.raises(FileNotFoundError, match="no_such_dir"):
    tflite_export.convert(model, str(missing))
  assert not missing.parent.exists()
  with pytest.raises(TypeError, match="`model`"):
    tflite_export.convert(model.layers[1], str(tmp_path / "layer.tflite"))
  assert not os.listdir(tmp_path)  # nothing was written by a failed call


def _single_output_model():
  inputs = keras.Input((8, 8, 3))
  h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
  out = keras.layers.Dense(1, activation="sigmoid")(
      keras.layers.GlobalAveragePooling2D()(h))
  keras.utils.set_random_seed(0)
  return keras.Model(inputs, out)


@pytest.mark.parametrize("mode", ["float16", "int8"])
def test_quantized_single_output_is_judged_on_relative_error(mode, tmp_path):
  model = _single_output_model()
  x = np.random.default_rng(0).random((32, 8, 8, 3)).astype("float32")
  path = str(tmp_path / "m.tflite")
  tflite_export.convert(model, path, quantization=mode, representative_data=x)
  check = tflite_export.verify(model, path, x)
  assert check.quantized and check.top1_agreement is None
  assert check.max_rel_diff <= 0.05 and check.passed, check
  # Another model with this file's shapes is still caught.
  other = _single_output_model()
  other.set_weights([-w for w in model.get_weights()])
  bad = tflite_export.verify(other, path, x)
  assert bad.max_rel_diff > 0.05 and not bad.passed, bad


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_free_input_size_verifies_and_benchmarks_at_a_given_size(
    framework, tmp_path):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inputs = k.Input((None, None, 3))
  h = k.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
  model = k.Model(inputs, k.layers.Conv2D(4, 1)(h))
  x = np.random.default_rng(0).random((4, 12, 12, 3)).astype("float32")
  path = str(tmp_path / "fcn.tflite")
  tflite_export.convert(model, path)
  # verify runs each sample at its own size.
  check = tflite_export.verify(model, path, x)
  assert check.samples == 4 and check.passed, check
  # benchmark needs the size: it does not time a 1x1 input silently.
  with pytest.raises(ValueError, match="input_shape"):
    tflite_export.benchmark(path, runs=1, warmup=0)
  with pytest.raises(ValueError, match="input_shape"):
    tflite_export.benchmark(path, runs=1, warmup=0,
                            input_shape=(1, 12, 12, 4))   # 3 channels fixed
  bench = tflite_export.benchmark(path, runs=2, warmup=0,
                                  input_shape=(1, 12, 12, 3))
  assert bench.input_shapes == [(1, 12, 12, 3)] and bench.median_ms > 0
  # A list of shapes (one per input) is accepted too.
  assert tflite_export.benchmark(path, runs=1, warmup=0, input_shape=[
      (1, 20, 20, 3)]).input_shapes == [(1, 20, 20, 3)]


def test_int8_with_several_inputs_takes_one_array_per_input(tmp_path):
  a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
  h = keras.layers.Concatenate()([keras.layers.Conv2D(4, 3)(a),
                                  keras.layers.Conv2D(4, 3)(b)])
  model = keras.Model([a, b], keras.layers.Dense(3)(
      keras.layers.GlobalAveragePooling2D()(h)))
  rng = np.random.default_rng(0)
  xa, xb = (rng.random((8, 8, 8, 3)).astype("float32") for _ in range(2))
  path = str(tmp_path / "m.tflite")
  for data in ((xa, xb), [(xa, xb)], ((xa, xb), np.zeros(8))):
    report = tflite_export.convert(model, path, quantization="int8",
                                   representative_data=data,
                                   representative_steps=4)
    assert report.fully_integer, report
  with pytest.raises(ValueError, match="representative_data.*2 inputs"):
    tflite_export.convert(model, path, quantization="int8",
                          representative_data=xa)


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_free_input_size_with_a_valid_conv_converts_and_runs(
    framework, tmp_path):
  # At the default size (1x1) a 3x3 'valid' conv cannot run: the file must
  # not be allocated before it is given a size.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inputs = k.Input((None, None, 3))
  h = k.layers.GlobalAveragePooling2D()(k.layers.Conv2D(4, 3)(inputs))
  model = k.Model(inputs, k.layers.Dense(3)(h))
  x = np.random.default_rng(0).random((4, 12, 12, 3)).astype("float32")
  path = str(tmp_path / "m.tflite")
  report = tflite_export.convert(model, path)
  assert report.path == path and report.ops.get("CONV_2D") == 1
  assert os.listdir(tmp_path) == ["m.tflite"]
  check = tflite_export.verify(model, path, x)
  assert check.passed and check.max_rel_diff <= 1e-4, check
  assert tflite_export.benchmark(path, runs=2, warmup=0, input_shape=(
      1, 12, 12, 3)).input_shapes == [(1, 12, 12, 3)]
  # Two free inputs: both are sized before the interpreter is allocated.
  a, b = k.Input((None, None, 3)), k.Input((None, None, 3))
  h = k.layers.Add()([k.layers.Conv2D(4, 3)(a), k.layers.Conv2D(4, 3)(b)])
  two = k.Model([a, b], k.layers.GlobalAveragePooling2D()(h))
  tflite_export.convert(two, path)
  assert tflite_export.benchmark(path, runs=1, warmup=0, input_shape=[
      (1, 9, 9, 3), (1, 9, 9, 3)]).input_shapes == [(1, 9, 9, 3)] * 2


def test_convert_replaces_the_file_only_once_it_is_read_back(
    tmp_path, monkeypatch):
  import importlib  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
  path = tmp_path / "m.tflite"
  path.write_bytes(b"old")

  def broken(_):
    raise RuntimeError("cannot read it back")
  monkeypatch.setattr(importlib.import_module("tflite_export.convert"),
                      "describe", broken)
  with pytest.raises(RuntimeError, match="read it back"):
    tflite_export.convert(model, str(path))
  assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.tflite"]
  monkeypatch.undo()
  report = tflite_export.convert(model, str(path))
  assert report.path == str(path) and os.listdir(tmp_path) == ["m.tflite"]
  assert path.stat().st_size == report.size_bytes > 3


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_integer_io_without_quantization_is_taken_as_it_is(
    framework, tmp_path):
  # A uint8 image input and an int32 class output carry no quantization
  # parameters (scale 0): they are neither scaled nor a sign of a
  # quantized file.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  k.utils.set_random_seed(0)
  inputs = k.Input((8, 8, 3), dtype="uint8")
  h = k.layers.Conv2D(8, 3, padding="same", activation="relu")(
      k.layers.Rescaling(1 / 255.)(inputs))
  model = k.Model(inputs, k.layers.Dense(4, activation="softmax")(
      k.layers.GlobalAveragePooling2D()(h)))
  x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)).astype("uint8")
  path = str(tmp_path / "m.tflite")
  assert tflite_export.convert(model, path).input_dtypes == ["uint8"]
  check = tflite_export.verify(model, path, x)
  assert not check.quantized and check.passed, check
  assert check.max_rel_diff <= 1e-4, check
  # int8 calibration is fed the input's own dtype.
  report = tflite_export.convert(model, path, quantization="int8",
                                 representative_data=x)
  assert report.input_dtypes == ["uint8"]
  assert tflite_export.verify(model, path, x).quantized
  # An integer output: class indices, not quantized values.
  argmax = k.Model(inputs, k.layers.Lambda(
      lambda t: tf.cast(tf.argmax(t, -1), tf.int32)[:, None],
      output_shape=(1,))(model.output))
  tflite_export.convert(argmax, path)
  got, quantized = tflite_export.run_tflite(path, x)
  assert not quantized
  np.testing.assert_array_equal(got, np.asarray(argmax(x)))
  assert len(np.unique(got)) > 1


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_verify_without_samples_names_the_argument(framework, tmp_path):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  inputs = k.Input((4,))
  model = k.Model(inputs, k.layers.Dense(3)(inputs))
  path = str(tmp_path / "m.tflite")
  tflite_export.convert(model, path)
  x = np.zeros((4, 4), "float32")
  with pytest.raises(ValueError, match="`data` holds no samples"):
    tflite_export.verify(model, path, x[:0])
  with pytest.raises(ValueError, match="`data` holds no samples"):
    tflite_export.verify(model, path, [])
  for bad in (0, -1, 2.0, True):
    with pytest.raises(ValueError, match="`max_samples`"):
      tflite_export.verify(model, path, x, max_samples=bad)
  assert tflite_export.verify(model, path, x, max_samples=1).samples == 1


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_free_input_size_is_not_edge_tpu_ready(framework, tmp_path):
  # The Edge TPU compiler needs static tensor shapes.
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
  reports = {}
  for size in (None, 8):
    inputs = k.Input((size, size, 3))
    h = k.layers.Conv2D(4, 3, padding="same")(inputs)
    model = k.Model(inputs, k.layers.Dense(3)(
        k.layers.GlobalAveragePooling2D()(h)))
    reports[size] = tflite_export.convert(
        model, str(tmp_path / f"{size}.tflite"), quantization="int8",
        representative_data=x, int8_io=True)
  free, fixed = reports[None], reports[8]
  assert free.fully_integer and fixed.fully_integer
  assert not free.edge_tpu_ready
  assert "free input size, not Edge TPU-compilable" in str(free), str(free)
  assert "Edge TPU-ready" not in str(free)
  assert free.input_shapes == [(1, -1, -1, 3)] and free.free_input_size
  assert fixed.input_shapes == [(1, 8, 8, 3)] and not fixed.free_input_size
  assert fixed.edge_tpu_ready and "(Edge TPU-ready)" in str(fixed)
  assert tflite_export.describe(free.path).free_input_size


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_model_built_on_a_dict_of_inputs_converts(framework, tmp_path):
  # Keras 3 refuses a list for a model built on a dict; each TFLite input
  # must still get its own array (in `model.inputs` order: keys sorted).
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  k = frameworks.get(framework).keras
  k.utils.set_random_seed(0)
  image, aux = k.Input((8, 8, 3), name="image"), k.Input((5,), name="aux")
  h = k.layers.GlobalAveragePooling2D()(
      k.layers.Conv2D(4, 3, padding="same")(image))
  model = k.Model({"image": image, "aux": aux}, k.layers.Dense(3)(
      k.layers.Concatenate()([h, k.layers.Dense(4)(aux)])))
  slim = tps.prune(model, "l1", ratio=0.5).model
  rng = np.random.default_rng(0)
  xi = rng.random((4, 8, 8, 3)).astype("float32")
  xa = rng.random((4, 5)).astype("float32")
  for m in (model, slim):
    path = str(tmp_path / "m.tflite")
    report = tflite_export.convert(m, path)
    assert report.input_shapes == [(1, 5), (1, 8, 8, 3)]   # aux, image
    want = np.asarray(m({"image": xi, "aux": xa}, training=False))
    interp = tflite_export.inspect_model.interpreter(path)
    got = []
    for i in range(4):
      for d, x in zip(interp.get_input_details(), (xa, xi)):
        interp.set_tensor(d["index"], x[i:i + 1])
      interp.invoke()
      got.append(interp.get_tensor(interp.get_output_details()[0]["index"]))
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-4,
                               atol=1e-5)
    report = tflite_export.convert(m, path, quantization="int8",
                                   representative_data=(xa, xi))
    assert report.fully_integer, report


def test_int8_calibration_samples_must_fit_the_model_inputs(tmp_path):
  inputs = keras.Input((8, 8, 3))
  model = keras.Model(inputs, keras.layers.Dense(3)(
      keras.layers.GlobalAveragePooling2D()(
          keras.layers.Conv2D(4, 3)(inputs))))
  x = np.random.default_rng(0).random((8, 8, 8, 3)).astype("float32")
  path = tmp_path / "m.tflite"
  # Single samples (an unbatched dataset, a list of them) lose a dimension;
  # another size would calibrate the ranges on other data.
  for data, got in ((tf.data.Dataset.from_tensor_slices(x), (8, 3)),
                    (list(x), (8, 3)),
                    (np.zeros((8, 10, 10, 3), "float32"), (10, 10, 3))):
    with pytest.raises(ValueError) as e:
      tflite_export.convert(model, str(path), quantization="int8",
                            representative_data=data)
    assert str(e.value).startswith(
        "`representative_data`: input 0 of the model takes samples of "
        f"shape (8, 8, 3) (None: free size), got a sample of shape {got}")
    assert ("unbatched" in str(e.value)) == (len(got) == 2)
  assert not path.exists()
  # One input of several is named.
  a, b = keras.Input((8, 8, 3)), keras.Input((5,))
  two = keras.Model([a, b], keras.layers.Concatenate()(
      [keras.layers.GlobalAveragePooling2D()(a), b]))
  with pytest.raises(ValueError, match=r"input 1 of the model takes samples "
                     r"of shape \(5,\) \(None: free size\), got a sample of "
                     r"shape \(6,\)"):
    tflite_export.convert(two, str(path), quantization="int8",
                          representative_data=(x, np.zeros((8, 6))))
  assert not path.exists()
  # A free size takes any size.
  free_in = keras.Input((None, None, 3))
  free = keras.Model(free_in, keras.layers.GlobalAveragePooling2D()(
      keras.layers.Conv2D(4, 3)(free_in)))
  assert tflite_export.convert(
      free, str(path), quantization="int8",
      representative_data=np.zeros((4, 10, 10, 3), "float32")).fully_integer


def test_verify_and_benchmark_name_a_missing_or_mismatched_file(
    tmp_path, monkeypatch):
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  x = np.random.default_rng(0).random((4, 4)).astype("float32")
  missing = str(tmp_path / "nope.tflite")
  calls = []
  def no_run():   # errors come before the model runs
    monkeypatch.setattr(type(model), "__call__",
                        lambda *a, **k: calls.append(a))
  no_run()
  with pytest.raises(FileNotFoundError, match=f"tflite_path '{missing}' is "
                     "not a file"):
    tflite_export.verify(model, missing, x)
  assert not calls
  for call in (lambda: tflite_export.benchmark(missing, runs=1),
               lambda: tflite_export.run_tflite(missing, x)):
    with pytest.raises(FileNotFoundError, match="tflite_path"):
      call()
  # A file of two inputs and two outputs, whose first input and output have
  # the model's shapes: its second input was left at zeros.
  a, b = keras.Input((4,)), keras.Input((4,))
  two = keras.Model([a, b], [keras.layers.Dense(3)(a),
                             keras.layers.Dense(2)(b)])
  path = str(tmp_path / "two.tflite")
  monkeypatch.undo()
  tflite_export.convert(two, path)
  no_run()
  for call in (lambda: tflite_export.verify(model, path, x),
               lambda: tflite_export.run_tflite(path, x)):
    with pytest.raises(ValueError, match=f"`tflite_path` '{path}' has 2 "
                       "inputs and 2 outputs; run_tflite and verify take a "
                       "file of one input and one output"):
      call()
  assert not calls
