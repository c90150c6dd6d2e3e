"""The `tfprune-survey` command line: an absl app with subcommands.

  tfprune-survey profile MODEL_PATH     per-layer params/MACs and channel groups
  tfprune-survey demo                   train, prune (4 criteria), fine-tune, slim,
                                        export and time on Fashion-MNIST
  tfprune-survey prune MODEL_PATH --criterion C (--ratio R | --target-macs T)
                 [--data fashion_mnist|digits|PATH.npz] --out SLIM.keras
                 [--tflite SLIM.tflite [--quantize MODE]]
  tfprune-survey export MODEL_PATH --out M.tflite [--quantize MODE]
                 [--data ...] [--verify] [--bench]
  tfprune-survey compare [--model M] [--dataset D] [--ours RESULTS.json]
                 [--plot OUT.png] [--published CSV]

Exit codes: 0 success (help included); 1 `export --verify` found the .tflite
file disagreeing with the Keras model ("verification FAILED"); 2 a usage
error: an unknown command or flag, a bad flag value, a missing MODEL_PATH or
one that cannot be loaded as a Keras model, or flags that do not fit the
model (one message on stderr, before any file is written). An unexpected
error ends in a Python traceback, and Python's exit code 1.
"""

import re
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_boolean("groups", True, "profile: also list the channel groups.")
flags.DEFINE_string("out_dir", "demo_results", "demo: where to write results.")
flags.DEFINE_string("criterion", None, "prune: a name from tps.criteria.names().")
flags.DEFINE_float("ratio", None, "prune: fraction of channels to remove.")
flags.DEFINE_float("target_macs", None, "prune: fraction of MACs to remove.")
flags.DEFINE_string("data", None, "prune/export: fashion_mnist, digits or "
                    "PATH.npz (needed by data-dependent criteria and int8).")
flags.DEFINE_integer("samples", 1024, "prune/export: training samples used "
                     "to score or calibrate.")
flags.DEFINE_string("out", None, "prune: the slim model to write (.keras or "
                    ".h5); export: the .tflite file to write.")
flags.DEFINE_enum("scope", "global", ["global", "local"], "prune: ranking scope.")
flags.DEFINE_integer("round_to", 1, "prune: kept counts are multiples of this.")
flags.DEFINE_integer("min_channels", 1, "prune: channels every group keeps.")
flags.DEFINE_string("tflite", None, "prune: also export the slim model to this "
                    ".tflite path, and compare it with the original's.")
flags.DEFINE_enum("quantize", "none", ["none", "dynamic", "float16", "int8"],
                  "prune/export: TFLite quantization; int8 needs --data.")
flags.DEFINE_boolean("verify", False, "export: check the .tflite file against "
                     "the Keras model on --data (or random inputs); for a "
                     "model of one input and one output.")
flags.DEFINE_boolean("bench", False, "export: time the .tflite file (batch 1, "
                     "1 thread).")
flags.DEFINE_integer("bench_runs", 100, "export/prune: timed runs per model.")
flags.DEFINE_string("model", None, "compare: only this model (e.g. ResNet56; "
                    "case, '-' and '_' ignored).")
flags.DEFINE_string("dataset", None, "compare: only this data set (e.g. "
                    "CIFAR10).")
flags.DEFINE_string("ours", None, "compare: a benchmarks/survey_comparison.py "
                    "JSON whose runs are shown beside the published ones.")
flags.DEFINE_string("plot", None, "compare: write a delta top-1 against "
                    "FLOPs-reduction plot here (.png).")
flags.DEFINE_string("published", None, "compare: the published-results CSV "
                    "(default: benchmarks/published_results.csv).")

