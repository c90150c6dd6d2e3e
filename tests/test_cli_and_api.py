"""The public API surface and the command line."""

import ast
import importlib
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import cli
from tfprune_survey import zoo
from tests.conftest import callers_pyplot
from tests.conftest import png_size
from tests.latency_tables import macs_proportional_timer

@pytest.fixture(autouse=True)
def fresh_flags():
  cli.FLAGS.unparse_flags()
  yield
  cli.FLAGS.unparse_flags()


CONTRACT = ["ChannelGraph", "ChannelGroup", "mask_channels", "materialize",
            "count_macs", "count_params", "profile", "UnsupportedModelError",
            "register_handler"]


def test_every_public_name_imports():
  for name in tps.__all__:
    assert getattr(tps, name) is not None, name
  for name in CONTRACT:
    assert name in tps.__all__, name
  assert issubclass(tps.UnsupportedModelError, TypeError)


README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def _readme_names(text):
  """Dotted `tps.` and `tflite_export.` names the README's text refers to."""
  return sorted({m.rstrip(".") for m in re.findall(
      r"\b(?:tps|tflite_export)\.[A-Za-z_][A-Za-z0-9_.]*", text)})


def _resolve(dotted):
  base, *parts = dotted.split(".")
  obj = importlib.import_module(
      {"tps": "tfprune_survey", "tflite_export": "tflite_export"}[base])
  for part in parts:
    if hasattr(obj, part):
      obj = getattr(obj, part)
    elif isinstance(obj, types.ModuleType):  # a submodule not yet imported
      obj = importlib.import_module(f"{obj.__name__}.{part}")
    else:
      raise AttributeError(f"{obj!r} has no attribute {part!r}")
  return obj


def test_every_name_the_readme_gives_exists():
  with open(README, encoding="utf-8") as f:
    text = f.read()
  names = _readme_names(text)
  assert {"tps.prune", "tps.latency.LatencyModel.measure",
          "tflite_export.describe"} <= set(names)
  missing = []
  for name in names:
    try:
      _resolve(name)
    except (AttributeError, ImportError):
      missing.append(name)
  assert not missing, f"README names that do not exist: {missing}"
  # The check itself fails on a name that is not there.
  with pytest.raises((AttributeError, ImportError)):
    _resolve("tps.latency.no_such_function")
  with pytest.raises(AttributeError):
    _resolve("tps.latency.LatencyModel.no_such_method")
  assert _resolve("tps.criteria.collector.observation_points") is not None


def test_every_python_block_in_the_readme_parses():
  with open(README, encoding="utf-8") as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
  assert len(blocks) >= 10
  for block in blocks:
    ast.parse(block)


def test_profile_command_prints_table_and_groups(tmp_path, capsys):
  path = str(tmp_path / "m.keras")
  zoo.residual_cnn().save(path)
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=["tfprune-survey", "profile", path])
  assert info.value.code == 0
  out = capsys.readouterr().out
  assert "stem_conv" in out and "total" in out
  assert "prunable" in out and "block_conv2" in out


def test_unknown_command_and_missing_file_are_usage_errors(tmp_path):
  with pytest.raises(cli.app.UsageError, match="unknown command"):
    cli.main(["tfprune-survey", "frobnicate"])
  with pytest.raises(cli.app.UsageError, match="does not exist"):
    cli.main(["tfprune-survey", "profile", str(tmp_path / "nope.keras")])


def test_console_script_is_installed():
  out = subprocess.run([sys.executable, "-m", "tfprune_survey.cli"],
                       capture_output=True, text=True, timeout=120)
  assert "usage: tfprune-survey" in out.stdout


def test_demo_fit_decays_the_learning_rate_on_a_cosine_to_zero():
  import math
  from tfprune_survey import demo
  rng = np.random.default_rng(0)
  x = rng.random((300, 8, 8, 1)).astype("float32")
  y = rng.integers(0, 10, 300)
  for decay in (False, True):
    model = zoo.residual_cnn(input_shape=(8, 8, 1), width=4)
    demo.fit(model, x, y, epochs=2, lr=3e-3, decay=decay, batch_size=128,
             verbose=0)
    opt = model.optimizer
    steps = 2 * math.ceil(300 / 128)
    assert int(opt.iterations) == steps
    # The rate of the last step taken: constant, or the cosine from 3e-3
    # at step 0 to 0 at `steps`, evaluated at the last step (steps - 1).
    want = (3e-3 * 0.5 * (1 + math.cos(math.pi * (steps - 1) / steps))
            if decay else 3e-3)
    assert float(opt.learning_rate) == pytest.approx(want, rel=1e-5)


