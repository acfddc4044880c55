"""Gate-checked registry version -> model.tar.gz -> local store or SageMaker -> champion."""

from kedro.pipeline import Node, Pipeline

from geo_busyness.registry import select_model_version

from .nodes import (
    check_deployable,
    check_rollout,
    deploy_package,
    package_model,
    promote_champion,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Not in the default run: ``kedro run --pipelines deployment [--params deployment.target=sagemaker]``."""
    return Pipeline(
        [
            Node(
                select_model_version,
                "params:deployment",
                "deployment_selected_version",
                name="select_model_version",
            ),
            Node(
                check_deployable,
                ["deployment_selected_version", "params:deployment"],
                "deployment_candidate",
                name="check_deployable",
            ),
            Node(
                package_model,
                ["deployment_candidate", "params:deployment"],
                "model_package",
                name="package_model",
            ),
            Node(
                deploy_package,
                ["deployment_candidate", "model_package", "params:deployment"],
                "deployment_outcome",
                name="deploy_package",
            ),
            Node(
                promote_champion,
                [
                    "deployment_candidate",
                    "model_package",
                    "deployment_outcome",
                    "params:deployment",
                ],
                "deployment_record",
                name="promote_champion",
            ),
            # Last: with fail_on_rollback, a rolled-back update fails the run after its record
            # is saved.
            Node(
                check_rollout,
                ["deployment_record", "params:deployment"],
                None,
                name="check_rollout",
            ),
        ],
        tags="deployment",
    )
