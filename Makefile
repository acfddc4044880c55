# Quick start: `make run` (the whole job on the embedded default) and `make test`.
# Both bootstrap uv with pip when it is missing, then install the locked environment.
PYTHON ?= python3
UV := $(PYTHON) -m uv
export KEDRO_DISABLE_TELEMETRY := 1

.PHONY: install install-spark install-airflow airflow-dag run data test test-fast lint format viz

install:  ## uv (via pip if missing) and the locked environment in .venv
	@# pip into the interpreter, else the user site; a distribution's Python (PEP 668) refuses
	@# both, and uv alone then goes to the user site, leaving system packages untouched.
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.9,<1" 2>/dev/null \
		|| $(PYTHON) -m pip install --quiet --user "uv>=0.9,<1" 2>/dev/null \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages "uv>=0.9,<1"
	@# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (as on CI) Python
	@# would otherwise compile every imported module on every `kedro` command (~9 s of start-up).
	$(UV) sync --frozen --compile-bytecode

install-spark: install  ## the locked environment plus the optional Spark extra (kedro run --env spark; needs Java 17+)
	$(UV) sync --frozen --compile-bytecode --extra spark

install-airflow: install  ## the Airflow worker environment in .venv-airflow: the project + its `airflow` extra
	@# A resolution of its own in uv.lock (Airflow caps FastAPI below the main environment's).
	UV_PROJECT_ENVIRONMENT=.venv-airflow $(UV) sync --frozen --no-dev --extra airflow --compile-bytecode

airflow-dag: install  ## regenerate the Airflow DAG (airflow/dags/) with kedro-airflow from airflow/dag_template.j2
	$(UV) run --frozen kedro airflow create --pipelines monitoring --jinja-file airflow/dag_template.j2 --target-dir airflow/dags

data: install  ## generate the synthetic city once, when the catalog's raw_events do not exist
	@# Asks the catalog, wherever raw_events point: a user's own file is never replaced.
	$(UV) run --frozen kedro generate-data

run: data  ## train (the default pipeline), then forecast and monitor with the registered model
	$(UV) run --frozen kedro run
	$(UV) run --frozen kedro run --pipelines inference,monitoring

# One pytest worker per core (pytest-xdist), a test file per worker: a file's fixtures stay
# together, and the Kedro sessions of two files run side by side.
PYTEST_WORKERS ?= auto

test: install-spark lint  ## ruff, then the whole test suite with the Spark tests (what CI runs)
	$(UV) run --frozen --extra spark pytest -n $(PYTEST_WORKERS) --dist loadfile

test-fast: install  ## the unit tier: every test not marked slow (no Kedro sessions, servers, browser)
	$(UV) run --frozen pytest -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile

lint: install
	$(UV) run --frozen ruff check
	$(UV) run --frozen ruff format --check

format: install
	$(UV) run --frozen ruff format
	$(UV) run --frozen ruff check --fix

viz: install  ## kedro-viz on http://127.0.0.1:4141
	$(UV) run --frozen kedro viz run --no-browser --port 4141
