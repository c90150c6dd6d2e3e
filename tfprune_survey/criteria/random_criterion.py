"""Random scores: the honest baseline (Mittal et al., 2019)."""

import numpy as np

from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import check_int
from tfprune_survey.criteria.registry import register_criterion


@register_criterion("random")
class Random(Criterion):
  """Uniform random scores, seeded.

  Scores are drawn group by group, in the graph's order, from one
  `np.random.default_rng(seed)`, so the same seed and model give the same
  scores.

  Reference: D. Mittal, S. Bhardwaj, M. M. Khapra, B. Ravindran (2019),
  "Studying the plasticity in deep convolutional neural networks using
  random pruning", Machine Vision and Applications.

  Args:
    seed: the random seed, an int >= 0. Defaults to 0.

  Raises:
    TypeError: for a seed that is not a whole number (e.g. None).
    ValueError: for a negative seed.
  """

  name = "random"

  def __init__(self, seed=0, reduction="mean"):
    super().__init__(reduction)
    self.seed = check_int(seed, "seed", 0, "criterion 'random'")

  def score(self, ctx):
    rng = np.random.default_rng(self.seed)
    return {g.id: rng.random(g.size) for g in ctx.groups}

  def get_config(self):
    return {"seed": self.seed, "reduction": self.reduction}
