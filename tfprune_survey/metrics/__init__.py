"""MACs, parameters and per-layer profiles."""

from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs import count_params
from tfprune_survey.metrics.macs import register_macs
from tfprune_survey.metrics.profile import profile
from tfprune_survey.metrics.profile import Profile

__all__ = ["Profile", "count_macs", "count_params", "profile",
           "register_macs"]
