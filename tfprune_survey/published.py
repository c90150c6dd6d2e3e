"""Published pruning results, and our own runs placed beside them.

The survey's complaint is that results are scattered over models, data
sets and years. `benchmarks/published_results.csv` gathers them, each row
with its source and the basis of the figure (`survey_text`: stated in the
survey; `paper_unverified`: read from the original paper's table;
`official_repo`: from the authors' code release). Columns:

  method, model, dataset, base_top1, pruned_top1, delta_top1 (points;
  negative is a loss), flops_reduction_pct, params_reduction_pct, metric
  (top1 or top5), source, basis, notes

Empty numeric fields are unknown, not zero.
"""

import csv
import json
import math
import os
import re
import site
import sys

COLUMNS = ("method", "model", "dataset", "base_top1", "pruned_top1",
           "delta_top1", "flops_reduction_pct", "params_reduction_pct",
           "metric", "source", "basis", "notes")
NUMERIC = ("base_top1", "pruned_top1", "delta_top1", "flops_reduction_pct",
           "params_reduction_pct")
METRICS = ("top1", "top5")
ENV_VAR = "TFPS_PUBLISHED_RESULTS"


def default_path():
  """The CSV: $TFPS_PUBLISHED_RESULTS, the source tree's, or the installed one.

  Raises:
    FileNotFoundError: $TFPS_PUBLISHED_RESULTS names no file (it is not
      passed over for the shipped CSV), or no CSV is found.
  """
  candidates = []
  if os.environ.get(ENV_VAR):
    if not os.path.exists(os.environ[ENV_VAR]):
      raise FileNotFoundError(
          f"${ENV_VAR} is {os.environ[ENV_VAR]!r}, which does not exist; "
          "correct it, or unset it for the shipped published_results.csv")
    return os.environ[ENV_VAR]
  here = os.path.dirname(os.path.abspath(__file__))
  candidates.append(os.path.join(os.path.dirname(here), "benchmarks",
                                 "published_results.csv"))
  # setup.cfg's data_files: under the prefix, or the user base with
  # `pip install --user`.
  for base in (sys.prefix, site.getuserbase()):
    candidates.append(os.path.join(base, "share", "tfprune_survey",
                                   "published_results.csv"))
  for path in candidates:
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      "published_results.csv not found; looked in " + ", ".join(candidates) +
      f". Pass its path, or set {ENV_VAR}.")


def _number(text, column, line):
  text = (text or "").strip()
  if not text:
    return None
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not math.isfinite(value):
    raise ValueError(f"line {line}: column {column!r} must be a number or "
                     f"empty, got {text!r}")
  return value


def _half_unit(text):
  """Half a unit of the last decimal `text` gives: how far rounding to it
  may have moved the value ('93.26' -> 0.005, '76' -> 0.5)."""
  text = text.strip().lower().split("e")[0]
  decimals = len(text.split(".")[1]) if "." in text else 0
  return 0.5 * 10.0 ** -decimals


def _check_delta(row, raw, line):
  """A delta_top1 given beside both top-1 figures must be their difference,
  up to the rounding of the three cells."""
  base, pruned, d = row["base_top1"], row["pruned_top1"], row["delta_top1"]
  if None in (base, pruned, d):
    return
  slack = sum(_half_unit(raw[c]) for c in
              ("base_top1", "pruned_top1", "delta_top1")) + 1e-9
  if abs((pruned - base) - d) > slack:
    raise ValueError(
        f"line {line}: column 'delta_top1' is {raw['delta_top1'].strip()!r}, "
        f"but pruned_top1 - base_top1 is {pruned - base:+.4g} "
        f"({raw['pruned_top1'].strip()} - {raw['base_top1'].strip()}), "
        "beyond the rounding of the cells; correct one of them, or leave "
        "delta_top1 empty to have it computed")


def load(path=None):
  """The rows of the CSV as dicts; numeric columns are floats or None.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a missing column, a non-numeric figure, a reduction
      outside [0, 100), a metric other
      than top1/top5 ('Top-5' reads as top5), an empty method, model or
      dataset, a delta_top1 that is not pruned_top1 - base_top1 (up to
      the rounding of the cells) where all three are given, or a row of
      more cells than the header, with its line; a
      file that is not UTF-8 text. A row whose cells are all empty (a
      spreadsheet's ',,,,') is skipped.
  """
  path = path or default_path()
  if not os.path.exists(path):
    raise FileNotFoundError(f"published results file {path!r} does not exist")
  if os.path.isdir(path):
    raise ValueError(f"published results file {path!r} is a folder, not a "
                     "CSV file")
  try:
    return _read(path)
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text ({e}); save the CSV as "
                     "UTF-8") from None


