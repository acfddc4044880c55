"""Fit, select, evaluate and (behind a quality gate) register the busyness model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
