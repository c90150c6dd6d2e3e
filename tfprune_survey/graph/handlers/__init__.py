"""Per-layer channel handlers.

The built-in ones are registered per framework when a layer of that framework
is first looked up (see `registry`), so importing this imports no Keras.
"""

from tfprune_survey.graph.handlers.merges import Concatenate
from tfprune_survey.graph.handlers.merges import ElementwiseMerge
from tfprune_survey.graph.handlers.passthrough import PassThrough
from tfprune_survey.graph.handlers.producers import Producer
from tfprune_survey.graph.handlers.registry import get_handler
from tfprune_survey.graph.handlers.registry import LayerHandler
from tfprune_survey.graph.handlers.registry import register_handler

__all__ = [
    "Concatenate", "ElementwiseMerge", "LayerHandler", "PassThrough",
    "Producer", "get_handler", "register_handler",
]
