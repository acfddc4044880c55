"""Plotly figures and an offline busyness map of the test-window forecast."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
