"""The shadow log (``kedro serve --shadow``) and the clean events -> champion vs challenger."""

from kedro.pipeline import Node, Pipeline

from .nodes import join_actual_counts, parse_shadow_log, score_shadow


def create_pipeline(**kwargs) -> Pipeline:
    """Not in the default run: ``kedro run --pipelines shadow`` once the logged hours' events
    are cleaned (``clean_events``)."""
    return Pipeline(
        [
            Node(
                parse_shadow_log,
                "shadow_log",
                ["shadow_predictions", "shadow_log_summary"],
                name="parse_shadow_log",
            ),
            Node(
                join_actual_counts,
                ["shadow_predictions", "clean_events"],
                ["shadow_scored_rows", "shadow_actuals_coverage"],
                name="join_shadow_actual_counts",
            ),
            Node(
                score_shadow,
                [
                    "shadow_scored_rows",
                    "shadow_log_summary",
                    "shadow_actuals_coverage",
                    "params:shadow",
                ],
                ["shadow_report", "shadow_metrics"],
                name="score_shadow",
            ),
        ],
        tags="shadow",
    )
