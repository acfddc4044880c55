"""Monitoring: recent events against the model's training window (kedro run --pipelines monitoring)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
