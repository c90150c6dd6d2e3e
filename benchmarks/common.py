"""Helpers shared by the benchmark scripts (timing, models, run metadata).

The scripts run as `python benchmarks/<name>.py`, with this folder first on
`sys.path`, and are imported by path by the smoke tests in
`tests/benchmarks/`; each puts this folder on `sys.path` before
`import common`, so both ways find this module. Nothing here imports
TensorFlow, tf_keras or Keras at import time: a script may still have to fix
Keras 3's backend (`set_backend`) first.
"""

import atexit
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def scratch_dir(prefix):
  """A new temporary folder, removed with its contents when the process
  exits (the scripts' default latency caches, converted files and the
  like; the smoke tests run the scripts in-process, so nothing is left
  in /tmp after a test run)."""
  path = tempfile.mkdtemp(prefix=prefix)
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


def timed(fn):
  """Times one call of `fn`.

  Garbage left by the previous call (a whole model's reference cycles) is
  collected first, untimed, so that it is not billed to whichever call next
  triggers the collector.

  Args:
    fn: a callable taking no arguments.

  Returns:
    (wall seconds, fn's result).
  """
  gc.collect()
  t0 = time.perf_counter()
  out = fn()
  return time.perf_counter() - t0, out


def set_backend(backend):
  """Fixes Keras 3's backend for this process (before keras is imported).

  Args:
    backend: a Keras 3 backend name, e.g. 'tensorflow' or 'jax'.

  Raises:
    RuntimeError: keras is already imported with another backend.
  """
  if "keras" in sys.modules:
    import keras  # pylint: disable=g-import-not-at-top
    if keras.backend.backend() != backend:
      raise RuntimeError(
          f"keras is already imported with backend "
          f"'{keras.backend.backend()}'; run with --backend {backend} in a "
          "fresh process")
  else:
    os.environ["KERAS_BACKEND"] = backend


def build(zoo_fn, framework, seed=0, **kwargs):
  """A zoo model in `framework`, with the weights of a seeded tf_keras build.

  The tf_keras model is built after `tf_keras.utils.set_random_seed(seed)`,
  and a model of another framework gets its weights, so that every framework
  (and backend) measures the same network.

  Args:
    zoo_fn: the name of a `tfprune_survey.zoo` function, e.g. 'resnet_cifar'.
    framework: 'tf_keras' or 'keras3'.
    seed: the seed of the tf_keras build.
    **kwargs: the zoo function's arguments, other than `framework`.

  Returns:
    The model, of `framework`'s Keras.
  """
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  make = getattr(zoo, zoo_fn)
  tf_keras.utils.set_random_seed(seed)
  ref = make(framework="tf_keras", **kwargs)
  if framework == "tf_keras":
    return ref
  model = make(framework=framework, **kwargs)
  model.set_weights(ref.get_weights())
  return model


def cached_dataset(tensors, batch):
  """A batched, cached in-memory tf.data pipeline, its cache already filled.

  tf.data's autotuning thread wakes after 10, 20, 40, ... ms, and a pass
  that reaches the end of the data often waits for its next wake-up: whole
  passes then took 2.55, 5.11 or 10.23 s (10 ms x (2^k - 1)) whatever they
  computed. The in-memory cache has nothing to tune, so tuning is off.

  Args:
    tensors: what `tf.data.Dataset.from_tensor_slices` takes: an array of
      images, or an (images, labels) tuple.
    batch: the batch size.

  Returns:
    The `tf.data.Dataset`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  options = tf.data.Options()
  options.autotune.enabled = False
  ds = tf.data.Dataset.from_tensor_slices(tensors).batch(batch).cache()
  ds = ds.with_options(options)
  list(ds)  # materialize the cache once, outside the timings
  return ds


def forward_pass(model, ds):
  """One inference pass of `model` over `ds` through a new `tf.function`.

  The function is traced anew on every call, so the pass includes its first
  trace, as the measured library calls include building their probes.

  Args:
    model: a Keras model (tf_keras, or Keras 3 on TensorFlow).
    ds: batches of images, or of (images, labels) tuples.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  fn = tf.function(lambda x: model(x, training=False))
  for batch in ds:
    x = batch[0] if isinstance(batch, tuple) else batch
    fn(x).numpy()


def split_names(parser, value, allowed, what, sep=","):
  """The names in a `sep`-separated command-line value, each checked.

  Args:
    parser: the `argparse.ArgumentParser` that reports an unknown name.
    value: the value, e.g. 'tf_keras,keras3'.
    allowed: the names allowed.
    what: what a name is, for the error, e.g. 'framework'.
    sep: the separator (e.g. ';' for names holding commas).

  Returns:
    The list of names, empty items left out.
  """
  names = [n for n in value.split(sep) if n]
  for n in names:
    if n not in allowed:
      parser.error(f"unknown {what} {n!r}")
  return names


def versions(names):
  """{package: installed version, or None where it is not installed}."""
  import importlib.metadata as md  # pylint: disable=g-import-not-at-top
  out = {}
  for name in names:
    try:
      out[name] = md.version(name)
    except md.PackageNotFoundError:
      out[name] = None
  return out


