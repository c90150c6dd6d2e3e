"""Bad input, as a new user would try it (issue 13, section 6), on both Kerases.

Each row gets a ValueError (or, for the CLI, one line and exit code 2) that
names what is wrong and what is expected, instead of a TensorFlow traceback
or a result built from NaN scores.
"""

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import tfprune_survey as tps
from tfprune_survey import cli

FRAMEWORKS = ["tf_keras", "keras3"]


def _keras(framework):
  if framework == "tf_keras":
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  else:
    import keras  # pylint: disable=g-import-not-at-top
  return keras


def _build(framework):
  """(8, 8, 1) -> 3 logits; groups 'c1' (4 channels) and 'c2' (16)."""
  keras = _keras(framework)
  keras.utils.set_random_seed(0)   # the overflow test depends on the weights
  L = keras.layers
  inp = keras.Input((8, 8, 1))
  x = L.Conv2D(4, 3, activation="relu", name="c1")(inp)
  x = L.Conv2D(16, 3, name="c2")(x)
  x = L.BatchNormalization(name="bn")(x)
  x = L.ReLU()(x)
  x = L.GlobalAveragePooling2D()(x)
  return keras.Model(inp, L.Dense(3, name="out")(x), name="small")


@pytest.fixture(scope="module", params=FRAMEWORKS)
def model(request):
  return _build(request.param)


def _data(n=16, seed=0, shape=(8, 8, 1)):
  rng = np.random.default_rng(seed)
  return (rng.random((n,) + shape).astype("float32"),
          rng.integers(0, 3, n).astype("int64"))


def _dataset(x, y=None, batch=8):
  items = (x,) if y is None else (x, y)
  return tf.data.Dataset.from_tensor_slices(items).batch(batch)


# ---- NaN in the data or the weights ------------------------------------------

@pytest.mark.parametrize("criterion", ["taylor", "taylor_fo", "apoz"])
@pytest.mark.parametrize("form", ["numpy", "dataset"])
def test_nan_in_data(model, criterion, form):
  x, y = _data()
  x[11, 2, 2, 0] = np.nan
  data = (x, y) if form == "numpy" else _dataset(x, y)
  with pytest.raises(ValueError) as info:
    tps.prune(model, criterion, data=data, ratio=0.5)
  text = str(info.value)
  batch = 1 if form == "numpy" else 2  # numpy: batches of 32; dataset: 8
  assert "NaN or inf" in text and "`data`" in text
  assert f"x of batch {batch}" in text and criterion in text


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_nan_in_half_precision_data(model, dtype):
  """bfloat16 (not a numpy floating type) is checked like float16."""
  x, y = _data()
  x[11, 2, 2, 0] = np.inf
  x[12, 2, 2, 0] = np.nan
  data = _dataset(tf.cast(x, dtype), y)
  with pytest.raises(ValueError, match=r"`data` holds NaN or inf: 2 values "
                     r"in the x of batch 2"):
    tps.score(model, "taylor", data)


def _with_nan(model, weight, index=(Ellipsis, 2)):
  """A copy of `model` whose weight named `weight` holds NaN at `index`."""
  keras = tps.frameworks.of(model).keras
  broken = keras.models.clone_model(model)
  names = [getattr(w, "path", None) or w.name for w in model.weights]
  i = next(i for i, n in enumerate(names) if n.startswith(weight))
  weights = [w.copy() for w in model.get_weights()]
  weights[i][index] = np.nan
  broken.set_weights(weights)
  return broken


# NaN in c1's kernel reaches l1/fpgm's scores of c1. For 'taylor' it is
# swallowed by the ReLU after c1 (the channel reads as dead, scores 0, and is
# pruned first: a finite, sensible result), so the NaN goes into the logits
# instead, where it poisons the loss and every gradient.
@pytest.mark.parametrize("criterion,weight", [
    ("l1", "c1/kernel"), ("fpgm", "c1/kernel"), ("slimming", "bn/gamma"),
    ("taylor", "out/kernel"), ("taylor_fo", "out/kernel")])