def _read(path):
  # utf-8-sig: a spreadsheet's byte-order mark is not part of 'method'.
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames:   # 'method, model, ...' names the same columns
      reader.fieldnames = [(n or "").strip() for n in reader.fieldnames]
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(f"{path}: missing columns {missing}; expected "
                       f"{list(COLUMNS)}")
    rows = []
    for raw in reader:
      line = reader.line_num   # the file's line, blank lines counted
      extra = [v for v in raw.get(None) or () if (v or "").strip()]
      if extra:
        raise ValueError(
            f"{path}: line {line} has {len(reader.fieldnames) + len(raw[None])}"
            f" cells, the header {len(reader.fieldnames)}; the cells past "
            f"the last column are {extra!r}. Quote a field that holds a "
            "comma.")
      row = {c: (raw[c] or "").strip() for c in COLUMNS}
      if not any(row.values()):
        continue   # a spreadsheet's row of empty cells (',,,,')
      empty = [c for c in ("method", "model", "dataset") if not row[c]]
      if empty:
        raise ValueError(
            f"{path}: line {line}: "
            + (f"column {empty[0]!r} is" if len(empty) == 1 else
               f"columns {', '.join(map(repr, empty))} are")
            + " empty; each result names its method, model and data set")
      for c in NUMERIC:
        row[c] = _number(raw[c], c, line)
      for c in ("flops_reduction_pct", "params_reduction_pct"):
        if row[c] is not None and not 0 <= row[c] < 100:
          raise ValueError(
              f"line {line}: column {c!r} must be a percentage in [0, 100) "
              f"(what pruning removed), got {raw[c].strip()!r}")
      _check_delta(row, raw, line)
      metric = normalize(row["metric"])   # 'Top-5' is top5
      if metric not in METRICS:
        raise ValueError(f"line {line}: column 'metric' must be one of "
                         f"{METRICS}, got {row['metric']!r}")
      row["metric"] = metric
      rows.append(row)
  return rows


def normalize(name):
  """'ResNet-56' -> 'resnet56'; how model and data set names are matched."""
  return re.sub(r"[^a-z0-9]", "", str(name).lower())


def select(rows, model=None, dataset=None):
  """Rows whose model / dataset match (case, '-' and '_' ignored)."""
  out = rows
  if model:
    out = [r for r in out if normalize(r["model"]) == normalize(model)]
  if dataset:
    out = [r for r in out if normalize(r["dataset"]) == normalize(dataset)]
  return out


def _names(rows, column):
  """The column's names, one spelling each ('ResNet-56' is ResNet56), sorted."""
  seen = {}
  for r in rows:
    seen.setdefault(normalize(r[column]), r[column])
  return ", ".join(sorted(seen.values()))


def no_match(rows, model=None, dataset=None, path=None):
  """Why `select(rows, model, dataset)` is empty, and what there is instead.

  Names the filter at fault: an unknown --model lists the models (those
  on --dataset where it has results), an unknown --dataset the data sets
  (those --model has results on), and a model and data set that are
  known apart but have no result together say which data sets the model
  has results on and which models the data set has.
  """
  by_model = select(rows, model=model) if model else rows
  by_data = select(rows, dataset=dataset) if dataset else rows
  if not rows:
    return (f"{path or 'the published results file'} has no rows of "
            "results")
  if model and not by_model and dataset and not by_data:
    return (f"no published results for --model {model} nor on --dataset "
            f"{dataset}; known models: {_names(rows, 'model')}; known data "
            f"sets: {_names(rows, 'dataset')}")
  if model and not by_model:
    return (f"no published results for --model {model}; known models"
            + (f" on {dataset}" if dataset else "") + ": "
            + _names(by_data, "model"))
  if dataset and not by_data:
    return (f"no published results on --dataset {dataset}; known data sets"
            + (f" for {model}" if model else "") + ": "
            + _names(by_model, "dataset"))
  return (f"no published results for --model {model} on --dataset "
          f"{dataset}; {model} has results on {_names(by_model, 'dataset')}"
          f"; {dataset} has results for {_names(by_data, 'model')}")


def reduction(row):
  """FLOPs reduction % where known, else parameter reduction %, else None."""
  if row.get("flops_reduction_pct") is not None:
    return row["flops_reduction_pct"]
  return row.get("params_reduction_pct")


def delta(row):
  """delta_top1, else pruned_top1 - base_top1 where both are known, else None."""
  if row.get("delta_top1") is not None:
    return row["delta_top1"]
  if row.get("base_top1") is not None and row.get("pruned_top1") is not None:
    return row["pruned_top1"] - row["base_top1"]
  return None


def _cell(row):
  parts = []
  if delta(row) is not None:
    parts.append(f"{delta(row):+.2f}")
  else:
    parts.append("?")
  if row["flops_reduction_pct"] is not None:
    parts.append(f"F{row['flops_reduction_pct']:g}%")
  if row["params_reduction_pct"] is not None:
    parts.append(f"P{row['params_reduction_pct']:g}%")
  if row.get("metric") == "top5":
    parts.append("(top5)")
  return " ".join(parts)


