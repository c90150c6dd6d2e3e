"""Measured TFLite latency as a function of kept widths (NetAdapt, HALP).

NetAdapt (Yang et al. 2018) and HALP (Shen et al. 2022) choose where to cut
from measured latency, not MACs: on a real runtime a layer's time is a
staircase in its width (XNNPACK computes output channels in tiles), so some
cuts buy nothing and others buy more than their MACs say.

What a `LatencyModel` holds, and the choice behind it: **per-layer cost
tables, each layer measured alone.** Every MAC-counted layer call (conv,
depthwise, separable, transposed conv, Dense) is rebuilt as a one-layer Keras
model at its own input size, converted to float TFLite and timed in LiteRT:

* along its output channels at full input width, and along its input
  channels at full output width, at every multiple of `step` (8 by default:
  fine enough to see XNNPACK's tiles; thinned to at most `max_points` per
  axis on wide layers, so measuring MobileNetV2 takes minutes);
* a depthwise conv (input and output tied) along its one width.

With 1 thread each invoke is timed by the calling thread's CPU time, so
that a shared machine's pre-emptions are not counted (`time_tflite`).

A layer at input width `ci` and output width `co` is then predicted as
``f + (Tin(ci) - f) * (Tout(co) - f) / (Tfull - f)`` with `f` the runtime's
per-invoke cost: exact on both measured axes, and the product form of a GEMM
(time ~ ci x co) in between. Widths between two measured widths cost what the
next measured width above costs: the model is a staircase at the grid's
resolution, so the planner never cuts channels that buy no predicted time.
A model's latency is `f` plus every layer's time above `f`.

Errors this choice makes (reported by `benchmarks/latency_pruning.py`): ops
that are not measured (Add, pooling, an unfused activation) are left out (zero
padding before a conv is not timed either, since XNNPACK fuses it into the
conv), and a layer alone runs with its weights and input in cache, so the sum
of parts under-states the whole; the ratio pruned/unpruned, which is what
`target_latency` uses, is much closer than the absolute figure.

The alternative, timing the whole model with one group varied at a time, is
exact for each group alone but misses the product of a layer's input and
output cuts (halving both quarters a conv) and costs a whole-model conversion
per point.
"""

import dataclasses
import glob
import hashlib
import json
import math
import os
import platform
import tempfile
import time
import warnings

import numpy as np

from tfprune_survey import frameworks
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.metrics.macs import iter_calls
from tfprune_survey.metrics.macs import layer_call_macs

CACHE_ENV = "TFPRUNE_SURVEY_LATENCY_CACHE"
DELEGATES = ("xnnpack", "none")
_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
_DROP = ("name", "build_config")


@dataclasses.dataclass
class LayerCost:
  """The measured cost table of one layer call.

  Attributes:
    name: the layer's qualified path in the model.
    in_axis: [[group_id, size, repeat], ...]: the groups whose kept counts
      set the input width ([] when it is fixed).
    out_axis: the same for the output width. A depthwise layer has its
      input groups here (its input width is out / multiplier).
    in_full, out_full: the call's input and output channels.
    in_widths, in_ms: time at input width w (output full), ascending w.
    out_widths, out_ms: time at output width w (input full), ascending w.
    full_ms: time at full widths.
    multiplier: out / in channels of a depthwise layer (0 for others).
  """
  name: str
  in_axis: list
  out_axis: list
  in_full: int
  out_full: int
  in_widths: list
  in_ms: list
  out_widths: list
  out_ms: list
  full_ms: float
  multiplier: int = 0

  @staticmethod
  def axis_width(axis, full, counts):
    if not axis:
      return full
    units = sum(size * rep for _, size, rep in axis)
    kept = sum(counts.get(gid, size) * rep for gid, size, rep in axis)
    return int(round(full * kept / units))

  def widths(self, counts):
    """(input, output) channels when group g keeps counts[g]."""
    out = self.axis_width(self.out_axis, self.out_full, counts)
    if self.multiplier:
      return out // self.multiplier, out
    return self.axis_width(self.in_axis, self.in_full, counts), out

  def ms(self, cin, cout, fixed):
    """Predicted time at (cin, cout); see the module docstring."""
    t_out = _stair(self.out_widths, self.out_ms, cout)
    if self.multiplier:
      return t_out
    t_in = _stair(self.in_widths, self.in_ms, cin)
    span = self.full_ms - fixed
    if span <= 1e-12:
      return self.full_ms
    return fixed + max(t_in - fixed, 0.0) * max(t_out - fixed, 0.0) / span


FORMAT = "tfprune_survey.LatencyModel/1"
_TOP_KEYS = ("format", "arch", "runtime", "fixed_ms", "measured_ms", "seconds",
             "steps", "layers")
_LAYER_KEYS = tuple(f.name for f in dataclasses.fields(LayerCost))


def _is_int(v):
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_ms(v):
  """A time in ms: a finite number >= 0 (not a bool)."""
  return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
          and math.isfinite(v) and v >= 0)


def _check_table(d):
  """Raises ValueError unless `d` has the layout `to_dict` writes."""
  if not isinstance(d, dict):
    raise ValueError("not a LatencyModel: expected a dict with 'layers' "
                     f"(as LatencyModel.to_dict writes), got "
                     f"{type(d).__name__}")
  if "format" in d and d["format"] != FORMAT:
    raise ValueError(f"not a LatencyModel table of this version: 'format' is "
                     f"{d['format']!r}, expected {FORMAT!r}")
  if "layers" not in d:
    raise ValueError("not a LatencyModel: expected a dict with 'layers' (as "
                     f"LatencyModel.to_dict writes), got keys "
                     f"{sorted(map(str, d))[:8]}")
  unknown = sorted(str(k) for k in d if k not in _TOP_KEYS)
  if unknown:
    raise ValueError(f"LatencyModel table has unknown keys {unknown}; "
                     f"expected {list(_TOP_KEYS)}")
  for key in ("fixed_ms", "measured_ms", "seconds"):
    if key not in d or d[key] is None and key != "fixed_ms":
      continue
    if not _is_ms(d[key]):
      raise ValueError(f"LatencyModel table: '{key}' must be a finite number "
                       f">= 0{'' if key == 'fixed_ms' else ' or null'}, got "
                       f"{d[key]!r}")
  if d.get("arch") is not None and not isinstance(d["arch"], str):
    raise ValueError("LatencyModel table: 'arch' must be a string or null, "
                     f"got {d['arch']!r}")
  if d.get("runtime") is not None and not isinstance(d["runtime"], dict):
    raise ValueError("LatencyModel table: 'runtime' must be a dict or null, "
                     f"got {d['runtime']!r}")
  steps = d.get("steps")
  if steps is not None:
    if not isinstance(steps, dict):
      raise ValueError("LatencyModel table: 'steps' must be a dict {group id: "
                       f"width step}} or null, got {steps!r}")
    for gid, v in steps.items():
      if not isinstance(gid, str) or not _is_int(v) or v < 1:
        raise ValueError(f"LatencyModel table: 'steps'[{gid!r}] must be a "
                         f"positive int keyed by a group id, got {v!r}")
  layers = d["layers"]
  if not isinstance(layers, (list, tuple)):
    raise ValueError("LatencyModel table: 'layers' must be a list of layer "
                     f"cost dicts, got {type(layers).__name__}")
  sizes = {}
  for i, layer in enumerate(layers):
    _check_layer(i, layer, sizes)


