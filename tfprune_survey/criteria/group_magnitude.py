"""Group-level magnitude, as Torch-Pruning scores a dependency group.

Shared by `l1`, `l2` and `fpgm` when built with `include='group'`.

What is computed for one channel group (Fang et al. 2023, "DepGraph:
Towards any structural pruning", CVPR; Torch-Pruning 1.x
`GroupMagnitudeImportance`, defaults group_reduction='mean',
normalizer='mean'):

1. Every parameter slice the group removes is read
   (`ScoringContext.group_slices`): each producer's kernel slice and bias,
   each per-channel parameter (BN gamma and beta, ChannelScale scale, PReLU
   alpha, DepthwiseConv bias) and each consumer's input slice (the consumer
   kernel along its input-channel axis; after a Flatten, every spatial
   position of the channel). BN moving statistics are not read.
2. Per slice, a local importance per channel: sum of |w|^p over the entries
   the channel owns (p=1 for l1, p=2 for l2; for p=2 this is the squared
   L2 norm, as Torch-Pruning's `w.abs().pow(p).sum(1)`).
3. The slices' vectors are combined with the criterion's `reduction`
   ('mean' by default: Torch-Pruning's group_reduction='mean').
4. The result is divided by its mean over the group's channels
   (normalizer='mean'), so groups compare on one scale under
   `scope='global'`; within a group the order is unchanged.

One departure from Torch-Pruning's defaults: it reads neither biases nor BN
beta unless built with `bias=True`; we read every slice the group removes,
including biases and beta, each as its own slice in the mean.
"""

import numpy as np

INCLUDES = ("producers", "group")


def check_include(include):
  """Raises ValueError naming `include` unless it is an allowed value."""
  if include not in INCLUDES:
    raise ValueError(f"`include` must be one of {INCLUDES}, got {include!r}")
  return include


def normalize_mean(scores):
  """Scores divided by their mean (left as is when the mean is 0)."""
  mean = float(np.mean(scores)) if np.size(scores) else 0.0
  return scores / mean if mean > 0 else scores


def slice_norms(group, ctx, p):
  """[sum of |w|^p per channel] for every parameter slice of `group`."""
  return [(np.abs(rows) ** p).sum(axis=1) for _, rows in
          ctx.group_slices(group)]


def group_vectors(group, ctx):
  """(group.size, k): each channel's slices concatenated into one vector."""
  parts = [rows for _, rows in ctx.group_slices(group)]
  return np.concatenate(parts, axis=1) if parts else None