_USAGE = """usage: tfprune-survey COMMAND [ARGS] [--flags]

commands:
  profile MODEL_PATH   print a per-layer table (params, MACs) and channel groups
                       of a saved model: a .keras file saved by Keras 3 or by
                       tf_keras (the file says which), or a tf_keras .h5 file
                       or SavedModel folder
  demo                 train a residual CNN on Fashion-MNIST (digits if absent);
                       prune it to half the MACs with l1, fpgm, taylor and
                       slimming; fine-tune, slim, export float and int8 TFLite,
                       verify and time; write demo_results/
  prune MODEL_PATH     --criterion C (--ratio R | --target-macs T)
                       [--data fashion_mnist|digits|PATH.npz] --out SLIM.keras
                       [--scope global|local] [--round-to N] [--min-channels N]
                       [--tflite SLIM.tflite [--quantize none|dynamic|float16|int8]]
  export MODEL_PATH    --out M.tflite [--quantize none|dynamic|float16|int8]
                       [--data fashion_mnist|digits|PATH.npz] [--verify] [--bench]
  compare              published pruning results as a method x model/dataset
                       pivot sorted by reduction: [--model M] [--dataset D]
                       [--ours RESULTS.json] [--plot OUT.png] [--published CSV]

Models keep their Keras: prune writes a model of the Keras that saved MODEL_PATH.
On the JAX or PyTorch backend of Keras 3, save the model as .keras and run
`KERAS_BACKEND=tensorflow tfprune-survey export M.keras --out M.tflite` (a
TensorFlow-backend process) to get TFLite.
A MODEL_PATH that cannot be loaded gives one line on stderr and exit code 2.

exit codes:
  0  success
  1  export --verify: the .tflite file disagrees with the Keras model
     ("verification FAILED")
  2  a usage error: an unknown command or flag, a bad flag value, a missing
     MODEL_PATH or one that cannot be loaded, flags that do not fit the model
  (an unexpected error ends in a Python traceback and exit code 1)
"""

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(app.UsageError):
  """A usage error: a message on stderr and exit code 2 (absl's default is
  1, which is kept for a failed verification)."""

  def __init__(self, message, exitcode=EXIT_USAGE):
    super().__init__(message, exitcode)


# Each command's synopsis and flags, for `tfprune-survey COMMAND --help`.
_COMMAND_HELP = {
    "profile": ("MODEL_PATH [--nogroups]",
                "Prints a per-layer table (params, MACs) and the channel "
                "groups of a saved model.", ["groups"]),
    "demo": ("[--out-dir DIR]",
             "Trains a residual CNN on Fashion-MNIST (digits if absent), "
             "prunes it with l1, fpgm, taylor and slimming, fine-tunes, "
             "exports and times.", ["out_dir"]),
    "prune": ("MODEL_PATH --criterion C (--ratio R | --target-macs T) "
              "--out SLIM.keras\n    [--data fashion_mnist|digits|PATH.npz] "
              "[--scope global|local] [--round-to N] [--min-channels N]\n"
              "    [--tflite SLIM.tflite [--quantize none|dynamic|float16|"
              "int8]]",
              "Prunes a saved model one-shot and saves the slim model (of "
              "the Keras that saved MODEL_PATH); with --tflite, also exports "
              "it and compares it with the original in TFLite.",
              ["criterion", "ratio", "target_macs", "out", "data", "samples",
               "scope", "round_to", "min_channels", "tflite", "quantize",
               "bench_runs"]),
    "export": ("MODEL_PATH --out M.tflite [--quantize none|dynamic|float16|"
               "int8]\n    [--data fashion_mnist|digits|PATH.npz] [--verify] "
               "[--bench]",
               "Converts a saved model to TFLite; optionally verifies it "
               "against Keras (exit code 1 when it fails) and times it.",
               ["out", "quantize", "data", "samples", "verify", "bench",
                "bench_runs"]),
    "compare": ("[--model M] [--dataset D] [--ours RESULTS.json] "
                "[--plot OUT.png] [--published CSV]",
                "Shows published pruning results as a method x model/data "
                "set pivot, with your own runs beside them.",
                ["model", "dataset", "ours", "plot", "published"]),
}
_HELP_ARGS = ("-h", "--help", "-help", "--helpshort", "-?")


