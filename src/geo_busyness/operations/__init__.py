"""Operations: what runs the project on a schedule and tells people about it.

- ``job``: the retraining job (`kedro retrain`): lock, ingestion, monitoring, decision,
  training, deployment, its record, resume and alerts;
- ``steps``: the same steps one per orchestrator task (the Airflow DAG in airflow/dags/);
- ``alerts/``: the alert message, its channels (SNS, Slack-compatible webhook) and the alerts a
  run's outputs call for (sent by ``hooks.alerts.AlertHook``, the job and the server);
- ``run_summary``: the few lines a run or a job ends with.

The pipelines it runs (ingestion, monitoring, retraining, deployment) stay in ``pipelines/``:
the job runs them by name through Kedro sessions and imports none of them. This file imports
nothing: ``serving`` sends alerts, so the SageMaker package carries this package's alerts.
"""