def test_nan_in_weights_names_group_and_weight(model, criterion, weight):
  broken = _with_nan(model, weight)
  data = _data() if criterion.startswith("taylor") else None
  with pytest.raises(ValueError) as info:
    tps.prune(broken, criterion, data=data, ratio=0.5)
  text = str(info.value)
  group = "c2" if weight.startswith("bn") else "c1"
  assert "not finite" in text and f"group '{group}'" in text
  assert weight in text and "NaN or inf in weight" in text


def test_sensitivity_and_iterative_refuse_nan_scores(model):
  keras = tps.frameworks.of(model).keras
  broken = keras.models.clone_model(model)
  weights = [w.copy() for w in model.get_weights()]
  weights[0][...] = np.inf
  broken.set_weights(weights)
  with pytest.raises(ValueError, match="not finite"):
    tps.sensitivity(broken, "l1", eval_data=_data(), verbose=0)
  with pytest.raises(ValueError, match="not finite"):
    tps.iterative_prune(broken, "l1", target_macs=0.3, finetune=lambda m: m,
                        verbose=0)


def test_overflow_without_nan_says_so(model):
  x, y = _data()
  x *= 3e38  # finite, but the activations overflow
  with pytest.raises(ValueError, match="overflowed"):
    tps.prune(model, "taylor", data=(x, y), ratio=0.5)


# ---- data of the wrong shape ---------------------------------------------------

@pytest.mark.parametrize("criterion", ["apoz", "taylor"])
@pytest.mark.parametrize("form", ["x", "xy", "dataset"])
def test_wrong_input_shape(model, criterion, form):
  x, y = _data(shape=(10, 10, 1))
  data = {"x": x, "xy": (x, y), "dataset": _dataset(x, y)}[form]
  if form == "x" and criterion == "taylor":
    data = (x, y)
  with pytest.raises(ValueError) as info:
    tps.prune(model, criterion, data=data, ratio=0.5)
  text = str(info.value)
  assert "(batch, 8, 8, 1)" in text  # expected
  assert ("(16, 10, 10, 1)" if form != "dataset" else
          "(batch, 10, 10, 1)") in text  # given


def test_wrong_shape_is_found_before_any_work(model, monkeypatch):
  # The criterion never runs: the check reads shapes only.
  crit = tps.criteria.get("apoz")
  monkeypatch.setattr(type(crit), "score", lambda self, ctx: 1 / 0)
  with pytest.raises(ValueError, match="expects inputs of shape"):
    tps.score(model, crit, _data(shape=(8, 8, 3))[0])


def test_unbatched_dataset_gets_a_hint(model):
  x, _ = _data()
  with pytest.raises(ValueError, match=r"\.batch\(n\)"):
    tps.score(model, "apoz", tf.data.Dataset.from_tensor_slices(x))


def test_wrong_shape_of_eval_and_recalibration_data(model):
  bad = _data(shape=(4, 4, 1))
  with pytest.raises(ValueError, match="`eval_data`"):
    tps.sensitivity(model, "l1", eval_data=bad, verbose=0)
  with pytest.raises(ValueError, match="`recalibrate`"):
    tps.prune(model, "l1", ratio=0.5, recalibrate=bad[0])
  with pytest.raises(ValueError, match="`eval_data`"):
    tps.iterative_prune(model, "l1", target_macs=0.3, finetune=lambda m: m,
                        eval_data=bad, verbose=0)


# ---- labels outside the model's classes ----------------------------------------

@pytest.mark.parametrize("criterion", ["taylor", "taylor_fo"])
@pytest.mark.parametrize("form", ["numpy", "dataset"])
def test_labels_outside_the_classes(model, criterion, form):
  x, y = _data()
  y = y + 4  # 4..6, the model has 3 outputs
  data = (x, y) if form == "numpy" else _dataset(x, y)
  with pytest.raises(ValueError) as info:
    tps.prune(model, criterion, data=data, ratio=0.5)
  text = str(info.value)
  assert f"labels from {y.min()} to {y.max()}" in text
  assert "3 outputs" in text and "[0, 2]" in text


