"""landing_batches (new or changed) -> data_processing's cleaning (namespace ``ingestion``) ->
event_history + ingestion_quarantine + ingestion_record -> counts_state."""

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines import data_processing

from .nodes import file_batches, publish_counts_state, select_new_batches

#: data_processing's outputs the ingestion takes: the split, before its run-wide share gate
#: (each batch is judged on its own share in ``file_batches``).
_SPLIT = ("clean_event_candidates", "rejected_events")


def clean_batches() -> Pipeline:
    """data_processing's mapping and cleaning of the combined new batches, under ``ingestion``
    (its parameters are the history's: the same rules)."""
    cleaning = data_processing.create_pipeline().to_outputs(*_SPLIT)
    shared = {name: name for name in cleaning.inputs() if name.startswith("params:")}
    return pipeline(
        cleaning,
        namespace="ingestion",
        inputs={"raw_events": "ingestion_raw_batches"},
        outputs={
            "clean_event_candidates": "ingestion_clean_rows",
            "rejected_events": "ingestion_rejected_rows",
        },
        parameters=shared,
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Select, clean, file and record the new batches; publish the counts state."""
    select = Node(
        select_new_batches,
        [
            "landing_batches",
            "ingestion_record_previous",
            "params:data_processing.column_mapping",
        ],
        ["ingestion_raw_batches", "ingestion_plan"],
        name="select_new_batches",
    )
    file = Node(
        file_batches,
        [
            "ingestion_clean_rows",
            "ingestion_rejected_rows",
            "ingestion_plan",
            "ingestion_record_previous",
            "params:ingestion",
            "params:data_processing.source_timezone",
        ],
        ["event_history", "ingestion_quarantine", "ingestion_record"],
        name="file_batches",
    )
    publish = Node(
        publish_counts_state,
        [
            "event_history",
            "ingestion_record",
            "params:ingestion",
            "params:feature_engineering.h3_resolution",
        ],
        "counts_state",
        name="publish_counts_state",
    )
    return Pipeline([select, clean_batches(), file, publish], tags="ingestion")