def test_demo_falls_back_to_digits_and_writes_everything(tmp_path, capsys,
                                                        monkeypatch):
  import json
  from tfprune_survey import demo
  from tfprune_survey import latency
  monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "latency_cache"))
  macs_proportional_timer(monkeypatch)   # the 0.1 target always reachable
  rows = demo.run(str(tmp_path), fashion_dir=str(tmp_path / "absent"),
                  criteria=("l1", "slimming"), epochs=1, ft_images=300,
                  bench_runs=5, width=16, round_to=1, latency_target=0.1,
                  verbose=0)
  out = capsys.readouterr().out
  assert "Falling back to sklearn's bundled 8x8 digits" in out
  assert [r["criterion"] for r in rows] == ["unpruned", "l1", "slimming",
                                            "l1 @ latency"]
  assert [r["target"] for r in rows] == ["-", "MACs", "MACs", "latency"]
  base = rows[0]
  for r in rows[1:3]:
    # 2x MACs reduction, within the 2% tolerance of target_macs.
    assert 0.48 <= 1 - r["macs"] / base["macs"] <= 0.52, r
    assert r["params"] < base["params"]
    assert r["float_kb"] < base["float_kb"]
    assert r["int8_kb"] < r["float_kb"]
    assert r["float_max_rel_diff"] <= 1e-4
    assert r["int8_fully_integer"]
    assert abs(r["delta"] - 100 * (r["top1"] - base["top1"])) < 1e-9
    assert (tmp_path / f"{r['criterion']}_slim.keras").exists()
    assert (tmp_path / f"{r['criterion']}_slim_int8.tflite").exists()
  # The latency row: smaller, verified, timed beside the others.
  lat = rows[3]
  assert lat["macs"] < base["macs"] and lat["float_max_rel_diff"] <= 1e-4
  assert lat["speedup"] == pytest.approx(base["float_ms"] / lat["float_ms"])
  assert (tmp_path / "l1_at_latency_slim_float.tflite").exists()
  # Digits are easy: even the small, briefly trained net beats chance.
  assert base["top1"] > 0.5
  summary = (tmp_path / "summary.md").read_text()
  assert "sklearn digits (fallback)" in summary and "| slimming |" in summary
  assert (tmp_path / "tradeoff.png").stat().st_size > 10000
  assert (tmp_path / "latency_plan.png").stat().st_size > 10000
  assert "![latency plan](latency_plan.png)" in summary
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["dataset"] == "sklearn digits (fallback)"
  assert len(saved["rows"]) == 4
  assert "| l1 @ latency | latency |" in summary
  assert demo.table_md(rows).count("\n") == 5


def test_prune_command_writes_a_slim_model(tmp_path, capsys):
  import numpy as np
  from tfprune_survey._compat import keras
  path, out = str(tmp_path / "m.keras"), str(tmp_path / "slim.keras")
  data = str(tmp_path / "d.npz")
  rng = np.random.default_rng(0)
  np.savez(data, x=rng.random((40, 12, 12, 1)).astype("float32"),
           y=rng.integers(0, 10, 40))
  zoo.residual_cnn(input_shape=(12, 12, 1), width=8).save(path)
  argv = cli._normalize(["tfprune-survey", "prune", path, "--criterion",
                         "taylor", "--target-macs", "0.5", "--data", data,
                         "--out", out])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  text = capsys.readouterr().out
  assert "MACs" in text and "saved" in text
  slim = keras.models.load_model(out)
  before = tps.count_macs(keras.models.load_model(path))
  assert abs(1 - tps.count_macs(slim) / before - 0.5) <= 0.02


def test_prune_command_errors_are_usage_errors(tmp_path):
  path = str(tmp_path / "m.keras")
  zoo.residual_cnn(input_shape=(12, 12, 1), width=8).save(path)
  cli.FLAGS(["x", "--criterion=l1", "--out=" + str(tmp_path / "o.keras")])
  with pytest.raises(cli.app.UsageError, match="exactly one"):
    cli.main(["tfprune-survey", "prune", path])
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--criterion=apoz", "--ratio=0.3",
             "--out=" + str(tmp_path / "o.keras")])
  with pytest.raises(cli.app.UsageError, match="'apoz'"):
    cli.main(["tfprune-survey", "prune", path])


