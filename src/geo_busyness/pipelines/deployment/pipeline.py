"""Gate-checked registry version -> model.tar.gz -> local store or SageMaker -> champion."""

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines.reporting.pipeline import create_pipeline as reporting_pipeline
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
    return _deployment() + _champion_outputs()


def _champion_outputs() -> Pipeline:
    """reporting's publication of the champion's reports as the current ones, run again once
    the record of a new champion is written (``deployment.publish_champion_outputs``)."""
    publication = reporting_pipeline().only_nodes_with_outputs("champion_outputs")
    return pipeline(
        publication,
        inputs={"run_outputs": "deployment_record"},
        outputs={"champion_outputs": "deployed_champion_outputs"},
        parameters={"params:reporting": "params:reporting"},
        namespace="deployment",
    )


def _deployment() -> Pipeline:
    """The rollout; the champion's reports become the current ones after its record."""
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
