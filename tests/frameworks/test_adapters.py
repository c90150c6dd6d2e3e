"""The framework adapters: detection, laziness, and the private names pinned.

Importing the package must leave the user's Keras alone: no tf_keras or
tfmot import, no TF_USE_LEGACY_KERAS, and `tf.keras` stays Keras 3. Each
Keras 3 private name the adapter relies on is pinned here, so a Keras
upgrade that moves one fails this test first.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tf_keras

import tfprune_survey as tps
from tfprune_survey import frameworks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _python(code):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_USE_LEGACY_KERAS", None)
  env.pop("KERAS_BACKEND", None)
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_packages_imports_no_keras_and_sets_nothing():
  got = _python(
      "import json, os, sys\n"
      "import tfprune_survey, tflite_export\n"
      "print(json.dumps({m: m in sys.modules for m in ('tf_keras', "
      "'tensorflow_model_optimization')} | "
      "{'env': os.environ.get('TF_USE_LEGACY_KERAS')}))")
  # (`keras` itself is not checked: `import tensorflow` loads it already.)
  assert got == {"tf_keras": False, "tensorflow_model_optimization": False,
                 "env": None}


def test_tf_keras_stays_what_the_user_had():
  got = _python(
      "import json\n"
      "import tensorflow as tf\n"
      "import tfprune_survey as tps\n"
      "import tf_keras\n"
      "m = tf_keras.Sequential([tf_keras.Input((4,)), "
      "tf_keras.layers.Dense(2)])\n"
      "tps.count_macs(m)\n"
      "s = tf.keras.Sequential([tf.keras.Input((4,)), "
      "tf.keras.layers.Dense(2)])\n"
      "print(json.dumps({'tf.keras': type(s).__module__}))")
  assert got["tf.keras"].startswith("keras.src"), got


@pytest.mark.parametrize("obj,name", [
    (keras.layers.Dense(2), "keras3"),
    (tf_keras.layers.Dense(2), "tf_keras"),
    (keras.layers.Conv2D, "keras3"),
    (tf_keras.Model, "tf_keras"),
    ("a string", None),
])
def test_detect_reads_the_module_of_the_class(obj, name):
  assert frameworks.detect(obj) == name


def test_of_names_the_argument_for_a_non_keras_object():
  with pytest.raises(TypeError, match="`to_score`"):
    frameworks.of(3.0, "to_score")


def test_default_follows_tf_use_legacy_keras(monkeypatch):
  monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
  assert frameworks.default_name() == "keras3"
  monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
  assert frameworks.default_name() == "tf_keras"
  assert isinstance(tps.ChannelScale(), tf_keras.layers.Layer)
  monkeypatch.setenv("TF_USE_LEGACY_KERAS", "0")
  assert isinstance(tps.ChannelScale(), keras.layers.Layer)
  assert isinstance(tps.ChannelScale(framework="tf_keras"), tps.ChannelScale)


def test_keras3_private_names_the_adapter_uses_are_still_there():
  from keras.src.models import functional  # pylint: disable=g-import-not-at-top
  from keras.src.saving import serialization_lib  # pylint: disable=g-import-not-at-top
  assert hasattr(serialization_lib, "SafeModeScope")
  inp = keras.Input((4,))
  out = keras.layers.Dense(3, name="d")(inp) * 2.0
  model = keras.Model(inp, out)
  assert isinstance(model, functional.Functional)
  dense = model.get_layer("d")
  node = dense._inbound_nodes[0]  # pylint: disable=protected-access
  assert tuple(node.output_tensors[0].shape) == (None, 3)
  assert node.input_tensors[0] is inp
  assert model._nodes_by_depth  # pylint: disable=protected-access
  args, _ = node.arguments.fill_in({id(inp): "x"})
  assert args == ("x",)
  fw = frameworks.get("keras3")
  assert fw.output_shapes(dense, 0) == [(None, 3)]
  assert fw.input_tensor(dense, 0) is inp


@pytest.mark.parametrize("name", ["tf_keras", "keras3"])
def test_call_node_index_skips_another_models_calls(name):
  # pins tf_keras' `_network_nodes` and Keras 3's `_nodes` / `_functional`
  k = tf_keras if name == "tf_keras" else keras
  dense = k.layers.Dense(3, name="d")
  first = k.Input((4,))
  k.Model(first, dense(first))
  inp = k.Input((4,))
  functional = k.Model(inp, dense(inp))
  seq = k.Sequential([k.Input((4,)), dense])
  fw = frameworks.get(name)
  assert fw.call_node_index(functional, dense, 0) == 1
  assert fw.call_node_index(seq, dense, 0) == 2


def test_weight_aliases_find_keras3_depthwise_kernel():
  layer = keras.layers.DepthwiseConv2D(3)
  layer.build((None, 8, 8, 4))
  assert frameworks.get("keras3").find_weight(layer, "depthwise_kernel") == (
      0, "kernel")
  old = tf_keras.layers.DepthwiseConv2D(3)
  old.build((None, 8, 8, 4))
  assert frameworks.get("tf_keras").find_weight(old, "depthwise_kernel") == (
      0, "depthwise_kernel")


def test_both_kerases_in_one_process_give_models_of_their_own_kind():
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  for name, base in (("keras3", keras.Model), ("tf_keras", tf_keras.Model)):
    model = zoo.residual_cnn(input_shape=(8, 8, 1), width=4, framework=name)
    graph = tps.ChannelGraph(model)
    keep = {g.id: np.arange(g.size // 2) for g in graph.prunable_groups}
    for out in (tps.materialize(model, keep), tps.mask_channels(model, keep)):
      assert isinstance(out, base), name