def _saved_small_model(tmp_path):
  import numpy as np
  import tf_keras
  path, data = str(tmp_path / "m.keras"), str(tmp_path / "d.npz")
  rng = np.random.default_rng(0)
  np.savez(data, x=rng.random((40, 12, 12, 1)).astype("float32"),
           y=rng.integers(0, 10, 40))
  # Seeded: the int8 top-1 check of an untrained net depends on its weights
  # (an unlucky draw under xdist gave 84% < 90%).
  tf_keras.utils.set_random_seed(0)
  zoo.residual_cnn(input_shape=(12, 12, 1), width=8).save(path)
  return path, data


def test_export_command_converts_verifies_and_times(tmp_path, capsys):
  import tflite_export
  path, data = _saved_small_model(tmp_path)
  out = str(tmp_path / "m.tflite")
  argv = cli._normalize(["tfprune-survey", "export", path, "--out", out,
                         "--quantize", "int8", "--data", data, "--verify",
                         "--bench", "--bench-runs", "5"])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  text = capsys.readouterr().out
  assert "TFLite bytes" in text and "median latency" in text
  assert "PASS" in text and "fully integer" in text
  assert tflite_export.describe(out).fully_integer


def test_prune_command_exports_and_compares_tflite(tmp_path, capsys):
  import tflite_export
  path, data = _saved_small_model(tmp_path)
  out, lite = str(tmp_path / "slim.keras"), str(tmp_path / "slim.tflite")
  argv = cli._normalize(["tfprune-survey", "prune", path, "--criterion", "l1",
                         "--ratio", "0.5", "--out", out, "--tflite", lite,
                         "--data", data, "--bench-runs", "5"])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  text = capsys.readouterr().out
  assert "| original |" in text and "| slim |" in text
  assert "| before / after |" in text and text.count("PASS") == 2
  assert tflite_export.describe(lite).size_bytes > 0


def test_export_errors_are_usage_errors(tmp_path):
  path, _ = _saved_small_model(tmp_path)
  cli.FLAGS(["x", "--out=" + str(tmp_path / "nodir" / "m.tflite")])
  with pytest.raises(cli.app.UsageError, match="does not exist"):
    cli.main(["tfprune-survey", "export", path])
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + str(tmp_path / "m.tflite"), "--quantize=int8"])
  with pytest.raises(cli.app.UsageError, match="int8 needs --data"):
    cli.main(["tfprune-survey", "export", path])
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + str(tmp_path / "m.keras")])
  with pytest.raises(cli.app.UsageError, match="--out M.tflite"):
    cli.main(["tfprune-survey", "export", path])


# ---- .keras files saved by either Keras --------------------------------------

def _small(framework):
  if framework == "tf_keras":
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  else:
    import keras  # pylint: disable=g-import-not-at-top
  L = keras.layers
  inp = keras.Input((12, 12, 1), name="image")
  x = L.Conv2D(8, 3, padding="same", name="stem_conv")(inp)
  x = L.BatchNormalization(name="stem_bn")(x)
  x = L.ReLU()(x)
  x = L.Conv2D(8, 3, padding="same", name="block_conv2")(x)
  x = L.ReLU()(x)
  x = L.GlobalAveragePooling2D()(x)
  return keras.Model(inp, L.Dense(10, name="logits")(x))


@pytest.mark.parametrize("framework", ["tf_keras", "keras3"])
def test_profile_reads_a_keras_file_of_either_keras(tmp_path, capsys,
                                                    monkeypatch, framework):
  path = str(tmp_path / f"{framework}.keras")
  model = _small(framework)
  model.save(path)
  assert cli.saved_framework(path) == framework
  # The file decides, not TF_USE_LEGACY_KERAS.
  for legacy in ("1", "0"):
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", legacy)
    loaded = cli._load(path)
    assert tps.frameworks.detect(loaded) == framework
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=["tfprune-survey", "profile", path])
  assert info.value.code == 0
  out = capsys.readouterr().out
  assert "stem_conv" in out and "block_conv2" in out and "prunable" in out
  assert f"{tps.count_macs(model):,}" in out


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
def test_h5_files_go_to_tf_keras(tmp_path):
  path = str(tmp_path / "m.h5")
  _small("tf_keras").save(path)
  assert cli.saved_framework(path) == "tf_keras"
  assert tps.frameworks.detect(cli._load(path)) == "tf_keras"


def test_prune_keeps_the_framework_of_a_keras3_file(tmp_path, capsys):
  import keras  # pylint: disable=g-import-not-at-top
  path, out = str(tmp_path / "m.keras"), str(tmp_path / "slim.keras")
  model = _small("keras3")
  model.save(path)
  argv = cli._normalize(["tfprune-survey", "prune", path, "--criterion",
                         "l1", "--ratio", "0.5", "--out", out])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  assert "saved" in capsys.readouterr().out
  assert cli.saved_framework(out) == "keras3"
  slim = keras.saving.load_model(out)
  assert tps.count_macs(slim) < tps.count_macs(model)


