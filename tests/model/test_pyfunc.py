"""The pyfunc flavour refuses what the server refuses, with the server's reasons."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from geo_busyness.model.pyfunc import BusynessPyfunc
from tests.serving.cases import GOOD_ROW
from tests.serving.model_fixture import fit_model


@pytest.fixture(scope="module")
def pyfunc() -> BusynessPyfunc:
    return BusynessPyfunc(fit_model())


def test_a_point_in_the_service_area_is_answered(pyfunc: BusynessPyfunc) -> None:
    answers = pyfunc.predict([GOOD_ROW])
    assert len(answers) == 1 and answers["predicted_busyness"].iloc[0] >= 0


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({**GOOD_ROW, "courier_lat": 40.75, "courier_lon": -73.98}, "outside_service_area"),
        ({**GOOD_ROW, "courier_lat": -104.6, "courier_lon": 50.45}, "swapped_coordinates"),
    ],
)
def test_a_point_the_server_refuses_is_refused(pyfunc: BusynessPyfunc, row, reason) -> None:
    with pytest.raises(MlflowException, match=reason):
        pyfunc.predict([row])
