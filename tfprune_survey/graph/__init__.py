"""Channel dependency analysis."""

from tfprune_survey.graph import handlers
from tfprune_survey.graph.channel_graph import ChannelGraph
from tfprune_survey.graph.channel_graph import ChannelGroup
from tfprune_survey.graph.handlers import LayerHandler
from tfprune_survey.graph.handlers import register_handler

__all__ = ["ChannelGraph", "ChannelGroup", "LayerHandler", "handlers",
           "register_handler"]