def _check_layer(i, layer, sizes):
  """Raises ValueError unless layers[i] holds `LayerCost`'s fields."""
  if isinstance(layer, LayerCost):
    layer = dataclasses.asdict(layer)
  if not isinstance(layer, dict):
    raise ValueError(f"LatencyModel table: layers[{i}] must be a dict of "
                     f"LayerCost fields, got {type(layer).__name__} "
                     f"{layer!r:.60}")
  name = layer.get("name")
  where = f"LatencyModel table: layers[{i}]" + (
      f" ('{name}')" if isinstance(name, str) and name else "")
  missing = [k for k in _LAYER_KEYS if k not in layer and k != "multiplier"]
  if missing:
    raise ValueError(f"{where} lacks {missing}")
  unknown = sorted(str(k) for k in layer if k not in _LAYER_KEYS)
  if unknown:
    raise ValueError(f"{where} has unknown keys {unknown}; expected "
                     f"{list(_LAYER_KEYS)}")
  if not isinstance(name, str) or not name:
    raise ValueError(f"{where}: 'name' must be a non-empty string, got "
                     f"{name!r}")
  for key in ("in_full", "out_full"):
    if not _is_int(layer[key]) or layer[key] < 1:
      raise ValueError(f"{where}: '{key}' must be a positive int, got "
                       f"{layer[key]!r}")
  mult = layer.get("multiplier", 0)
  if not _is_int(mult) or mult < 0:
    raise ValueError(f"{where}: 'multiplier' must be an int >= 0, got "
                     f"{mult!r}")
  if not _is_ms(layer["full_ms"]):
    raise ValueError(f"{where}: 'full_ms' must be a finite number >= 0, got "
                     f"{layer['full_ms']!r}")
  for key in ("in_axis", "out_axis"):
    axis = layer[key]
    if not isinstance(axis, (list, tuple)):
      raise ValueError(f"{where}: '{key}' must be a list of [group id, "
                       f"size, repeat], got {axis!r}")
    for j, seg in enumerate(axis):
      if (not isinstance(seg, (list, tuple)) or len(seg) != 3
          or not isinstance(seg[0], str) or not _is_int(seg[1])
          or seg[1] < 1 or not _is_int(seg[2]) or seg[2] < 1):
        raise ValueError(f"{where}: '{key}'[{j}] must be [group id (str), "
                         f"size (int >= 1), repeat (int >= 1)], got {seg!r}")
      gid, size = seg[0], int(seg[1])
      if sizes.setdefault(gid, size) != size:
        raise ValueError(f"{where}: '{key}' gives group '{gid}' {size} "
                         f"channels where an earlier layer gives it "
                         f"{sizes[gid]}")
  for axis in ("in", "out"):
    wkey, mkey, full = f"{axis}_widths", f"{axis}_ms", layer[f"{axis}_full"]
    widths, ms = layer[wkey], layer[mkey]
    if not isinstance(widths, (list, tuple)) or not widths:
      raise ValueError(f"{where}: '{wkey}' must be a non-empty list of "
                       f"widths, got {widths!r}")
    if not isinstance(ms, (list, tuple)) or len(ms) != len(widths):
      raise ValueError(f"{where}: '{mkey}' must be a list of one time per "
                       f"width in '{wkey}' ({len(widths)}), got {ms!r}")
    bad = [w for w in widths if not _is_int(w) or not 1 <= w <= full]
    if bad:
      raise ValueError(f"{where}: '{wkey}' must hold ints in [1, {axis}_full"
                       f"={full}], got {bad[:3]}")
    if any(a >= b for a, b in zip(widths, widths[1:])):
      raise ValueError(f"{where}: '{wkey}' must be strictly ascending (no "
                       f"repeats), got {list(widths)}")
    bad = [t for t in ms if not _is_ms(t)]
    if bad:
      raise ValueError(f"{where}: '{mkey}' must hold finite numbers >= 0 "
                       f"(ms), got {bad[:3]!r}")


def _stair(widths, ms, w):
  """ms at the smallest measured width >= w (the last one beyond)."""
  i = int(np.searchsorted(widths, w - 1e-9))
  return ms[min(i, len(ms) - 1)]


def _monotone(ms):
  """Running minimum from the widest: a wider layer is never faster.

  Noise on a shared machine only slows a run down, so the smaller of two
  readings is the better one.
  """
  return [float(v) for v in np.minimum.accumulate(np.asarray(ms)[::-1])[::-1]]


