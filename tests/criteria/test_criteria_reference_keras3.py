"""The numpy references of test_criteria_reference.py, on Keras 3 models.

The same test bodies run with `keras` bound to Keras 3 (TensorFlow backend,
as in the test process), so every criterion is checked against its numpy
reference, computed in the test on hand-set weights, in both Kerases. The
JAX backend runs a subset in its own process (tests/frameworks).
"""

import pathlib

_SOURCE = pathlib.Path(__file__).with_name(
    "test_criteria_reference.py").read_text()
_SOURCE = _SOURCE.replace("from tfprune_survey._compat import keras",
                          "import keras")
_SOURCE = _SOURCE.replace('framework="tf_keras"', 'framework="keras3"')
exec(compile(_SOURCE, "tests/criteria/test_criteria_reference.py[keras3]",  # pylint: disable=exec-used
             "exec"))
