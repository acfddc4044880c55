"""``ParameterCheckHook``: a run's parameters checked against ``parameter_schema`` first."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from geo_busyness.parameter_check import check_parameters


class ParameterCheckHook:
    """Check the run's parameters (every environment's files and ``--params``, merged) against
    ``parameter_schema``: a wrong type, range or unknown key stops the run before anything
    runs, with one line per key (``ParameterError``)."""

    # tryfirst: before any other hook reads a parameter (AlertHook reads `alerts` here too).
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Raise ``ParameterError`` naming every parameter that does not fit the schema."""
        check_parameters(context.params)
