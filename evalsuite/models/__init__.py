"""Models as pluggable runners, found through the ``evalsuite.models`` entry points.

A model is one module and one entry point: its :class:`ModelSpec` holds everything evalsuite
knows about it (label, official weights file, prompt kinds, parameter count), its runner wraps
the network with the official pre- and post-processing.
"""

from .base import BatchedEncoderRunner, ModelSpec, Prediction, Runner, WeightsFile
from .registry import (
    WeightsChoice,
    build_model,
    builtin_model_names,
    get_spec,
    model_names,
    parse_weights,
)
from .wrap import CallableRunner

__all__ = [
    "BatchedEncoderRunner",
    "CallableRunner",
    "ModelSpec",
    "Prediction",
    "Runner",
    "WeightsChoice",
    "WeightsFile",
    "build_model",
    "builtin_model_names",
    "get_spec",
    "model_names",
    "parse_weights",
]
