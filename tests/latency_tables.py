"""A small model and a hand-made LatencyModel of it, shared by the tests."""

from tfprune_survey import frameworks
from tfprune_survey import latency


def small_model(framework, width=16):
  """image -> c1 (conv) -> c2 (conv) -> gap -> out (Dense)."""
  keras = frameworks.get(framework).keras
  L = keras.layers
  inp = keras.Input((8, 8, 3))
  x = L.Conv2D(width, 3, padding="same", activation="relu", name="c1")(inp)
  x = L.Conv2D(width, 3, padding="same", activation="relu", name="c2")(x)
  x = L.GlobalAveragePooling2D(name="gap")(x)
  return keras.Model(inp, L.Dense(4, name="out")(x), name="small")


def fake_table():
  """Hand-made costs (ms) of small_model's three layers; fixed cost 0.

  c1 (image -> c1): 1.0 at 8 output channels, 2.0 at 16.
  c2 (c1 -> c2): 3.0 at 8 input channels, 4.0 at 16; its output
    staircase is flat from 8 to 16 (4.0), 2.0 at 4.
  out (c2 -> 4 logits): 0.5 at 8 input channels, 1.0 at 16.
  Unpruned: 2 + 4 + 1 = 7 ms.
  """
  return latency.LatencyModel([
      dict(name="c1", in_axis=[], out_axis=[["c1", 16, 1]], in_full=3,
           out_full=16, in_widths=[3], in_ms=[2.0], out_widths=[8, 16],
           out_ms=[1.0, 2.0], full_ms=2.0),
      dict(name="c2", in_axis=[["c1", 16, 1]], out_axis=[["c2", 16, 1]],
           in_full=16, out_full=16, in_widths=[8, 16], in_ms=[3.0, 4.0],
           out_widths=[4, 8, 12, 16], out_ms=[2.0, 4.0, 4.0, 4.0],
           full_ms=4.0),
      dict(name="out", in_axis=[["c2", 16, 1]], out_axis=[], in_full=16,
           out_full=4, in_widths=[8, 16], in_ms=[0.5, 1.0], out_widths=[4],
           out_ms=[1.0], full_ms=1.0),
  ], fixed_ms=0.0, steps={"c1": 8, "c2": 4})


def macs_proportional_timer(monkeypatch):
  """Makes `LatencyModel.measure`'s per-layer tables deterministic.

  Each one-layer file "runs" in 2 us plus 1 ns per MAC, in place of being
  timed (`_Timer.model_ms` and `_Timer.models_ms`). A smoke test's latency
  targets are then reachable on any machine: on real timings a noisy CI
  machine found at most 0.092 of the width-16 demo net's latency removable
  and left the 0.1 variants out. The whole
  models `tps.prune(target_latency=...)` measures (`measure_side_by_side`)
  cost the same, so that its re-plans on measured latency are the same on
  any machine. Timings of converted files (`time_tflite`) stay real.
  """
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  ms = lambda m: 0.002 + 1e-6 * tps.count_macs(m)  # pylint: disable=unnecessary-lambda-assignment
  monkeypatch.setattr(latency._Timer, "model_ms",  # pylint: disable=protected-access
                      lambda self, m: ms(m))
  monkeypatch.setattr(latency._Timer, "models_ms",  # pylint: disable=protected-access
                      lambda self, models: [ms(m) for m in models])
  monkeypatch.setattr(latency, "measure_side_by_side",
                      lambda models, **kw: [ms(m) for m in models])
