"""retraining: the training job on the history plus the recent batch (``kedro retrain`` runs it)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
