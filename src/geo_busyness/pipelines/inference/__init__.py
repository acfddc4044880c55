"""Batch inference: forecast every known cell for the next hours and score query tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
