"""Shared models and data of the training-time pruning tests.

`build(framework)` makes the same small residual CNN (12x12 inputs) in
tf_keras or in Keras 3, so a test body can run in both Kerases.
"""

import numpy as np
import pytest

import tfprune_survey as tps
from tfprune_survey import frameworks
from tfprune_survey import zoo
from tfprune_survey.training.strip import current_keep

FRAMEWORKS = ("tf_keras", "keras3")


def keras_of(framework):
  return frameworks.get(framework).keras


def build(framework="tf_keras"):
  keras_of(framework).utils.set_random_seed(0)
  return zoo.residual_cnn(input_shape=(12, 12, 1), width=8,
                          framework=framework)


def compile_model(model, lr=1e-3):
  keras = frameworks.of(model).keras
  model.compile(keras.optimizers.Adam(lr),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  return model


def kept_fraction(model):
  graph, keep = current_keep(model)
  groups = graph.prunable_groups
  kept = sum(len(keep.get(g.id, range(g.size))) for g in groups)
  return kept / sum(g.size for g in groups)


def outputs(model, x):
  return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def xy():
  rng = np.random.default_rng(0)
  return (rng.random((64, 12, 12, 1)).astype("float32"),
          rng.integers(0, 10, 64))


def every_step(sparsity=0.5):
  return tps.schedules.ConstantSparsity(sparsity, 0, frequency=1)
