"""Every survey criterion, one model, one data set, one budget: a fair grid.

For each model, one base network is trained (with a light L1 penalty on BN
gammas, Network Slimming's sparsity training, so `slimming` has meaningful
scales; every criterion starts from this same base), BN-recalibrated and
evaluated. Then, for every criterion (`random` with --random-seeds seeds),
every MACs budget and both schedules:

  oneshot     tps.prune(target_macs=b, BN re-estimated), then fine-tuning:
              --ft-epochs passes over --ft-images training images.
  iterative   tps.iterative_prune(rounds=3): after round k, k/3 of the
              budget is gone; each round re-scores the fine-tuned model and
              fine-tunes on its own third of the same images for
              --ft-epochs passes, so the total fine-tuning equals oneshot's
              (Han et al. 2015's schedule, for channels).

`sss` needs its scaling factors trained first: it gets
`tps.add_scaling_factors(base, l1=1e-4)` trained for --sss-epochs extra
passes (counted in its wall time; the other criteria do not get them).

The survey's other families are rows too (--criteria takes them by these
names; each runs only where this checkout has the feature, else it is
skipped with the reason):

  thinet, lasso, obd, kfac_obd   criteria, pruned as above (thinet with
                      scope 'local': its order ranks within a group only).
  l2@group            l2 with include='group' (Torch-Pruning's group
                      magnitude).
  l1+reconstruct, random+reconstruct
                      tps.prune(..., reconstruct=True): every consumer of a
                      pruned group re-fit by least squares on the scoring
                      images (selection vs re-fit).
  cluster:mean, cluster:random
                      tps.cluster_prune(target_macs=b, merge=...), scope
                      'local' (its default).
  fpgm:soft           training-time soft filter pruning
                      (prune_channels(..., soft=True)) during the same
                      fine-tuning budget, at the channel ratio whose one-shot
                      fpgm selection removes the budget's MACs; the
                      selection is made afresh 4 times in the pass.
  lottery:ticket, lottery:reinit
                      tps.lottery.find_channel_ticket, one round: the base's
                      initial weights trained as the base is, l1 channels
                      removed (scope 'layer', the fraction whose one-shot
                      selection removes the budget's MACs), the survivors
                      rewound to their initial values and retrained with
                      the base's recipe (a full training, not the
                      fine-tuning budget); reinit is the control, the same
                      slim architecture from `tps.reinitialize`, trained
                      the same way. Both are compared with the base.

Every pruned model is BN-recalibrated on --recal-images training images
and evaluated on --test-images test images; its float TFLite file is timed
beside the base's (batch 1, 1 thread; ratio = base ms / slim ms; not with
--bench-runs 0).

Data:
  fashion_mnist (default)  Debian's dataset-fashion-mnist, offline; the
                           models are a ResNet-20-style net (widths 16, 32,
                           64), the same net without its skip connections
                           (resnet20_noskip, built here: are ResNets harder
                           to prune because of their skips?) and a
                           VGG-style net (zoo.vgg_small).
  cifar10 (full scale)     the survey's own setting: --model resnet56 or
                           vgg16 (Li et al. 2017's CIFAR VGG-16), loaded
                           through tensorflow-datasets (pip install
                           tensorflow-datasets importlib_resources; needs
                           internet; falls back to tf_keras.datasets).
                           Standard hyper-parameters (He et al. 2016; Li et
                           al. 2017): SGD momentum 0.9, batch 128, weight
                           decay 1e-4 (5e-4 for VGG), lr 0.1 divided by 10
                           at 50% and 75% of 160 epochs; random 32x32 crops
                           of 4-pixel-padded images and horizontal flips;
                           fine-tuning 40 epochs at lr 0.01 (0.001 after
                           20). Meant for a GPU machine.

Smoke mode (--smoke): 256 training images, 1 epoch, 256 test images, a few
timed invokes: the whole pipeline in about a minute per model; the test
suite runs it.

Run:  .venv/bin/python benchmarks/survey_comparison.py [--models resnet20]
Writes benchmarks/results/survey_comparison.{json,md,png} (--out, --tag).
--merge a,b,c writes one table (--tag) from runs saved under several tags
with the same settings (a model under two tags must have the same base).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import tfprune_survey as tps
from tfprune_survey import data as data_lib
from tfprune_survey import zoo
from tfprune_survey._compat import keras
from tfprune_survey.sensitivity import evaluate_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the smoke tests)
  sys.path.insert(0, HERE)
import common  # pylint: disable=g-import-not-at-top,wrong-import-position

SCHEDULES = ("oneshot", "iterative")
ROUNDS = 3
SSS_L1 = 1e-4
SLIMMING_L1 = 1e-4
MODELS = {"resnet20": "ResNet-20-style", "vgg": "VGG-style",
          "resnet20_noskip": "ResNet-20-style, no skips",
          "resnet56": "ResNet56", "vgg16": "VGG16"}
# The survey's other families: row name -> what it needs from tps.
FAMILIES = ("thinet", "lasso", "obd", "kfac_obd", "l2@group",
            "l1+reconstruct", "random+reconstruct", "cluster:mean",
            "cluster:random", "fpgm:soft", "lottery:ticket",
            "lottery:reinit")
SOFT_PRUNINGS = 4
# thinet ranks within a group only (its greedy order is not comparable
# across groups), so tps.prune refuses scope='global' for it.
LOCAL_ONLY = {"thinet": "local"}


def build(name, input_shape):
  if name == "resnet20":
    return zoo.resnet_cifar(20, input_shape=input_shape)
  if name == "resnet56":
    return zoo.resnet_cifar(56, input_shape=input_shape)
  if name == "resnet20_noskip":
    return resnet_noskip(20, input_shape)
  if name == "vgg":
    return zoo.vgg_small(input_shape=input_shape)
  if name == "vgg16":
    return zoo.vgg_cifar(input_shape=input_shape)
  raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")


def resnet_noskip(depth, input_shape, classes=10, widths=(16, 32, 64)):
  """zoo.resnet_cifar's layers without the skip connections.

  Each block is conv-BN-ReLU-conv-BN-ReLU; the 1x1 shortcut convolutions
  and the Adds are gone, so every conv's output channels form their own
  group (a plain chain of 3x3 convs, as deep as the ResNet).
  """
  layers = keras.layers
  n = (depth - 2) // 6
  inp = keras.Input(input_shape, name="image")
  x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False,
                    name="conv1")(inp)
  x = layers.ReLU(name="relu1")(layers.BatchNormalization(name="bn1")(x))
  for s, w in enumerate(widths):
    for b in range(n):
      stride = 2 if (s > 0 and b == 0) else 1
      name = f"s{s + 1}b{b + 1}"
      for k in (1, 2):
        x = layers.Conv2D(w, 3, strides=stride if k == 1 else 1,
                          padding="same", use_bias=False,
                          name=f"{name}_conv{k}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{k}")(x)
        x = layers.ReLU(name=f"{name}_relu{k}")(x)
  x = layers.GlobalAveragePooling2D(name="gap")(x)
  x = layers.Dense(classes, name="logits")(x)
  return keras.Model(inp, x, name=f"resnet{depth}_noskip")


# ---------------------------------------------------------------- data


def load_cifar10():
  """CIFAR-10 through tensorflow-datasets, else tf_keras.datasets (online)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tr, te = tfds.load("cifar10", split=["train", "test"], batch_size=-1,
                       as_supervised=True)
    (x, y), (xt, yt) = tfds.as_numpy(tr), tfds.as_numpy(te)
  except ImportError:
    (x, y), (xt, yt) = keras.datasets.cifar10.load_data()
  x, xt = x.astype("float32") / 255.0, xt.astype("float32") / 255.0
  mean, std = x.mean((0, 1, 2)), x.std((0, 1, 2))
  return ((((x - mean) / std).astype("float32"), y.reshape(-1)),
          (((xt - mean) / std).astype("float32"), yt.reshape(-1)))


