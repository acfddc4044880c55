"""Serving the busyness model: request parsing, the HTTP server, packaging and SageMaker."""
