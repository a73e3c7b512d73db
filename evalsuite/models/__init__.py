"""Models as pluggable runners, found through the ``evalsuite.models`` entry points."""

from .base import ModelSpec, Prediction, Runner
from .registry import build_model, get_spec, model_names
from .wrap import CallableRunner

__all__ = ["CallableRunner", "ModelSpec", "Prediction", "Runner", "build_model", "get_spec", "model_names"]
