"""LASSO channel selection (He, Zhang and Sun 2017)."""

import warnings

import numpy as np

from tfprune_survey.criteria.reconstruction_base import (
    ReconstructionCriterion)
from tfprune_survey.criteria.registry import register_criterion


def lasso_path(gram, xy, n_samples):
  """The LASSO path of min (1/2n)||Y - Z b||² + alpha ||b||₁ from Gram form.

  Args:
    gram: (C, C) ZᵀZ.
    xy: (C,) ZᵀY.
    n_samples: the number of equations n (rows of Z).

  Returns:
    (alphas, coefs): the path's knots, decreasing, and (C, knots) β there
    (scikit-learn's `lars_path_gram`, method='lasso').
  """
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  gram = np.asarray(gram, np.float64)
  xy = np.asarray(xy, np.float64)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    alphas, _, coefs = linear_model.lars_path_gram(
        xy, gram, n_samples=int(n_samples), method="lasso")
  return alphas, coefs


def entry_alphas(alphas, coefs):
  """For each channel, the largest alpha at which its β is non-zero.

  Along the path from large alpha down, a variable enters at a knot (where
  it is still 0) and is non-zero just below it; that knot is its alpha.
  Channels that never become non-zero get 0.
  """
  out = np.zeros(coefs.shape[0])
  for c in range(coefs.shape[0]):
    nz = np.flatnonzero(coefs[c] != 0)
    if nz.size:
      out[c] = alphas[max(nz[0] - 1, 0)]
  return out


@register_criterion("lasso")
class Lasso(ReconstructionCriterion):
  """Channel selection by LASSO regression on the consumers' outputs.

  The channel coefficients β solve min ||Y - sum_c β_c Z_c||² + λ||β||₁ on
  sampled positions, where Z_c = X_c W_cᵀ is channel c's contribution to
  the consumers' outputs (the group's part of them, Y = sum_c Z_c), over
  every top-level Conv1D, Conv2D and Dense consumer of the group (their
  equations concatenated), at `positions_per_sample` seeded random output
  positions per sample. Only the C x C Gram matrix of the contributions is
  kept, so memory does not grow with the data. The whole λ path is solved
  (LARS, scikit-learn's `lars_path_gram`); a channel's score is the largest
  λ at which its β is non-zero, divided by the path's largest λ: as λ
  grows, the channels whose β reaches zero first (they enter the path last)
  score lowest. A group without such a consumer gets no scores and stays
  whole. Pair it with `tps.prune(..., reconstruct=True)` for the paper's
  least-squares re-fit of the kept channels.

  Reference: Y. He, X. Zhang, J. Sun (2017), "Channel pruning for
  accelerating very deep neural networks", ICCV.

  Args:
    positions_per_sample: random output positions per sample. Defaults to
      10.
    seed: seed of the position sampling. Defaults to 0.
    reduction: kept for the interface (one score vector per group).
  """

  name = "lasso"

  def gram_scores(self, gram, equations):
    alphas, coefs = lasso_path(gram, gram.sum(axis=1), equations)
    lam = entry_alphas(alphas, coefs)
    return lam / alphas[0] if alphas[0] > 0 else lam
