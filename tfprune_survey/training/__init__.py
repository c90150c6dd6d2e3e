"""Training-time channel pruning in tfmot's style, for tf_keras and Keras 3.

Nothing here imports a Keras (or TensorFlow) at import time: the Keras
classes (`ChannelPruneWrapper`) are made per framework when that Keras is
imported, and the callbacks are plain objects both Kerases' `fit` accept.
"""

from tfprune_survey.training import keras_classes as _keras_classes
from tfprune_survey.training.callbacks import ChannelPruningSummaries
from tfprune_survey.training.callbacks import UpdateChannelPruningStep
from tfprune_survey.training.prune_channels import prune_channels
from tfprune_survey.training.regularizers import sparsify_bn
from tfprune_survey.training.rewind import RewindCheckpoint
from tfprune_survey.training.rewind import rewind
from tfprune_survey.training.sss import add_scaling_factors
from tfprune_survey.training.sss import zero_small_block_scales
from tfprune_survey.training.strip import current_keep
from tfprune_survey.training.strip import strip_channel_pruning
from tfprune_survey.training.wrapper import ChannelPruneWrapper
from tfprune_survey.training.wrapper import wrapper_class as _wrapper_class

__all__ = ["add_scaling_factors", "zero_small_block_scales",
           "ChannelPruneWrapper", "ChannelPruningSummaries", "RewindCheckpoint",
           "UpdateChannelPruningStep", "current_keep", "prune_channels",
           "rewind", "sparsify_bn", "strip_channel_pruning"]


def _register(framework):
  """Makes (and so registers) the classes a saved model may hold."""
  from tfprune_survey.layers.channel_scale import channel_scale_class  # pylint: disable=g-import-not-at-top
  _wrapper_class(framework)
  channel_scale_class(framework)


_keras_classes.when_keras_imported(_register)
