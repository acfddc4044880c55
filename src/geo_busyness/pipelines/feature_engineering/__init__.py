"""Time windows, dense cell x hour panels and busyness features fitted on the train window."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