def test_usage_tells_jax_and_torch_users_how_to_get_tflite():
  usage = " ".join(cli._USAGE.split())
  assert "JAX or PyTorch backend" in usage
  assert "KERAS_BACKEND=tensorflow tfprune-survey export" in usage


def test_export_on_a_non_tensorflow_backend_says_what_to_do(tmp_path,
                                                            monkeypatch):
  path = str(tmp_path / "m.keras")
  _small("keras3").save(path)
  fw = tps.frameworks.get("keras3")
  monkeypatch.setattr(type(fw), "backend", lambda self: "jax")
  cli.FLAGS(["x", "--out=" + str(tmp_path / "m.tflite")])
  with pytest.raises(cli.app.UsageError, match="KERAS_BACKEND=tensorflow"):
    cli.main(["tfprune-survey", "export", path])


# ---- help --------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_help_prints_our_usage(args, capsys):
  with pytest.raises(SystemExit) as info:
    cli.run(["tfprune-survey"] + args)
  assert info.value.code == 0
  out = capsys.readouterr().out
  assert "usage: tfprune-survey COMMAND" in out
  assert "prune MODEL_PATH" in out and "export MODEL_PATH" in out


@pytest.mark.parametrize("args", [["prune", "--help"], ["prune", "-h"],
                                  ["help", "prune"]])
def test_command_help_lists_its_flags(args, capsys):
  with pytest.raises(SystemExit) as info:
    cli.run(["tfprune-survey"] + args)
  assert info.value.code == 0
  out = capsys.readouterr().out
  assert "usage: tfprune-survey prune MODEL_PATH" in out
  assert "--criterion" in out and "--target-macs" in out and "--tflite" in out
  assert "export MODEL_PATH" not in out and "--bench " not in out


def test_python_dash_m_runs_the_command_line():
  out = subprocess.run([sys.executable, "-m", "tfprune_survey", "--help"],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "usage: tfprune-survey COMMAND" in out.stdout


def test_prune_checks_out_and_quantize_before_any_work(tmp_path, monkeypatch):
  path = str(tmp_path / "m.keras")
  zoo.residual_cnn(input_shape=(12, 12, 1), width=8).save(path)

  def no_work(*args, **kwargs):
    raise AssertionError("the model was loaded before the flags were checked")
  monkeypatch.setattr(cli, "_load", no_work)
  for flags_, match in (
      (["--out=" + str(tmp_path / "nodir" / "s.keras")], "--out.*does not exist"),
      (["--out=" + str(tmp_path / "s.txt")], "--out.*.keras or .h5"),
      (["--out=" + str(tmp_path / "s.keras"), "--quantize=int8"],
       "--quantize.*--tflite")):
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["x", "--criterion=l1", "--ratio=0.3"] + flags_)
    with pytest.raises(cli.app.UsageError, match=match):
      cli.main(["tfprune-survey", "prune", path])


def test_export_of_a_free_input_size_uses_the_datas_size(tmp_path, capsys):
  import numpy as np
  import tf_keras
  path, data = str(tmp_path / "fcn.keras"), str(tmp_path / "d.npz")
  inp = tf_keras.Input((None, None, 1))
  h = tf_keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
  tf_keras.Model(inp, tf_keras.layers.Conv2D(2, 1)(h)).save(path)
  rng = np.random.default_rng(0)
  np.savez(data, x=rng.random((8, 12, 12, 1)).astype("float32"),
           y=np.zeros(8, "int64"))
  out = str(tmp_path / "m.tflite")
  argv = cli._normalize(["tfprune-survey", "export", path, "--out", out,
                         "--data", data, "--verify", "--bench",
                         "--bench-runs", "2"])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  assert "PASS" in capsys.readouterr().out
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + out, "--bench"])
  with pytest.raises(cli.app.UsageError, match="free input size.*--data"):
    cli.main(["tfprune-survey", "export", path])