def command_usage(command):
  """The usage of one command: synopsis, what it does, and its flags."""
  synopsis, what, names = _COMMAND_HELP[command]
  lines = [f"usage: tfprune-survey {command} {synopsis}", "", what, "",
           "flags:"]
  for name in names:
    flag = FLAGS[name]
    # absl prefixes an enum's help with "<a|b>: "; ours start "prune: ".
    choices, text = re.match(r"(<[^>]*>: )?(.*)", flag.help, re.S).groups()
    text = re.sub(r"^[a-z]+(/[a-z]+)*: ", "", text)
    choices = f" {choices[:-2]}" if choices else ""
    default = "" if flag.default in (None, False) else (
        f" (default: {flag.default})")
    lines.append(f"  --{name.replace('_', '-')}{choices}: {text}{default}")
  return "\n".join(lines)


def help_text(argv):
  """What `argv` asks help for (our usage, or a command's), or None."""
  args = argv[1:]
  if not args:
    return None
  if args[0] == "help":
    return (command_usage(args[1]) if len(args) > 1 and args[1] in COMMANDS
            else _USAGE)
  if not any(a in _HELP_ARGS for a in args):
    return None
  return command_usage(args[0]) if args[0] in COMMANDS else _USAGE


class LoadError(Exception):
  """MODEL_PATH exists but is not a Keras model we can read (one line)."""


