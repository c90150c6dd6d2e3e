"""Measured latency: the runtime's CPU identity, timing files in turn, and
`tps.prune(target_latency=...)` re-planning on the slim model's measured
latency."""

import re

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey import latency
from tfprune_survey import latency_planning
from tfprune_survey import planning
from tests.latency_tables import fake_table
from tests.latency_tables import small_model

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse sse2 fma avx avx2 bmi2 avx512f avx512_vnni sha_ni

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 9
model name\t: Other
""".splitlines(keepends=True)

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes asimdhp asimddp sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
""".splitlines(keepends=True)


def test_cpu_identity_reads_the_first_processor():
  name, ident, isa = latency._cpu_identity(X86)  # pylint: disable=protected-access
  assert name == "AMD EPYC"
  assert ident == "vendor_id AuthenticAMD cpu family 25 model 1 stepping 1"
  assert isa == ["avx2", "fma", "avx512f", "avx512_vnni"]
  name, ident, isa = latency._cpu_identity(ARM)  # pylint: disable=protected-access
  assert name == ""
  assert ident == "CPU implementer 0x41 CPU part 0xd40 CPU variant 0x1"
  assert isa == ["asimd", "asimddp", "asimdhp", "i8mm", "sve", "bf16"]


def test_measured_here_compares_the_whole_runtime(monkeypatch):
  here = latency.runtime_info(1, "xnnpack")
  assert {"cpu", "cpu_id", "isa", "litert"} <= set(here)
  lm = fake_table()
  assert not latency.measured_here(lm)   # a table made by hand
  lm.runtime = dict(here)
  assert latency.measured_here(lm)
  # Same CPU name, another model of it (as two "AMD EPYC" machines were).
  lm.runtime = {**here, "cpu_id": here["cpu_id"] + " (another)"}
  assert not latency.measured_here(lm)
  lm.runtime = {**here, "isa": here["isa"] + ["avx512f_not_here"]}
  assert not latency.measured_here(lm)
  lm.runtime = {"source": "profile.csv"}   # from_benchmark_profile's
  assert not latency.measured_here(lm)
  # The same table read on a machine whose CPU differs only by its model.
  monkeypatch.setattr(latency, "runtime_info",
                      lambda t, d: {**here, "cpu_id": "family 25 model 17"})
  assert not latency.measured_here(latency.LatencyModel([], runtime=here))


def _files(tmp_path):
  """A tiny and a 32x wider float file of the same net (.tflite paths)."""
  import tflite_export  # pylint: disable=g-import-not-at-top
  keras = frameworks.get("keras3").keras
  paths = []
  for width in (4, 128):
    inp = keras.Input((32, 32, 8))
    x = keras.layers.Conv2D(width, 3, padding="same")(inp)
    x = keras.layers.Conv2D(width, 3, padding="same")(x)
    paths.append(str(tmp_path / f"w{width}.tflite"))
    tflite_export.convert(keras.Model(inp, x), paths[-1])
  return paths


def test_time_side_by_side_times_each_file_in_order(tmp_path, monkeypatch):
  small, big = _files(tmp_path)
  ms = latency.time_side_by_side([small, big, small], budget_ms=20)
  assert len(ms) == 3 and all(0 < v < 1e3 for v in ms)
  # 32x the channels on both sides of the second conv: far slower.
  assert ms[1] > 4 * max(ms[0], ms[2])
  with pytest.raises(ValueError, match="time_side_by_side: `paths` is empty"):
    latency.time_side_by_side([])
  (one,) = latency.time_side_by_side([small], runs=3)
  assert 0 < one < 1e3
  for bad in (0, 2.5, True):
    with pytest.raises(ValueError, match=re.escape(
        f"time_side_by_side: `runs` must be an int >= 1 or None, got {bad!r}")):
      latency.time_side_by_side([small], runs=bad)
  opened = []
  monkeypatch.setattr("tflite_export.inspect_model.interpreter",
                      lambda *a, **k: opened.append(a))
  for kwargs, error, text in [
      ({"threads": 0}, ValueError, "`threads` must be an int >= 1, got 0"),
      ({"budget_ms": -1}, ValueError,
       "`budget_ms` must be a finite number > 0, got -1"),
      ({"delegate": "gpu"}, ValueError,
       "`delegate` must be one of ('xnnpack', 'none'), got 'gpu'")]:
    with pytest.raises(error, match=re.escape("time_side_by_side: " + text)):
      latency.time_side_by_side([small], **kwargs)
  assert not opened


def test_measure_side_by_side_converts_and_times_models():
  keras = frameworks.get("keras3").keras
  inp = keras.Input((8,))
  model = keras.Model(inp, keras.layers.Dense(4)(inp))
  (ms,) = latency.measure_side_by_side([model], budget_ms=5)
  assert 0 < ms < 1e3


class _Runs:
  """Fakes of the plans: counts are {'w': predicted fraction removed}, and
  the measured reduction is `slope` x the predicted one."""

  def __init__(self, slope, reachable=0.9):
    self.slope, self.reachable, self.goals = slope, reachable, []

  def plan(self, goal):
    self.goals.append(goal)
    if goal > self.reachable:
      raise planning.UnreachableTargetError("target_latency", goal,
                                            self.reachable,
                                            "predicted latency", [])
    return {"w": round(goal, 6)}

  def measure(self, models, **kwargs):
    return [10.0, 10.0 * (1 - self.slope * models[1]["w"])]


