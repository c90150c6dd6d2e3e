"""The JAX and PyTorch backends, each job in its own process (KERAS_BACKEND).

JAX is installed with the test extras; PyTorch is optional (the torch
cases are skipped where it is not installed).

1. The Keras 3 graph tests and the layer-by-layer graph rules run under the
   backend (groups, MACs and materialize == mask_channels), in the slow
   tier (`make test-all`).
2. With the same weights, the backend gives the TensorFlow backend's groups, MACs,
   scores for all criteria (rtol 1e-5) and `prune` keep sets (the
   activation criteria's statistics reduced in keras.ops on the backend,
   with no tf.function), and its
   slim model survives a `.keras` round trip; sensitivity, iterative
   pruning, distillation and re-initialisation run; TFLite conversion
   refuses, naming the TensorFlow-backend route.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfprune_survey as tps
from tests.conftest import backend_env
from tests.frameworks import backend_job
from tfprune_survey import frameworks
from tfprune_survey import zoo

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(
    importlib.util.find_spec(b) is None, reason=f"{b} is not installed"))
            for b in ("jax", "torch")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _run(args, backend, timeout=600):
  env = backend_env(backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout,
                        check=False)
  assert proc.returncode == 0, (proc.stdout[-4000:] + proc.stderr[-4000:])
  return proc


# The Keras 3 graph tests (keras.ops and operator nodes, LoRA, nested
# models) and the layer-by-layer graph rules, under each backend, each file
# in its own process. Both are in the slow tier (`make test-all`; 68 s and
# 152 s under JAX here): the graph is read from Keras's symbolic tensors
# and configs, which no backend changes, and their materialize ==
# mask_channels checks rerun the TensorFlow backend's on another backend,
# which `test_criteria_and_prune_match_tensorflow` and
# `test_edge_cases_match_tensorflow` also do in `make test` (a residual net,
# a Sequential, an LSTM and a GRU net).
# Keras 3's quantized Dense layers hold the same arrays on every backend, and
# their slicing is the TensorFlow backend's (tested there): left out here.
GRAPH_FILES = {"keras3_graphs": "tests/frameworks/test_keras3_graphs.py",
               "graph_rules": "tests/graph/test_graph_rules_keras3.py"}


@pytest.mark.slow
@pytest.mark.parametrize("path", GRAPH_FILES.values(), ids=GRAPH_FILES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_rules_and_exactness(backend, path):
  proc = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
               "-k", "not quantized", path], backend)
  assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_criteria_and_prune_match_tensorflow(tmp_path, backend):
  model = zoo.residual_cnn(input_shape=(12, 12, 1), width=8,
                           framework="keras3")
  rng = np.random.default_rng(0)
  weights = [rng.standard_normal(w.shape).astype("float32") * 0.3
             if len(w.shape) != 1 else
             rng.random(w.shape).astype("float32") + 0.5
             for w in model.weights]
  model.set_weights(weights)
  x = rng.random((64, 12, 12, 1)).astype("float32")
  y = rng.integers(0, 10, 64)
  np.savez(tmp_path / "w.npz", x=x, y=y,
           **{f"w{i}": w for i, w in enumerate(weights)})
  out = str(tmp_path / f"{backend}.json")
  _run([os.path.join(ROOT, "tests", "frameworks", "backend_job.py"),
        str(tmp_path / "w.npz"), out, backend], backend)
  with open(out) as f:
    got = json.load(f)
  assert got["backend"] == backend
  graph = tps.ChannelGraph(model)
  assert got["groups"] == [list(t) for t in sorted(
      (g.id, g.size, g.prunable) for g in graph.groups)]
  assert got["macs"] == tps.count_macs(model)
  assert got["params"] == tps.count_params(model)
  assert got["exact_rel"] <= 1e-5
  assert got["slim_macs"] < got["macs"]
  assert got["initializers_kept"]
  for name in tps.criteria.names():
    ref = tps.score(model, name, (x, y))
    assert sorted(got["scores"][name]) == sorted(ref), name
    for gid, values in ref.items():
      np.testing.assert_allclose(got["scores"][name][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=name)
  # A Dropout's integer seed state takes no gradient (jax.grad refused it).
  drop = backend_job.dropout_model(frameworks.get("keras3").keras)
  for name in backend_job.DROPOUT_CRITERIA:
    ref = tps.score(drop, name, (x, y))
    for gid, values in ref.items():
      np.testing.assert_allclose(got["dropout_scores"][name][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=name)
  # Two inputs: x as a list (every criterion) and as a dict by input name.
  two = backend_job.two_input_model(frameworks.get("keras3").keras)
  pair = [x, x[:, ::-1]]
  for key, names in (("two_input_scores", backend_job.TWO_INPUT_CRITERIA),
                     ("two_input_dict_scores",
                      backend_job.TWO_INPUT_DICT_CRITERIA)):
    for name in names:
      ref = tps.score(two, name, (pair, y))
      assert sorted(got[key][name]) == sorted(ref), (key, name)
      for gid, values in ref.items():
        np.testing.assert_allclose(got[key][name][gid], values, rtol=1e-5,
                                   atol=1e-7, err_msg=f"{key} {name}")
  # The activation statistics are reduced with keras.ops on the backend,
  # not in TensorFlow: no tf.function, and batch_stats gives its arrays.
  assert got["activation_tf_functions"] == 0
  assert got["activation_stat_modules"] == [
      {"jax": "jaxlib", "torch": "torch"}[backend]]
  result = tps.prune(model, "taylor", data=(x, y), target_macs=0.5)
  assert got["prune_keep"] == {k: v.tolist() for k, v in
                               result.keep.items()}
  assert got["prune_module"].startswith("keras.")
  assert got["reload_diff"] <= 1e-6
  assert got["sensitivity_groups"] == sorted(
      g.id for g in graph.prunable_groups)
  assert 0.0 <= got["sensitivity_baseline"] <= 1.0
  assert abs(got["iterative_reduction"] - 0.3) <= 0.02
  assert got["distill_student_changed"] and got["teacher_unchanged"]
  assert got["reinit_same_shapes"]
  assert "KERAS_BACKEND=tensorflow" in got["tflite_error"]
  assert "export" in got["tflite_error"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases_match_tensorflow(tmp_path, backend):
  """Models off the main test's path give the TensorFlow backend's scores:
  a Sequential model (its graph is run through the Functional it keeps);
  uint8 images for a float32 Input (converted to it, as Keras does);
  kfac_obd through producers' fused activations (relu, tanh, swish), and
  on a Dense reading an int Input (no gradient taken there); the weight
  gradients of a frozen layer (trainable=False); an LSTM and a GRU net
  materializes (== mask_channels, the layers' own initializers kept) and
  prunes to TensorFlow's keep sets (it failed: the initializers of an RNN
  layer are its cell's and cannot be set on it)."""
  out = str(tmp_path / f"{backend}_edge.json")
  _run([os.path.join(ROOT, "tests", "frameworks", "backend_job.py"), "edge",
        out, backend], backend)
  with open(out) as f:
    got = json.load(f)
  keras = frameworks.get("keras3").keras
  x, y = backend_job.edge_data()
  seq = backend_job.sequential_model(keras)
  for name in backend_job.SEQUENTIAL_CRITERIA:
    ref = tps.score(seq, name, (x, y))
    assert sorted(got["sequential_scores"][name]) == sorted(ref), name
    for gid, values in ref.items():
      np.testing.assert_allclose(got["sequential_scores"][name][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=name)
  lin = backend_job.linear_producer_model(keras)
  for name in backend_job.UINT8_CRITERIA:
    ref = tps.score(lin, name, ((x * 255).astype("uint8"), y))
    assert sorted(got["uint8_scores"][name]) == sorted(ref), name
    for gid, values in ref.items():
      np.testing.assert_allclose(got["uint8_scores"][name][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=name)
  for key, model in (("sequential", seq),
                     ("functional", backend_job.fused_activation_model(
                         keras))):
    ref = tps.score(model, "kfac_obd", (x, y))
    assert sorted(got["fused_scores"][key]) == sorted(ref), key
    for gid, values in ref.items():
      np.testing.assert_allclose(got["fused_scores"][key][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=key)
  ints = (np.arange(24 * 6).reshape(24, 6) % 5).astype("int64")
  ref = tps.score(backend_job.int_input_model(keras), "kfac_obd", (ints, y))
  assert sorted(got["int_input_scores"]) == sorted(ref)
  for gid, values in ref.items():
    np.testing.assert_allclose(got["int_input_scores"][gid], values,
                               rtol=1e-5, atol=1e-7)
  frozen = backend_job.linear_producer_model(keras)
  frozen.get_layer("l1").trainable = False
  for name in backend_job.FROZEN_CRITERIA:
    ref = tps.score(frozen, name, (x, y))
    assert sorted(got["frozen_scores"][name]) == sorted(ref), name
    for gid, values in ref.items():
      np.testing.assert_allclose(got["frozen_scores"][name][gid], values,
                                 rtol=1e-5, atol=1e-7, err_msg=name)
  rnn = backend_job.rnn_model(keras)
  assert got["rnn_mask_vs_slim"] < 1e-5
  assert got["rnn_initializers_kept"]
  assert got["rnn_prune_keep"] == {
      k: v.tolist() for k, v in tps.prune(rnn, "l1",
                                          target_macs=0.05).keep.items()}
