"""The survey's pruning criteria behind one interface.

Example:
  >>> tps.criteria.names()
  ['apoz', 'entropy', 'fpgm', 'kfac_obd', 'l1', 'l2', 'lasso', 'obd',
   'random', 'slimming', 'sss', 'taylor', 'taylor_fo', 'thinet', 'variance']
  >>> crit = tps.criteria.get('fpgm')
"""

from tfprune_survey.criteria import apoz
from tfprune_survey.criteria import entropy
from tfprune_survey.criteria import fpgm
from tfprune_survey.criteria import kfac_obd
from tfprune_survey.criteria import l1
from tfprune_survey.criteria import l2
from tfprune_survey.criteria import lasso
from tfprune_survey.criteria import obd
from tfprune_survey.criteria import random_criterion
from tfprune_survey.criteria import slimming
from tfprune_survey.criteria import sss
from tfprune_survey.criteria import taylor
from tfprune_survey.criteria import taylor_fo
from tfprune_survey.criteria import thinet
from tfprune_survey.criteria import variance
from tfprune_survey.criteria.activation import ActivationCriterion
from tfprune_survey.criteria.base import Criterion
from tfprune_survey.criteria.base import reduce_scores
from tfprune_survey.criteria.fpgm import FPGM
from tfprune_survey.criteria.l1 import L1Norm
from tfprune_survey.criteria.l2 import L2Norm
from tfprune_survey.criteria.registry import deserialize
from tfprune_survey.criteria.registry import get
from tfprune_survey.criteria.registry import names
from tfprune_survey.criteria.registry import register_criterion
from tfprune_survey.criteria.registry import serialize

__all__ = ["ActivationCriterion", "Criterion", "FPGM", "L1Norm", "L2Norm",
           "deserialize", "get", "names", "reduce_scores",
           "register_criterion", "serialize"]
del apoz, entropy, fpgm, l1, l2, random_criterion, slimming, sss, taylor
del taylor_fo, variance, obd, kfac_obd
del lasso, thinet
