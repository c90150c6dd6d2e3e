"""The `tfprune-survey` command line: an absl app with subcommands.

  tfprune-survey profile MODEL_PATH     per-layer params/MACs and channel groups
  tfprune-survey demo                   analyse, halve and materialize two models
"""

import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_boolean("groups", True, "profile: also list the channel groups.")
flags.DEFINE_string("out_dir", "demo_results", "demo: where to write results.")

_USAGE = """usage: tfprune-survey COMMAND [ARGS] [--flags]

commands:
  profile MODEL_PATH   print a per-layer table (params, MACs) and channel groups
                       of a saved tf_keras model (.keras, .h5 or SavedModel)
  demo                 build a residual CNN and MobileNetV2, drop about half of
                       every prunable channel group, materialize, and compare
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


COMMANDS = {"profile": cmd_profile, "demo": cmd_demo}


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
  app.run(main, argv=sys.argv)


if __name__ == "__main__":
  run()
