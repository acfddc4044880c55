"""split_queries: the server's checks, applied row by row for batch use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.queries import RequestError, split_queries, validate_queries
from tests.serving.cases import TS

RAW = pd.DataFrame(
    {
        TS: ["2026-01-05T12:30:00Z", None, "soon", "2026-01-05T13:00:00+01:00", "2026-01-05T14:00"],
        "courier_lat": ["50.45", "50.45", "95", "north", "50.46"],
        "courier_lon": [-104.6, -104.6, -104.6, np.nan, 181.0],
    }
)


def test_each_refused_row_is_named_once_by_its_first_broken_rule():
    valid, problems = split_queries(RAW)
    assert problems["source_row"].tolist() == [1, 2, 3, 4]
    # Row 2 breaks two rules (timestamp and latitude): the timestamp is checked first.
    assert list(zip(problems["reject_column"], problems["reject_reason"], strict=True)) == [
        (TS, "missing_value"),
        (TS, "unparsable_timestamp"),
        ("courier_lat", "wrong_type"),
        ("courier_lon", "coordinates_out_of_range"),
    ]
    for row, message in zip(problems["source_row"], problems["reject_message"], strict=True):
        with pytest.raises(RequestError) as refused:
            validate_queries(RAW.iloc[[row]])
        assert refused.value.message == message  # the server's words for the row alone
    assert valid["source_row"].tolist() == [0]
    expected = validate_queries(RAW.iloc[[0]])
    pd.testing.assert_frame_equal(valid.drop(columns="source_row"), expected)