def test_export_verifies_an_integer_input_on_values_of_its_range(
    tmp_path, capsys, monkeypatch):
  # Random [0, 1) floats cast to a uint8 input are all 0: a verification on
  # them would compare 64 identical samples.
  import os
  import numpy as np
  import tf_keras
  import tflite_export
  seen = []
  real_verify = tflite_export.verify
  monkeypatch.setattr(tflite_export, "verify", lambda m, p, data, **k: (
      seen.append(np.asarray(data)) or real_verify(m, p, data, **k)))
  out = str(tmp_path / "m.tflite")
  for dtype in ("uint8", "int8"):
    path = str(tmp_path / f"{dtype}.keras")
    inp = tf_keras.Input((6, 6, 3), dtype=dtype)
    h = tf_keras.layers.Conv2D(4, 3, padding="same")(
        tf_keras.layers.Rescaling(1 / 255.)(inp))
    tf_keras.Model(inp, tf_keras.layers.Dense(3)(
        tf_keras.layers.GlobalAveragePooling2D()(h))).save(path)
    cli.FLAGS.unparse_flags()
    cli.FLAGS(["x", "--out=" + out, "--verify"])
    assert cli.main(["tfprune-survey", "export", path]) == 0
    x = seen.pop()
    info = np.iinfo(dtype)
    assert x.dtype == np.dtype(dtype) and x.shape == (64, 6, 6, 3)
    assert x.min() == info.min and x.max() == info.max
    assert len(np.unique(x)) == 256
  assert "PASS" in capsys.readouterr().out
  # int32 ids have no range known to be valid: --data is asked for, before
  # any file is written.
  os.remove(out)
  path = str(tmp_path / "ids.keras")
  inp = tf_keras.Input((5,), dtype="int32", name="ids")
  tf_keras.Model(inp, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(
      tf_keras.layers.Embedding(7, 2)(inp)))).save(path)
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + out, "--verify"])
  with pytest.raises(cli.app.UsageError,
                     match="input 'ids' is int32 .*pass --data"):
    cli.main(["tfprune-survey", "export", path])
  assert not os.path.exists(out) and not seen


# ---- models of several inputs ------------------------------------------------

def _saved_two_input_model(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  L = keras.layers
  a, b = keras.Input((8, 8, 3), name="a"), keras.Input((6, 6, 2), name="b")
  x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="same")(a))
  y = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="same")(b))
  path = str(tmp_path / "two_in.keras")
  keras.Model([a, b], L.Dense(3)(L.Add()([x, y]))).save(path)
  return path


def test_export_of_a_two_input_model_times_it_and_refuses_verify_and_data(
    tmp_path, capsys):
  import os
  import numpy as np
  path, out = _saved_two_input_model(tmp_path), str(tmp_path / "m.tflite")
  argv = cli._normalize(["tfprune-survey", "export", path, "--out", out,
                         "--bench", "--bench-runs", "2"])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  row = [l for l in capsys.readouterr().out.splitlines()
         if l.startswith(f"| {path} -> {out} |")]
  assert len(row) == 1 and row[0].split("|")[-2].strip() != "-", row
  # tflite_export.verify takes one input and one output: said before any
  # file is written.
  os.remove(out)
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + out, "--verify", "--bench"])
  with pytest.raises(cli.app.UsageError, match="--verify: .*2 inputs"):
    cli.main(["tfprune-survey", "export", path])
  # --data gives one image input.
  data = str(tmp_path / "d.npz")
  np.savez(data, x=np.zeros((4, 8, 8, 3), "float32"), y=np.zeros(4, "int64"))
  cli.FLAGS.unparse_flags()
  cli.FLAGS(["x", "--out=" + out, "--data=" + data, "--bench"])
  with pytest.raises(cli.app.UsageError, match="--data .*2 inputs"):
    cli.main(["tfprune-survey", "export", path])
  assert not os.path.exists(out)


def test_prune_of_a_two_input_model_exports_and_compares_unverified(
    tmp_path, capsys):
  path = _saved_two_input_model(tmp_path)
  out, lite = str(tmp_path / "slim.keras"), str(tmp_path / "slim.tflite")
  argv = cli._normalize(["tfprune-survey", "prune", path, "--criterion", "l1",
                         "--ratio", "0.5", "--out", out, "--tflite", lite,
                         "--bench-runs", "2"])
  with pytest.raises(SystemExit) as info:
    cli.app.run(cli.main, argv=argv)
  assert info.value.code == 0
  text = capsys.readouterr().out
  assert "| original |" in text and "| slim |" in text
  assert "not verified: the model has 2 inputs" in text
  assert "PASS" not in text and "FAIL" not in text


# ---- integer flags -----------------------------------------------------------

