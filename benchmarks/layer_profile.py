"""Per-layer TFLite time of MobileNetV2 before and after 50% `l1` pruning.

Each Conv2D / DepthwiseConv2D layer of the original and of the slim model
(`tps.prune(ratio=0.5, scope='local')`) is converted alone (with a bias and
ReLU6, as TFLite fuses them) and timed, batch 1, 1 thread, XNNPACK: the
minimum over --rounds alternating rounds of the median of --runs invokes.
It shows which layers turn fewer MACs into less time, and which do not.

Run:  .venv/bin/python benchmarks/layer_profile.py
Writes benchmarks/results/layer_profile.{json,md}.
"""

import argparse
import json
import os
import tempfile

import tflite_export
import tfprune_survey as tps
from tfprune_survey._compat import keras

HERE = os.path.dirname(os.path.abspath(__file__))


def single(layer):
  """The layer alone, fresh, with a bias and ReLU6 (fused by TFLite)."""
  config = dict(layer.get_config(), use_bias=True)
  config.pop("name")
  inp = keras.Input(layer.input_shape[1:])
  out = keras.layers.ReLU(6.0)(type(layer).from_config(config)(inp))
  return keras.Model(inp, out)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--runs", type=int, default=60)
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  args = parser.parse_args(argv)
  model = keras.applications.MobileNetV2(
      input_shape=(args.size, args.size, 3), weights=None, classes=1000)
  slim = tps.prune(model, "l1", ratio=0.5, scope="local").model
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    pairs = [(a, b) for a, b in zip(model.layers, slim.layers)
             if isinstance(a, (keras.layers.Conv2D,
                               keras.layers.DepthwiseConv2D))]
    for i, (orig, pruned) in enumerate(pairs):
      macs, paths = [], []
      for tag, layer in (("orig", orig), ("slim", pruned)):
        m = single(layer)
        paths.append(os.path.join(tmp, f"{tag}.tflite"))
        tflite_export.convert(m, paths[-1])
        macs.append(tps.count_macs(m))
      times = [[], []]
      for _ in range(args.rounds):
        for k, path in enumerate(paths):
          times[k].append(tflite_export.benchmark(
              path, runs=args.runs, warmup=5).median_ms)
      row = {"layer": orig.name, "kind": type(orig).__name__,
             "input": list(orig.input_shape[1:]),
             "channels": [int(orig.input_shape[-1]),
                          int(orig.output_shape[-1]),
                          int(pruned.input_shape[-1]),
                          int(pruned.output_shape[-1])],
             "macs_orig": macs[0], "macs_slim": macs[1],
             "ms_orig": min(times[0]), "ms_slim": min(times[1])}
      row["macs_ratio"] = row["macs_orig"] / row["macs_slim"]
      row["time_ratio"] = row["ms_orig"] / row["ms_slim"]
      rows.append(row)
      print(f"[{i + 1}/{len(pairs)}] {row['layer']}: MACs x"
            f"{row['macs_ratio']:.2f}, time x{row['time_ratio']:.2f}",
            flush=True)
  total = {k: sum(r[k] for r in rows)
           for k in ("macs_orig", "macs_slim", "ms_orig", "ms_slim")}
  summary = {"macs_ratio": total["macs_orig"] / total["macs_slim"],
             "time_ratio": total["ms_orig"] / total["ms_slim"]}
  summary["fraction"] = summary["time_ratio"] / summary["macs_ratio"]
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "layer_profile.json"), "w") as f:
    json.dump({"meta": {"command": "python benchmarks/layer_profile.py",
                        "size": args.size, "rounds": args.rounds,
                        "runs": args.runs, "threads": 1},
               "summary": summary, "rows": rows}, f, indent=2)
  lines = ["| layer | input HxW | channels in->out (orig / slim) | MACs ratio "
           "| ms orig | ms slim | time ratio | time / MACs ratio |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    c = r["channels"]
    lines.append(f"| {r['layer']} | {r['input'][0]}x{r['input'][1]} | "
                 f"{c[0]}->{c[1]} / {c[2]}->{c[3]} | {r['macs_ratio']:.2f} | "
                 f"{r['ms_orig']:.3f} | {r['ms_slim']:.3f} | "
                 f"{r['time_ratio']:.2f} | "
                 f"{r['time_ratio'] / r['macs_ratio']:.2f} |")
  lines.append(f"| **all layers, summed** | | | {summary['macs_ratio']:.2f} | "
               f"{total['ms_orig']:.3f} | {total['ms_slim']:.3f} | "
               f"{summary['time_ratio']:.2f} | {summary['fraction']:.2f} |")
  table = "\n".join(lines)
  with open(os.path.join(args.out, "layer_profile.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  return summary


if __name__ == "__main__":
  main()
