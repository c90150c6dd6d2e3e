"""The shared base of the criteria that read the consumers' contributions."""

from tfprune_survey import consumer_patches
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import warn_nested


class ReconstructionCriterion(Criterion):
  """A criterion scoring a group from its contributions' Gram matrix.

  One streamed pass (`consumer_patches.group_grams`, shared by every such
  criterion through the scoring context's cache) builds, per group, the
  C x C Gram matrix of its channels' contributions to the consumers'
  outputs at `positions_per_sample` seeded random output positions per
  sample. Subclasses implement `gram_scores(gram, equations)`. A group
  without a top-level Conv1D, Conv2D or Dense consumer gets no scores; a
  model with no such group is a ValueError (it would prune nothing).

  Args:
    positions_per_sample: random output positions per sample.
    seed: seed of the position sampling.
    reduction: kept for the interface (one score vector per group).

  Raises:
    ValueError: if `positions_per_sample` < 1.
  """

  requires_data = True
  reads = ("the outputs of top-level Conv1D, Conv2D or Dense consumers "
           "(called once) of a group's channels")
  reads_hint = ("; the weight criteria ('l1', 'l2', 'fpgm') and the "
                "activation criteria ('apoz', 'taylor') read other layers")

  def __init__(self, positions_per_sample=10, seed=0, reduction="mean"):
    super().__init__(reduction)
    self.positions_per_sample = int(positions_per_sample)
    self.seed = int(seed)
    if self.positions_per_sample < 1:
      raise ValueError("`positions_per_sample` must be >= 1, got "
                       f"{positions_per_sample!r}")

  def gram_scores(self, gram, equations):
    """(C,) scores of a group from its Gram matrix and equation count."""
    raise NotImplementedError

  def after_scoring(self, ctx, scores):
    """Warns naming the consumers inside nested models, whose contributions
    are left out (before `check_scored` raises, when no group has a
    consumer it reads)."""
    warn_nested(self.name, ctx, scores, "the consumers' outputs",
                scored_anyway=True)

  def score_parts(self, group, ctx):
    grams = consumer_patches.group_grams(ctx, self.positions_per_sample,
                                         self.seed)
    if group.id not in grams:
      return []
    return [self.gram_scores(*grams[group.id])]

  def get_config(self):
    return {**super().get_config(),
            "positions_per_sample": self.positions_per_sample,
            "seed": self.seed}
