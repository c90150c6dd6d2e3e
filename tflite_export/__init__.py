"""Verified TFLite export for Keras models (tf_keras or Keras 3), slim or not.

  report = tflite_export.convert(model, "m.tflite", quantization="int8",
                                 representative_data=x_train[:200])
  tflite_export.verify(model, "m.tflite", x_test)   # diffs, top-1 agreement
  tflite_export.benchmark("m.tflite", threads=1)   # median / p90 ms
"""

from tflite_export.bench import BenchmarkReport, benchmark
from tflite_export.convert import (QUANTIZATIONS, ConversionReport, convert,
                                   representative_samples)
from tflite_export.inspect_model import ModelInfo, describe
from tflite_export.verify import VerifyReport, run_tflite, verify

__all__ = ["BenchmarkReport", "ConversionReport", "ModelInfo", "QUANTIZATIONS",
           "VerifyReport", "benchmark", "convert", "describe",
           "representative_samples", "run_tflite", "verify"]