def load(dataset):
  if dataset == "fashion_mnist":
    return data_lib.load_fashion_mnist()
  if dataset == "cifar10":
    return load_cifar10()
  raise ValueError(f"unknown --dataset {dataset!r}; use fashion_mnist or "
                   "cifar10")


# ---------------------------------------------------------------- training


def recipe(args, model_name, phase):
  """Optimizer settings for 'base', 'finetune' or 'sss' training."""
  if args.dataset == "cifar10":
    epochs = {"base": 160, "finetune": 40, "sss": 20}[phase]
    lr = 0.1 if phase == "base" else 0.01
    if args.smoke:
      epochs = 1
    elif phase == "base" and args.epochs_set:
      epochs = args.epochs
    return {"sgd": True, "lr": lr, "epochs": epochs, "augment": True,
            "weight_decay": 5e-4 if model_name.startswith("vgg") else 1e-4,
            "boundaries": (0.5, 0.75) if phase == "base" else (0.5,),
            "eager": args.smoke}
  return {"sgd": False, "lr": 2e-3 if phase == "base" else 1e-3,
          "epochs": args.epochs if phase == "base" else (
              args.sss_epochs if phase == "sss" else args.ft_epochs),
          "augment": False, "eager": args.smoke}


def _augment(x, y):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  h, w = x.shape[0], x.shape[1]
  x = tf.image.resize_with_crop_or_pad(x, h + 8, w + 8)
  x = tf.image.random_crop(x, (h, w, x.shape[-1]))
  return tf.image.random_flip_left_right(x), y


