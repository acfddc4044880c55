"""Ingest, validate and clean raw point events."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