def test_count_flags_are_checked_before_any_work(tmp_path, monkeypatch):
  def no_work(*args, **kwargs):
    raise AssertionError("the model was loaded before the flags were checked")
  monkeypatch.setattr(cli, "_load", no_work)
  path = str(tmp_path / "m.keras")
  lite = "--tflite=" + str(tmp_path / "s.tflite")
  export = ["--out=" + str(tmp_path / "m.tflite"), "--verify", "--bench"]
  prune = ["--criterion=l1", "--ratio=0.5",
           "--out=" + str(tmp_path / "s.keras")]
  for command, flags_, match in (
      ("export", export + ["--data=digits", "--samples=0"], "--samples"),
      ("export", export + ["--data=digits", "--samples=-1000"], "--samples"),
      ("export", export + ["--bench-runs=0"], "--bench-runs"),
      ("prune", prune + ["--data=digits", "--samples=0"], "--samples"),
      ("prune", prune + [lite, "--bench-runs=0"], "--bench-runs"),
      ("prune", prune + ["--round-to=0"], "--round-to"),
      ("prune", prune + ["--min-channels=-1"], "--min-channels")):
    cli.FLAGS.unparse_flags()
    cli.FLAGS(cli._normalize(["x"] + flags_))
    with pytest.raises(cli.app.UsageError, match=f"{match} must be at least"):
      cli.main(["tfprune-survey", command, path])
  assert not list(tmp_path.iterdir())
  # Every integer flag of a command is checked.
  for command, (_, _, names) in cli._COMMAND_HELP.items():
    for name in names:
      if cli.FLAGS[name].flag_type() == "int":
        assert name in cli._COUNT_FLAGS, (command, name)


# ---- exit codes --------------------------------------------------------------

def test_exit_codes_usage_error_2_verification_failed_1(tmp_path, capsys,
                                                       monkeypatch):
  import tflite_export
  path, _ = _saved_small_model(tmp_path)
  out = str(tmp_path / "m.tflite")
  bad_npz = str(tmp_path / "bad.npz")  # 10 samples, 7 labels
  np.savez(bad_npz, x=np.zeros((10, 4), "float32"), y=np.zeros(7))

  def code_of(argv, entry=None):
    cli.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as info:
      if entry is None:
        cli.app.run(cli.main, argv=cli._normalize(["tfprune-survey"] + argv))
      else:
        entry(["tfprune-survey"] + argv)
    return info.value.code, capsys.readouterr()

  # Usage errors: 2, with the message on stderr.
  for argv, message in (
      (["frobnicate"], "unknown command"),
      (["profile", str(tmp_path / "nope.keras")], "does not exist"),
      (["export", path, "--out", out, "--quantize", "int8"],
       "int8 needs --data"),
      (["export", path, "--out", out, "--bench-runs", "0"], "--bench-runs"),
      (["export", path, "--out", out, "--quantize", "int8", "--data",
        bad_npz], "one label per sample"),
      (["export", path, "--out", out, "--quantize", "int8", "--data",
        str(tmp_path / "none.npz")], "--data")):
    code, text = code_of(argv)
    assert code == 2 and message in text.err, (argv, code, text.err[-500:])
  # So are flags absl cannot parse, from the console script.
  for argv, message in ((["export", path, "--quantize", "int9"], "--quantize"),
                        (["export", path, "--frobnicate"], "frobnicate")):
    code, text = code_of(argv, cli.run)
    assert code == 2 and message in text.err, (argv, code, text.err[-500:])
  code, text = code_of(["--helpfull"], cli.run)
  assert code == 0 and "--bench_runs" in text.out
  assert not (tmp_path / "m.tflite").exists()

  # A failed verification: 1.
  class Failed:
    passed = False

    def __str__(self):
      return "verify on 64 samples -> FAIL"
  monkeypatch.setattr(tflite_export, "verify", lambda *a, **k: Failed())
  code, text = code_of(["export", path, "--out", out, "--verify"])
  assert code == 1 and "verification FAILED" in text.out


def test_help_documents_the_exit_codes(capsys):
  with pytest.raises(SystemExit) as info:
    cli.run(["tfprune-survey", "--help"])
  assert info.value.code == 0
  text = " ".join(capsys.readouterr().out.split())
  assert "exit codes: 0 success 1 export --verify" in text
  assert "2 a usage error" in text
  assert "exit code 1 when it fails" in cli.command_usage("export")


