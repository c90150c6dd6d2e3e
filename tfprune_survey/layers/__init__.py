"""Layers that tfprune_survey adds to models."""

from tfprune_survey.layers.channel_scale import ChannelScale

__all__ = ["ChannelScale"]
