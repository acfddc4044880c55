"""The test suite. Imported before tests/conftest.py and every test module.

One math thread per process, as the model server runs: pytest-xdist's two workers and the
processes the tests start share two cores, where OpenMP's default threads stall (a
HistGradientBoosting fit of 30,000 rows: 25.7 s with them at load 4, 1.3 s with one). The
libraries read the variables when they load, hence here, before numpy or scikit-learn is
imported; values already set win.
"""

from geo_busyness.serving.threads import single_threaded_math

single_threaded_math()
