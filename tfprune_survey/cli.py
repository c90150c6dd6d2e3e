"""The `tfprune-survey` command line: an absl app with subcommands.

  tfprune-survey profile MODEL_PATH     per-layer params/MACs and channel groups
  tfprune-survey demo                   analyse, halve and materialize two models
  tfprune-survey prune MODEL_PATH --criterion C (--ratio R | --target-macs T)
                 [--data fashion_mnist|digits|PATH.npz] --out SLIM.keras
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_boolean("groups", True, "profile: also list the channel groups.")
flags.DEFINE_string("out_dir", "demo_results", "demo: where to write results.")
flags.DEFINE_string("criterion", None, "prune: a name from tps.criteria.names().")
flags.DEFINE_float("ratio", None, "prune: fraction of channels to remove.")
flags.DEFINE_float("target_macs", None, "prune: fraction of MACs to remove.")
flags.DEFINE_string("data", None, "prune: fashion_mnist, digits or PATH.npz "
                    "(needed by data-dependent criteria).")
flags.DEFINE_integer("samples", 1024, "prune: training samples used to score.")
flags.DEFINE_string("out", None, "prune: where to save the slim model (.keras "
                    "or .h5).")
flags.DEFINE_enum("scope", "global", ["global", "local"], "prune: ranking scope.")
flags.DEFINE_integer("round_to", 1, "prune: kept counts are multiples of this.")
flags.DEFINE_integer("min_channels", 1, "prune: channels every group keeps.")

_USAGE = """usage: tfprune-survey COMMAND [ARGS] [--flags]

commands:
  profile MODEL_PATH   print a per-layer table (params, MACs) and channel groups
                       of a saved tf_keras model (.keras, .h5 or SavedModel)
  demo                 build a residual CNN and MobileNetV2, drop about half of
                       every prunable channel group, materialize, and compare
  prune MODEL_PATH     --criterion C (--ratio R | --target-macs T)
                       [--data fashion_mnist|digits|PATH.npz] --out SLIM.keras
                       [--scope global|local] [--round-to N] [--min-channels N]
"""


def _load(path):
  from tfprune_survey._compat import keras  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise app.UsageError(f"MODEL_PATH {path!r} does not exist")
  return keras.models.load_model(path, compile=False)


def cmd_profile(args):
  if len(args) != 1:
    raise app.UsageError("profile takes exactly one MODEL_PATH")
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  model = _load(args[0])
  print(tps.profile(model))
  if FLAGS.groups:
    print()
    print(tps.ChannelGraph(model).summary())
  return 0


def cmd_demo(args):
  if args:
    raise app.UsageError("demo takes no positional arguments")
  from tfprune_survey import demo  # pylint: disable=g-import-not-at-top
  demo.run(FLAGS.out_dir)
  return 0


def cmd_prune(args):
  if len(args) != 1:
    raise app.UsageError("prune takes exactly one MODEL_PATH")
  if not FLAGS.criterion:
    raise app.UsageError("prune needs --criterion")
  if not FLAGS.out:
    raise app.UsageError("prune needs --out SLIM.keras")
  import tfprune_survey as tps  # pylint: disable=g-import-not-at-top
  from tfprune_survey import data as data_lib  # pylint: disable=g-import-not-at-top
  model = _load(args[0])
  data = None
  if FLAGS.data:
    (x, y), _ = data_lib.load(FLAGS.data)
    x, y = x[:FLAGS.samples], y[:FLAGS.samples]
    want = tuple(model.input_shape[1:])
    if tuple(x.shape[1:]) != want:
      raise app.UsageError(f"--data {FLAGS.data} has samples of shape "
                           f"{tuple(x.shape[1:])}, the model expects {want}")
    data = (x, y)
  try:
    result = tps.prune(model, FLAGS.criterion, data=data, ratio=FLAGS.ratio,
                       target_macs=FLAGS.target_macs, scope=FLAGS.scope,
                       round_to=FLAGS.round_to,
                       min_channels=FLAGS.min_channels,
                       verbose=1 if data is not None else 0)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  result.model.save(FLAGS.out)
  print(result.report)
  print(f"\nsaved {FLAGS.out}")
  return 0


COMMANDS = {"profile": cmd_profile, "demo": cmd_demo, "prune": cmd_prune}


def _normalize(argv):
  """Accepts --target-macs as well as --target_macs (and the like)."""
  out = []
  for arg in argv:
    if arg.startswith("--") and "-" in arg[2:].split("=")[0]:
      name, eq, value = arg[2:].partition("=")
      arg = "--" + name.replace("-", "_") + eq + value
    out.append(arg)
  return out


def main(argv):
  if len(argv) < 2 or argv[1] in ("help", "-h"):
    print(_USAGE)
    return 0 if len(argv) >= 2 else 2
  command = argv[1]
  if command not in COMMANDS:
    raise app.UsageError(f"unknown command {command!r}; choose one of "
                         f"{sorted(COMMANDS)}")
  return COMMANDS[command](argv[2:])


def run():
  app.run(main, argv=_normalize(sys.argv))


if __name__ == "__main__":
  run()