class LatencyModel:
  """Per-layer TFLite latency tables of one architecture on one runtime.

  Build one with `LatencyModel.measure(model)` (times LiteRT here),
  `LatencyModel.load(path)`, `LatencyModel.from_benchmark_profile(csv,
  model)` (a phone's per-op profile) or directly from tables (tests, other
  tools).

  Args:
    layers: a list of `LayerCost` (or dicts of its fields).
    fixed_ms: the runtime's cost of one invoke of a trivial model.
    arch: the architecture key (see `architecture_key`), or None.
    runtime: a dict describing where it was measured.
    steps: {group_id: width step of its measured grid}.
    measured_ms: the whole unpruned model's measured latency, if known.
    seconds: how long measuring took.
  """

  def __init__(self, layers, *, fixed_ms=0.0, arch=None, runtime=None,
               steps=None, measured_ms=None, seconds=None):
    self.layers = [l if isinstance(l, LayerCost) else LayerCost(**l)
                   for l in layers]
    self.fixed_ms = float(fixed_ms)
    self.arch = arch
    self.runtime = dict(runtime or {})
    self.steps = dict(steps or {})
    self.measured_ms = measured_ms
    self.seconds = seconds
    self._by_group = {}
    for i, layer in enumerate(self.layers):
      for gid, _, _ in layer.in_axis + layer.out_axis:
        self._by_group.setdefault(gid, set()).add(i)

  # ---- prediction -----------------------------------------------------

  def layer_ms(self, counts, indices=None):
    """{layer index: ms} at kept counts, for `indices` (default: all)."""
    indices = range(len(self.layers)) if indices is None else indices
    out = {}
    for i in indices:
      layer = self.layers[i]
      out[i] = layer.ms(*layer.widths(counts), self.fixed_ms)
    return out

  def predict_counts(self, counts):
    """Predicted ms when group g keeps counts[g] channels (others all).

    Ids these tables do not time are ignored here (the planner passes every
    planned group); `predict` refuses them.
    """
    return self.fixed_ms + sum(t - self.fixed_ms
                               for t in self.layer_ms(counts).values())

  def predict(self, model_or_keep=None):
    """Predicted milliseconds of a model or of a keep dict.

    Args:
      model_or_keep: {group_id: kept indices or a kept count}, None (the
        unpruned model), or a model of this architecture at any widths
        (e.g. `tps.prune(...).model`), whose layers are found by name.

    Returns:
      float milliseconds.

    Raises:
      ValueError: for a keep dict naming a group id these tables do not
        time (e.g. a misspelt layer name), or a model without some of the
        timed layers.
    """
    if model_or_keep is None or isinstance(model_or_keep, dict):
      return self.predict_counts(self._counts(model_or_keep))
    widths = self.kept_widths(model_or_keep)
    return self.fixed_ms + sum(
        l.ms(*widths[l.name], self.fixed_ms) - self.fixed_ms
        for l in self.layers)

  def _counts(self, keep):
    """{group id: kept count} of a keep dict; ValueError for unknown ids.

    `predict_counts` and `layer_ms` take any ids (the planner passes every
    planned group); a keep dict from a user is checked here, so that a
    misspelt group id is not read as "unpruned".
    """
    keep = keep or {}
    unknown = [g for g in keep if g not in self._by_group]
    if unknown:
      known = sorted(self._by_group, key=lambda g: (
          str(g).startswith("fixed:"), str(g)))
      more = ", ..." if len(known) > 8 else ""
      raise ValueError(
          f"`model_or_keep` names group ids these latency tables do not "
          f"time: {sorted(map(str, unknown))[:8]}; known group ids "
          f"({len(known)}): {', '.join(map(repr, known[:8]))}{more}")
    return {g: (int(v) if np.ndim(v) == 0 else len(v))
            for g, v in keep.items()}

  def kept_widths(self, model_or_keep=None):
    """{layer name: (input, output) channels} of each timed layer.

    Args:
      model_or_keep: as for `predict`.

    Raises:
      ValueError: for a keep dict naming a group id these tables do not
        time, or a model without some of the timed layers.
    """
    if model_or_keep is None or isinstance(model_or_keep, dict):
      counts = self._counts(model_or_keep)
      return {l.name: l.widths(counts) for l in self.layers}
    frameworks.check_model(model_or_keep, "model_or_keep")
    shapes = {c.path: (int(c.input_shapes[0][-1]),
                       int(c.output_shapes[0][-1]))
              for c in iter_calls(model_or_keep) if layer_call_macs(c)}
    missing = [l.name for l in self.layers if l.name not in shapes]
    if missing:
      raise ValueError(f"`model_or_keep` has no layers {missing[:3]} of the "
                       "architecture this LatencyModel was measured for")
    return {l.name: shapes[l.name] for l in self.layers}

  def plot(self, path, keep=None, *, layers=None, max_layers=12,
           title=None):
    """Draws the measured staircases: time against width, per layer.

    One panel per layer: its time along its output channels (input full)
    and along its input channels (output full), as the staircases the
    planner reads (a width costs what the next measured width above it
    costs). With `keep`, each panel marks the kept input and output widths
    and gives the layer's predicted time there, so a plan can be seen to
    sit on the steps.

    Args:
      path: the image file to write (e.g. 'latency.png').
      keep: optional {group_id: kept indices or count}, or a model of this
        architecture at any widths (e.g. `tps.prune(...).model`).
      layers: optional names of the layers to draw, in that order. Defaults
        to the `max_layers` slowest at full width, in model order.
      max_layers: at most this many panels when `layers` is None. Defaults
        to 12.
      title: optional figure title.

    Returns:
      `path`.

    Raises:
      ValueError: for an empty `layers` or an unknown layer name, a bad
        `max_layers`, a `keep` naming group ids these tables do not time,
        a model of another architecture, or tables that time no layer.
    """
    from tfprune_survey import latency_plot  # pylint: disable=g-import-not-at-top
    return latency_plot.plot(self, path, keep, layers, max_layers, title)

  def groups_layers(self, gid):
    """Indices of the layers whose width group `gid` sets."""
    return self._by_group.get(gid, set())

  def step(self, gid):
    """The width step of group `gid`'s measured staircase (1 if unknown)."""
    return int(self.steps.get(gid, 1))

  def check(self, model, graph=None, arg_name="latency"):
    """Raises ValueError unless this table fits `model`'s architecture."""
    graph = graph if graph is not None else ChannelGraph(model)
    if self.arch is not None:
      key = architecture_key(model, graph)
      # The model's name prefixes the key for readable cache files; two
      # builds of one architecture may differ in it ('model', 'model_1').
      if key.rsplit("-", 1)[-1] != str(self.arch).rsplit("-", 1)[-1]:
        raise ValueError(
            f"`{arg_name}` is a LatencyModel of another architecture "
            f"({self.arch}), not of model '{model.name}' ({key}); measure "
            "one for this model with tps.latency.LatencyModel.measure(model)")
    ids = _group_ids(graph)
    sizes = {ids[g.id]: g.size for g in graph.groups}
    calls = {c.path for c in iter_calls(model)}
    for layer in self.layers:
      if layer.name not in calls:
        raise ValueError(f"`{arg_name}` times layer '{layer.name}', which "
                         f"model '{model.name}' does not have: it is a "
                         "LatencyModel of another architecture")
      for gid, size, _ in layer.in_axis + layer.out_axis:
        if sizes.get(gid) != size:
          raise ValueError(
              f"`{arg_name}` has group '{gid}' of {size} channels where "
              f"model '{model.name}' has {sizes.get(gid)}: it is a "
              "LatencyModel of another architecture")

  # ---- persistence ----------------------------------------------------

  def to_dict(self):
    return {"format": FORMAT, "arch": self.arch,
            "runtime": self.runtime, "fixed_ms": self.fixed_ms,
            "measured_ms": self.measured_ms, "seconds": self.seconds,
            "steps": self.steps,
            "layers": [dataclasses.asdict(l) for l in self.layers]}

  @classmethod
  def from_dict(cls, d):
    """A LatencyModel from the dict `to_dict` returns (e.g. read as JSON).

    The dict is checked against what `to_dict` writes: 'layers' (a list of
    `LayerCost` fields) is required; 'format', if given, must be
    'tfprune_survey.LatencyModel/1'; 'fixed_ms' (default 0), 'arch',
    'runtime', 'steps', 'measured_ms' and 'seconds' are optional; other
    keys are refused (a misspelt 'fixed_ms' would otherwise read as 0).

    Raises:
      ValueError: naming the key (and layer) that is missing, of the wrong
        type or out of range: e.g. a time that is not a number >= 0, a
        width that is not a positive int, an empty staircase, widths not
        strictly ascending, or a group given two sizes.
    """
    _check_table(d)
    return cls(d["layers"], fixed_ms=d.get("fixed_ms", 0.0),
               arch=d.get("arch"), runtime=d.get("runtime"),
               steps=d.get("steps"), measured_ms=d.get("measured_ms"),
               seconds=d.get("seconds"))

  def save(self, path):
    """Writes the tables as JSON (portable: measure on a phone, plan here)."""
    # Written next to `path`, then renamed over it, so that an interrupted
    # write (or a second process measuring the same model) never leaves a
    # truncated file behind, e.g. in the measuring cache.
    text = json.dumps(self.to_dict(), indent=1)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".latency-", suffix=".tmp")
    try:
      with os.fdopen(fd, "w") as f:
        f.write(text)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise

  @classmethod
  def load(cls, path):
    """Reads a JSON file written by `save`.

    Raises:
      ValueError: naming `path`, when it is not JSON or not a table that
        `from_dict` accepts.
    """
    with open(path) as f:
      try:
        d = json.load(f)
      except ValueError as e:   # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{os.fspath(path)!r} is not a LatencyModel JSON "
                         f"file: {e}") from None
    try:
      return cls.from_dict(d)
    except ValueError as e:
      raise ValueError(f"{os.fspath(path)!r}: {e}") from None

  def __repr__(self):
    return (f"LatencyModel({len(self.layers)} layers, predicted "
            f"{self.predict():.3f} ms, runtime={self.runtime})")

  # ---- construction -----------------------------------------------------

  @classmethod
  def measure(cls, model, *, threads=1, delegate="xnnpack", step=8,
              max_points=12, widths=None, cache_dir=None, use_cache=True,
              verbose=1):
    """Times every MAC-counted layer alone in LiteRT at a grid of widths.

    Args:
      model: a tf_keras model or a Keras 3 model on the TensorFlow backend,
        with a fixed input size. Not modified.
      threads: LiteRT threads. Defaults to 1.
      delegate: 'xnnpack' (LiteRT's default CPU path) or 'none' (the
        builtin kernels). Defaults to 'xnnpack'.
      step: widths are multiples of this (XNNPACK's f32 tiles are 8 or 16
        channels wide here). Defaults to 8.
      max_points: at most this many widths per axis; a wider layer's grid
        step is the smallest multiple of `step` that fits. Defaults to 12.
      widths: instead of that grid, a sequence of fractions in (0, 1] of
        each group's size, each rounded up to a multiple of `step` (the full
        width is always measured). Defaults to None.
      cache_dir: where results are cached; defaults to
        $TFPRUNE_SURVEY_LATENCY_CACHE or ~/.cache/tfprune_survey/latency.
        The file name is the architecture key plus a hash of the runtime
        (LiteRT version, threads, delegate, CPU) and the grid.
      use_cache: read a cached table when there is one. Defaults to True.
      verbose: 1 shows a Keras progress bar.

    Returns:
      A `LatencyModel`.
    """
    from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
    fw = frameworks.check_model(model)
    threads = planning.check_int(threads, "threads", 1)
    step = planning.check_int(step, "step", 1)
    max_points = planning.check_int(max_points, "max_points", 2)
    planning.check_choice(delegate, "delegate", DELEGATES)
    graph = ChannelGraph(model)
    arch = architecture_key(model, graph)
    runtime = runtime_info(threads, delegate)
    if widths is not None:
      bad = [f for f in widths if isinstance(f, bool) or not isinstance(
          f, (int, float)) or not 0 < f <= 1]
      if bad or not widths:
        raise ValueError("`widths` must be fractions in (0, 1] of each "
                         f"group's size, got {list(widths)!r}")
      widths = sorted({float(f) for f in widths})
    grid = {"step": step, "max_points": max_points, "widths": widths}
    digest = hashlib.sha1(json.dumps([runtime, grid], sort_keys=True)
                          .encode()).hexdigest()[:12]
    folder = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "tfprune_survey", "latency")
    path = os.path.join(folder, f"{arch}-{digest}.json")
    if use_cache:
      # Another build of this architecture may carry another model name
      # ('model_1'); the file is found by the digests.
      hits = [path] if os.path.isfile(path) else sorted(glob.glob(
          os.path.join(glob.escape(folder),
                       f"*-{arch.rsplit('-', 1)[-1]}-{digest}.json")))
      if hits:
        try:
          return cls.load(hits[0])
        except ValueError as e:
          # A damaged cache file costs a measurement, not the call.
          warnings.warn(f"LatencyModel.measure: the cached table is unusable "
                        f"and is measured again: {e}")
    t0 = time.perf_counter()
    plans = _layer_plans(model, graph, step, max_points, widths)
    specs = {}
    for plan in plans:
      specs.update(plan["specs"])
    points = sorted(specs)
    bar = fw.keras.utils.Progbar(len(points) + 2) if verbose else None
    timer = _Timer(threads, delegate)
    try:
      fixed = timer.model_ms(_trivial_model(fw.keras))
      if bar:
        bar.add(1)
      timed = {}
      # Timed side by side, a chunk of one-layer files at a time (a layer's
      # widths are neighbours in `points`): on a shared machine one file
      # timed alone drifts, and the planner would chase the drift as if it
      # were a stair. ResNet-20's tables, measured twice, disagreed by 17%
      # per point at the median and 42% at p90 with each file timed alone,
      # 12% and 18% in chunks (`benchmarks/timing_noise.py`).
      for i in range(0, len(points), _CHUNK):
        chunk = points[i:i + _CHUNK]
        timed.update(zip(chunk, timer.models_ms(
            [_one_layer_model(fw.keras, specs[p]) for p in chunk])))
        if bar:
          bar.add(len(chunk))
      whole = timer.model_ms(model)
      if bar:
        bar.add(1)
    finally:
      timer.close()
    layers = [_layer_cost(plan, timed) for plan in plans]
    steps = {}
    for plan in plans:
      steps.update(plan["steps"])
    lm = cls(layers, fixed_ms=fixed, arch=arch, runtime=runtime, steps=steps,
             measured_ms=whole, seconds=time.perf_counter() - t0)
    try:
      os.makedirs(folder, exist_ok=True)
      lm.save(path)
    except OSError:
      pass
    return lm

  @classmethod
  def from_benchmark_profile(cls, csv_path, model):
    """A LatencyModel from TFLite's per-op profile (one point per layer).

    On an Android phone, with the model converted by `tflite_export.convert`:

      adb push m.tflite /data/local/tmp/
      adb shell /data/local/tmp/benchmark_model \\
          --graph=/data/local/tmp/m.tflite --num_threads=1 \\
          --enable_op_profiling=true \\
          --profiling_output_csv_file=/data/local/tmp/profile.csv
      adb pull /data/local/tmp/profile.csv

    The "Operator-wise Profiling Info for Regular Benchmark Runs" section's
    Run Order table is read (columns found by header: node type, avg_ms,
    name). Its conv/Dense ops (CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED, TRANSPOSE_CONV, or XNNPACK's Convolution / Fully
    Connected nodes) are matched, in run order, to the model's MAC-counted
    layers in topological order; other ops are not counted (as in
    `measure`). One profile gives each layer one point, at full width, so
    each layer's time is taken as linear in its input and output widths
    (no staircase); measure the per-width files on the device for that.

    Raises:
      ValueError: when the file has no such section, or its conv/Dense op
        count differs from the model's MAC-counted layers.
    """
    rows = parse_benchmark_profile(csv_path)
    graph = ChannelGraph(model)
    plans = _layer_plans(model, graph, step=1, max_points=2)
    ops = [r for r in rows if _is_mac_op(r["node type"])]
    if len(ops) != len(plans):
      raise ValueError(
          f"{csv_path!r} has {len(ops)} conv/Dense ops where model "
          f"'{model.name}' has {len(plans)} MAC-counted layers: not a "
          "profile of this model")
    layers = []
    for plan, row in zip(plans, ops):
      ms = float(row["avg_ms"])
      ci, co = plan["in_full"], plan["out_full"]

      def linear(full, ms=ms):
        # Linear in width, given at every width (a staircase of step 1).
        return (list(range(1, full + 1)),
                [ms * w / full for w in range(1, full + 1)])
      in_widths, in_ms = ([ci], [ms]) if plan["multiplier"] else linear(ci)
      out_widths, out_ms = linear(co)
      layers.append(LayerCost(
          name=plan["name"], in_axis=plan["in_axis"],
          out_axis=plan["out_axis"], in_full=ci, out_full=co,
          in_widths=in_widths, in_ms=in_ms, out_widths=out_widths,
          out_ms=out_ms, full_ms=ms, multiplier=plan["multiplier"]))
    return cls(layers, fixed_ms=0.0, arch=architecture_key(model, graph),
               runtime={"source": os.path.basename(str(csv_path))},
               measured_ms=sum(float(r["avg_ms"]) for r in rows))


