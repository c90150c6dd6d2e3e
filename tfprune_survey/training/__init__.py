"""Training-time channel pruning in tfmot's style, for tf_keras and Keras 3.

Nothing here imports a Keras (or TensorFlow) at import time: the Keras
classes (`ChannelPruneWrapper`) are made per framework when that Keras is
imported (see the package's `__init__`), and the callbacks are plain objects
both Kerases' `fit` accept.
"""

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

__all__ = ["add_scaling_factors", "zero_small_block_scales",
           "ChannelPruneWrapper", "ChannelPruningSummaries", "RewindCheckpoint",
           "UpdateChannelPruningStep", "current_keep", "prune_channels",
           "rewind", "sparsify_bn", "strip_channel_pruning"]

