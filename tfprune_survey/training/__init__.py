"""Training-time channel pruning in tfmot's style."""

from tfprune_survey.training.api import UpdateChannelPruningStep
from tfprune_survey.training.api import prune_channels
from tfprune_survey.training.api import strip_channel_pruning
from tfprune_survey.training.regularizers import sparsify_bn
from tfprune_survey.training.wrapper import ChannelPruneWrapper

__all__ = ["ChannelPruneWrapper", "UpdateChannelPruningStep", "prune_channels",
           "sparsify_bn", "strip_channel_pruning"]