def saved_framework(path):
  """'keras3' or 'tf_keras': the Keras that wrote the model at `path`.

  A `.keras` file is a zip archive whose `metadata.json` records the
  `keras_version` that wrote it: 3.x is Keras 3, 2.x is tf_keras. HDF5
  (`.h5`) files and SavedModel folders are read by tf_keras.

  Raises:
    LoadError: for a `.keras` path that is not a Keras archive.
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import zipfile  # pylint: disable=g-import-not-at-top
  if os.path.isdir(path) or not zipfile.is_zipfile(path):
    if path.endswith(".keras"):
      raise LoadError("it is not a zip archive, as a .keras file is (is the "
                      "file truncated or corrupt?)")
    return "tf_keras"
  try:
    with zipfile.ZipFile(path) as archive:
      meta = json.loads(archive.read("metadata.json"))
  except KeyError:
    raise LoadError("the archive has no metadata.json, so no Keras wrote "
                    "it") from None
  except (zipfile.BadZipFile, ValueError, OSError) as e:
    raise LoadError(f"its metadata.json cannot be read ({_one_line(e)})"
                    ) from None
  version = str(meta.get("keras_version", "")) if isinstance(
      meta, dict) else ""
  if not version:
    raise LoadError("its metadata.json names no keras_version")
  return "keras3" if version.split(".")[0] == "3" else "tf_keras"


def _one_line(error):
  text = " ".join(str(error).split())
  text = text if len(text) <= 300 else text[:297] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _load(path):
  """The model saved at `path`, in the Keras that saved it.

  Keras 3 `.keras` files load with `keras.saving.load_model`; tf_keras
  `.keras` files, `.h5` files and SavedModel folders with
  `tf_keras.models.load_model`. TF_USE_LEGACY_KERAS plays no part.

  Raises:
    UsageError: when `path` does not exist.
    LoadError: when it cannot be loaded as an analysable Keras model.
  """
  import os  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise UsageError(f"MODEL_PATH {path!r} does not exist")
  framework = saved_framework(path)  # reads the file; imports no Keras
  # The package registers its serializable layers on import.
  import tfprune_survey  # pylint: disable=g-import-not-at-top,unused-import
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  fw = frameworks.get(framework)
  try:
    if fw.name == frameworks.KERAS3:
      model = fw.keras.saving.load_model(path, compile=False)
    else:
      model = fw.keras.models.load_model(path, compile=False)
  except Exception as e:  # pylint: disable=broad-except
    raise LoadError(_one_line(e)) from None
  try:
    frameworks.check_model(model, "MODEL_PATH")
  except TypeError as e:  # UnsupportedModelError is a TypeError
    raise LoadError(_one_line(e)) from None
  return model


def cmd_profile(args):
  if len(args) != 1:
    raise UsageError("profile takes exactly one MODEL_PATH")
  model = _load(args[0])
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  print(tps.profile(model))
  if FLAGS.groups:
    print()
    print(tps.ChannelGraph(model).summary())
  return 0


def cmd_demo(args):
  if args:
    raise UsageError("demo takes no positional arguments")
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  demo.run(FLAGS.out_dir)
  return 0


def _input_shapes(model):
  """Each input's shape, batch dimension left out, in the model's order."""
  return [tuple(t.shape[1:]) for t in model.inputs]


def _load_data(model, name, split=0):
  """(x, y) of `split` (0 train, 1 test) of --data, checked against the model."""
  shapes = _input_shapes(model)
  if len(shapes) != 1:
    raise UsageError(
        f"--data {name}: a data set gives one input, and the model has "
        f"{len(shapes)} inputs ({', '.join(str(s) for s in shapes)}); leave "
        "--data out (--bench then times random inputs)")
  from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top
  try:
    x, y = data_lib.load(name)[split]
  except (ValueError, OSError) as e:  # unknown name, unreadable/bad file
    raise UsageError(f"--data {name}: {e}") from e
  x, y = x[:FLAGS.samples], y[:FLAGS.samples]
  want = shapes[0]
  given = tuple(x.shape[1:])
  if len(given) != len(want) or any(
      w is not None and g != w for g, w in zip(given, want)):
    raise UsageError(f"--data {name} has samples of shape "
                     f"{tuple(x.shape[1:])}, the model expects {want}")
  return x, y


def _random_inputs(model, n=64, verify=False):
  """Random inputs of `n` samples, each of its input's dtype: an array, or a
  list of one per input for a model of several inputs.

  Floats are uniform in [0, 1); 8- and 16-bit integers (a uint8 image) span
  their dtype's range, so no input is cast to all zeros. Wider integers
  (token or class ids) have no range that is known to be valid: with
  `verify`, that is a usage error asking for --data.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tflite_export.convert import input_dtypes  # pylint: disable=g-import-not-at-top
  shapes = _input_shapes(model)
  dtypes = input_dtypes(model)
  for tensor, dtype in zip(model.inputs, dtypes):
    if verify and dtype.kind in "iu" and dtype.itemsize > 2:
      raise UsageError(
          f"the model's input {tensor.name!r} is {dtype.name} (ids?), and "
          "random values cannot be known to be valid ones: pass --data to "
          "verify on")
  for shape in shapes:
    if None in shape:
      if len(shapes) == 1:
        raise UsageError(
            f"the model has a free input size {(None,) + shape}: pass "
            "--data, whose samples set the size to verify and time at")
      raise UsageError(
          f"the model has a free input size {(None,) + shape} among its "
          f"{len(shapes)} inputs; --data gives a single input, so a model of "
          "several inputs can be verified and timed here at fixed sizes only")
  rng = np.random.default_rng(0)
  arrays = []
  for shape, dtype in zip(shapes, dtypes):
    if dtype.kind == "b":
      arrays.append(rng.random((n,) + shape) < 0.5)
    elif dtype.kind in "iu" and dtype.itemsize <= 2:
      info = np.iinfo(dtype)
      arrays.append(rng.integers(info.min, info.max, (n,) + shape,
                                 endpoint=True).astype(dtype))
    else:
      arrays.append(rng.random((n,) + shape).astype(
          dtype if dtype.kind == "f" else "float32"))
  return arrays[0] if len(arrays) == 1 else arrays


def _unverifiable(model):
  """Why `tflite_export.verify` cannot check `model`, or None."""
  ins, outs = len(model.inputs), len(model.outputs)
  if ins == 1 and outs == 1:
    return None
  return (f"the model has {ins} input{'s' if ins != 1 else ''} and {outs} "
          f"output{'s' if outs != 1 else ''}, and verification compares "
          "models of one input and one output")


