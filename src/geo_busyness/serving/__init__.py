"""What the serving container runs: the HTTP server, the SageMaker entry points, request
parsing and response encoding. Deploy-time code lives in ``pipelines/deployment``."""