def _plan_key(p):
  return json.dumps(p, sort_keys=True, default=str)


# ---- the benchmark_model profile ------------------------------------------

_MAC_OPS = ("CONV_2D", "CONV_3D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
            "TRANSPOSE_CONV", "Convolution", "Depthwise Convolution",
            "Fully Connected", "Deconvolution")


def _is_mac_op(node_type):
  return any(node_type.strip().startswith(k) for k in _MAC_OPS)


def parse_benchmark_profile(csv_path):
  """Rows of the Run Order table of a `benchmark_model` CSV profile.

  Returns:
    A list of {column: str} dicts, in run order ('node type', 'avg_ms' and
    'name' among the columns; 'start' in newer versions).

  Raises:
    ValueError: when the file has no regular-run Run Order table.
  """
  with open(csv_path) as f:
    lines = [l.rstrip("\n") for l in f]
  try:
    start = next(i for i, l in enumerate(lines)
                 if "Operator-wise Profiling Info for Regular Benchmark Runs"
                 in l)
    header_at = next(i for i in range(start, len(lines))
                     if lines[i].startswith("node type,"))
  except StopIteration:
    raise ValueError(f"{csv_path!r} has no 'Operator-wise Profiling Info for "
                     "Regular Benchmark Runs' table (was benchmark_model run "
                     "with --enable_op_profiling=true?)") from None
  columns = [c.strip() for c in lines[header_at].split(",")]
  rows = []
  for line in lines[header_at + 1:]:
    if not line.strip() or line.startswith("="):
      break
    # The node type may hold ", " (XNNPACK's "Convolution (NHWC, F32)");
    # the name never does (the formatter turns its commas into tabs).
    parts = line.rsplit(",", len(columns) - 1)
    if len(parts) != len(columns):
      raise ValueError(f"{csv_path!r}: cannot read profile row {line!r}")
    rows.append({c: v.strip() for c, v in zip(columns, parts)})
  return rows


