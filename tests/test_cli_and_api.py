"""The public API surface and the command line."""

import subprocess
import sys

import pytest

import tfprune_survey as tps
from tfprune_survey import cli
from tfprune_survey import zoo

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


@pytest.mark.slow
def test_demo_runs_and_writes_summary(tmp_path, capsys):
  from tfprune_survey import demo
  rows = demo.run(str(tmp_path))
  assert len(rows) == 2
  for r in rows:
    assert r["macs"][1] < 0.5 * r["macs"][0]
    assert r["rel"] <= 1e-4
  text = (tmp_path / "summary.md").read_text()
  assert "MobileNetV2" in text and "residual CNN" in text
  assert "MACs" in capsys.readouterr().out


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
  path, data = str(tmp_path / "m.keras"), str(tmp_path / "d.npz")
  rng = np.random.default_rng(0)
  np.savez(data, x=rng.random((40, 12, 12, 1)).astype("float32"),
           y=rng.integers(0, 10, 40))
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
