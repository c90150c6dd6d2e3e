"""`LatencyModel.plot`: the measured staircases, one panel per layer."""

import math

import numpy as np


def panels(lm, keep=None, layers=None, max_layers=12):
  """What `LatencyModel.plot` draws, without drawing it.

  Returns:
    A list, one dict per panel: 'name', 'out' and 'in' ((widths, ms) of
    the layer's measured axes), 'full' ((input, output) channels), and with
    `keep`: 'kept' ((input, output) channels kept) and 'kept_ms' (the
    layer's predicted ms there).

  Raises:
    ValueError: for `layers` that is empty, not a name or a list of names,
      or names a layer the tables do not time; a `max_layers` that is not a
      positive int; or tables that time no layer.
  """
  if isinstance(max_layers, bool) or not isinstance(
      max_layers, (int, np.integer)) or max_layers < 1:
    raise ValueError(f"`max_layers` must be a positive int, got "
                     f"{max_layers!r}")
  by_name = {l.name: l for l in lm.layers}
  if not by_name:
    raise ValueError("these latency tables time no layer: there is nothing "
                     "to plot")
  timed = sorted(by_name)
  timed = f"{timed[:8]}{'...' if len(timed) > 8 else ''}"
  if layers is None:
    slowest = sorted(lm.layers, key=lambda l: -l.full_ms)[:max_layers]
    chosen = [l for l in lm.layers if l in slowest]
  else:
    if isinstance(layers, str):
      layers = [layers]
    try:
      layers = list(layers)
    except TypeError:
      raise ValueError("`layers` must be a layer name or a list of layer "
                       f"names, got {layers!r}; timed: {timed}") from None
    if not layers:
      raise ValueError("`layers` is empty: name at least one layer, or pass "
                       f"None for the `max_layers` slowest; timed: {timed}")
    unknown = [n for n in layers if not isinstance(n, str)
               or n not in by_name]
    if unknown:
      raise ValueError(f"`layers` names layers these tables do not time: "
                       f"{unknown}; timed: {timed}")
    chosen = [by_name[n] for n in layers]
  kept = None if keep is None else lm.kept_widths(keep)
  out = []
  for l in chosen:
    p = {"name": l.name, "out": (list(l.out_widths), list(l.out_ms)),
         "in": (list(l.in_widths), list(l.in_ms)),
         "full": (l.in_full, l.out_full)}
    if kept is not None:
      cin, cout = kept[l.name]
      p["kept"] = (cin, cout)
      p["kept_ms"] = l.ms(cin, cout, lm.fixed_ms)
    out.append(p)
  return out


def plot(lm, path, keep=None, layers=None, max_layers=12, title=None):
  """Draws `panels(lm, keep, layers, max_layers)` to `path`; returns it.

  Drawn on a standalone matplotlib Figure: pyplot's backend and open
  figures (a notebook's inline plots) are left as they are."""
  parts = panels(lm, keep, layers, max_layers)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  cols = min(4, len(parts))
  rows = math.ceil(len(parts) / cols)
  fig = Figure(figsize=(3.4 * cols, 2.6 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax, p in zip(axes.flat, parts):
    for axis, color, label in (("out", "C0", "output channels"),
                               ("in", "C1", "input channels")):
      widths, ms = p[axis]
      ms = [1e3 * t for t in ms]
      if len(widths) > 1:
        # ms at w is the time of the smallest measured width >= w.
        ax.step([0] + widths, ms[:1] + ms, where="pre", color=color,
                label=label)
        ax.plot(widths, ms, "o", ms=2.5, color=color)
      else:
        ax.plot(widths, ms, "s", ms=4, color=color, label=f"{label} (fixed)")
    head = p["name"].split("/")[-1]
    if "kept" in p:
      cin, cout = p["kept"]
      ax.axvline(cout, color="C0", ls="--", lw=0.8)
      ax.axvline(cin, color="C1", ls=":", lw=0.8)
      head += (f"\nkept {cin}/{p['full'][0]} in, {cout}/{p['full'][1]} out: "
               f"{1e3 * p['kept_ms']:.1f} us")
    ax.set_title(head, fontsize=7)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=6)
  for ax in list(axes.flat)[len(parts):]:
    ax.set_visible(False)
  axes.flat[0].set_ylabel("us per call", fontsize=7)
  axes.flat[0].legend(fontsize=6)
  runtime = lm.runtime
  fig.suptitle(title or (
      f"Measured latency per layer ({runtime.get('delegate', '?')}, "
      f"{runtime.get('threads', '?')} thread(s)): time against width"),
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path
