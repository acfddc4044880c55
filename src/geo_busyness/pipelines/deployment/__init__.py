"""Deploy a registered model version that passed the gate, then promote it to ``champion``."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