# ---- measuring ------------------------------------------------------------

# CPU features that change which kernels LiteRT and XNNPACK run, and so
# the staircase: e.g. an AVX-512 register holds 16 floats, an AVX2 one 8.
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "avx_vnni", "amx_tile", "asimd", "asimddp",
              "asimdhp", "i8mm", "sve", "sve2", "bf16")


def _cpu_identity(lines):
  """(name, id, isa) from the lines of /proc/cpuinfo's first processor."""
  fields = {}
  for line in lines:
    if not line.strip():
      if fields:
        break
      continue
    key, _, value = line.partition(":")
    fields.setdefault(key.strip(), value.strip())
  name = fields.get("model name") or fields.get("Hardware") or ""
  ident = " ".join(f"{k} {fields[k]}" for k in (
      "vendor_id", "cpu family", "model", "stepping", "CPU implementer",
      "CPU part", "CPU variant") if k in fields)
  flags = set((fields.get("flags") or fields.get("Features") or "").split())
  return name, ident, [f for f in _ISA_FLAGS if f in flags]


def runtime_info(threads, delegate):
  """Where a table was measured: LiteRT version, threads, delegate, CPU.

  The CPU is named by its model name, its vendor, family, model and
  stepping, and the vector extensions LiteRT's kernels use (`isa`): two
  machines that both call themselves "AMD EPYC" ran ResNet-20 at 32x32 in
  0.38 ms (an earlier machine) and about 1 ms (family 25 model 1, AVX2 and
  no AVX-512), so a table of one must not be read back as the other's.
  """
  try:
    import ai_edge_litert  # pylint: disable=g-import-not-at-top
    version = ai_edge_litert.__version__
  except (ImportError, AttributeError):
    version = "unknown"
  cpu, ident, isa = platform.processor() or platform.machine(), "", []
  try:
    with open("/proc/cpuinfo") as f:
      name, ident, isa = _cpu_identity(f)
    cpu = name or cpu
  except OSError:
    pass
  return {"litert": version, "threads": threads, "delegate": delegate,
          "cpu": cpu, "cpu_id": ident, "isa": isa,
          "clock": "cpu" if threads == 1 else "wall"}