def test_demo_latency_row_survives_a_noisy_cached_table(tmp_path, capsys,
                                                         monkeypatch):
  # A slow moment while the per-layer tables are timed can flatten every
  # staircase (here: every timing the same), so that no cut saves predicted
  # time and the target looks unreachable; that table is also cached. The
  # demo measures again, past the cache, instead of dropping its row.
  from tfprune_survey import demo
  from tfprune_survey import latency
  monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "cache"))
  real = latency.LatencyModel.measure
  calls = []

  def measure(model, **kw):
    calls.append(kw.get("use_cache", True))
    with monkeypatch.context() as m:
      if len(calls) == 1:
        m.setattr(latency._Timer, "model_ms", lambda self, model: 0.002)
        m.setattr(latency._Timer, "models_ms",
                  lambda self, models: [0.002] * len(models))
      return real(model, **kw)

  monkeypatch.setattr(latency.LatencyModel, "measure", measure)
  model = zoo.residual_cnn(input_shape=(8, 8, 1), width=16, stem_pool=True)
  result, lm, reason = demo.prune_to_latency(model, "l1", 0.1, verbose=0)
  out = capsys.readouterr().out
  assert reason is None and result is not None
  assert calls == [True, False]   # the second measurement skips the cache
  assert "unreachable" in out and "measuring them again" in out
  # The plan meets the goal on the table it was planned on (the fresh one).
  assert lm.predict(result.model) <= 0.9 * lm.predict() + 1e-12
  assert tps.count_macs(result.model) < tps.count_macs(model)
  # The flat table in the cache was replaced by the fresh one.
  assert latency.LatencyModel.measure(model, verbose=0).to_dict() == \
      lm.to_dict()


def _demo_row(name, target, top1, macs, float_ms):
  return {"criterion": name, "target": target, "top1": top1,
          "delta": 100 * (top1 - 0.9), "oneshot_top1": None, "params": 1000,
          "macs": macs, "float_kb": 10.0, "int8_kb": 4.0,
          "float_ms": float_ms, "int8_ms": float_ms / 2, "verified": True,
          "speedup": 1.0}


def test_demo_plot_leaves_pyplot_backend_and_figures_alone(tmp_path):
  """plot_tradeoff writes the PNG without switching pyplot's backend (a
  notebook's inline one) or touching the caller's open figures."""
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  rows = [_demo_row("unpruned", "-", 0.9, 2000, 1.0),
          _demo_row("l1", "2x", 0.85, 1000, 0.6)]
  with callers_pyplot():
    path = str(tmp_path / "tradeoff.png")
    demo.plot_tradeoff(rows, path, "digits")
  assert png_size(path) == (1100, 462)  # 10x4.2 in, 110 dpi


def test_demo_says_why_the_latency_row_is_skipped(tmp_path, capsys,
                                                   monkeypatch):
  import json
  from tfprune_survey import demo
  from tfprune_survey import latency
  monkeypatch.setenv(latency.CACHE_ENV, str(tmp_path / "cache"))
  # Every timing the same, on every measurement: nothing can be saved.
  monkeypatch.setattr(latency._Timer, "model_ms", lambda self, model: 0.002)
  monkeypatch.setattr(latency._Timer, "models_ms",
                      lambda self, models: [0.002] * len(models))
  model = zoo.residual_cnn(input_shape=(8, 8, 1), width=16, stem_pool=True)
  result, _, reason = demo.prune_to_latency(model, "l1", 0.1, tries=2,
                                            verbose=0)
  out = capsys.readouterr().out
  assert result is None
  assert "unreachable on each of 2 measurements" in reason
  assert "largest predicted latency reduction is 0.000" in reason
  assert out.count("measuring them again") == 1
  # A ValueError that is not about reachability is not hidden as a skip.
  with pytest.raises(ValueError, match="target_latency"):
    demo.prune_to_latency(model, "l1", 1.5, verbose=0)
  # The reason reaches summary.md and results.json.
  rows = [_demo_row("unpruned", "-", 0.9, 2000, 1.0)]
  demo._write(str(tmp_path), rows, demo.table_md(rows), "digits", "", 0.9,
              1.0, {"ft_images": 300, "round_to": 8, "latency_target": 0.1},
              {"l1 @ latency": reason})
  summary = (tmp_path / "summary.md").read_text()
  assert f"**Skipped:** the l1 @ latency row: {reason}." in summary
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["skipped"] == {"l1 @ latency": reason}


class _DataRead(Exception):
  pass


