"""tfprune_survey: structured (channel) pruning for Keras models.

The survey criteria of Vadera and Ameen (2021), a channel dependency graph,
and a stripper that builds genuinely slim Keras models.
"""

from tfprune_survey import frameworks
from tfprune_survey import criteria
from tfprune_survey import data
from tfprune_survey import lottery
from tfprune_survey import latency
from tfprune_survey import published
from tfprune_survey import schedules
from tfprune_survey import zoo
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.cluster import cluster_prune
from tfprune_survey.distill import DistillationModel
from tfprune_survey.distill import reinitialize
from tfprune_survey.errors import UnreachableTargetError
from tfprune_survey.errors import UnsupportedModelError
from tfprune_survey.graph import ChannelGraph
from tfprune_survey.graph import ChannelGroup
from tfprune_survey.graph import LayerHandler
from tfprune_survey.graph import register_handler
from tfprune_survey.metrics import count_macs
from tfprune_survey.metrics import count_params
from tfprune_survey.layers import ChannelScale
from tfprune_survey.metrics import profile
from tfprune_survey.iterative import IterativeResult
from tfprune_survey.iterative import iterative_prune
from tfprune_survey.planning import Planner
from tfprune_survey.planning import search_macs
from tfprune_survey.pruner import prune
from tfprune_survey.pruner import PruneReport
from tfprune_survey.pruner import PruneResult
from tfprune_survey.reconstruct import reconstruct
from tfprune_survey.scoring import score
from tfprune_survey.sensitivity import ratios_from_sensitivity
from tfprune_survey.sensitivity import sensitivity
from tfprune_survey.sensitivity import SensitivityResult
from tfprune_survey.strip import mask_channels
from tfprune_survey.strip import materialize
from tfprune_survey.training import add_scaling_factors
from tfprune_survey.training import ChannelPruneWrapper
from tfprune_survey.training import ChannelPruningSummaries
from tfprune_survey.training import RewindCheckpoint
from tfprune_survey.training import rewind
from tfprune_survey.training import prune_channels
from tfprune_survey.training import sparsify_bn
from tfprune_survey.training import strip_channel_pruning
from tfprune_survey.training import UpdateChannelPruningStep
from tfprune_survey.training import zero_small_block_scales

__version__ = "0.1.0"

__all__ = [
    "ChannelGraph", "ChannelGroup", "ChannelPruneWrapper",
    "ChannelPruningSummaries", "ChannelScale", "DistillationModel",
    "IterativeResult", "LayerHandler", "Planner", "PruneReport",
    "PruneResult", "RewindCheckpoint", "SensitivityResult",
    "UnreachableTargetError", "UnsupportedModelError",
    "UpdateChannelPruningStep",
    "add_scaling_factors", "cluster_prune", "count_macs", "count_params",
    "criteria", "data", "frameworks", "iterative_prune", "latency", "lottery",
    "mask_channels", "materialize", "profile", "prune", "prune_channels",
    "ratios_from_sensitivity", "recalibrate_bn", "reconstruct",
    "register_handler", "reinitialize", "rewind", "schedules", "score",
    "search_macs", "sensitivity", "sparsify_bn", "strip_channel_pruning",
    "zero_small_block_scales",
]


def _register_keras_classes(framework):
  """Makes (and so registers) the classes a saved model may hold.

  Run for each Keras as soon as it is imported (at once for one already
  imported), so that a `.keras` file with a ChannelScale or a
  ChannelPruneWrapper loads without `custom_objects` in a new process.
  """
  from tfprune_survey.layers.channel_scale import channel_scale_class  # pylint: disable=g-import-not-at-top
  from tfprune_survey.training.wrapper import wrapper_class  # pylint: disable=g-import-not-at-top
  wrapper_class(framework)
  channel_scale_class(framework)


frameworks.classes.when_keras_imported(_register_keras_classes)
