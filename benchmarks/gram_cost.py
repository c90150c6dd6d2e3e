"""thinet and lasso scoring: the Gram from second moments against Z Zᵀ.

`thinet` and `lasso` read, per group, the C x C Gram of the channels'
contributions to each consumer's outputs at 10 sampled positions per image
(`consumer_patches.GramSum`). Computed as Z Zᵀ it costs C² x outputs
multiply-adds per position. For a one-tap consumer (a 1x1 conv, a Dense on
a vector) the library forms it from the inputs' second moments instead, C²
per position (`consumer_patches.uses_moments`). This script times
`tps.score` both ways in one process, side by side, the order alternating
by round ("Z Zᵀ" forces the old way everywhere), against one forward pass
over the same batches, and checks that both ways give the same result in
the groups read by a one-tap consumer: thinet's ranks, and lasso's scores
to float32 rounding.

Models (tf_keras `applications`, weights=None, and the zoo's ResNet-20;
random images, `--repeats` rounds, minimum times): `name:size:images`,
default ResNet-20 at 32 (1,024 images; its 3x3 consumers keep Z Zᵀ, only
its 1x1 shortcuts and Dense head change), MobileNetV2 at 96 (128 images)
and ResNet-50 at 64 (16 images, since Z Zᵀ on its 2,048-channel 1x1
consumers is slow).

Run:  .venv/bin/python benchmarks/gram_cost.py
Writes benchmarks/results/gram_cost.{json,md}.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

APPS = {"mobilenetv2": "MobileNetV2", "resnet50": "ResNet50"}


def build(name, size):
  from tfprune_survey import frameworks  # pylint: disable=g-import-not-at-top
  from tfprune_survey import zoo  # pylint: disable=g-import-not-at-top
  keras = frameworks.get("tf_keras").keras
  keras.utils.set_random_seed(0)
  if name == "resnet20":
    return zoo.resnet_cifar(20, input_shape=(size, size, 3),
                            framework="tf_keras")
  if name == "tiny":
    return zoo.residual_cnn(input_shape=(size, size, 3), width=8)
  return getattr(keras.applications, APPS[name])(
      input_shape=(size, size, 3), weights=None)


def moment_groups(model):
  """Ids of the groups read by at least one one-tap consumer."""
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import consumer_patches as cp  # pylint: disable=g-import-not-at-top
  graph = tps.ChannelGraph(model)
  out = set()
  for g in graph.groups:
    for path in g.consumers:
      layer = model.get_layer(path)
      cols = cp.channel_columns(graph, g, path)
      if cols is None or type(layer).__name__ not in cp.FITTABLE:
        continue
      kernel = cp.kernel_matrix(layer)[0]
      if cp.uses_moments(kernel.shape[0] // cols[0], kernel.shape[-1]):
        out.add(g.id)
  return out


def measure(name, size, images, repeats, batch=32):
  """One row per criterion: forward, Z Zᵀ and second-moment times."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import consumer_patches as cp  # pylint: disable=g-import-not-at-top
  model = build(name, size)
  x = np.random.default_rng(0).random((images, size, size, 3), np.float32)
  ds = tf.data.Dataset.from_tensor_slices(x).batch(batch).cache()
  list(ds)  # fill the cache
  uses_moments = cp.uses_moments
  ways = {"Z Zt": lambda *a: False, "moments": uses_moments}
  times = {k: [] for k in ("forward", "thinet Z Zt", "thinet moments",
                           "lasso Z Zt", "lasso moments")}
  scores = {}
  try:
    for rnd in range(repeats):
      t, _ = common.timed(lambda: common.forward_pass(model, ds))
      times["forward"].append(t)
      for way, rule in sorted(ways.items(), reverse=rnd % 2 == 1):
        cp.uses_moments = rule
        for crit in ("thinet", "lasso"):
          t, scores[crit, way] = common.timed(
              lambda: tps.score(model, crit, ds))
          times[f"{crit} {way}"].append(t)
  finally:
    cp.uses_moments = uses_moments
  rows = []
  fwd = min(times["forward"])
  moment = moment_groups(model)
  for crit in ("thinet", "lasso"):
    old, new = scores[crit, "Z Zt"], scores[crit, "moments"]
    rows.append({
        "model": name, "size": size, "images": images, "criterion": crit,
        "forward_s": fwd, "zzt_s": min(times[f"{crit} Z Zt"]),
        "moments_s": min(times[f"{crit} moments"]),
        "zzt_ratio": min(times[f"{crit} Z Zt"]) / fwd,
        "moments_ratio": min(times[f"{crit} moments"]) / fwd,
        "speedup": min(times[f"{crit} Z Zt"]) /
                   min(times[f"{crit} moments"]),
        "groups": len(old),
        "moment_groups": len(moment & set(old)),
        "moment_groups_identical": sum(np.array_equal(old[g], new[g])
                                       for g in moment & set(old)),
        "other_groups_identical": all(np.array_equal(old[g], new[g])
                                      for g in set(old) - moment),
        "max_abs_diff": max(float(np.max(np.abs(old[g] - new[g])))
                            for g in old),
        "runs_s": times})
    print({k: v for k, v in rows[-1].items() if k != "runs_s"}, flush=True)
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="resnet20:32:1024,"
                      "mobilenetv2:96:128,resnet50:64:16",
                      help="name:size:images, comma-separated")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="gram_cost")
  args = parser.parse_args(argv)
  t0, load = time.perf_counter(), os.getloadavg()
  rows = []
  for spec in filter(None, args.models.split(",")):
    name, size, images = spec.split(":")
    if name not in APPS and name not in ("resnet20", "tiny"):
      parser.error(f"unknown model {name!r}")
    rows += measure(name, int(size), int(images), args.repeats)
  lines = ["Time of `tps.score` (tf_keras, batches of 32, minimum of "
           f"{args.repeats}) against one forward pass over the same "
           "batches; both ways in one process.", "",
           "| model | images | criterion | forward (s) | Z Zᵀ (s) | second "
           "moments (s) | speed-up | groups read by a one-tap consumer: "
           "identical scores | max abs difference |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(
        f"| {r['model']} {r['size']} | {r['images']} | {r['criterion']} | "
        f"{r['forward_s']:.2f} | {r['zzt_s']:.2f} ({r['zzt_ratio']:.1f}x) | "
        f"{r['moments_s']:.2f} ({r['moments_ratio']:.1f}x) | "
        f"{r['speedup']:.1f}x | {r['moment_groups_identical']} of "
        f"{r['moment_groups']} (of {r['groups']} groups) | "
        f"{r['max_abs_diff']:.1e} |")
  meta = common.run_meta("gram_cost.py", argv, t0, load,
                         ("tensorflow", "tf-keras"), repeats=args.repeats)
  common.write_results(args.out, args.tag, meta, rows, "\n".join(lines))
  return rows


if __name__ == "__main__":
  main()
