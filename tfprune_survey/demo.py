"""The demo: train, prune, fine-tune, slim and ship, for four criteria.

On real data (Fashion-MNIST from Debian's `dataset-fashion-mnist`; sklearn's
bundled 8x8 digits when those files are absent, and it says so):

1. Trains the small residual CNN of `tfprune_survey.zoo` (BatchNormalization
   after every conv) with a light L1 penalty on the BN gammas, Network
   Slimming's sparsity training, so that `slimming` has meaningful scales.
   Every criterion starts from this one model.
2. For `l1`, `fpgm`, `taylor` and `slimming`: removes half of the MACs
   (`tps.prune(target_macs=0.5, round_to=8)`, BN statistics re-estimated),
   fine-tunes briefly, materializes the slim model, exports it to float and
   int8 TFLite, verifies both files against Keras, and times them (batch 1,
   1 thread).
3. Beside them, `l1` with `target_latency=0.5`: half of the float TFLite
   latency measured on this machine (`tps.latency.LatencyModel`, cached)
   is removed instead of half of the MACs.
4. Prints one table and writes `summary.md`, `tradeoff.png`, `results.json`
   and the slim `.keras` and `.tflite` files to the output folder.

The network is a residual CNN 48 channels wide (10.5M MACs): at the first
demo's 32 channels (4.7M MACs) a float invoke took 0.08 ms, of which fixed
per-op costs were so large that 2x fewer MACs ran only 1.05x faster.
"""

import json
import os
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import latency as latency_lib
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.metrics.accuracy import evaluate_accuracy

CRITERIA = ("l1", "fpgm", "taylor", "slimming")


def load_demo_data(fashion_dir=data_lib.FASHION_MNIST_DIR):
  """((x, y), (x_test, y_test)), the data set's name, and a note on it."""
  try:
    return data_lib.load_fashion_mnist(fashion_dir), "Fashion-MNIST", ""
  except FileNotFoundError as e:
    note = (f"Fashion-MNIST is not installed ({e}). Falling back to sklearn's "
            "bundled 8x8 digits (1,437 training images): the numbers below "
            "are for that much smaller task.")
    return data_lib.load_digits(), "sklearn digits (fallback)", note


