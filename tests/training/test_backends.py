"""Training-time pruning on Keras 3's other backends, one process each.

JAX (and PyTorch, when installed) get a `NotImplementedError` naming the
backend and pointing to one-shot pruning; what needs no training-time
behaviour (sparsify_bn, add_scaling_factors, RewindCheckpoint) works. A
model saved mid-pruning on TensorFlow runs and strips there; fitting it is
the same clear error.
"""

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import backend_env

_SCRIPT = r"""
import json
import os
import numpy as np
import keras
import tfprune_survey as tps
from tfprune_survey import zoo
result = {"backend": keras.backend.backend()}
model = zoo.residual_cnn(input_shape=(8, 8, 1), width=4, framework="keras3")
for name, call in (
    ("model", lambda: tps.prune_channels(model, "l1")),
    ("layer", lambda: tps.prune_channels(keras.layers.Conv2D(4, 3), "l1"))):
  try:
    call()
    result[name] = None
  except NotImplementedError as e:
    result[name] = str(e)
reg = tps.sparsify_bn(model, l1=1e-2)
scaled = tps.add_scaling_factors(reg, l1=1e-3)
result["scales"] = sum(isinstance(l, tps.ChannelScale) for l in scaled.layers)
scaled.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
    from_logits=True))
rng = np.random.default_rng(0)
x = rng.random((16, 8, 8, 1)).astype("float32")
ckpt = tps.RewindCheckpoint(epoch=1)
scaled.fit(x, rng.integers(0, 10, 16), batch_size=8, epochs=2, verbose=0,
           callbacks=[ckpt])
result["rewind"] = ckpt.model_at_epoch is not None and ckpt.keep is None
result["losses"] = len(scaled.losses)
# A model saved mid-pruning on TensorFlow: fit says what to do (it died in
# the controller on a symbolic tf.Tensor); predict and strip work.
saved = os.environ["TPS_SAVED"]
x_saved, ref = np.load(saved + "/x.npy"), np.load(saved + "/out.npy")
pm = keras.saving.load_model(saved + "/pm.keras")
pm.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
    from_logits=True))
try:
  pm.fit(x, rng.integers(0, 10, 16), batch_size=8, verbose=0,
         callbacks=[tps.UpdateChannelPruningStep()])
  result["fit"] = None
except NotImplementedError as e:
  result["fit"] = str(e)
result["predict_err"] = float(np.abs(
    pm.predict(x_saved, verbose=0) - ref).max())
result["strip_err"] = float(np.abs(
    np.asarray(tps.strip_channel_pruning(pm)(x_saved)) - ref).max())
print("RESULT" + json.dumps(result))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_training_time_pruning_needs_the_tensorflow_backend(backend,
                                                            tmp_path):
  if importlib.util.find_spec(backend) is None:
    pytest.skip(f"{backend} is not installed")
  # Saved here (Keras 3 on TensorFlow) after one pruning step.
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  from tfprune_survey.training import controller  # pylint: disable=g-import-not-at-top
  pm = tps.prune_channels(
      zoo.residual_cnn(input_shape=(8, 8, 1), width=4, framework="keras3"),
      "l1")
  controller.make_controller(pm).update(0.5)
  for w in pm.weights:   # dropped filters off zero, as momentum moves them
    if w.path.endswith("/kernel"):
      w.assign(w.numpy() + 0.1)
  x = np.random.default_rng(1).random((4, 8, 8, 1)).astype("float32")
  np.save(tmp_path / "x.npy", x)
  np.save(tmp_path / "out.npy", np.asarray(pm(x)))
  pm.save(str(tmp_path / "pm.keras"))
  env = backend_env(backend, TPS_SAVED=str(tmp_path))
  out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True,
                       text=True, timeout=300, env=env)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
  assert line, out.stderr[-3000:]
  result = json.loads(line[0][len("RESULT"):])
  assert result["backend"] == backend
  for form in ("model", "layer"):
    message = result[form]
    assert message is not None, form
    assert f"'{backend}' backend" in message and "tps.prune" in message
  message = result["fit"]
  assert message is not None
  assert (f"'{backend}' backend" in message and "KERAS_BACKEND=tensorflow"
          in message and "tps.strip_channel_pruning" in message), message
  assert result["predict_err"] < 1e-5 and result["strip_err"] < 1e-5
  assert result["scales"] >= 3 and result["rewind"]
  assert result["losses"] >= result["scales"]
