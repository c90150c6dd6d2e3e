"""Per-layer channel handlers. Importing this package registers the built-ins."""

from tfprune_survey._compat import tf_op_lambda_class
from tfprune_survey.graph.handlers import merges
from tfprune_survey.graph.handlers import normalization
from tfprune_survey.graph.handlers import passthrough
from tfprune_survey.graph.handlers import producers
from tfprune_survey.graph.handlers import reshapes
from tfprune_survey.graph.handlers import tf_ops
from tfprune_survey.graph.handlers.merges import Concatenate
from tfprune_survey.graph.handlers.merges import ElementwiseMerge
from tfprune_survey.graph.handlers.passthrough import PassThrough
from tfprune_survey.graph.handlers.producers import Producer
from tfprune_survey.graph.handlers.registry import get_handler
from tfprune_survey.graph.handlers.registry import LayerHandler
from tfprune_survey.graph.handlers.registry import register_handler

register_handler(tf_op_lambda_class(), tf_ops.TFOp())

__all__ = [
    "Concatenate", "ElementwiseMerge", "LayerHandler", "PassThrough",
    "Producer", "get_handler", "register_handler",
]
del merges, normalization, passthrough, producers, reshapes
