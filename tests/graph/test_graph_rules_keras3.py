"""The graph rules of test_graph_rules.py, on Keras 3 models (TF backend).

The same test bodies (group sizes, prunability, reasons, materialize ==
mask_channels) run with `keras` bound to Keras 3 instead of tf_keras, so every
held-out-style graph is checked in both Kerases. Tests of tf_keras-only
features (TFOpLambda, ThresholdedReLU) are skipped here with a reason; Keras
3's own Operation nodes are tested in tests/frameworks.
"""

import pathlib

_SOURCE = pathlib.Path(__file__).with_name("test_graph_rules.py").read_text()
_SOURCE = _SOURCE.replace("from tfprune_survey._compat import keras",
                          "import keras")
exec(compile(_SOURCE, "tests/graph/test_graph_rules.py[keras3]", "exec"))  # pylint: disable=exec-used