def measured_here(latency_model):
  """Whether `latency_model` was measured on this machine's runtime.

  True when its `runtime` has the LiteRT version, threads, delegate and CPU
  (name, id and vector extensions) of this machine: then a slim model
  measured here checks what the tables predicted. False for tables read
  from a profile (`from_benchmark_profile`), made by hand, or measured
  elsewhere.
  """
  rt = latency_model.runtime or {}
  if "threads" not in rt or "delegate" not in rt:
    return False
  here = runtime_info(rt["threads"], rt["delegate"])
  return all(rt.get(k) == here[k]
             for k in ("litert", "threads", "delegate", "cpu", "cpu_id",
                       "isa"))


def _config(layer):
  cfg = {k: v for k, v in layer.get_config().items() if k not in _DROP}
  return cfg


def architecture_key(model, graph=None):
  """A short hash of the model's MAC-counted layers and channel groups."""
  graph = graph if graph is not None else ChannelGraph(model)
  parts = []
  for c in iter_calls(model):
    if not layer_call_macs(c):
      continue
    cfg = {k: v for k, v in _config(c.layer).items()
           if not k.endswith(("initializer", "regularizer", "constraint"))
           and k not in ("trainable", "dtype", "seed")}
    parts.append([c.path, type(c.layer).__name__, list(c.input_shapes[0]),
                  list(c.output_shapes[0]), cfg])
  ids = _group_ids(graph)
  parts.append(sorted((ids[g.id], g.size, g.prunable) for g in graph.groups))
  digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str)
                        .encode()).hexdigest()[:16]
  return f"{model.name}-{digest}"