def _md(text):
  """Text for a Markdown table cell: '|' escaped, line breaks as spaces."""
  return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).replace("|", "\\|")


def pivot(rows):
  """Method by model/dataset, as Markdown.

  Methods are sorted by their largest reduction (FLOPs, else params),
  highest first; within a cell, entries are sorted the same way. A cell
  reads 'delta F<FLOPs reduction>% P<params reduction>%', delta in points
  of top-1 (pruned_top1 - base_top1 where delta_top1 is empty; '?'
  unknown; '(top5)' when the figure is top-5).
  """
  if not rows:
    return "(no published results match)"
  col = lambda r: (normalize(r["dataset"]), normalize(r["model"]))
  names = {}
  for r in rows:  # one column per model/dataset, whatever the spelling
    names.setdefault(col(r), f"{_md(r['model'])} / {_md(r['dataset'])}")
  columns = sorted(names)
  methods = {}
  for r in rows:
    methods.setdefault(r["method"], []).append(r)
  key = lambda r: -(reduction(r) if reduction(r) is not None else -1)
  order = sorted(methods, key=lambda m: (min(key(r) for r in methods[m]), m))
  head = "| method | " + " | ".join(names[c] for c in columns) + " |"
  lines = [head, "|---|" + "---|" * len(columns)]
  for m in order:
    cells = []
    for c in columns:
      hits = sorted((r for r in methods[m] if col(r) == c), key=key)
      cells.append("; ".join(_cell(r) for r in hits))
    lines.append(f"| {_md(m)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


_OURS_TEXT = ("criterion", "schedule", "model", "dataset")
_OURS_NUMBERS = ("base_top1", "top1", "delta_top1", "macs_reduction_pct",
                 "params_reduction_pct")


def load_ours(path):
  """Our runs from a `benchmarks/survey_comparison.py` JSON, as CSV-like rows.

  Each becomes {method: 'ours: <criterion> (<schedule>)', model, dataset,
  delta_top1, flops_reduction_pct (MACs), params_reduction_pct, ...}.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not JSON, no 'runs' list, or a run that lacks a field or
      has a non-number where a figure belongs (the message names the file
      and the run).
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"--ours file {path!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not a JSON file ({e}); expected a "
                     "survey_comparison JSON") from None
  records = data.get("runs") if isinstance(data, dict) else None
  if not isinstance(records, list):
    raise ValueError(f"{path}: expected a survey_comparison JSON with a "
                     "'runs' list")
  rows = []
  for i, r in enumerate(records):
    if not isinstance(r, dict):
      raise ValueError(f"{path}: runs[{i}] is not an object")
    missing = [k for k in _OURS_TEXT + _OURS_NUMBERS if k not in r]
    bad = [k for k in _OURS_NUMBERS if k not in missing and (
        isinstance(r[k], bool) or not isinstance(r[k], (int, float)) or
        not math.isfinite(r[k]))]
    if missing or bad:
      raise ValueError(
          f"{path}: runs[{i}] " + "; ".join(
              ([f"lacks {missing}"] if missing else []) +
              ([f"has non-numbers {({k: r[k] for k in bad})}"] if bad
               else [])) + "; is it a benchmarks/survey_comparison.py JSON?")
    rows.append({
        "method": f"ours: {r['criterion']} ({r['schedule']})",
        "model": r["model"], "dataset": r["dataset"],
        "base_top1": 100 * r["base_top1"], "pruned_top1": 100 * r["top1"],
        "delta_top1": r["delta_top1"],
        "flops_reduction_pct": r["macs_reduction_pct"],
        "params_reduction_pct": r["params_reduction_pct"], "metric": "top1",
        "source": path, "basis": "ours", "notes": ""})
  return rows


def pairs(published, ours):
  """Panels to draw and warnings about them.

  A panel is one model that both have (names normalized). When our data
  set differs from the published one, a warning says so. Our runs of
  models that no published result has are drawn in one more panel, beside
  every published result, and the warning says models differ (when no
  model is shared, that is the only panel).

  Returns:
    (panels, warnings): panels is a list of (title, published_rows,
    our_rows).
  """
  warnings = []
  models = sorted({normalize(r["model"]) for r in ours} &
                  {normalize(r["model"]) for r in published})
  panels = []
  for m in models:
    pub = [r for r in published if normalize(r["model"]) == m]
    own = [r for r in ours if normalize(r["model"]) == m]
    ours_data = sorted({r["dataset"] for r in own})
    pub_data = sorted({r["dataset"] for r in pub})
    title = f"{own[0]['model']}"
    if {normalize(d) for d in ours_data} != {normalize(d) for d in pub_data}:
      warnings.append(
          f"{own[0]['model']}: ours ran on {', '.join(ours_data)}; the "
          f"published results are on {', '.join(pub_data)}. Different data: "
          "compare trends, not numbers.")
      title += f" (ours: {', '.join(ours_data)}; published: " \
               f"{', '.join(pub_data)})"
    panels.append((title, pub, own))
  # Our runs of a model no published result has: one more panel, beside
  # every published result (all of ours when no model is shared).
  alone = [r for r in ours if normalize(r["model"]) not in models]
  if alone:
    ours_models = sorted({f"{r['model']} / {r['dataset']}" for r in alone})
    warnings.append(
        "no published result shares a model with ours ("
        + ", ".join(ours_models) + "); they are drawn together, but ours ran "
        "on a different model and different data.")
    panels.append(("ours and published: different models and data",
                   published, alone))
  return panels, warnings


def check_plot_path(path):
  """Raises ValueError unless `path` names an image file matplotlib writes.

  A folder, a name without an extension (matplotlib wrote '<path>.png')
  and an extension matplotlib has no writer for are refused, with the
  formats it has.
  """
  from matplotlib.backend_bases import FigureCanvasBase  # pylint: disable=g-import-not-at-top
  formats = sorted(FigureCanvasBase.get_supported_filetypes())
  example = "compare.png"
  if os.path.isdir(path):
    raise ValueError(f"{path!r} is a folder; name the image file, e.g. "
                     f"{os.path.join(path, example)!r}")
  ext = os.path.splitext(path)[1][1:].lower()
  if ext not in formats:
    raise ValueError(
        f"{path!r}: " + (f"no writer for '.{ext}' images" if ext else
                         "the file name has no extension")
        + f"; name it with one of .{', .'.join(formats)} (e.g. {example})")


def plot(published, ours, path):
  """Survey Figure 4 style: delta top-1 against % FLOPs (MACs) reduction.

  Published points are grey squares, labelled with their method; a point
  whose FLOPs reduction is unknown is drawn hollow at its parameter
  reduction, and a top-5 figure is a triangle. Ours are in colour, one per
  criterion. Returns the warnings of `pairs`. Drawn on a standalone
  matplotlib Figure: pyplot's backend and open figures (a notebook's
  inline plots) are left as they are.

  Raises:
    ValueError: `path` is a folder, or its extension (none included) names
      no image format matplotlib writes; see `check_plot_path`.
  """
  check_plot_path(path)
  import matplotlib  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  if ours:
    panels, warnings = pairs(published, ours)
  else:
    panels, warnings = [("published results", published, [])], []
  fig = Figure(figsize=(6.5 * len(panels), 4.8))
  axes = fig.subplots(1, len(panels), squeeze=False)
  for ax, (title, pub, own) in zip(axes[0], panels):
    shown = [r for r in pub if delta(r) is not None and
             reduction(r) is not None]
    kinds = set()
    for r in shown:
      # A figure with only a params reduction is drawn hollow at it, and a
      # top-5 figure as a triangle: neither is what the axes say.
      flops = r["flops_reduction_pct"] is not None
      top5 = r.get("metric") == "top5"
      kind = ("published, " + ("FLOPs" if flops else "params (FLOPs unknown)")
              + " reduction" + (", top-5" if top5 else ""))
      ax.scatter(reduction(r), delta(r), marker="^" if top5 else "s",
                 s=28, facecolors="0.55" if flops else "none",
                 edgecolors="0.55", label=None if kind in kinds else kind)
      kinds.add(kind)
      ax.annotate(r["method"] + (" (top5)" if top5 else ""),
                  (reduction(r), delta(r)), fontsize=6,
                  color="0.35", xytext=(3, 2), textcoords="offset points")
    crits = sorted({r["method"] for r in own})
    cmap = matplotlib.colormaps["tab20"]
    for i, method in enumerate(crits):
      pts = [r for r in own if r["method"] == method]
      ax.scatter([reduction(r) for r in pts], [r["delta_top1"] for r in pts],
                 color=cmap(i % 20), marker="o", s=36, label=method)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("FLOPs (MACs) reduction, % (hollow: params reduction, "
                  "where FLOPs are unknown)")
    ax.set_ylabel("change in top-1, points (triangles: top-5)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if crits or len(kinds) > 1:
      ax.legend(fontsize=6, loc="best", ncol=2)
  if warnings:
    fig.text(0.5, 0.005, "NOTE: " + " ".join(warnings), ha="center",
             fontsize=7, wrap=True, color="firebrick")
  fig.tight_layout(rect=(0, 0.05 if warnings else 0, 1, 1))
  fig.savefig(path, dpi=110)
  return warnings
