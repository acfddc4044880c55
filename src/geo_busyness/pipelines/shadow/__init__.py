"""Score the shadow log: the champion's and the challenger's answers against the actual counts."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