def fit(model, x, y, spec, epochs=None, batch_size=128):
  """Trains in place with `spec` (see `recipe`); verbose=0.

  With spec['eager'] (smoke mode) the steps run eagerly: for a couple of
  batches that is faster than tracing a training graph for every model.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  epochs = spec["epochs"] if epochs is None else epochs
  if epochs <= 0 or not len(x):
    return model
  if spec["sgd"]:
    steps = epochs * -(-len(x) // batch_size)
    lr = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b * steps) for b in spec["boundaries"]],
        [spec["lr"] * 0.1 ** k for k in range(len(spec["boundaries"]) + 1)])
    opt = keras.optimizers.SGD(lr, momentum=0.9,
                               weight_decay=spec["weight_decay"])
  else:
    opt = keras.optimizers.Adam(spec["lr"])
  model.compile(opt, keras.losses.SparseCategoricalCrossentropy(
      from_logits=True), run_eagerly=spec.get("eager", False))
  if spec["augment"]:
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).map(
        _augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    model.fit(ds.prefetch(2), epochs=epochs, verbose=0,
              callbacks=spec.get("callbacks"))
  else:
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
              callbacks=spec.get("callbacks"))
  return model


# ---------------------------------------------------------------- measuring


class Latency:
  """Float TFLite latency of a model, batch 1, 1 thread (median ms)."""

  def __init__(self, folder, runs):
    self.folder, self.runs, self.count = folder, runs, 0

  def __call__(self, model):
    if self.runs <= 0:
      return None
    import tflite_export  # pylint: disable=g-import-not-at-top
    self.count += 1
    path = os.path.join(self.folder, f"m{self.count}.tflite")
    tflite_export.convert(model, path)
    ms = tflite_export.benchmark(path, runs=self.runs, warmup=10).median_ms
    os.remove(path)
    return ms


def run_key(r):
  return (r["model"], r["dataset"], r["criterion"], r["seed"], r["schedule"],
          r["target_macs_pct"])


def criteria_runs(criteria, seeds):
  """(criterion, seed) pairs: random rows once per seed, the others once."""
  out = []
  for c in criteria:
    if c.split("+")[0] == "random":
      out += [(c, s) for s in range(seeds)]
    else:
      out.append((c, None))
  return out


def _accepts(fn, name):
  import inspect  # pylint: disable=g-import-not-at-top
  return name in inspect.signature(fn).parameters


def unavailable(method):
  """Why this checkout cannot run a row (None when it can).

  Raises:
    ValueError: for a name that is neither a criterion nor a family row.
  """
  base, _, option = method.partition("@")
  if "+" in base:
    base, _, extra = base.partition("+")
    if extra != "reconstruct":
      raise ValueError(f"unknown row {method!r}: '+' takes 'reconstruct'")
    if not _accepts(tps.prune, "reconstruct"):
      return "tps.prune has no `reconstruct` yet"
  if base.startswith("cluster:"):
    if base.split(":")[1] not in ("mean", "random", "first"):
      raise ValueError(f"unknown row {method!r}: cluster:mean|random|first")
    return None if hasattr(tps, "cluster_prune") else (
        "tps.cluster_prune is not in this checkout")
  if base.startswith("lottery:"):
    if base.split(":")[1] not in ("ticket", "reinit"):
      raise ValueError(f"unknown row {method!r}: lottery:ticket|reinit")
    return None if hasattr(getattr(tps, "lottery", None),
                           "find_channel_ticket") else (
                               "tps.lottery.find_channel_ticket is not in "
                               "this checkout")
  if base.endswith(":soft"):
    tps.criteria.get(base.split(":")[0])
    return None if _accepts(tps.prune_channels, "soft") else (
        "prune_channels has no `soft` yet")
  if base not in tps.criteria.names():
    if base in FAMILIES:
      return f"criterion {base!r} is not registered in this checkout"
    tps.criteria.get(base)  # the registry's ValueError names it
  if option:
    try:
      criterion_of(method, None)
    except TypeError as e:
      return f"{base} does not take {option!r} yet ({e})"
  return None


def criterion_of(method, seed):
  """The criterion instance (or name) behind a row name."""
  base = method.split("+")[0]
  name, _, option = base.partition("@")
  if name == "random":
    return tps.criteria.get("random").__class__(seed=seed)
  if option:
    return type(tps.criteria.get(name))(include=option)
  return name


def prepare(base, criterion, seed, train, spec_sss):
  """The model a criterion prunes, and the criterion instance."""
  if criterion == "sss":
    model = tps.add_scaling_factors(base, l1=SSS_L1)
    fit(model, *train, spec_sss)
    return model, "sss"
  return base, criterion_of(criterion, seed)


def soft_ratio(base, budget, criterion="fpgm", scope="global"):
  """The channel ratio whose one-shot selection removes `budget`."""
  macs = tps.count_macs(base)
  lo, hi = 0.0, 0.95
  for _ in range(7):
    mid = (lo + hi) / 2
    got = 1 - tps.count_macs(tps.prune(base, criterion, ratio=mid,
                                       scope=scope).model) / macs
    lo, hi = (mid, hi) if got < budget else (lo, mid)
  return (lo + hi) / 2


def soft_prune(base, criterion, budget, finetune, spec):
  """Soft filter pruning during the fine-tuning pass; the slim model."""
  ratio = soft_ratio(base, budget, criterion)
  steps = spec["epochs"] * -(-len(finetune[0]) // 128)
  schedule = tps.schedules.ConstantSparsity(
      ratio, 1, frequency=max(1, steps // SOFT_PRUNINGS))
  pm = tps.prune_channels(base, criterion, schedule, soft=True)
  spec = dict(spec, callbacks=[tps.UpdateChannelPruningStep()])
  fit(pm, *finetune, spec)
  return tps.strip_channel_pruning(pm), ratio


def lottery_pair(model_name, args, train, budget):
  """(ticket, reinit control, fraction): one channel-level ticket round."""
  keras.utils.set_random_seed(args.seed)
  init = tps.sparsify_bn(build(model_name, train[0].shape[1:]), SLIMMING_L1)
  fraction = soft_ratio(init, budget, "l1", scope="local")
  spec = recipe(args, model_name, "base")
  train_fn = lambda m, callbacks: fit(m, *train, dict(spec,
                                                      callbacks=callbacks))
  result = tps.lottery.find_channel_ticket(
      init, train_fn, rounds=1, prune_fraction=fraction, criterion="l1",
      scope="layer", seed=args.seed)
  control = tps.reinitialize(result.model, seed=args.seed + 1)
  fit(control, *train, spec)
  return result.model, control, fraction


# ---------------------------------------------------------------- the grid


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", default="fashion_mnist",
                      choices=("fashion_mnist", "cifar10"))
  parser.add_argument("--models", "--model", default=None,
                      help="comma-separated: resnet20,vgg (Fashion-MNIST) or "
                      "resnet56,vgg16 (CIFAR-10)")
  parser.add_argument("--criteria", default=",".join(tps.criteria.names()))
  parser.add_argument("--random-seeds", type=int, default=3)
  parser.add_argument("--budgets", default="0.5,0.7",
                      help="fractions of MACs removed")
  parser.add_argument("--schedules", default=",".join(SCHEDULES))
  parser.add_argument("--train-images", type=int, default=20000)
  parser.add_argument("--epochs", type=int, default=None,
                      help="base training epochs (default 3; 160 for cifar10)")
  parser.add_argument("--ft-images", type=int, default=10000)
  parser.add_argument("--ft-epochs", type=int, default=1)
  parser.add_argument("--sss-epochs", type=int, default=1)
  parser.add_argument("--score-images", type=int, default=1024)
  parser.add_argument("--recal-images", type=int, default=2048)
  parser.add_argument("--test-images", type=int, default=5000)
  parser.add_argument("--bench-runs", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--smoke", action="store_true",
                      help="256 images, 1 epoch: the whole pipeline, fast")
  parser.add_argument("--resume", action="store_true",
                      help="keep the runs already in the output JSON (same "
                      "settings) and do only the missing ones")
  parser.add_argument("--merge", default="",
                      help="comma-separated tags: combine their saved runs "
                      "(e.g. one model each) into --tag and run nothing")
  parser.add_argument("--out", default=os.path.join(HERE, "results"))
  parser.add_argument("--tag", default="survey_comparison")
  args = parser.parse_args(argv)
  if args.merge:
    return merge(args.out, args.merge.split(","), args.tag)
  args.epochs_set = args.epochs is not None
  if args.epochs is None:
    args.epochs = 160 if args.dataset == "cifar10" else 3
  if args.smoke:
    args.train_images = args.ft_images = args.test_images = 256
    args.score_images = args.recal_images = 64
    args.epochs, args.ft_epochs, args.sss_epochs = 1, 1, 1
    args.bench_runs = min(args.bench_runs, 5)
  models = (args.models or ("resnet56,vgg16" if args.dataset == "cifar10"
                            else "resnet20,vgg")).split(",")
  criteria = []
  for c in args.criteria.split(","):
    why = unavailable(c)  # a clear ValueError for an unknown name
    if why:
      print(f"skipping {c}: {why}")
    else:
      criteria.append(c)
  for m in models:
    if m not in MODELS:
      parser.error(f"unknown model {m!r}; choose from {sorted(MODELS)}")
  budgets = [float(b) for b in args.budgets.split(",")]
  schedules = args.schedules.split(",")
  for s in schedules:
    if s not in SCHEDULES:
      parser.error(f"unknown schedule {s!r}; choose from {SCHEDULES}")
  os.makedirs(args.out, exist_ok=True)
  json_path = os.path.join(args.out, args.tag + ".json")
  settings = {k: v for k, v in vars(args).items()
              if k not in ("resume", "out", "tag", "models", "criteria",
                           "budgets", "schedules", "epochs_set", "merge")}
  state = {"settings": settings, "bases": [], "runs": []}
  if args.resume and os.path.exists(json_path):
    with open(json_path) as f:
      old = json.load(f)
    if old.get("settings") == settings:
      state = old
      print(f"resuming: {len(state['runs'])} runs already in {json_path}")
    else:
      print("--resume: settings differ from the saved file; starting afresh")
  done = {run_key(r) for r in state["runs"]}
  (x, y), (xt, yt) = load(args.dataset)
  rng = np.random.default_rng(args.seed)
  order = rng.permutation(len(x))
  x, y = x[order], y[order]
  train = (x[:args.train_images], y[:args.train_images])
  ft_idx = (np.arange(args.ft_images) + args.train_images) % len(x)
  finetune = (x[ft_idx], y[ft_idx])
  score = (x[:args.score_images], y[:args.score_images])
  recal = x[:args.recal_images]
  test = (xt[:args.test_images], yt[:args.test_images])
  pairs = criteria_runs(criteria, args.random_seeds)
  total = len(models) * len(pairs) * len(budgets) * len(schedules)
  work = common.scratch_dir("tfps_survey_")
  latency = Latency(work, args.bench_runs)
  count = 0
  t_all = time.perf_counter()
  for model_name in models:
    keras.utils.set_random_seed(args.seed)
    t0 = time.perf_counter()
    base = tps.sparsify_bn(build(model_name, x.shape[1:]), SLIMMING_L1)
    base_path = os.path.join(args.out, f".{args.tag}_{model_name}_base.keras")
    have = [b for b in state["bases"] if b["model"] == MODELS[model_name]]
    if have and os.path.exists(base_path):
      base.load_weights(base_path)
      info = have[0]
      print(f"{MODELS[model_name]}: base reloaded (top-1 {info['top1']:.4f})")
    else:
      spec = recipe(args, model_name, "base")
      print(f"{MODELS[model_name]}: training the base on {len(train[0]):,} "
            f"images for {spec['epochs']} epochs...", flush=True)
      fit(base, *train, spec)
      tps.recalibrate_bn(base, recal)
      base.save_weights(base_path)
      info = {"model": MODELS[model_name], "dataset": args.dataset,
              "top1": evaluate_accuracy(base, test),
              "macs": tps.count_macs(base), "params": tps.count_params(base),
              "tflite_ms": latency(base), "train_s": time.perf_counter() - t0}
      state["bases"] = [b for b in state["bases"]
                        if b["model"] != info["model"]] + [info]
      print(f"{info['model']}: base top-1 {info['top1']:.4f}, "
            f"{info['macs']:,} MACs, {_ms(info['tflite_ms'])} TFLite, "
            f"trained in {info['train_s']:.0f} s", flush=True)
    tickets = {}
    for budget in budgets:
      for schedule in schedules:
        for criterion, seed in pairs:
          count += 1
          rec = {"model": info["model"], "dataset": args.dataset,
                 "criterion": criterion, "seed": seed, "schedule": schedule,
                 "target_macs_pct": 100 * budget}
          if any(run_key(dict(rec, schedule=sch)) in done
                 for sch in (schedule, "soft", "lottery")):
            continue
          if schedule == "iterative" and not is_plain(criterion):
            continue  # the families run one-shot (or soft) only
          t0 = time.perf_counter()
          spec = recipe(args, model_name, "finetune")
          if criterion.startswith("lottery:"):
            rec["schedule"] = "lottery"
            if budget not in tickets:
              tickets[budget] = lottery_pair(model_name, args, train, budget)
            ticket, control, rec["lottery_fraction"] = tickets[budget]
            slim = ticket if criterion == "lottery:ticket" else control
          elif criterion.endswith(":soft"):
            rec["schedule"] = "soft"
            slim, rec["soft_ratio"] = soft_prune(
                base, criterion.split(":")[0], budget, finetune, spec)
          elif criterion.startswith("cluster:"):
            slim = tps.cluster_prune(
                base, target_macs=budget, merge=criterion.split(":")[1],
                seed=seed or 0, recalibrate=recal).model
            rec["oneshot_top1"] = evaluate_accuracy(slim, test)
            fit(slim, *finetune, spec)
          elif schedule == "oneshot":
            source, crit = prepare(base, criterion, seed, train,
                                   recipe(args, model_name, "sss"))
            extra = {"reconstruct": True} if "+reconstruct" in criterion \
                else {}
            rec["scope"] = LOCAL_ONLY.get(
                criterion.split("+")[0].split("@")[0], "global")
            slim = tps.prune(source, crit, data=score, target_macs=budget,
                             scope=rec["scope"], recalibrate=recal,
                             **extra).model
            rec["oneshot_top1"] = evaluate_accuracy(slim, test)
            fit(slim, *finetune, spec)
          else:
            source, crit = prepare(base, criterion, seed, train,
                                   recipe(args, model_name, "sss"))
            chunks = list(zip(np.array_split(finetune[0], ROUNDS),
                              np.array_split(finetune[1], ROUNDS)))
            rec["scope"] = LOCAL_ONLY.get(
                criterion.split("+")[0].split("@")[0], "global")
            slim = tps.iterative_prune(
                source, crit, data=score, target_macs=budget, rounds=ROUNDS,
                scope=rec["scope"],
                finetune=lambda m: fit(m, *chunks.pop(0), spec),
                recalibrate=recal, verbose=0).model
          tps.recalibrate_bn(slim, recal)
          rec["top1"] = evaluate_accuracy(slim, test)
          rec["base_top1"] = info["top1"]
          rec["delta_top1"] = 100 * (rec["top1"] - info["top1"])
          macs, params = tps.count_macs(slim), tps.count_params(slim)
          rec["macs_reduction_pct"] = 100 * (1 - macs / info["macs"])
          rec["params_reduction_pct"] = 100 * (1 - params / info["params"])
          rec["tflite_ms"] = latency(slim)
          rec["latency_ratio"] = (info["tflite_ms"] / rec["tflite_ms"]
                                  if rec["tflite_ms"] else None)
          rec["wall_s"] = time.perf_counter() - t0
          state["runs"].append(rec)
          common.save_state(json_path, state)
          print(f"[{count}/{total}] {info['model']} {label(rec)} {schedule} "
                f"-{100 * budget:.0f}% MACs: top-1 {rec['top1']:.4f} "
                f"({rec['delta_top1']:+.2f}), MACs -"
                f"{rec['macs_reduction_pct']:.1f}%, latency x"
                f"{_num(rec['latency_ratio'])}, {rec['wall_s']:.0f} s",
                flush=True)
  state["wall_s"] = time.perf_counter() - t_all
  common.save_state(json_path, state)
  md = markdown(state)
  with open(os.path.join(args.out, args.tag + ".md"), "w") as f:
    f.write(md + "\n")
  plot(state, os.path.join(args.out, args.tag + ".png"))
  print("\n" + md)
  print(f"\nwrote {json_path} and .md/.png beside it")
  return state


def is_plain(criterion):
  return criterion in tps.criteria.names()


def merge(folder, tags, tag):
  """One table from runs saved under several tags with the same settings.

  A model may appear under several tags only with the same base (the
  base weights file copied, so its top-1 agrees); a run saved twice is
  taken from the later tag.
  """
  state = {"settings": None, "bases": [], "runs": [], "merged_from": tags}
  for t in tags:
    with open(os.path.join(folder, t + ".json")) as f:
      part = json.load(f)
    settings = {k: v for k, v in part["settings"].items() if k != "merge"}
    if state["settings"] is None:
      state["settings"] = settings
    elif settings != state["settings"]:
      raise ValueError(f"--merge: {t}.json was run with other settings")
    names = {b["model"] for b in part["bases"]}
    for b in state["bases"]:
      same = [p for p in part["bases"] if p["model"] == b["model"]]
      if same and same[0]["top1"] != b["top1"]:
        raise ValueError(f"--merge: {t}.json has another base for "
                         f"{b['model']!r} (top-1 {same[0]['top1']} against "
                         f"{b['top1']}); rows would not be comparable")
    state["bases"] = [b for b in state["bases"] if b["model"] not in names]
    state["bases"] += part["bases"]
    keys = {run_key(r) for r in part["runs"]}
    state["runs"] = [r for r in state["runs"] if run_key(r) not in keys]
    state["runs"] += part["runs"]
  return common.write_state_report(folder, tag, state, markdown, plot)


def label(r):
  return r["criterion"] + (f" (seed {r['seed']})" if r["seed"] is not None
                           else "")


def _num(v, fmt="{:.2f}"):
  return "n/a" if v is None or v != v else fmt.format(v)


def _ms(v):
  return _num(v, "{:.3f} ms")


# ---------------------------------------------------------------- reporting


def aggregate(runs):
  """{(model, schedule, target, criterion): summary}; random over seeds."""
  groups = {}
  for r in runs:
    key = (r["model"], r["schedule"], r["target_macs_pct"], r["criterion"])
    groups.setdefault(key, []).append(r)
  out = {}
  for key, rs in groups.items():
    d = np.array([r["delta_top1"] for r in rs])
    mean = lambda k: (float(np.mean([r[k] for r in rs])) if all(
        r.get(k) is not None for r in rs) else None)
    out[key] = {"n": len(rs), "delta": float(d.mean()),
                "delta_std": float(d.std()) if len(rs) > 1 else 0.0,
                **{k: mean(k) for k in (
                    "macs_reduction_pct", "params_reduction_pct",
                    "latency_ratio", "wall_s", "oneshot_top1", "top1")}}
    o = [r["oneshot_top1"] for r in rs if r.get("oneshot_top1") is not None]
    out[key]["oneshot_std"] = float(np.std(o)) if len(o) > 1 else 0.0
  return out


def findings(state):
  """Which criteria beat random; whether iterative beat oneshot."""
  agg = aggregate(state["runs"])
  lines = []
  settings = sorted({k[:3] for k in agg})
  for model, schedule, target in settings:
    rnd = agg.get((model, schedule, target, "random"))
    if rnd is None:
      continue
    rows = {k[3]: v for k, v in agg.items() if k[:3] == (model, schedule,
                                                          target)}
    better = sorted((c for c, v in rows.items() if c != "random" and
                     v["delta"] > rnd["delta"] + rnd["delta_std"]),
                    key=lambda c: -rows[c]["delta"])
    worse = sorted(c for c, v in rows.items() if c != "random" and
                   v["delta"] < rnd["delta"] - rnd["delta_std"])
    lines.append(
        f"- {model}, {schedule}, -{target:.0f}% MACs: random "
        f"{rnd['delta']:+.2f} +/- {rnd['delta_std']:.2f}; above random by "
        f"more than its spread: {', '.join(better) or 'none'}; below: "
        f"{', '.join(worse) or 'none'}.")
  for model in sorted({k[0] for k in agg}):
    for target in sorted({k[2] for k in agg if k[0] == model}):
      crits = sorted({k[3] for k in agg if k[0] == model and k[2] == target})
      wins = total = 0
      gaps = []
      for c in crits:
        a = agg.get((model, "oneshot", target, c))
        b = agg.get((model, "iterative", target, c))
        if a and b:
          total += 1
          wins += b["delta"] > a["delta"]
          gaps.append(b["delta"] - a["delta"])
      if total:
        lines.append(
            f"- {model}, -{target:.0f}% MACs: iterative beat one-shot for "
            f"{wins} of {total} criteria (mean difference "
            f"{np.mean(gaps):+.2f} points).")
  return lines


def family_findings(state):
  """The issue's questions, answered from the one-shot rows."""
  agg = aggregate(state["runs"])
  lines = []
  def get(model, target, crit):
    return agg.get((model, "oneshot", target, crit))
  def both(v):
    return (f"{_num(v['oneshot_top1'], '{:.4f}')} before FT, "
            f"{v['top1']:.4f} after")
  for model, target in sorted({(k[0], k[2]) for k in agg}):
    l1, l1r = get(model, target, "l1"), get(model, target, "l1+reconstruct")
    if l1 and l1r and l1["oneshot_top1"] is not None:
      gain = 100 * (l1r["oneshot_top1"] - l1["oneshot_top1"])
      lines.append(
          f"- {model}, -{target:.0f}% MACs, re-fit: l1+reconstruct "
          f"{both(l1r)}; l1 {both(l1)}: reconstruction gains {gain:+.1f} "
          f"points before fine-tuning (target +3: "
          f"{'met' if gain >= 3 else 'not met'}) and "
          f"{100 * (l1r['top1'] - l1['top1']):+.1f} after.")
    rr = get(model, target, "random+reconstruct")
    if rr:
      for c in ("thinet", "lasso", "thinet+reconstruct",
                "lasso+reconstruct"):
        v = get(model, target, c)
        if v:
          ok = [v[k] >= rr[k] - (rr["oneshot_std"] if k == "oneshot_top1"
                                 else rr["delta_std"] / 100)
                for k in ("oneshot_top1", "top1") if v[k] is not None]
          lines.append(
              f"- {model}, -{target:.0f}% MACs: {c} {both(v)}; "
              f"random+reconstruct ({rr['n']} seeds) {both(rr)}: no worse "
              f"within random's spread: {'yes' if all(ok) else 'no'}.")
    tay = get(model, target, "taylor")
    second = [c for c in ("obd", "kfac_obd") if get(model, target, c)]
    if tay and second:
      lines.append(
          f"- {model}, -{target:.0f}% MACs, Taylor against second order: "
          f"taylor {both(tay)}; " + "; ".join(
              f"{c} {both(get(model, target, c))}" for c in second) + ".")
    rnd = get(model, target, "random")
    for c in ("cluster:mean", "cluster:random"):
      v = get(model, target, c)
      if v and rnd:
        ok = v["delta"] >= rnd["delta"] - rnd["delta_std"]
        lines.append(
            f"- {model}, -{target:.0f}% MACs: {c} {both(v)} (delta "
            f"{v['delta']:+.2f}); random {rnd['delta']:+.2f} +/- "
            f"{rnd['delta_std']:.2f}: no worse than random: "
            f"{'yes' if ok else 'no'}.")
  skip, noskip = "ResNet-20-style", "ResNet-20-style, no skips"
  for target in sorted({k[2] for k in agg if k[0] == noskip}):
    crits = sorted({k[3] for k in agg if k[0] == noskip and k[2] == target}
                   & {k[3] for k in agg if k[0] == skip and k[2] == target})
    for c in crits:
      a, b = get(skip, target, c), get(noskip, target, c)
      lines.append(
          f"- skips, -{target:.0f}% MACs, {c}: with skips delta "
          f"{a['delta']:+.2f} (before FT {_num(a['oneshot_top1'], '{:.4f}')}"
          f"), without {b['delta']:+.2f} (before FT "
          f"{_num(b['oneshot_top1'], '{:.4f}')}).")
  return lines


