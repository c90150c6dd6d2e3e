"""tflite_export on Keras 3 models (TensorFlow backend): slim and original.

A Keras 3 slim model converts in every mode, adds no TFLite op over the
original, verifies against Keras, and int8 is fully integer. (On JAX the
conversion refuses with the TensorFlow-backend route: tests/frameworks.)
"""

import collections

import keras
import numpy as np
import pytest

import tflite_export
import tfprune_survey as tps
from tfprune_survey import zoo


@pytest.fixture(scope="module")
def models():
  model = zoo.residual_cnn(input_shape=(16, 16, 3), width=8,
                           framework="keras3")
  x = np.random.default_rng(0).random((48, 16, 16, 3)).astype("float32")
  tps.recalibrate_bn(model, x)
  slim = tps.prune(model, "l1", ratio=0.5, recalibrate=x).model
  assert isinstance(slim, keras.Model)
  return model, slim, x


@pytest.mark.parametrize("mode", tflite_export.QUANTIZATIONS)
def test_keras3_slim_model_converts_and_verifies(models, mode, tmp_path):
  model, slim, x = models
  paths = {}
  for name, m in (("full", model), ("slim", slim)):
    paths[name] = str(tmp_path / f"{name}_{mode}.tflite")
    report = tflite_export.convert(
        m, paths[name], quantization=mode,
        representative_data=x if mode == "int8" else None,
        representative_steps=16)
    assert report.quantization == mode
    check = tflite_export.verify(m, paths[name], x[:16])
    assert check.passed, check
    if mode == "none":
      assert check.max_rel_diff <= 1e-5
    if mode == "int8":
      assert report.float_ops == []   # fully integer, Edge-TPU style
  ops = {k: collections.Counter(tflite_export.describe(p).ops)
         for k, p in paths.items()}
  assert set(ops["slim"]) <= set(ops["full"])   # surgery adds no TFLite op
  assert (tflite_export.describe(paths["slim"]).size_bytes <
          tflite_export.describe(paths["full"]).size_bytes)
  bench = tflite_export.benchmark(paths["slim"], runs=5, warmup=1)
  assert bench.median_ms > 0
