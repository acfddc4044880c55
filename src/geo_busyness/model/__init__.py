"""The model artifact's code and nothing else: features, prediction, loading, query checks.

Everything here travels with the registered model (``bundle``). Import submodules directly
(``geo_busyness.model.predict``): this package imports nothing, so the server's start-up and
``/ping`` do not wait for scikit-learn.
"""