def markdown(state):
  agg = aggregate(state["runs"])
  out = []
  for b in state["bases"]:
    out.append(f"**{b['model']}** on {b['dataset']}: base top-1 "
               f"{b['top1']:.4f}, {b['macs']:,} MACs, {b['params']:,} "
               f"params, {_ms(b['tflite_ms'])} float TFLite.\n")
    out.append("| criterion | schedule | target | top-1 before FT (BN "
               "re-estimated) | top-1 after FT | delta top-1 (pts) | MACs "
               "reduction % | params reduction % | TFLite latency ratio | "
               "wall (s) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted((k for k in agg if k[0] == b["model"]),
                  key=lambda k: (k[2], k[1] != "oneshot", -agg[k]["delta"]))
    for k in keys:
      v = agg[k]
      delta = f"{v['delta']:+.2f}"
      name = k[3]
      if v["n"] > 1:
        delta += f" +/- {v['delta_std']:.2f}"
        name += f" ({v['n']} seeds)"
      before = _num(v["oneshot_top1"], "{:.4f}")
      if v["n"] > 1 and v["oneshot_top1"] is not None:
        before += f" +/- {v['oneshot_std']:.4f}"
      out.append(f"| {name} | {k[1]} | -{k[2]:.0f}% | {before} | "
                 f"{v['top1']:.4f} | {delta} | "
                 f"{v['macs_reduction_pct']:.1f} | "
                 f"{v['params_reduction_pct']:.1f} | "
                 f"{_num(v['latency_ratio'])} | {v['wall_s']:.0f} |")
    out.append("")
  out += findings(state)
  out += family_findings(state)
  return "\n".join(out)


