"""The per-framework Keras classes: dispatch, and registration on import."""

import subprocess
import sys

import numpy as np
import pytest

import tfprune_survey as tps
from tests.training.conftest import build
from tests.training.conftest import compile_model
from tests.training.conftest import every_step
from tests.training.conftest import keras_of
from tfprune_survey.frameworks import classes as keras_classes
from tfprune_survey.training import wrapper as wrapper_lib


def test_one_wrapper_class_per_keras():
  k2, k3 = keras_of("tf_keras"), keras_of("keras3")
  a = tps.ChannelPruneWrapper(k2.layers.Dense(3, name="d"))
  b = tps.ChannelPruneWrapper(k3.layers.Dense(3, name="d"))
  assert isinstance(a, k2.layers.Wrapper) and isinstance(b, k3.layers.Wrapper)
  assert isinstance(a, tps.ChannelPruneWrapper)
  assert isinstance(b, tps.ChannelPruneWrapper)
  assert not isinstance(k3.layers.Dense(3), tps.ChannelPruneWrapper)
  assert issubclass(wrapper_lib.wrapper_class("keras3"),
                    tps.ChannelPruneWrapper)
  assert k3.saving.get_registered_object(
      "tfprune_survey>ChannelPruneWrapper") is type(b)
  assert k2.utils.get_registered_object(
      "tfprune_survey>ChannelPruneWrapper") is type(a)
  config = b.get_config()
  again = type(b).from_config(config)
  assert again.get_config() == config


# A new process that imports tfprune_survey *before* any Keras, then loads
# files saved mid-pruning by both Kerases, without custom_objects.
_LOAD = r"""
import sys
import numpy as np
import tfprune_survey as tps
from tfprune_survey.training.strip import current_keep
import tf_keras
import keras
x = np.load(sys.argv[1])
for path, k in ((sys.argv[2], keras), (sys.argv[3], tf_keras)):
  model = k.models.load_model(path)
  print("OUT", path[-12:], np.asarray(model(x, training=False)).sum(),
        sorted(current_keep(model)[1]))
"""


def test_saved_models_load_in_a_new_process(xy, tmp_path):
  x, y = xy
  paths = {}
  for framework in ("keras3", "tf_keras"):
    pm = compile_model(tps.prune_channels(build(framework), "l1",
                                          every_step()))
    pm.fit(x, y, batch_size=32, epochs=1, verbose=0,
           callbacks=[tps.UpdateChannelPruningStep()])
    paths[framework] = (str(tmp_path / f"{framework[:5]}.keras"), pm)
    pm.save(paths[framework][0])
  np.save(tmp_path / "x.npy", x[:4])
  # The hook that registers the classes of a Keras imported later.
  assert all(m in keras_classes._FIRED for m in ("keras", "tf_keras"))  # pylint: disable=protected-access
  out = subprocess.run(
      [sys.executable, "-c", _LOAD, str(tmp_path / "x.npy"),
       paths["keras3"][0], paths["tf_keras"][0]],
      capture_output=True, text=True, timeout=300)
  lines = [l.split() for l in out.stdout.splitlines() if l.startswith("OUT")]
  assert len(lines) == 2, out.stderr[-3000:]
  for line, framework in zip(lines, ("keras3", "tf_keras")):
    pm = paths[framework][1]
    want = float(np.asarray(pm(x[:4], training=False)).sum())
    assert abs(float(line[2]) - want) <= 1e-4 * max(1.0, abs(want))
    assert "stem_conv" in " ".join(line[3:])


def test_classes_are_registered_when_a_keras_is_imported_later(
    tmp_path, monkeypatch):
  # A stand-in Keras module, imported after the hook is installed.
  (tmp_path / "fake_keras_pkg").mkdir()
  (tmp_path / "fake_keras_pkg" / "__init__.py").write_text("VALUE = 42\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(keras_classes, "_MODULES",
                      {"fake_keras_pkg": "keras3"})
  monkeypatch.setattr(keras_classes, "_CALLBACKS", [])
  monkeypatch.setattr(keras_classes, "_FIRED", set())
  monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
  seen = []

  def record(framework):
    seen.append((framework, sys.modules["fake_keras_pkg"].VALUE))

  keras_classes.when_keras_imported(record)
  assert not seen
  import fake_keras_pkg  # pylint: disable=g-import-not-at-top,import-error
  assert seen == [("keras3", 42)]
  assert fake_keras_pkg.__spec__.loader.__class__.__name__ != "_FiringLoader"
  assert not any(isinstance(f, keras_classes._KerasImportFinder)  # pylint: disable=protected-access
                 for f in sys.meta_path)
  # A failing callback warns instead of breaking the user's import.
  monkeypatch.setattr(keras_classes, "_FIRED", set())
  with pytest.warns(UserWarning, match="could not register"):
    keras_classes.when_keras_imported(lambda name: 1 / 0)


_BLOCKED = r"""
import importlib.abc, sys, types
BLOCK = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization",
         "jax", "torch")
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCK:
      raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
# The package's __init__ (other modules) is skipped: only training/ and what
# it imports at import time are loaded.
pkg = types.ModuleType("tfprune_survey")
pkg.__path__ = [sys.argv[1]]
sys.modules["tfprune_survey"] = pkg
import tfprune_survey.training as training
assert callable(training.prune_channels)
cb = training.UpdateChannelPruningStep()
print("CLEAN", sorted(m for m in sys.modules if m.split(".")[0] in BLOCK))
"""


def test_training_imports_no_keras_and_no_tensorflow():
  import tfprune_survey  # pylint: disable=g-import-not-at-top
  out = subprocess.run(
      [sys.executable, "-c", _BLOCKED, tfprune_survey.__path__[0]],
      capture_output=True, text=True, timeout=120)
  assert "CLEAN []" in out.stdout, out.stderr[-3000:]