def _grid(size, step, max_points, fractions=None):
  if fractions is not None:
    widths = sorted({min(size, step * max(1, math.ceil(f * size / step
                                                        - 1e-9)))
                     for f in fractions} | {size})
    return widths, step
  spacing = step * max(1, -(-size // (step * max_points)))
  widths = list(range(spacing, size, spacing)) + [size]
  return widths, spacing


def _group_ids(graph):
  """{group id: the id a LatencyModel stores}.

  A prunable group keeps its id (a layer name, which `keep` uses). A
  group that is never pruned is named by its position among those
  ('fixed:0', ...): its id may be an auto-generated input name
  ('input_1', 'input_2') that differs between two builds of one
  architecture, and its count is never set by a plan anyway.
  """
  out, k = {}, 0
  for g in graph.groups:
    if g.prunable:
      out[g.id] = g.id
    else:
      out[g.id] = f"fixed:{k}"
      k += 1
  return out


def _axis(graph, sl, ids):
  if sl is None:
    return []
  out = []
  for seg in sl.layout.segments:
    g = graph.group_of_var(seg.var)
    out.append([ids[g.id], g.size, seg.repeat])
  return out


def _layer_plans(model, graph, step, max_points, fractions=None):
  """Per MAC layer: its axes, grids and the one-layer models to time."""
  by_path = {}
  for sl in graph.weight_slices:
    if sl.role in ("producer", "consumer") or (
        sl.role == "param" and sl.weight == "kernel"):
      by_path.setdefault(sl.path, []).append(sl)
  ids = _group_ids(graph)
  prunable = {ids[g.id]: g.prunable for g in graph.groups}
  plans = []
  for c in iter_calls(model):
    if not layer_call_macs(c):
      continue
    slices = by_path.get(c.path, [])
    cin, cout = int(c.input_shapes[0][-1]), int(c.output_shapes[0][-1])
    kind = type(c.layer).__name__
    tied = kind in _DEPTHWISE or any(s.role == "param" for s in slices)
    consumer = next((s for s in slices if s.role == "consumer"), None)
    producer = next((s for s in slices if s.role == "producer"), None)
    if tied:
      in_axis, out_axis, mult = [], _axis(graph, consumer or next(
          (s for s in slices if s.role == "param"), None), ids), cout // cin
      if out_axis:
        out_axis = [[g, s, r * mult] for g, s, r in out_axis]
    else:
      in_axis, out_axis, mult = _axis(graph, consumer, ids), _axis(
          graph, producer, ids), 0
    base = {"cls": type(c.layer), "config": _config(c.layer),
            "shape": tuple(c.input_shapes[0][1:]), "full_in": cin}
    plan = {"name": c.path, "in_axis": in_axis, "out_axis": out_axis,
            "in_full": cin, "out_full": cout, "multiplier": mult,
            "steps": {}}

    def axis_grid(axis, full):
      varies = [gid for gid, _, _ in axis if prunable[gid]]
      if not varies or len(axis) != 1:
        return [full]
      gid, size, rep = axis[0]
      widths, spacing = _grid(size, step, max_points, fractions)
      plan["steps"][gid] = spacing
      return [int(round(full * w / size)) for w in widths]
    plan["in_widths"] = [cin] if tied else axis_grid(in_axis, cin)
    plan["out_widths"] = axis_grid(out_axis, cout)
    pts = [(w, cout) for w in plan["in_widths"]] + [
        (w // mult if mult else cin, w) for w in plan["out_widths"]]
    keys = []
    plan["specs"] = {}
    for ci, co in pts:
      spec = {**base, "cin": int(ci), "cout": int(co)}
      key = _plan_key({k: v for k, v in spec.items() if k != "cls"} |
                     {"cls": f"{base['cls'].__module__}.{kind}"})
      plan["specs"][key] = spec
      keys.append(key)
    plan["in_points"] = keys[:len(plan["in_widths"])]
    plan["out_points"] = keys[len(plan["in_widths"]):]
    plans.append(plan)
  return plans


def _layer_cost(plan, timed):
  in_ms = [timed[k] for k in plan["in_points"]]
  out_ms = [timed[k] for k in plan["out_points"]]
  full = min(in_ms[-1], out_ms[-1])
  in_ms[-1] = out_ms[-1] = full
  return LayerCost(name=plan["name"], in_axis=plan["in_axis"],
                   out_axis=plan["out_axis"], in_full=plan["in_full"],
                   out_full=plan["out_full"], in_widths=plan["in_widths"],
                   in_ms=_monotone(in_ms), out_widths=plan["out_widths"],
                   out_ms=_monotone(out_ms), full_ms=full,
                   multiplier=plan["multiplier"])


def _one_layer_model(keras, p):
  """A Keras model of one layer at input/output widths (cin, cout)."""
  cfg = dict(p["config"])
  if "filters" in cfg:
    cfg["filters"] = p["cout"]
  if "units" in cfg:
    cfg["units"] = p["cout"]
  if cfg.get("groups", 1) not in (1, None) and cfg["groups"] == p["full_in"]:
    cfg["groups"] = p["cin"]   # a depthwise conv written as Conv(groups=C)
  inp = keras.Input(tuple(p["shape"][:-1]) + (p["cin"],), batch_size=1)
  return keras.Model(inp, p["cls"].from_config(cfg)(inp))


def _trivial_model(keras):
  inp = keras.Input((8,), batch_size=1)
  return keras.Model(inp, keras.layers.ReLU()(inp))


# One-layer files timed side by side at a time by `LatencyModel.measure`.
_CHUNK = 32


class _Timer:
  """Converts models to float TFLite and times them (median of invokes)."""

  def __init__(self, threads, delegate, budget_ms=40.0, rounds=3):
    self.threads, self.delegate = threads, delegate
    self.budget_ms, self.rounds = budget_ms, rounds
    self.folder = tempfile.mkdtemp(prefix="tps_latency_")
    self.path = os.path.join(self.folder, "m.tflite")

  def model_ms(self, model):
    import tflite_export  # pylint: disable=g-import-not-at-top
    tflite_export.convert(model, self.path)
    return time_tflite(self.path, threads=self.threads,
                       delegate=self.delegate, budget_ms=self.budget_ms,
                       rounds=self.rounds)

  def models_ms(self, models):
    """[ms of each model], their invokes taken in turn
    (`time_side_by_side`, about `budget_ms` of invokes each)."""
    import tflite_export  # pylint: disable=g-import-not-at-top
    paths = [os.path.join(self.folder, f"{i}.tflite")
             for i in range(len(models))]
    try:
      for m, path in zip(models, paths):
        tflite_export.convert(m, path)
      return time_side_by_side(paths, threads=self.threads,
                               delegate=self.delegate,
                               budget_ms=self.budget_ms)
    finally:
      for path in paths:
        try:
          os.remove(path)
        except OSError:
          pass

  def close(self):
    try:
      os.remove(self.path)
    except OSError:
      pass
    try:
      os.rmdir(self.folder)
    except OSError:
      pass


def _timing_setup(paths, threads, delegate, budget_ms, rounds, clock, who):
  """(clock fn, [interpreters with random inputs]) after the
  argument checks of `time_tflite`; `who` names the function in errors."""
  for name, value in (("threads", threads), ("rounds", rounds)):
    if not _is_int(value):
      raise TypeError(f"{who}: `{name}` must be an int >= 1, got "
                      f"{value!r} ({type(value).__name__})")
    if value < 1:
      raise ValueError(f"{who}: `{name}` must be an int >= 1, got "
                       f"{value!r}")
  if not _is_ms(budget_ms) or budget_ms == 0:
    raise ValueError(f"{who}: `budget_ms` must be a finite number > 0, "
                     f"got {budget_ms!r}")
  for name, value, allowed in (("delegate", delegate, ("xnnpack", "none")),
                               ("clock", clock, ("auto", "cpu", "wall"))):
    if not isinstance(value, str) or value not in allowed:
      raise ValueError(f"{who}: `{name}` must be one of {allowed}, "
                       f"got {value!r}")
  clock = ("cpu" if threads == 1 else "wall") if clock == "auto" else clock
  now = time.thread_time if clock == "cpu" else time.perf_counter
  from tflite_export.inspect_model import has_free_size, interpreter  # pylint: disable=g-import-not-at-top
  return now, [_interpreter(path, threads, delegate, who, has_free_size,
                            interpreter) for path in paths]


def _interpreter(path, threads, delegate, who, has_free_size, interpreter):
  """A LiteRT interpreter of `path`, its inputs set to random values."""
  interp = interpreter(path, threads=threads,
                       delegates=delegate == "xnnpack", argument="path")
  free = [d["name"] for d in interp.get_input_details() if has_free_size(d)]
  if free:
    raise ValueError(
        f"{who}: {os.fspath(path)!r} has inputs of free size {free}, "
        "so there is no size to time it at; build the model with a fixed "
        "input shape (latency is per size), or time the file with "
        "tflite_export.benchmark(path, input_shape=...)")
  rng = np.random.default_rng(0)
  for d in interp.get_input_details():
    interp.set_tensor(d["index"], rng.random(d["shape"]).astype(d["dtype"]))
  return interp


def time_tflite(path, *, threads=1, delegate="xnnpack", budget_ms=40.0,
                rounds=3, clock="auto"):
  """Smallest of `rounds` medians of batch-1 invokes (about `budget_ms`).

  `clock`: 'cpu' times each invoke by the invoking thread's CPU time
  (`time.thread_time`), 'wall' by `time.perf_counter`; 'auto' (the
  default) is 'cpu' with 1 thread, where LiteRT and XNNPACK compute in the
  calling thread, and 'wall' otherwise. On a shared machine a wall-clock
  invoke longer than the scheduler's time slice is nearly always
  pre-empted: MobileNetV2 at 224 measured a median of 11.6 ms of wall time
  for 3.65 ms of CPU time under a load of 15 on 2 cores, while short
  invokes were not affected. CPU time is what the invoke costs on an idle
  core.

  Args:
    path: the .tflite file, of fixed input sizes.
    threads: LiteRT threads; an int >= 1.
    delegate: 'xnnpack' (LiteRT's default CPU path) or 'none' (the builtin
      kernels).
    budget_ms: about how long to spend timing; a number > 0.
    rounds: medians taken; an int >= 1.
    clock: 'auto', 'cpu' or 'wall'.

  Raises:
    FileNotFoundError: `path` is not a file.
    TypeError, ValueError: a bad argument (the message names it), or a
      file with a free input size.
  """
  now, (interp,) = _timing_setup([path], threads, delegate, budget_ms,
                                 rounds, clock, "time_tflite")
  for _ in range(3):
    interp.invoke()
  t0 = now()
  for _ in range(3):
    interp.invoke()
  est = (now() - t0) / 3 * 1e3
  runs = int(np.clip(budget_ms / rounds / max(est, 1e-4), 7, 3000))
  best = float("inf")
  for _ in range(rounds):
    times = np.empty(runs)
    for i in range(runs):
      t = now()
      interp.invoke()
      times[i] = now() - t
    best = min(best, float(np.median(times)) * 1e3)
  return best


def time_side_by_side(paths, *, threads=1, delegate="xnnpack",
                      budget_ms=1000.0, clock="auto", runs=None):
  """Median ms of batch-1 invokes of each file, the files' invokes taken in
  turn (A, B, A, B, ...), so that all of them run under the same
  conditions.

  On a shared machine a model's own latency drifts with its neighbours'
  load (cache and memory bandwidth), even in CPU time: MobileNetV2 at 224
  read 10.4 to 13.3 ms in six `time_tflite` calls, best of 5 medians each,
  and a slim model's ratio to it 0.49 to 0.72 when the two were timed one
  file after the other. Taken invoke by invoke in turn, six runs gave
  ratios of 0.521 to 0.545 (`benchmarks/timing_noise.py`). Use this for
  ratios (speed-ups); the absolute times still drift with the machine.

  Args:
    paths: .tflite files of fixed input sizes (at least one).
    threads, delegate, clock: as for `time_tflite`.
    budget_ms: about how long to spend per file; at least 15 and at most
      3,000 invokes of each are timed.
    runs: the invokes of each file to time, an int >= 1, in place of
      `budget_ms`'s count.

  Returns:
    [ms of each file], in the order of `paths`.

  Raises:
    as `time_tflite`; ValueError for an empty `paths`.
  """
  paths = list(paths)
  if not paths:
    raise ValueError("time_side_by_side: `paths` is empty; give at least "
                     "one .tflite file")
  if runs is not None and (not _is_int(runs) or runs < 1):
    raise ValueError("time_side_by_side: `runs` must be an int >= 1 or "
                     f"None, got {runs!r}")
  now, interps = _timing_setup(paths, threads, delegate, budget_ms, 1, clock,
                               "time_side_by_side")
  est = []
  for interp in interps:
    for _ in range(3):
      interp.invoke()
    t0 = now()
    for _ in range(3):
      interp.invoke()
    est.append(max((now() - t0) / 3 * 1e3, 1e-4))
  if runs is None:
    runs = int(np.clip(budget_ms / max(est), 15, 3000))
  times = np.empty((int(runs), len(interps)))
  for i in range(runs):
    for j, interp in enumerate(interps):
      t = now()
      interp.invoke()
      times[i, j] = now() - t
  return [float(v) * 1e3 for v in np.median(times, axis=0)]


def measure_side_by_side(models, *, threads=1, delegate="xnnpack",
                         budget_ms=1000.0):
  """Measured float TFLite latency of whole models, in ms, timed in turn
  (see `time_side_by_side`); the models are converted first."""
  timer = _Timer(threads, delegate, budget_ms=budget_ms)
  try:
    return timer.models_ms(models)
  finally:
    timer.close()


def measure_ms(model, *, threads=1, delegate="xnnpack", budget_ms=300.0,
               rounds=5):
  """Measured float TFLite latency of a whole model, in ms."""
  timer = _Timer(threads, delegate, budget_ms=budget_ms, rounds=rounds)
  try:
    return timer.model_ms(model)
  finally:
    timer.close()


# The planner lives in its own module; its public names are re-exported here
# (it imports this module's names only when called, so there is no cycle).
from tfprune_survey.latency_planning import plan_latency  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfprune_survey.latency_planning import search_latency  # pylint: disable=g-import-not-at-top,wrong-import-position


__all__ = ["LatencyModel", "LayerCost", "architecture_key", "measure_ms",
           "measure_side_by_side", "measured_here", "parse_benchmark_profile",
           "plan_latency", "runtime_info", "search_latency",
           "time_side_by_side", "time_tflite"]