def _tflite_row(label, model, path, data, bench, check=True):
  """Converts, verifies on `data` (when `check`) and times; one table row."""
  import tflite_export  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  report = tflite_export.convert(model, path, quantization=FLAGS.quantize,
                                 representative_data=data)
  check = (tflite_export.verify(model, path, data)
           if check and data is not None else None)
  if data is None:
    shape = None
  elif isinstance(data, list):   # several inputs: one shape each
    shape = [(1,) + tuple(a.shape[1:]) for a in data]
  else:
    shape = (1,) + tuple(data.shape[1:])
  latency = (tflite_export.benchmark(path, runs=FLAGS.bench_runs, threads=1,
                                     input_shape=shape)
             if bench else None)
  try:
    macs = tps.count_macs(model)
  except ValueError:   # a free input size: MACs depend on it
    macs = None
  return {"model": label, "params": tps.count_params(model),
          "macs": macs, "bytes": report.size_bytes,
          "latency_ms": latency.median_ms if latency else None,
          "report": report, "verify": check}


def _print_table(rows):
  head = "| model | params | MACs | TFLite bytes | median latency (ms) |"
  lines = [head, "|---|---:|---:|---:|---:|"]
  for r in rows:
    lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}"
    macs = "-" if r["macs"] is None else f"{r['macs']:,}"
    lines.append(f"| {r['model']} | {r['params']:,} | {macs} | "
                 f"{r['bytes']:,} | {lat} |")
  if len(rows) == 2:
    a, b = rows
    ratio = lambda k: (f"{a[k] / b[k]:.2f}x" if a[k] and b[k] else "-")  # pylint: disable=unnecessary-lambda-assignment
    lines.append(f"| before / after | {ratio('params')} | {ratio('macs')} | "
                 f"{ratio('bytes')} | {ratio('latency_ms')} |")
  print("\n".join(lines))
  for r in rows:
    print(f"{r['model']}: {r['report']}")
    if r["verify"] is not None:
      print(f"  {r['verify']}")


def _check_tflite_backend(model):
  """TFLite conversion needs TensorFlow: Keras 3 on JAX/PyTorch cannot."""
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  backend = frameworks.of(model).backend()
  if backend != "tensorflow":
    raise UsageError(
        f"TFLite export needs the TensorFlow backend, and this process runs "
        f"Keras 3 on '{backend}': save the model as .keras and run "
        "`KERAS_BACKEND=tensorflow tfprune-survey export MODEL.keras --out "
        "M.tflite`")


# The integer flags and the least value each takes.
_COUNT_FLAGS = {"samples": 1, "bench_runs": 1, "round_to": 1,
                "min_channels": 1}


def _check_counts(command):
  """The integer flags of `command`, checked before any work is done."""
  for name in _COMMAND_HELP[command][2]:
    least = _COUNT_FLAGS.get(name)
    if least is not None and FLAGS[name].value < least:
      raise UsageError(f"--{name.replace('_', '-')} must be at least "
                       f"{least}; got {FLAGS[name].value}")


def _check_out_dir(path, flag):
  import os  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise UsageError(f"{flag} {path}: directory {folder} does not exist")


