"""Models as pluggable runners, found through the ``evalsuite.models`` entry points."""

from .base import ModelSpec, Prediction, Runner
from .registry import build_model, get_spec, model_names

__all__ = ["ModelSpec", "Prediction", "Runner", "build_model", "get_spec", "model_names"]