@pytest.mark.parametrize("form", ["numpy", "dataset"])
def test_fractional_labels_are_not_truncated(model, form):
  x, y = _data()
  y = y.astype("float32")
  y[-1] = 1.5   # in the second batch of the dataset
  data = (x, y) if form == "numpy" else _dataset(x, y)
  with pytest.raises(ValueError, match=r"`data` has labels that are not "
                     r"whole numbers \(e.g. 1.5\).*'taylor'"):
    tps.prune(model, "taylor", data=data, ratio=0.5)
  # whole numbers stored as floats are class indices
  labels = _data()[1]
  whole = tps.score(model, "taylor", (x, labels.astype("float32")))
  ints = tps.score(model, "taylor", (x, labels))
  for name in ints:
    np.testing.assert_allclose(whole[name], ints[name], rtol=1e-6)


def test_scalar_labels_name_the_argument(model):
  x, _ = _data()
  with pytest.raises(ValueError, match=r"`data`: y is a scalar array, with "
                     r"no batch axis"):
    tps.score(model, "taylor", (x, np.array(1)))


def test_negative_labels_in_a_later_batch(model):
  x, y = _data()
  y[-1] = -1  # in the second batch of the dataset
  with pytest.raises(ValueError, match="labels from -1"):
    tps.prune(model, "taylor", data=_dataset(x, y), ratio=0.5)


def test_one_hot_labels(model):
  x, y = _data()
  with pytest.raises(ValueError, match="look one-hot"):
    tps.prune(model, "taylor", data=(x, np.eye(3)[y]), ratio=0.5)
  # With a categorical loss, one-hot labels must have one column per output.
  keras = tps.frameworks.of(model).keras
  compiled = keras.models.clone_model(model)
  compiled.set_weights(model.get_weights())
  compiled.compile(loss=keras.losses.CategoricalCrossentropy(
      from_logits=True))
  with pytest.raises(ValueError, match="3 columns"):
    tps.prune(compiled, "taylor", data=(x, np.eye(5)[y]), ratio=0.5)
  result = tps.prune(compiled, "taylor", data=(x, np.eye(3)[y]), ratio=0.5)
  assert all(np.isfinite(s).all() for s in result.scores.values())


def test_labels_are_required(model):
  x, _ = _data()
  with pytest.raises(ValueError, match="'taylor' needs labels"):
    tps.prune(model, "taylor", data=x, ratio=0.5)
  with pytest.raises(ValueError, match="'taylor_fo' needs labels"):
    tps.prune(model, "taylor_fo", data=_dataset(x), ratio=0.5)


def test_good_data_still_prunes(model):
  result = tps.prune(model, "taylor", data=_dataset(*_data()), ratio=0.5)
  assert set(result.scores) == {"c1", "c2"}
  assert all(np.isfinite(s).all() for s in result.scores.values())


# ---- min_channels larger than a group: clipped (documented in tps.prune) --------

def test_min_channels_larger_than_a_group_keeps_it_whole(model):
  result = tps.prune(model, "l1", ratio=0.9, min_channels=8)
  kept = {gid: (k, n) for gid, k, n in result.report.groups}
  assert kept["c1"] == (4, 4)  # smaller than min_channels: kept whole
  assert kept["c2"] == (8, 16)  # clipped at min_channels
  assert "c1" not in result.keep
  # min_channels rounds up to round_to: 8 -> 12 here.
  result = tps.prune(model, "l1", ratio=0.9, min_channels=8, round_to=6)
  kept = {gid: k for gid, k, _ in result.report.groups}
  assert kept == {"c1": 4, "c2": 12}


def test_min_channels_larger_than_every_group(model):
  result = tps.prune(model, "l1", ratio=0.5, min_channels=64)
  assert result.keep == {}
  assert result.report.macs_after == result.report.macs_before
  with pytest.raises(ValueError, match="largest reachable MACs reduction is "
                     "0.000"):
    tps.prune(model, "l1", target_macs=0.3, min_channels=64)


def test_prune_docstring_documents_the_clipping():
  doc = " ".join(tps.prune.__doc__.split())
  assert "A group with fewer channels than that is clipped" in doc


# ---- the CLI on a file that is not a Keras model ----------------------------------