def plot(state, path):
  """Survey Figure 4 style: delta top-1 against % MACs reduction."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  models = [b["model"] for b in state["bases"]]
  fig, axes = plt.subplots(1, max(len(models), 1),
                           figsize=(6.5 * max(len(models), 1), 4.8),
                           squeeze=False)
  crits = sorted({r["criterion"] for r in state["runs"]})
  cmap = plt.get_cmap("tab20")
  markers = "osD^vP*XhH<>p"
  for ax, model in zip(axes[0], models):
    for i, c in enumerate(crits):
      for schedule, fill in (("oneshot", True), ("iterative", False)):
        rs = [r for r in state["runs"] if r["model"] == model and
              r["criterion"] == c and r["schedule"] == schedule]
        if not rs:
          continue
        color = cmap(i % 20)
        ax.scatter([r["macs_reduction_pct"] for r in rs],
                   [r["delta_top1"] for r in rs], marker=markers[i % 13],
                   s=40, color=color if fill else "none", edgecolors=color,
                   label=f"{c} ({schedule})")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("MACs reduction, %")
    ax.set_ylabel("change in top-1, points")
    ax.set_title(f"{model} on {state['bases'][0]['dataset']} "
                 "(filled: one-shot, hollow: iterative)", fontsize=9)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="center right", fontsize=6)
  fig.tight_layout(rect=(0, 0, 0.82, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  main(sys.argv[1:])