def cmd_export(args):
  if len(args) != 1:
    raise UsageError("export takes exactly one MODEL_PATH")
  _check_counts("export")
  if not FLAGS.out or not FLAGS.out.endswith(".tflite"):
    raise UsageError("export needs --out M.tflite")
  _check_out_dir(FLAGS.out, "--out")
  if FLAGS.quantize == "int8" and not FLAGS.data:
    raise UsageError("--quantize int8 needs --data to calibrate")
  model = _load(args[0])
  _check_tflite_backend(model)
  why = _unverifiable(model) if FLAGS.verify else None
  if why:
    raise UsageError(f"--verify: {why}; leave --verify out (--bench still "
                     "times the file)")
  data = None
  if FLAGS.data:
    data = _load_data(model, FLAGS.data, split=0)[0]
  elif FLAGS.verify or FLAGS.bench:
    # verify, and benchmark at its size
    data = _random_inputs(model, verify=FLAGS.verify)
  try:
    row = _tflite_row(f"{args[0]} -> {FLAGS.out}", model, FLAGS.out, data,
                      FLAGS.bench, check=FLAGS.verify)
  except (ValueError, FileNotFoundError) as e:
    raise UsageError(str(e)) from e
  _print_table([row])
  if row["verify"] is not None and not row["verify"].passed:
    print("verification FAILED")
    return EXIT_VERIFY_FAILED
  return EXIT_OK


def cmd_prune(args):
  if len(args) != 1:
    raise UsageError("prune takes exactly one MODEL_PATH")
  _check_counts("prune")
  if not FLAGS.criterion:
    raise UsageError("prune needs --criterion")
  if not FLAGS.out:
    raise UsageError("prune needs --out SLIM.keras")
  if not FLAGS.out.endswith((".keras", ".h5")):
    raise UsageError(f"--out {FLAGS.out}: the slim model is saved as a "
                     ".keras or .h5 file; name one")
  _check_out_dir(FLAGS.out, "--out")
  if FLAGS["quantize"].present and not FLAGS.tflite:
    raise UsageError("--quantize applies to the TFLite export: add "
                     "--tflite SLIM.tflite")
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  if FLAGS.tflite:
    if not FLAGS.tflite.endswith(".tflite"):
      raise UsageError(f"--tflite {FLAGS.tflite}: name a .tflite file")
    _check_out_dir(FLAGS.tflite, "--tflite")
  if FLAGS.tflite and FLAGS.quantize == "int8" and not FLAGS.data:
    raise UsageError("--quantize int8 needs --data to calibrate")
  model = _load(args[0])
  if FLAGS.tflite:
    _check_tflite_backend(model)
  data = None
  if FLAGS.data:
    data = _load_data(model, FLAGS.data, split=0)
  inputs = None
  if FLAGS.tflite:   # checked before the slim model is written
    inputs = data[0] if data is not None else _random_inputs(
        model, verify=_unverifiable(model) is None)
  try:
    result = tps.prune(model, FLAGS.criterion, data=data, ratio=FLAGS.ratio,
                       target_macs=FLAGS.target_macs, scope=FLAGS.scope,
                       round_to=FLAGS.round_to,
                       min_channels=FLAGS.min_channels,
                       verbose=1 if data is not None else 0)
  except (TypeError, ValueError) as e:
    raise UsageError(str(e)) from e
  result.model.save(FLAGS.out)
  print(result.report)
  print(f"\nsaved {FLAGS.out}")
  if FLAGS.tflite:
    import os  # pylint: disable=g-import-not-at-top
    import tempfile  # pylint: disable=g-import-not-at-top
    unverified = _unverifiable(model)
    check = unverified is None
    try:
      with tempfile.TemporaryDirectory() as tmp:
        rows = [_tflite_row("original", model, os.path.join(
            tmp, "original.tflite"), inputs, True, check=check),
                _tflite_row("slim", result.model, FLAGS.tflite, inputs, True,
                            check=check)]
    except (ValueError, FileNotFoundError) as e:
      raise UsageError(str(e)) from e
    print()
    _print_table(rows)
    if not check:
      print(f"not verified: {unverified}")
    print(f"\nsaved {FLAGS.tflite}")
  return 0