def _corrupt_files(tmp_path):
  paths = {}
  paths["random bytes"] = tmp_path / "random.keras"
  paths["random bytes"].write_bytes(np.random.default_rng(0).bytes(512))
  paths["text"] = tmp_path / "notes.keras"
  paths["text"].write_text("not a model\n")
  paths["zip without metadata"] = tmp_path / "nometa.keras"
  with zipfile.ZipFile(paths["zip without metadata"], "w") as z:
    z.writestr("hello.txt", "hi")
  for version in ("3.15.1", "2.21.0"):
    key = f"keras {version} archive with a bad config"
    paths[key] = tmp_path / f"bad_config_{version[0]}.keras"
    with zipfile.ZipFile(paths[key], "w") as z:
      z.writestr("metadata.json", '{"keras_version": "%s"}' % version)
      z.writestr("config.json", "{not json")
  paths["truncated"] = tmp_path / "truncated.keras"
  _build("keras3").save(str(tmp_path / "whole.keras"))
  whole = (tmp_path / "whole.keras").read_bytes()
  paths["truncated"].write_bytes(whole[:len(whole) // 2])
  paths["corrupt h5"] = tmp_path / "corrupt.h5"
  paths["corrupt h5"].write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
  return paths


@pytest.fixture(autouse=True)
def fresh_flags():
  cli.FLAGS.unparse_flags()
  yield
  cli.FLAGS.unparse_flags()


@pytest.mark.parametrize("command", ["profile", "prune", "export"])
def test_cli_corrupt_model_file_is_one_line_and_exit_2(tmp_path, capsys,
                                                       command):
  flags = {"profile": [],
           "prune": ["--criterion", "l1", "--ratio", "0.5", "--out",
                     str(tmp_path / "o.keras")],
           "export": ["--out", str(tmp_path / "o.tflite")]}[command]
  for kind, path in _corrupt_files(tmp_path).items():
    cli.FLAGS.unparse_flags()
    argv = cli._normalize(["tfprune-survey", command, str(path)] + flags)
    with pytest.raises(SystemExit) as info:
      cli.app.run(cli.main, argv=argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert info.value.code == 2, (kind, captured.err)
    assert len(lines) == 1, (kind, captured.err)
    assert "could not be loaded as a Keras model" in lines[0], kind
    assert str(path) in lines[0] and "Traceback" not in captured.err


def test_cli_corrupt_model_file_in_a_process(tmp_path):
  path = tmp_path / "random.keras"
  path.write_bytes(b"PK\x03\x04 this is not a zip archive")
  out = subprocess.run(
      [sys.executable, "-m", "tfprune_survey.cli", "profile", str(path)],
      capture_output=True, text=True, timeout=120)
  assert out.returncode == 2
  assert "Traceback" not in out.stderr
  ours = [l for l in out.stderr.splitlines() if "tfprune-survey" in l]
  assert ours == [f"tfprune-survey profile: {path} could not be loaded as a "
                  "Keras model: it is not a zip archive, as a .keras file is "
                  "(is the file truncated or corrupt?)"]


# ---- arguments that only make sense with another ----------------------------

def test_latency_without_target_latency_is_an_error(model):
  from tests.latency_tables import fake_table  # pylint: disable=g-import-not-at-top
  for value in (fake_table(), "not a latency model"):
    with pytest.raises(ValueError, match="`latency`.*`target_latency`"):
      tps.prune(model, "l1", ratio=0.5, latency=value)


def test_bad_recalibrate_type_names_it_before_any_work(model, monkeypatch):
  from tfprune_survey import pruner  # pylint: disable=g-import-not-at-top

  def no_scoring(*args, **kwargs):
    raise AssertionError("scored before `recalibrate` was checked")
  monkeypatch.setattr(pruner, "score_fn", no_scoring)
  for bad in ("x", 3, [1, 2]):
    with pytest.raises(TypeError, match="`recalibrate`"):
      tps.prune(model, "l1", ratio=0.5, recalibrate=bad)


# ---- the loss of a model with several outputs --------------------------------

def _two_outputs(framework, dict_outputs=False):
  """(4,) -> 'a': 3 logits and 'b': one value; with `dict_outputs`, outputs
  {'z_cls': a, 'reg': b}, which Keras flattens as [b, a] (sorted keys)."""
  keras = _keras(framework)
  inp = keras.Input((4,))
  a = keras.layers.Dense(3, name="a")(inp)
  b = keras.layers.Dense(1, name="b")(inp)
  return keras.Model(inp, {"z_cls": a, "reg": b} if dict_outputs else [a, b],
                     name="two")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dict_of_losses_gives_the_first_outputs_loss(framework):
  from tfprune_survey import losses  # pylint: disable=g-import-not-at-top
  keras = _keras(framework)
  logits = np.array([[1., 2., 0.5], [0., -1., 3.]], "float32")
  labels = np.array([1, 2])
  scce = (np.log(np.exp(logits).sum(1)) - logits[np.arange(2), labels])
  model = _two_outputs(framework)
  # the dict's first entry is the second output's loss
  model.compile(loss={"b": "mse", "a": keras.losses.SparseCategoricalCrossentropy(
      from_logits=True)})
  np.testing.assert_allclose(
      np.asarray(losses.per_sample_loss(model)(labels, logits)), scce,
      rtol=1e-5)
  assert losses.compiled_loss(model) is model.loss["a"]
  # labels are checked as classes of output 'a'
  x = np.zeros((2, 4), "float32")
  with pytest.raises(ValueError, match="labels from 1 to 5.*3 outputs"):
    tps.score(model, "taylor", (x, np.array([1, 5])))
  # a dict of outputs: outputs[0] is the one under the first sorted key
  model = _two_outputs(framework, dict_outputs=True)
  model.compile(loss={"z_cls": "sparse_categorical_crossentropy",
                      "reg": "mse"})
  assert losses.compiled_loss(model) == "mse"
  p = np.array([[0.5], [2.0]], "float32")
  np.testing.assert_allclose(
      np.asarray(losses.per_sample_loss(model)(np.array([1.0, 0.0]), p)),
      [0.25, 4.0], rtol=1e-6)
  # a dict with no loss for the first output: the default loss
  model = _two_outputs(framework)
  model.compile(loss={"b": "mse"})
  assert losses.compiled_loss(model) is None


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loss_subclass_with_constructor_arguments(framework):
  """A Loss subclass whose config leaves out its constructor's arguments
  (no get_config of its own) trains in Keras; it scores too."""
  from tfprune_survey import losses  # pylint: disable=g-import-not-at-top
  keras = _keras(framework)

  class Scaled(keras.losses.Loss):

    def __init__(self, weight, **kwargs):
      super().__init__(**kwargs)
      self.weight = weight

    def call(self, y_true, y_pred):
      return self.weight * tf.reduce_mean(tf.square(y_true - y_pred), -1)

  keras.utils.set_random_seed(0)
  inp = keras.Input((4,))
  h = keras.layers.Dense(3, name="h")(inp)
  model = keras.Model(inp, keras.layers.Dense(2)(h))
  loss = Scaled(3.0)
  model.compile(loss=loss)
  y = np.array([[1., 2.], [0., 0.], [1., -1.]], "float32")
  p = np.array([[0., 0.], [1., 3.], [1., 1.]], "float32")
  np.testing.assert_allclose(
      np.asarray(losses.per_sample_loss(model)(y, p)),
      3.0 * ((y - p) ** 2).mean(-1), rtol=1e-6)
  assert loss.reduction != "none"   # the compiled loss is left as it was
  x = np.random.default_rng(0).random((6, 4)).astype("float32")
  scores = tps.score(model, "taylor", (x, np.zeros((6, 2), "float32")))
  assert np.all(np.isfinite(scores["h"]))


# ---- the offline data sets ---------------------------------------------------

def _write_idx(path, array):
  import gzip  # pylint: disable=g-import-not-at-top
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.tobytes())


def test_fashion_mnist_files_that_are_cut_or_corrupt(tmp_path):
  from tfprune_survey import data  # pylint: disable=g-import-not-at-top
  images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
  labels = np.array([1, 2, 9])
  names = data._FASHION_FILES  # pylint: disable=protected-access
  for name, array in zip(names, (images, labels, images[:2], labels[:2])):
    _write_idx(tmp_path / name, array)
  (xtr, ytr), (xte, yte) = data.load_fashion_mnist(str(tmp_path))
  np.testing.assert_allclose(xtr[..., 0], images / 255.0, rtol=1e-6)
  assert xtr.dtype == np.float32 and xte.shape == (2, 28, 28, 1)
  assert ytr.tolist() == [1, 2, 9] and yte.dtype == np.int64
  # a file cut short (its header gives more values than it holds)
  import gzip  # pylint: disable=g-import-not-at-top
  raw = (tmp_path / names[0]).read_bytes()
  with gzip.open(tmp_path / names[0], "rb") as f:
    whole = f.read()
  with gzip.open(tmp_path / names[0], "wb") as f:
    f.write(whole[:-100])
  with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz holds "
                     r"2252 values, but its header gives shape \(3, 28, 28\)"):
    data.load_fashion_mnist(str(tmp_path))
  # a gzip stream cut short
  (tmp_path / names[0]).write_bytes(raw[:10])
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz could not "
                     "be read as a gzipped IDX file"):
    data.load_fashion_mnist(str(tmp_path))
  # images and labels of different counts
  _write_idx(tmp_path / names[0], images)
  _write_idx(tmp_path / names[1], labels[:2])
  with pytest.raises(ValueError, match="do not give one label per image"):
    data.load_fashion_mnist(str(tmp_path))


