"""Synthetic city events in the reference courier schema."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
