"""Materialization of pruned models."""

from tfprune_survey.strip.keep import resolve_keep
from tfprune_survey.strip.mask import mask_channels
from tfprune_survey.strip.mask import masked_copy
from tfprune_survey.strip.materialize import materialize

__all__ = ["mask_channels", "masked_copy", "materialize", "resolve_keep"]