def _loss():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(model, x, y, *, epochs, lr, batch_size=128, decay=False, verbose=1):
  """Adam with cross-entropy on logits; Keras progress bars.

  The learning rate is `lr` throughout, or with `decay` falls from `lr` to
  0 on a cosine over the whole fit.
  """
  if decay:
    lr = keras.optimizers.schedules.CosineDecay(
        lr, max(1, epochs * -(-len(x) // batch_size)))
  model.compile(keras.optimizers.Adam(lr), _loss(), metrics=["accuracy"])
  model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
  return model


def tflite_stats(model, folder, name, calib, check, modes=("none", "int8")):
  """Converts to each TFLite mode and verifies; a dict per mode."""
  import tflite_export  # pylint: disable=g-import-not-at-top
  out = {}
  for mode in modes:
    path = os.path.join(folder, f"{name}_{'float' if mode == 'none' else mode}"
                        ".tflite")
    report = tflite_export.convert(model, path, quantization=mode,
                                   representative_data=calib)
    ver = tflite_export.verify(model, path, check)
    out[mode] = {"path": path, "kb": report.size_bytes / 1024,
                 "verified": ver.passed,
                 "max_rel_diff": ver.max_rel_diff,
                 "top1_agreement": ver.top1_agreement,
                 "fully_integer": report.fully_integer}
  return out


FT_LR = 3e-3  # each fine-tune's learning rate falls from this to 0 on a cosine


def time_files(paths, runs):
  """{path: ms}: the median of `runs` invokes of each file, the files'
  invokes taken in turn (`tps.latency.time_side_by_side`), at the end.

  A slow moment of a shared machine then lands on every model alike. The
  demo timed the files one after the other before, in 40 rounds of 200
  invokes, taking the smallest median; its speed-ups still moved by several
  percent from run to run (1.59x to 1.71x for slim models of one
  architecture). Invoke by invoke in turn, six runs of a slim ResNet-20's
  ratio to the original read 0.605 to 0.623, against 0.481 to 0.951 one
  file after the other (`benchmarks/timing_noise.py`).
  """
  from tfprune_survey import latency  # pylint: disable=g-import-not-at-top
  return dict(zip(paths, latency.time_side_by_side(list(paths), runs=runs)))


def run(out_dir="demo_results", *, fashion_dir=data_lib.FASHION_MNIST_DIR,
        criteria=CRITERIA, train_images=45000, epochs=2, ft_images=20000,
        score_images=1024, recal_images=2048, bench_runs=2000, width=48,
        round_to=8, latency_target=0.5, latency_criterion="l1", seed=0,
        verbose=1):
  """Runs the demo; returns the table's rows (a list of dicts).

  Args:
    out_dir: folder for summary.md, tradeoff.png, results.json, models.
    fashion_dir: where Debian's Fashion-MNIST files are looked for.
    criteria: criteria to compare (names from `tps.criteria.names()`).
    train_images: training images for the base model (per epoch).
    epochs: epochs of base training; on a data set smaller than
      `train_images`, raised (up to 30) to see about as many images.
    ft_images: fine-tune images after pruning (one pass, the learning
      rate falling from `FT_LR` to 0 on a cosine).
    score_images: images the data-dependent criteria score on.
    recal_images: images on which BN statistics are re-estimated.
    bench_runs: timed TFLite invokes of each file, the files' invokes taken
      in turn.
    width: the residual CNN's first-stage width. Defaults to 48.
    round_to: kept widths of the MACs rows are multiples of this (XNNPACK
      computes channels in tiles of 8 or 16). Defaults to 8.
    latency_target: the fraction of measured latency the extra
      `latency_criterion` row removes (`tps.prune(target_latency=...)`);
      None leaves that row out. Defaults to 0.5.
    latency_criterion: the criterion of that row. Defaults to 'l1'.
    seed: seeds Keras, numpy and the data split.
    verbose: Keras verbosity (1: progress bars).

  Raises:
    ValueError, TypeError: for an unknown criterion or a bad count,
      `round_to` or `latency_target` (the message names the argument),
      before any data is read or any model trained.
  """
  criteria = _check_args(
      criteria, latency_target, latency_criterion,
      dict(train_images=train_images, epochs=epochs, ft_images=ft_images,
           score_images=score_images, recal_images=recal_images,
           bench_runs=bench_runs, width=width, round_to=round_to))
  t_start = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  ((x, y), (xt, yt)), dataset, note = load_demo_data(fashion_dir)
  if note:
    print("NOTE: " + note, flush=True)
  keras.utils.set_random_seed(seed)
  order = np.random.default_rng(seed).permutation(len(x))
  x, y = x[order], y[order]
  xb, yb = x[:train_images], y[:train_images]
  # Fine-tuning reads the images after the base's (wrapping round on small
  # data sets), so it is not a replay of what the base just saw.
  ft_idx = (np.arange(ft_images) + min(train_images, len(x))) % len(x)
  xf, yf = x[ft_idx], y[ft_idx]
  score = (x[:score_images], y[:score_images])
  recal = x[:recal_images]
  calib, check = xt[:200], xt[:256]
  if len(xb) < train_images:
    # A small data set (the digits fallback): more passes, up to 30, so the
    # base sees about as many images as asked for.
    epochs = max(epochs, min(30, -(-epochs * train_images // len(xb))))
  print(f"\n== 1. train the base model on {dataset}: {len(xb):,} images x "
        f"{epochs} epochs ==", flush=True)
  base = tps.sparsify_bn(zoo.residual_cnn(input_shape=x.shape[1:],
                                          width=width, stem_pool=True), 1e-4)
  t0 = time.perf_counter()
  fit(base, xb, yb, epochs=epochs, lr=2e-3, verbose=verbose)
  tps.recalibrate_bn(base, recal)
  base_acc = evaluate_accuracy(base, (xt, yt))
  print(f"base top-1 {base_acc:.4f} on {len(xt):,} test images "
        f"({time.perf_counter() - t0:.0f} s)", flush=True)
  stats = {"unpruned": tflite_stats(base, out_dir, "unpruned", calib, check)}
  rows = [_row("unpruned", base, base_acc, base_acc, stats["unpruned"], 0.0)]
  runs = [(name, name, {"target_macs": 0.5, "round_to": round_to})
          for name in criteria]
  if latency_target is not None:
    runs.append((f"{latency_criterion} @ latency", latency_criterion,
                 {"target_latency": latency_target, "round_to": "auto"}))
  skipped = {}
  for name, crit, target in runs:
    t0 = time.perf_counter()
    if "target_latency" in target:
      print(f"\n== 3. {crit}: prune to {1 - latency_target:.0%} of the "
            "measured float TFLite latency (per-layer tables timed here, "
            "cached) ==", flush=True)
      result, target["latency"], reason = prune_to_latency(
          base, crit, latency_target, data=score, recalibrate=recal,
          verbose=verbose)
      if result is None:
        skipped[name] = reason
        print(f"NOTE: the {name} row is skipped: {reason}", flush=True)
        continue
    else:
      print(f"\n== 2. {name}: prune to 2x fewer MACs, fine-tune on "
            f"{len(xf):,} images, export ==", flush=True)
      result = tps.prune(base, crit, data=score, recalibrate=recal, **target)
    tag = name.replace(" @ ", "_at_")
    slim = result.model
    if "target_latency" in target:
      target["latency"].plot(
          os.path.join(out_dir, "latency_plan.png"), slim,
          title=f"{name}: measured time per layer against width; dashed: "
                "the widths kept")
    oneshot = evaluate_accuracy(slim, (xt, yt))
    fit(slim, xf, yf, epochs=1, lr=FT_LR, decay=True, verbose=verbose)
    tps.recalibrate_bn(slim, recal)
    acc = evaluate_accuracy(slim, (xt, yt))
    slim.save(os.path.join(out_dir, f"{tag}_slim.keras"))
    stats[name] = tflite_stats(slim, out_dir, f"{tag}_slim", calib, check)
    rows.append(_row(name, slim, acc, base_acc, stats[name],
                     time.perf_counter() - t0, oneshot))
    rows[-1]["target"] = ("latency" if "target_latency" in target
                          else "MACs")
    print(f"{name}: top-1 {oneshot:.4f} right after pruning, {acc:.4f} after "
          f"fine-tuning; float file {stats[name]['none']['kb']:.0f} KB, "
          + ("verified" if rows[-1]["verified"] else "NOT verified"),
          flush=True)
  print(f"\n== 4. time every TFLite file: {bench_runs} batch-1 invokes of "
        "each, 1 thread, the files' invokes taken in turn ==", flush=True)
  ms = time_files([s[m]["path"] for s in stats.values() for m in s],
                  bench_runs)
  for r in rows:
    r["float_ms"] = ms[stats[r["criterion"]]["none"]["path"]]
    r["int8_ms"] = ms[stats[r["criterion"]]["int8"]["path"]]
    r["speedup"] = rows[0]["float_ms"] / r["float_ms"] if rows[0].get(
        "float_ms") else None
  table = table_md(rows)
  total = time.perf_counter() - t_start
  print("\n" + table, flush=True)
  for name, reason in skipped.items():
    print(f"(no {name} row: {reason})", flush=True)
  _write(out_dir, rows, table, dataset, note, base_acc, total,
         dict(train_images=len(xb), epochs=epochs, ft_images=len(xf),
              score_images=score_images, recal_images=recal_images,
              test_images=len(xt), width=width, round_to=round_to,
              bench_runs=bench_runs,
              latency_target=latency_target,
              latency_criterion=latency_criterion, seed=seed,
              cpu_seconds=time.process_time()), skipped)
  plan = ("latency_plan.png, " if os.path.exists(
      os.path.join(out_dir, "latency_plan.png")) else "")
  print(f"\nwrote {out_dir}/summary.md, tradeoff.png, {plan}results.json, "
        f"and the slim .keras/.tflite files ({total:.0f} s in all)")
  return rows


def _check_args(criteria, latency_target, latency_criterion, counts):
  """The criteria as a tuple of known names; ValueError/TypeError else."""
  from tfprune_survey import planning  # pylint: disable=g-import-not-at-top
  if isinstance(criteria, str):
    criteria = (criteria,)
  criteria = tuple(criteria)
  known = tps.criteria.names()
  checks = [("criteria", c) for c in criteria]
  if latency_target is not None:
    planning.check_fraction(latency_target, "latency_target", low_open=True)
    checks.append(("latency_criterion", latency_criterion))
  for arg, name in checks:
    if not isinstance(name, str) or name not in known:
      raise ValueError(f"`{arg}`: {name!r} is not a criterion name; choose "
                       f"from {known}")
  twice = sorted({c for c in criteria if criteria.count(c) > 1})
  if twice:
    raise ValueError(f"`criteria` names {twice} more than once; each row's "
                     "files are named after its criterion, so the later row "
                     "would overwrite the earlier one's")
  for arg, value in counts.items():
    planning.check_int(value, arg, 1)
  return criteria


def prune_to_latency(model, criterion, target, *, data=None,
                     recalibrate=None, tries=3, verbose=1):
  """`tps.prune(target_latency=target, round_to='auto')`, robust to noise.

  The per-layer tables are timed on this machine, and a slow moment while
  they are timed can flatten a staircase (a narrow width timed as slowly as
  the full one saves no predicted time), so that the target looks
  unreachable. Such a table would also stay in the cache. So when the
  target is unreachable, the tables are measured again, bypassing (and
  replacing) the cached ones, up to `tries` measurements in all.

  Returns:
    (result, latency_model, reason): the `PruneResult` and the
    `LatencyModel` it was planned on, and None; or, when the target stayed
    unreachable on every measurement, (None, the last LatencyModel, a
    sentence saying why the row is skipped). Other errors are raised.
  """
  lm, err = None, None
  for attempt in range(tries):
    lm = latency_lib.LatencyModel.measure(model, use_cache=attempt == 0,
                                          verbose=verbose)
    try:
      return (tps.prune(model, criterion, data=data, recalibrate=recalibrate,
                        target_latency=target, round_to="auto", latency=lm),
              lm, None)
    except ValueError as e:
      if "unreachable" not in str(e):
        raise
      err = e
      if attempt + 1 < tries:
        print(f"NOTE: {e}. The per-layer tables may have been timed in a "
              "slow moment of this machine; measuring them again "
              f"(measurement {attempt + 2} of {tries}, not from the cache).",
              flush=True)
  return None, lm, (f"the target was unreachable on each of {tries} "
                    "measurements of the per-layer latency tables; the last "
                    f"said: {err}")


def _row(name, model, acc, base_acc, stats, seconds, oneshot=None):
  f, q = stats["none"], stats["int8"]
  return {"criterion": name, "target": "-", "top1": acc, "delta": 100 * (acc - base_acc),
          "oneshot_top1": oneshot, "params": tps.count_params(model),
          "macs": tps.count_macs(model), "float_kb": f["kb"],
          "int8_kb": q["kb"], "float_ms": None, "int8_ms": None,
          "verified": f["verified"] and q["verified"],
          "float_max_rel_diff": f["max_rel_diff"],
          "int8_top1_agreement": q["top1_agreement"],
          "int8_fully_integer": q["fully_integer"], "seconds": seconds}


def table_md(rows):
  """The demo's table as Markdown."""
  lines = ["| criterion | target | top-1 | delta (pts) | params | MACs | "
           "TFLite KB float / int8 | latency ms float / int8 | float "
           "speed-up | verified |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
  for r in rows:
    delta = "-" if r["criterion"] == "unpruned" else f"{r['delta']:+.2f}"
    speedup = (f"{r['speedup']:.2f}x" if r.get("speedup") else "-")
    lines.append(
        f"| {r['criterion']} | {r.get('target', '-')} | {r['top1']:.4f} | "
        f"{delta} | {r['params']:,} | "
        f"{r['macs']:,} | {r['float_kb']:.0f} / {r['int8_kb']:.0f} | "
        f"{r['float_ms']:.3f} / {r['int8_ms']:.3f} | {speedup} | "
        f"{'yes' if r['verified'] else 'NO'} |")
  return "\n".join(lines)


def _write(out_dir, rows, table, dataset, note, base_acc, total, config,
           skipped=None):
  skipped = dict(skipped or {})
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump({"dataset": dataset, "note": note, "base_top1": base_acc,
               "seconds": total, "config": config, "rows": rows,
               "skipped": skipped}, f, indent=1)
  round_to = config.get("round_to", 8)
  widths = (f"widths multiples of {round_to}" if round_to > 1 else
            "widths of any count")
  target = config.get("latency_target")
  by_latency = ("" if target is None else
                f", and by {config.get('latency_criterion', 'l1')} to "
                f"{1 - target:.0%} of its float TFLite latency as measured "
                "per layer on this machine (target 'latency')")
  text = [
      "# tfprune_survey demo", "",
      f"Data: {dataset}." + (f" {note}" if note else ""), "",
      f"A residual CNN with BatchNormalization (base top-1 {base_acc:.4f}) "
      f"was pruned by each criterion to half its MACs (target 'MACs'; "
      f"{widths}){by_latency}, BN statistics "
      f"re-estimated, fine-tuned on {config['ft_images']:,} images (one "
      f"pass, Adam's learning rate falling from {FT_LR:g} to 0 on a cosine), "
      "materialized, and exported to float and int8 TFLite. "
      "\"verified\": the float file matches Keras within 1e-4 relative and "
      "the int8 file agrees on top-1 for at least 90% of 256 test images. "
      "Latency: batch-1 invokes on 1 thread (LiteRT, XNNPACK), "
      f"the median of {config.get('bench_runs', 2000)} invokes of each file, "
      "the files' invokes taken in turn.", "",
      table, ""]
  for name, reason in skipped.items():
    text += [f"**Skipped:** the {name} row: {reason}.", ""]
  text += [
      "Top-1 right after pruning (BN re-estimated, no fine-tuning): " +
      ", ".join(f"{r['criterion']} {r['oneshot_top1']:.4f}"
                for r in rows if r["oneshot_top1"] is not None) + ".", "",
      f"Total time {total:.0f} s. ![trade-off](tradeoff.png)", ""]
  if os.path.exists(os.path.join(out_dir, "latency_plan.png")):
    text += ["The latency row's plan on the measured per-layer staircases "
             "(the slowest layers): ![latency plan](latency_plan.png)", ""]
  with open(os.path.join(out_dir, "summary.md"), "w") as f:
    f.write("\n".join(text))
  plot_tradeoff(rows, os.path.join(out_dir, "tradeoff.png"), dataset)


def plot_tradeoff(rows, path, dataset):
  """Top-1 against MACs and against float TFLite latency, one marker each.

  Drawn on a standalone matplotlib Figure: pyplot's backend and open
  figures (a notebook's inline plots) are left as they are."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(10, 4.2))
  axes = fig.subplots(1, 2, sharey=True)
  markers = "*osD^vP"
  for i, r in enumerate(rows):
    for ax, key, scale in ((axes[0], "macs", 1e-6), (axes[1], "float_ms", 1)):
      ax.scatter(r[key] * scale, 100 * r["top1"], s=120 if i == 0 else 60,
                 marker=markers[i % len(markers)], label=r["criterion"])
  axes[0].set_xlabel("MACs per image (millions)")
  axes[1].set_xlabel("float TFLite latency, batch 1, 1 thread (ms)")
  axes[0].set_ylabel("test top-1 (%)")
  for ax in axes:
    ax.grid(alpha=0.3)
  axes[1].legend(loc="lower right")
  fig.suptitle(f"Accuracy against cost after 2x MACs pruning ({dataset})")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
