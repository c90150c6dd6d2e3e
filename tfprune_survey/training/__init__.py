"""Training-time channel pruning in tfmot's style."""

from tfprune_survey.training.api import UpdateChannelPruningStep
from tfprune_survey.training.callbacks import ChannelPruningSummaries
from tfprune_survey.training.callbacks import RewindCheckpoint
from tfprune_survey.training.callbacks import rewind
from tfprune_survey.training.api import prune_channels
from tfprune_survey.training.api import strip_channel_pruning
from tfprune_survey.training.regularizers import sparsify_bn
from tfprune_survey.training.sss import add_scaling_factors
from tfprune_survey.training.sss import zero_small_block_scales
from tfprune_survey.training.wrapper import ChannelPruneWrapper

__all__ = ["add_scaling_factors", "zero_small_block_scales",
           "ChannelPruneWrapper", "ChannelPruningSummaries", "RewindCheckpoint",
           "UpdateChannelPruningStep", "prune_channels", "rewind",
           "sparsify_bn", "strip_channel_pruning"]
