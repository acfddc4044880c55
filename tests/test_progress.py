"""geo_busyness.progress: a line with an estimate at most every N seconds, nothing for short
steps, a closing line when it spoke; a fake clock, no sleeping."""

from __future__ import annotations

import logging

import pytest

from geo_busyness.progress import Progress, duration, estimate_left, progress, row_chunks


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.4, "<1 s"), (40, "40 s"), (89, "89 s"), (150, "2 min"), (3_900, "1 h 5 min"), (-3, "<1 s")],
)
def test_duration_reads_as_a_person_says_it(seconds, said):
    assert duration(seconds) == said


def test_the_estimate_is_the_pace_so_far():
    assert estimate_left(0, 8, 5.0) is None
    assert estimate_left(2, 8, 10.0) == pytest.approx(30.0)
    assert estimate_left(8, 8, 10.0) == 0.0


def test_a_line_with_an_estimate_at_most_every_n_seconds(caplog):
    caplog.set_level(logging.INFO, logger="geo_busyness.progress")
    clock = FakeClock()
    with Progress("fit_candidates", 8, "fits", every_s=10, clock=clock) as step:
        for seconds in (4, 4, 4, 4, 4, 4, 4, 4):  # 5 s a fit
            clock.now += seconds + 1
            step.advance()
    assert messages(caplog) == [
        "fit_candidates: 2/8 fits, ~30 s left",
        "fit_candidates: 4/8 fits, ~20 s left",
        "fit_candidates: 6/8 fits, ~10 s left",
        "fit_candidates: 8/8 fits in 40 s",
    ]


def test_a_short_step_logs_nothing(caplog):
    caplog.set_level(logging.INFO, logger="geo_busyness.progress")
    clock = FakeClock()
    with Progress("SHAP", 3, "chunks", every_s=10, clock=clock) as step:
        for _ in range(3):
            clock.now += 3
            step.advance()
    assert messages(caplog) == []


def test_a_failed_step_has_no_closing_line(caplog):
    caplog.set_level(logging.INFO, logger="geo_busyness.progress")
    clock = FakeClock()
    with (
        pytest.raises(RuntimeError),
        Progress("interval", 4, "buckets", every_s=1, clock=clock) as step,
    ):
        clock.now += 2
        step.advance()
        raise RuntimeError("boom")
    assert messages(caplog) == ["interval: 1/4 buckets, ~6 s left"]


def test_progress_wraps_an_iterable_and_counts_each_item_once_done(caplog):
    caplog.set_level(logging.INFO, logger="geo_busyness.progress")
    clock = FakeClock()
    seen = []
    for fold in progress(["a", "b", "c"], "folds", "folds", every_s=10, clock=clock):
        seen.append(fold)
        clock.now += 20 if fold == "a" else 1
    assert seen == ["a", "b", "c"]
    assert messages(caplog) == ["folds: 1/3 folds, ~40 s left", "folds: 3/3 folds in 22 s"]


def test_progress_of_an_iterator_needs_its_total(caplog):
    caplog.set_level(logging.INFO, logger="geo_busyness.progress")
    clock = FakeClock()
    for _ in progress(iter(range(4)), "rows", "chunks", total=4, every_s=0, clock=clock):
        clock.now += 1
    assert messages(caplog)[0] == "rows: 1/4 chunks, ~3 s left"
    with pytest.raises(TypeError):
        list(progress(iter(range(2)), "rows", "chunks"))


def test_row_chunks_cover_every_row_once():
    parts = row_chunks(10, 4)
    assert parts == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert row_chunks(0, 4) == []
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        row_chunks(10, 0)