@pytest.mark.parametrize("kwargs,match", [
    (dict(latency_target=1.5), "`latency_target` must be in"),
    (dict(latency_criterion="nope"), "`latency_criterion`: 'nope' is not"),
    (dict(criteria=("l1", "bogus")), "`criteria`: 'bogus' is not"),
    (dict(bench_runs=0), "`bench_runs` must be an int >= 1"),
    (dict(round_to=0), "`round_to` must be an int >= 1"),
    (dict(ft_images=2.5), "`ft_images` must be an int"),
    # The second l1 row's slim files would replace the first's.
    (dict(criteria=("l1", "fpgm", "l1")), r"`criteria` names \['l1'\] more "
     "than once"),
])
def test_demo_checks_its_arguments_before_reading_data(kwargs, match,
                                                       tmp_path, monkeypatch):
  from tfprune_survey import demo

  def load(*args, **kw):
    raise _DataRead()

  monkeypatch.setattr(demo, "load_demo_data", load)
  with pytest.raises((ValueError, TypeError), match=match):
    demo.run(str(tmp_path), **kwargs)
  # Good arguments get as far as the data; one criterion may be a string
  # (not its letters), and no latency row needs no latency criterion.
  with pytest.raises(_DataRead):
    demo.run(str(tmp_path), criteria="l1", latency_target=None,
             latency_criterion="nope")


@pytest.mark.parametrize("config,says,not_says", [
    ({"round_to": 1, "latency_target": 0.1, "latency_criterion": "fpgm"},
     ["widths of any count", "by fpgm to 90% of its float TFLite latency"],
     ["multiples of 8", "by l1", "half its float"]),
    ({"round_to": 16, "latency_target": None, "latency_criterion": "l1"},
     ["widths multiples of 16)"], ["TFLite latency as measured per layer"]),
    ({"round_to": 8, "latency_target": 0.5, "latency_criterion": "l1"},
     ["widths multiples of 8", "by l1 to 50% of its float TFLite latency"],
     []),
])
def test_demo_summary_describes_the_settings_it_ran(config, says, not_says,
                                                    tmp_path):
  from tfprune_survey import demo
  rows = [_demo_row("unpruned", "-", 0.9, 2000, 1.0),
          _demo_row("l1", "MACs", 0.88, 1000, 0.6)]
  demo._write(str(tmp_path), rows, demo.table_md(rows), "digits", "", 0.9,
              1.0, {"ft_images": 300, **config})
  summary = (tmp_path / "summary.md").read_text()
  for text in says:
    assert text in summary, text
  for text in not_says:
    assert text not in summary, text


@pytest.mark.parametrize("build,kwargs,error,match", [
    (zoo.residual_cnn, dict(classes=0), ValueError, "`classes` must be"),
    (zoo.residual_cnn, dict(width=0), ValueError, "`width` must be"),
    (zoo.residual_cnn, dict(input_shape=(32, 32)), ValueError,
     r"`input_shape` must be \(height, width, channels\)"),
    (zoo.residual_cnn, dict(input_shape=(2, 2, 1), stem_pool=True),
     ValueError, r"`input_shape` \(2, 2, 1\) is too small.*at least 4"),
    (zoo.resnet_cifar, dict(depth=20.0), TypeError,
     "`depth` must be an int 6n\\+2"),
    (zoo.resnet_cifar, dict(depth=20, widths=()), ValueError,
     "`widths` must not be empty"),
    (zoo.vgg_small, dict(input_shape=(4, 4, 3)), ValueError,
     r"too small.*3 times.*at least 8"),
    (zoo.vgg_cifar, dict(cfg=(64, "m", 128)), ValueError,
     r"`cfg\[1\]` must be a width or \"M\""),
    (zoo.vgg_cifar, dict(input_shape=(16, 16, 3)), ValueError,
     r"too small.*5 times.*at least 32"),
    (zoo.resnext_small, dict(group_width=0), ValueError,
     "`group_width` must be"),
])
def test_zoo_errors_name_the_argument(build, kwargs, error, match):
  # classes=0 built a model with no logits on tf_keras; the rest failed
  # inside Keras ('filters', 'units', a pooling layer) or with IndexError.
  with pytest.raises(error, match=match):
    build(**kwargs)


def test_zoo_accepts_what_it_did():
  # Lists, numpy ints and free sizes are still fine; the smallest inputs
  # that survive the poolings build.
  import numpy as np
  m = zoo.residual_cnn(input_shape=[np.int64(4), 4, 1], stem_pool=True,
                       width=np.int32(8))
  assert m.output_shape == (None, 10)
  assert zoo.residual_cnn(input_shape=(None, None, 3)).output_shape == \
      (None, 10)
  assert zoo.vgg_small(input_shape=(8, 8, 1), widths=[4, 4, 4]).output_shape \
      == (None, 10)
  assert zoo.resnet_cifar(8, input_shape=(3, 3, 1)).count_params() > 0
