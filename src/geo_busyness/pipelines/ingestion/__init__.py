"""ingestion: landed batches validated like the history, appended idempotently, the counts state
published (``kedro run --pipelines ingestion``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