def test_npz_data_with_unpaired_arrays(tmp_path):
  from tfprune_survey import data  # pylint: disable=g-import-not-at-top
  x = np.arange(20, dtype="float32").reshape(10, 2)
  y = np.arange(10) % 3
  path = tmp_path / "d.npz"
  np.savez(path, x=x, y=y)
  (xtr, ytr), (xte, yte) = data.load(path)   # a pathlib.Path too
  np.testing.assert_array_equal(xtr, x[:8])
  np.testing.assert_array_equal(yte, y[8:])
  for arrays, match in [
      ({"x": x, "y": y[:7]}, r"x \(shape \(10, 2\)\) and y \(shape \(7,\)\) "
       "must hold one label per sample"),
      ({"x_train": x, "y_train": y[:3]}, "x_train .* and y_train"),
      ({"x_train": x, "y_train": y, "x_test": x[:2]},
       "x_test and y_test come together")]:
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"d.npz: {match}"):
      data.load(str(path))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_labels_given_per_output_score_with_the_first_outputs(framework):
  """y as Keras' fit takes it for several outputs (a list in output order,
  a dict by output name) scores as the first output's labels alone."""
  keras = _keras(framework)
  keras.utils.set_random_seed(0)
  inp = keras.Input((4,))
  h = keras.layers.Dense(5, activation="relu", name="h")(inp)
  model = keras.Model(inp, [keras.layers.Dense(3, name="a")(h),
                            keras.layers.Dense(1, name="b")(h)], name="two")
  model.compile(loss=[keras.losses.SparseCategoricalCrossentropy(
      from_logits=True), "mse"])
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 4)).astype("float32")
  ya, yb = rng.integers(0, 3, 8), rng.normal(size=(8, 1)).astype("float32")
  expected = tps.score(model, "taylor", (x, ya))["h"]
  for data in [(x, [ya, yb]), (x, {"b": yb, "a": ya}),
               tf.data.Dataset.from_tensor_slices((x, (ya, yb))).batch(4)]:
    np.testing.assert_allclose(tps.score(model, "taylor", data)["h"],
                               expected, rtol=1e-5)
  with pytest.raises(ValueError, match="labels from 0 to 7.*3 outputs"):
    tps.score(model, "taylor", (x, [np.arange(8), yb]))
  with pytest.raises(ValueError, match=r"`data` gives 3 label arrays, but "
                     r"model 'two' has 2 outputs"):
    tps.score(model, "taylor", (x, [ya, yb, yb]))
  with pytest.raises(ValueError, match=r"`data` gives labels for \['b'\], "
                     r"but none for the first output of model 'two' \('a'\)"):
    tps.score(model, "taylor", (x, {"b": yb}))
