"""tfprune_survey: structured (channel) pruning for tf_keras models.

The survey criteria of Vadera and Ameen (2021), a channel dependency graph,
and a stripper that builds genuinely slim Keras models.
"""

from tfprune_survey import _compat  # sets TF_USE_LEGACY_KERAS first
from tfprune_survey import criteria
from tfprune_survey import data
from tfprune_survey.bn import recalibrate_bn
from tfprune_survey.errors import UnsupportedModelError
from tfprune_survey.graph import ChannelGraph
from tfprune_survey.graph import ChannelGroup
from tfprune_survey.graph import LayerHandler
from tfprune_survey.graph import register_handler
from tfprune_survey.metrics import count_macs
from tfprune_survey.metrics import count_params
from tfprune_survey.layers import ChannelScale
from tfprune_survey.metrics import profile
from tfprune_survey.pruner import prune
from tfprune_survey.pruner import PruneReport
from tfprune_survey.pruner import PruneResult
from tfprune_survey.scoring import score
from tfprune_survey.strip import mask_channels
from tfprune_survey.strip import materialize

__version__ = "0.1.0"

__all__ = [
    "ChannelGraph", "ChannelGroup", "ChannelScale", "LayerHandler",
    "PruneReport", "PruneResult", "UnsupportedModelError", "count_macs",
    "count_params", "criteria", "data", "mask_channels", "materialize", "profile",
    "prune", "recalibrate_bn", "register_handler", "score",
]
del _compat