def cmd_compare(args):
  if args:
    raise UsageError("compare takes no positional arguments")
  from tfprune_survey import published  # pylint: disable=g-import-not-at-top
  if FLAGS.plot:
    _check_out_dir(FLAGS.plot, "--plot")
    try:
      published.check_plot_path(FLAGS.plot)
    except ValueError as e:
      raise UsageError(f"--plot {e}") from e
  try:
    rows = published.load(FLAGS.published)
    ours = published.load_ours(FLAGS.ours) if FLAGS.ours else []
  except (ValueError, FileNotFoundError) as e:
    raise UsageError(str(e)) from e
  shown = published.select(rows, FLAGS.model, FLAGS.dataset)
  if not shown:
    raise UsageError(published.no_match(
        rows, FLAGS.model, FLAGS.dataset,
        FLAGS.published or published.default_path()))
  # Ours follow --model only: a different data set is shown, with a warning.
  all_ours, ours = ours, published.select(ours, FLAGS.model)
  print(f"{len(shown)} published results"
        + (f" and {len(ours)} of ours" if FLAGS.ours else "")
        + "; cells: delta top-1 (points) F<FLOPs reduction>% "
        "P<params reduction>%; methods sorted by largest reduction\n")
  print(published.pivot(shown + ours))
  _, warnings = published.pairs(shown, ours) if ours else ([], [])
  if FLAGS.ours and not all_ours:
    warnings.append(f"{FLAGS.ours} has no runs")
  elif FLAGS.ours and not ours:
    warnings.append(f"none of the runs in {FLAGS.ours} is of model "
                    f"{FLAGS.model}; they are of "
                    + ", ".join(sorted({r["model"] for r in all_ours})))
  if FLAGS.plot:
    published.plot(shown, ours, FLAGS.plot)
  for w in warnings:
    print("\nWARNING: " + w)
  if FLAGS.plot:
    print(f"\nwrote {FLAGS.plot}")
  return 0


COMMANDS = {"profile": cmd_profile, "demo": cmd_demo, "prune": cmd_prune,
            "export": cmd_export, "compare": cmd_compare}


def _normalize(argv):
  """Accepts --target-macs as well as --target_macs (and the like)."""
  out = []
  for arg in argv:
    if arg.startswith("--") and "-" in arg[2:].split("=")[0]:
      name, eq, value = arg[2:].partition("=")
      arg = "--" + name.replace("-", "_") + eq + value
    out.append(arg)
  return out


def main(argv):
  text = help_text(argv)
  if text is not None:
    print(text)
    return 0
  if len(argv) < 2:
    print(_USAGE)
    return EXIT_USAGE
  command = argv[1]
  if command not in COMMANDS:
    raise UsageError(f"unknown command {command!r}; choose one of "
                     f"{sorted(COMMANDS)}")
  try:
    return COMMANDS[command](argv[2:])
  except LoadError as e:
    path = argv[2] if len(argv) > 2 else "MODEL_PATH"
    print(f"tfprune-survey {command}: {path} could not be loaded as a Keras "
          f"model: {e}", file=sys.stderr)
    return EXIT_USAGE


def _parse_flags(argv):
  """absl's flag parsing, with our exit codes.

  A flag absl cannot parse (unknown, or a bad value) is a usage error: exit
  code 2, where absl exits 1. absl's --helpfull (and --helpxml) print help
  and exit 1; help is a success here, so 0.
  """
  try:
    return FLAGS(argv)
  except flags.Error as error:
    message = str(error)
    if "\n" in message:
      message = "\n" + "\n".join("  " + l for l in message.splitlines())
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(EXIT_USAGE)
  except SystemExit as e:
    sys.exit(EXIT_OK if e.code == 1 else e.code)


def run(argv=None):
  """The console script: `tfprune-survey` and `python -m tfprune_survey`.

  Help (`--help`, `-h`, `help`, `COMMAND --help`, `help COMMAND`) is ours,
  printed before absl parses flags (absl's own shows its generic usage);
  `--helpfull` still lists every flag, absl's included. Exit codes: 0
  success, 1 `export --verify` FAILED, 2 a usage error (see `_USAGE`).
  """
  argv = _normalize(sys.argv if argv is None else list(argv))
  text = help_text(argv)
  if text is not None:
    print(text)
    sys.exit(0)
  app.run(main, argv=argv, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