def git_head():
  """The checkout's HEAD commit, or None outside a git checkout."""
  try:
    return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=HERE,
                                   stderr=subprocess.DEVNULL,
                                   text=True).strip()
  except Exception:  # pylint: disable=broad-except
    return None


def run_meta(script, argv, t0, load_start, packages, **settings):
  """A timing run's metadata: machine, settings, versions, load and command.

  Args:
    script: the script's file name, e.g. 'cluster_cost.py'.
    argv: the arguments `main` was given, or None for `sys.argv[1:]`.
    t0: `time.perf_counter()` at the start of the run.
    load_start: `os.getloadavg()` at the start of the run.
    packages: the packages whose versions are recorded.
    **settings: the run's settings (images, batch, repeats, ...), recorded
      after the machine, in their order.

  Returns:
    The dict, its keys in the order they are written.
  """
  return {"machine": platform.platform(), "cpus": os.cpu_count(),
          **settings, "versions": versions(packages), "git_head": git_head(),
          "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
          "wall_s": time.perf_counter() - t0,
          "command": command(script, argv)}


def write_results(out_dir, name, meta, rows, table):
  """Writes <out_dir>/<name>.json ({meta, rows}) and <name>.md (the table).

  The table is printed too.

  Args:
    out_dir: the folder, made if missing.
    name: the files' name without extension, e.g. 'cluster_cost'.
    meta: the run's metadata.
    rows: the result rows.
    table: the Markdown table.
  """
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
    f.write(table + "\n")
  print(table)


def macs_latency_panels(rows, title, draw, path, legend_size=6):
  """One panel per (model, size) of `rows`: MACs against measured latency.

  Args:
    rows: result rows with 'model' and 'size'.
    title: fn(model, size) -> the panel's title.
    draw: fn(ax, model rows) draws a panel's points.
    path: the PNG written.
    legend_size: the legends' font size.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  models = list(dict.fromkeys((r["model"], r["size"]) for r in rows))
  fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.8),
                           squeeze=False)
  for ax, (name, size) in zip(axes[0], models):
    draw(ax, [r for r in rows if (r["model"], r["size"]) == (name, size)])
    ax.set_xlabel("MACs (fraction of the original)")
    ax.set_ylabel("measured latency (fraction of the original)")
    ax.set_title(title(name, size))
    ax.legend(fontsize=legend_size)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_state(path, state):
  """Writes `state` as JSON to `path` atomically (a resumable run's file)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(state, f, indent=1)
  os.replace(tmp, path)


def write_state_report(folder, tag, state, markdown, plot):
  """Writes <tag>.json, <tag>.md and <tag>.png of a merged state; prints md.

  Args:
    folder: the results folder.
    tag: the files' name without extension.
    state: the run's state (JSON-able).
    markdown: callable(state) -> the Markdown report.
    plot: callable(state, png_path).

  Returns:
    `state`.
  """
  save_state(os.path.join(folder, tag + ".json"), state)
  md = markdown(state)
  with open(os.path.join(folder, tag + ".md"), "w") as f:
    f.write(md + "\n")
  plot(state, os.path.join(folder, tag + ".png"))
  print(md)
  return state


def command(script, argv):
  """The command line that reproduces a run, e.g. for a result's meta.

  Args:
    script: the script's file name, e.g. 'cluster_cost.py'.
    argv: the arguments `main` was given, or None for `sys.argv[1:]`.

  Returns:
    'python benchmarks/<script> <arguments>'.
  """
  return f"python benchmarks/{script} " + " ".join(
      argv if argv is not None else sys.argv[1:])


def run_child(script_path, backend, argv, shown=None):
  """Runs a benchmark script in a fresh process with another Keras 3 backend.

  A Keras backend is fixed per process, so a script measures the other
  backends in a child of itself, which writes its rows to a JSON file.

  Args:
    script_path: the script to run (its `__file__`).
    backend: the child's `KERAS_BACKEND`, e.g. 'jax'.
    argv: the child's arguments, without `--json-out` (added here).
    shown: optional {argument: text} replacing argument values in the
      recorded command (e.g. a temporary file's path).

  Returns:
    The child's results ({'meta': ..., 'rows': ...}), with the child's
    `wall_s` and the command that reproduces it in `meta`.
  """
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "rows.json")
    cmd = [sys.executable, os.path.abspath(script_path)] + list(argv) + [
        "--json-out", out]
    env = dict(os.environ, KERAS_BACKEND=backend)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    with open(out) as f:
      child = json.load(f)
  recorded = list(argv)
  for flag, text in (shown or {}).items():
    recorded[recorded.index(flag) + 1] = text
  child["meta"]["wall_s"] = wall
  child["meta"]["command"] = " ".join(
      ["KERAS_BACKEND=" + backend, "python",
       "benchmarks/" + os.path.basename(script_path)]
      + recorded + ["--json-out", "FILE"])
  return child