def _here_table():
  lm = fake_table()
  lm.runtime = latency.runtime_info(1, "xnnpack")
  return lm


def _run(runs, lm, target, monkeypatch):
  monkeypatch.setattr(latency, "measure_side_by_side", runs.measure)
  first = runs.plan(target)
  return latency_planning.plan_to_measured(
      "model", lm, target, runs.plan, dict, lambda c: 1 - c["w"], first,
      dict(first))


def test_plan_to_measured_corrects_the_predicted_target(monkeypatch):
  # The tables over-predict: a predicted 50% cut measures 40%.
  runs = _Runs(0.8)
  counts, slim, fields = _run(runs, _here_table(), 0.5, monkeypatch)
  # The secant through (0, 0) and (0.5, 0.4) gives 0.625, which measures
  # exactly 0.5: one re-plan, and it is kept.
  assert runs.goals == [0.5, pytest.approx(0.625)]
  assert counts == slim == {"w": 0.625}
  assert fields["latency_replans"] == 1
  assert fields["latency_before_ms"] == 10.0
  assert fields["latency_after_ms"] == pytest.approx(5.0)
  assert fields["latency_predicted_ratio"] == pytest.approx(0.375)
  # Within the tolerance (3 points) nothing is re-planned.
  runs = _Runs(1.05)
  counts, _, fields = _run(runs, _here_table(), 0.5, monkeypatch)
  assert counts == {"w": 0.5} and fields["latency_replans"] == 0
  assert runs.goals == [0.5]


def test_plan_to_measured_leaves_tables_from_elsewhere(monkeypatch):
  # A table made by hand, or a phone's profile: this machine's latency
  # says nothing of that runtime's, so the first plan stays.
  runs = _Runs(0.5)
  counts, _, fields = _run(runs, fake_table(), 0.5, monkeypatch)
  assert counts == {"w": 0.5} and fields["latency_replans"] == 0
  assert fields["latency_after_ms"] == pytest.approx(7.5)


def test_plan_to_measured_keeps_the_closest_and_stops_when_unreachable(
    monkeypatch):
  # Measured is a third of predicted: the secant asks for 0.999 of the
  # prediction, past what the tables can reach (0.8), so 0.8 is planned;
  # then the secant asks for more than 0.8 again, and the search stops.
  runs = _Runs(1 / 3, reachable=0.8)
  counts, _, fields = _run(runs, _here_table(), 0.5, monkeypatch)
  assert runs.goals == [0.5, 0.999, 0.8, 0.999]
  assert counts == {"w": 0.8} and fields["latency_replans"] == 1
  assert fields["latency_after_ms"] == pytest.approx(10 * (1 - 0.8 / 3))
  # Measured falls short, then the re-plan overshoots: each measured side
  # by side, the closest to the target is kept among at most 3 plans.
  class Curved(_Runs):
    def measure(self, models, **kwargs):
      w = models[1]["w"]
      return [10.0, 10.0 * (1 - (0.3 if w < 0.6 else 0.56 + (w - 0.6)))]
  runs = Curved(None)
  counts, _, fields = _run(runs, _here_table(), 0.5, monkeypatch)
  assert len(runs.goals) <= 1 + latency_planning.MEASURED_REPLANS
  measured = [1 - runs.measure(["m", {"w": g}])[1] / 10 for g in runs.goals]
  best = int(np.argmin([abs(m - 0.5) for m in measured]))
  assert counts == {"w": round(runs.goals[best], 6)}
  assert fields["latency_replans"] == len(runs.goals) - 1 >= 1


@pytest.mark.parametrize("framework", ("tf_keras", "keras3"))
def test_prune_re_plans_on_measured_latency(framework, monkeypatch):
  model = small_model(framework)
  lm = _here_table()
  # Measured: the table's prediction plus 3 ms the table does not time, so
  # a predicted 2/7 cut (7 -> 5 ms) measures 10 -> 8 ms, 20%.
  measured = lambda m: 3.0 + lm.predict(m)  # pylint: disable=unnecessary-lambda-assignment
  monkeypatch.setattr(latency, "measure_side_by_side",
                      lambda models, **kw: [measured(m) for m in models])
  r = tps.prune(model, "l1", target_latency=0.25, latency=lm)
  # The plan for a predicted 0.25 (c1 at 8: 7 -> 5 ms) measures 8 ms, 20%
  # removed; the secant asks for 0.357 of the prediction (7 -> 4.5 ms),
  # which measures 7.5 ms: 0.25 of the measured 10 ms.
  assert r.report.latency_replans == 1
  assert r.report.latency_before_ms == 10.0
  assert r.report.latency_after_ms == pytest.approx(7.5)
  assert r.report.latency_predicted_ratio == pytest.approx(4.5 / 7)
  assert measured(r.model) == pytest.approx(7.5)
  assert "re-planned 1x on measured latency" in str(r.report)
  # The same table made by hand is planned on its prediction alone.
  lm.runtime = {}
  alone = tps.prune(model, "l1", target_latency=0.25, latency=lm)
  assert alone.report.latency_replans == 0
  assert alone.report.latency_predicted_ratio == pytest.approx(5 / 7)
  assert alone.report.latency_after_ms == pytest.approx(8.0)
  assert "re-planned" not in str(alone.report)
