"""MACs, parameters and per-layer profiles."""

from tfprune_survey.metrics.accuracy import evaluate_accuracy
from tfprune_survey.metrics.macs import count_macs
from tfprune_survey.metrics.macs import count_params
from tfprune_survey.metrics.macs import register_macs
from tfprune_survey.metrics.profile import profile
from tfprune_survey.metrics.profile import Profile

__all__ = ["Profile", "count_macs", "count_params", "evaluate_accuracy",
           "profile", "register_macs"]
