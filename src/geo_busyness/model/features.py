"""Query rows -> busyness features, fitted on train-window events only.

A query is a row with a UTC timestamp (``courier_location_timestamp``; naive values are taken as
UTC, ISO strings are parsed) and a point (``courier_lat``/``courier_lon``). It asks: how busy is the
point's H3 cell during the timestamp's hour? ``BusynessFeatures`` snaps every query to its cell and
hour, so every point of a cell gets the same features; point features (distances, clusters) are
taken at the cell centre. Predictions go through ``geo_busyness.model.predict``. The events are
read through their summary (``geo_busyness.model.event_summary``), which Spark builds too.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted

from geo_busyness.model.cell_hours import (
    DAY_NS,
    HOUR_NS,
    HOURS_PER_WEEK,
    count_cell_hours,
    hour_fields,
    hour_of_week_mean,
    hours_array,
    to_utc_hours,
    utc_hour_ns,
)
from geo_busyness.model.event_summary import (
    EventSummary,
    as_utc_hour,
    cell_statistics,
    first_restaurants,
    fit_window,
    rows_with_values,
    summarise_events,
)
from geo_busyness.model.geo import (
    cell_centres,
    cell_neighbours,
    h3_cells,
    haversine_km,
)
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    HOUR,
    QUERY_COLUMNS,
    TARGET,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)

logger = logging.getLogger(__name__)

#: Code of a cell never seen in the train window.
UNSEEN_CELL = -1
_HOUR = pd.Timedelta(hours=1)

#: Per-cell reference features the forecaster uses (when the source gives them).
CELL_FEATURES = (
    "h3_index",
    "dist_to_restaurant",
    "Hdist_to_restaurant",
    "restaurants_per_index",
    "avg_Hdist_to_restaurants",
    "Five_Clusters_embedding",
)
#: The reference notebook's features (the leaky reference protocol uses only these).
REFERENCE_FEATURES = (
    *CELL_FEATURES,
    "date_hour_number",
    "day_of_week",
    "is_weekend",
    "date_day_number",
)
#: Forecasting features added to the reference set; lag columns follow them.
PROFILE_FEATURES = ("cell_hour_of_week_mean", "neighbours_hour_of_week_mean")
#: Per-cell profile arrays of ``_cell_features`` -> the feature they give.
_PROFILE_FEATURE = dict(zip(("profile", "neighbour_profile"), PROFILE_FEATURES, strict=True))
#: Features computed from optional source columns -> the columns each needs on the same row.
#: ``avg_Hdist_to_restaurants`` and ``Five_Clusters_embedding`` are not here: without
#: restaurants they take event locations as anchors.
SOURCE_COLUMN_FEATURES = {
    "dist_to_restaurant": (VENUE_LAT, VENUE_LON),
    "Hdist_to_restaurant": (VENUE_LAT, VENUE_LON),
    "restaurants_per_index": (VENUE_ID,),
}


def unavailable_features(
    columns: Sequence[str], rows_with: Mapping[tuple[str, ...], int]
) -> dict[str, str]:
    """Features of ``SOURCE_COLUMN_FEATURES`` that events with ``columns`` cannot give, with the
    reason; ``rows_with`` says how many events have a value in each feature's columns.

    A feature is unavailable when no row has a value in every column it needs (a column the
    table lacks counts as all null): fed to a model, it would be an all-NaN column.
    """
    unavailable = {}
    for name, needed in SOURCE_COLUMN_FEATURES.items():
        absent = [col for col in needed if col not in columns]
        if absent:
            unavailable[name] = f"column(s) {', '.join(absent)} absent"
        elif not rows_with[needed]:
            unavailable[name] = f"no row with a value in {', '.join(needed)}"
    return unavailable


def mean_haversine_to(
    lat: np.ndarray, lon: np.ndarray, anchors: np.ndarray, chunk: int
) -> np.ndarray:
    """Mean Haversine distance (km) from each point to all anchor points, broadcast in chunks."""
    out = np.empty(len(lat))
    for start in range(0, len(lat), chunk):
        part = slice(start, start + chunk)
        dist = haversine_km(
            lat[part, None], lon[part, None], anchors[None, :, 0], anchors[None, :, 1]
        )
        out[part] = dist.mean(axis=1)
    return out


class BusynessFeatures(TransformerMixin, BaseEstimator):
    """Busyness features of query rows, from statistics of the train-window events only.

    ``fit`` takes train-window events in the clean schema (restaurant columns may be all null
    or absent). Features needing source columns the train window has no value of
    (``SOURCE_COLUMN_FEATURES``) are left out of ``feature_names_``, and named with the reason in
    ``unavailable_features_``: a model never sees an all-NaN column.
    ``transform`` takes query rows and returns one feature row per query. The transformer also
    keeps the known cell-hour counts (``history_``) for the lag features: a lag is NaN when its
    hour is outside the known history. ``with_history`` extends the known counts with later
    actuals without refitting any statistic.

    Parameters
    ----------
    resolution: H3 resolution of the cells.
    n_clusters: k of the KMeans++ embedding of restaurant locations.
    lags_hours: candidate lags; a lag is a feature only if ``lag >= horizon_hours``.
    horizon_hours: longest gap between the last known actual and a forecast hour.
    random_state: seed of KMeans (and of the anchor sample when there are no restaurants).
    max_anchor_points: cap on event locations used as anchors when there are no restaurants.
    chunk_size: rows per broadcast chunk of the distance to anchors.
    exclude_features: feature names left out of the output (e.g. ``date_day_number``).
    """

    def __init__(
        self,
        *,
        resolution: int = 7,
        n_clusters: int = 5,
        lags_hours: Sequence[int] = (24, 168),
        horizon_hours: int = 168,
        random_state: int = 42,
        max_anchor_points: int = 5000,
        chunk_size: int = 2048,
        exclude_features: Sequence[str] = (),
    ) -> None:
        self.resolution = resolution
        self.n_clusters = n_clusters
        self.lags_hours = lags_hours
        self.horizon_hours = horizon_hours
        self.random_state = random_state
        self.max_anchor_points = max_anchor_points
        self.chunk_size = chunk_size
        self.exclude_features = exclude_features

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        X: pd.DataFrame,
        y: Any = None,
        window_start: pd.Timestamp | str | None = None,
        window_end: pd.Timestamp | str | None = None,
    ) -> BusynessFeatures:
        """Fit every statistic on events inside [window_start, window_end) (default: their span)."""
        hours = to_utc_hours(X[EVENT_TIME])
        if len(hours) == 0:
            raise ValueError("BusynessFeatures needs at least one train event.")
        start = pd.Timestamp(window_start) if window_start is not None else hours.min()
        end = pd.Timestamp(window_end) if window_end is not None else hours.max() + _HOUR
        start, end = fit_window(start, end)
        inside = ((hours >= start) & (hours < end)).to_numpy()
        events = X if inside.all() else X.loc[inside]  # windowed events need no copy
        summary = summarise_events(
            events,
            resolution=self.resolution,
            max_anchor_points=self.max_anchor_points,
            seed=self.random_state,
            window=(start, end),
        )
        return self.fit_summary(summary)

    def fit_summary(self, summary: EventSummary) -> BusynessFeatures:
        """Fit every statistic from the ``EventSummary`` of a window's events: what ``fit``
        does after summarising, and what the Spark engine calls with its own summary (the
        same definitions, added up over Arrow batches)."""
        start, end = summary.start, summary.end
        self.window_start_, self.window_end_ = start, end
        self.lags_ = tuple(sorted(int(lag) for lag in self.lags_hours if lag >= self.horizon_hours))
        names = (*REFERENCE_FEATURES, *PROFILE_FEATURES, *(f"lag_{lag}h" for lag in self.lags_))
        unknown = sorted(set(self.exclude_features) - set(names))
        if unknown:
            raise ValueError(
                f"exclude_features names unknown feature(s) {unknown}; known: {names}."
            )
        self.unavailable_features_ = unavailable_features(
            summary.columns, rows_with_values(summary.partials)
        )
        self._log_unavailable()
        left_out = {*self.exclude_features, *self.unavailable_features_}
        self.feature_names_ = tuple(name for name in names if name not in left_out)

        self.cells_ = np.unique(summary.partials[CELL].to_numpy(dtype=np.uint64))
        self.cell_dist_, self.cell_hdist_, self.cell_restaurants_ = cell_statistics(
            summary.partials, self.cells_
        )
        self._fit_anchors(summary)
        self.cell_avg_hdist_, self.cell_cluster_ = self._centre_features(self.cells_)
        self._fit_profiles(summary.counts)
        self.history_ = summary.counts.set_index([CELL, HOUR])[TARGET]
        self.history_start_, self.history_end_ = start, end
        self._fit_history_lookup()
        return self

    def _log_unavailable(self) -> None:
        """One line naming the features the train events cannot give, and the missing columns."""
        if not self.unavailable_features_:
            return
        columns = sorted(
            {col for name in self.unavailable_features_ for col in SOURCE_COLUMN_FEATURES[name]}
        )
        logger.info(
            "Features %s left out of the model: the train window has no value of column(s) %s"
            " (a source without restaurants)",
            list(self.unavailable_features_),
            columns,
        )

    def _fit_anchors(self, summary: EventSummary) -> None:
        """Restaurant locations (or, without restaurants, the sampled event locations) and KMeans."""
        anchors = first_restaurants(summary.partials)
        self.anchor_source_ = "restaurants" if len(anchors) else "events"
        if not len(anchors):
            anchors = summary.event_points
        order = np.lexsort((anchors[:, 1], anchors[:, 0]))  # row order must not change the fit
        self.anchors_ = anchors[order]
        k = min(self.n_clusters, len(np.unique(self.anchors_, axis=0)))
        self.kmeans_ = KMeans(
            n_clusters=k, init="k-means++", n_init=10, random_state=self.random_state
        ).fit(self.anchors_)

    def _centre_features(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean Haversine distance to the anchors and KMeans cluster of each cell's centre."""
        lat, lon = cell_centres(cells)
        distance = mean_haversine_to(lat, lon, self.anchors_, self.chunk_size)
        if not len(cells):
            return distance, np.empty(0, dtype=np.int64)
        return distance, self.kmeans_.predict(np.column_stack([lat, lon])).astype(np.int64)

    def _fit_profiles(self, counts: pd.DataFrame) -> None:
        """Mean busyness per train cell and hour of week (zeros included), own and of neighbours."""
        window_hours = pd.Series(
            pd.date_range(self.window_start_, self.window_end_, freq="h", inclusive="left")
        )
        rows = np.searchsorted(self.cells_, counts[CELL].to_numpy())
        self.profile_ = hour_of_week_mean(
            rows, counts[HOUR], counts[TARGET].to_numpy(), len(self.cells_), window_hours
        )
        self.neighbour_profile_ = self._neighbour_profile(self.cells_)

    def _neighbour_profile(self, cells: np.ndarray) -> np.ndarray:
        """Mean of the train profiles of each cell's ring-1 neighbours (cells unseen in train: 0)."""
        pairs = cell_neighbours(cells)
        codes = self._codes(pairs["neighbour"].to_numpy())
        profiles = np.where((codes >= 0)[:, None], self.profile_[np.maximum(codes, 0)], 0.0)
        frame = pd.DataFrame(profiles).assign(**{CELL: pairs[CELL].to_numpy()})
        means = frame.groupby(CELL).mean()
        return means.reindex(np.asarray(cells, dtype=np.uint64)).to_numpy(dtype=float)

    # ---------------------------------------------------------------- history
    def with_history(self, events: pd.DataFrame, end: pd.Timestamp | str) -> BusynessFeatures:
        """A copy that also knows the actual counts of ``events`` in [history end, ``end``)."""
        check_is_fitted(self)
        end = as_utc_hour(pd.Timestamp(end))
        counts = count_cell_hours(events, self.resolution)
        counts = counts[(counts[HOUR] >= self.history_end_) & (counts[HOUR] < end)]
        extended = copy.deepcopy(self)
        extended.history_ = pd.concat([self.history_, counts.set_index([CELL, HOUR])[TARGET]])
        extended.history_end_ = max(end, self.history_end_)
        extended._fit_history_lookup()
        return extended

    # ---------------------------------------------------------------- transform
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the feature columns, in order."""
        check_is_fitted(self)
        return np.asarray(self.feature_names_, dtype=object)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Feature rows (same index as ``X``) for query rows with a timestamp and a point."""
        check_is_fitted(self)
        missing = [col for col in QUERY_COLUMNS if col not in X.columns]
        if missing:
            raise KeyError(f"Query rows lack column(s) {missing}; expected {list(QUERY_COLUMNS)}.")
        hours = utc_hour_ns(X[EVENT_TIME])
        cells = h3_cells(X[EVENT_LAT], X[EVENT_LON], self.resolution)
        return pd.DataFrame(self.feature_columns(cells, hours), index=X.index)

    def feature_columns(self, cells: np.ndarray, hours: np.ndarray) -> dict[str, np.ndarray]:
        """The output features (``feature_names_``, in order) of H3 cells in UTC hours.

        ``cells`` are uint64 H3 cells, ``hours`` the UTC hour starts as int64 nanoseconds since
        the epoch (``utc_hour_ns``). Features left out by ``exclude_features`` are not computed.
        """
        wanted = set(self.feature_names_)
        unique, inverse = np.unique(np.asarray(cells, dtype=np.uint64), return_inverse=True)
        per_cell = self._cell_features(unique, wanted)
        features = {name: values[inverse] for name, values in per_cell.items() if values.ndim == 1}
        hour, day_of_week = hour_fields(hours)
        features["date_hour_number"] = hour
        features["day_of_week"] = day_of_week
        features["is_weekend"] = (day_of_week >= 5).astype(np.int64)
        if "date_day_number" in wanted:
            features["date_day_number"] = (hours - self.window_start_.value) // DAY_NS
        slot = day_of_week * 24 + hour
        for name in ("profile", "neighbour_profile"):
            if name in per_cell:
                features[_PROFILE_FEATURE[name]] = per_cell[name][inverse, slot]
        for lag in self.lags_:
            if f"lag_{lag}h" in wanted:
                features[f"lag_{lag}h"] = self._lag(cells, hours, lag)
        return {name: features[name] for name in self.feature_names_}

    def _codes(self, cells: np.ndarray) -> np.ndarray:
        """Index of each cell among the train cells, ``UNSEEN_CELL`` for others."""
        cells = np.asarray(cells, dtype=np.uint64)
        pos = np.searchsorted(self.cells_, cells).clip(0, max(len(self.cells_) - 1, 0))
        return np.where(self.cells_[pos] == cells, pos, UNSEEN_CELL).astype(np.int64)

    def _cell_features(self, unique: np.ndarray, wanted: set[str]) -> dict[str, np.ndarray]:
        """Features of distinct cells: encodings, train statistics, centre-based and profiles.

        Centre-based features of train cells come from the fit (``cell_avg_hdist_``,
        ``cell_cluster_``); only unseen cells are computed here. Profiles only when ``wanted``.
        """
        codes = self._codes(unique)
        seen = codes >= 0
        known = np.maximum(codes, 0)
        features = {
            "h3_index": codes,
            "dist_to_restaurant": np.where(seen, self.cell_dist_[known], np.nan),
            "Hdist_to_restaurant": np.where(seen, self.cell_hdist_[known], np.nan),
            "restaurants_per_index": np.where(seen, self.cell_restaurants_[known], 0.0),
        }
        distance, cluster = self._seen_centre_features()
        features["avg_Hdist_to_restaurants"] = distance[known]  # copies: filled in below
        features["Five_Clusters_embedding"] = cluster[known]
        if (~seen).any():
            unseen_distance, unseen_cluster = self._centre_features(unique[~seen])
            features["avg_Hdist_to_restaurants"][~seen] = unseen_distance
            features["Five_Clusters_embedding"][~seen] = unseen_cluster
        if _PROFILE_FEATURE["profile"] in wanted:
            profile = np.zeros((len(unique), HOURS_PER_WEEK))
            profile[seen] = self.profile_[codes[seen]]
            features["profile"] = profile
        if _PROFILE_FEATURE["neighbour_profile"] in wanted:
            neighbour_profile = np.empty((len(unique), HOURS_PER_WEEK))
            neighbour_profile[seen] = self.neighbour_profile_[codes[seen]]
            if (~seen).any():
                neighbour_profile[~seen] = self._neighbour_profile(unique[~seen])
            features["neighbour_profile"] = neighbour_profile
        return features

    def _seen_centre_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre-based features of the train cells (computed now for transformers fitted before
        ``cell_avg_hdist_``/``cell_cluster_`` existed)."""
        if hasattr(self, "cell_cluster_"):
            return self.cell_avg_hdist_, self.cell_cluster_
        return self._centre_features(self.cells_)

    def _fit_history_lookup(self) -> None:
        """Sorted int64 keys of the known (cell, hour) counts (``history_``), for ``_lag``."""
        index = self.history_.index
        cells = index.get_level_values(CELL).to_numpy(dtype=np.uint64)
        self.history_cells_ = np.unique(cells)
        keys = self._history_keys(cells, pd.DatetimeIndex(index.get_level_values(HOUR)).asi8)
        order = np.argsort(keys, kind="stable")
        self.history_keys_ = keys[order]
        self.history_counts_ = self.history_.to_numpy(dtype=float)[order]

    def _history_keys(self, cells: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Key of (history cell, hour in [history start, end)) pairs: cell rank x hours + hour."""
        span = (self.history_end_.value - self.history_start_.value) // HOUR_NS
        rank = np.searchsorted(self.history_cells_, cells).astype(np.int64)
        return rank * span + (hours - self.history_start_.value) // HOUR_NS

    def _lag(self, cells: np.ndarray, hours: np.ndarray, lag: int) -> np.ndarray:
        """Known count of the same cell ``lag`` hours earlier; NaN outside the known history."""
        source = hours - lag * HOUR_NS
        known = (source >= self.history_start_.value) & (source < self.history_end_.value)
        if not hasattr(self, "history_keys_"):  # pickled before the lookup arrays existed
            keys = pd.MultiIndex.from_arrays([cells, hours_array(source)], names=[CELL, HOUR])
            values = self.history_.reindex(keys).to_numpy(dtype=float)
            return np.where(known, np.nan_to_num(values, nan=0.0), np.nan)
        if not len(self.history_keys_):
            return np.where(known, 0.0, np.nan)
        cells = np.asarray(cells, dtype=np.uint64)
        rank = np.searchsorted(self.history_cells_, cells)
        in_history = self.history_cells_[rank.clip(0, len(self.history_cells_) - 1)] == cells
        keys = self._history_keys(cells, np.where(known, source, self.history_start_.value))
        pos = np.searchsorted(self.history_keys_, keys).clip(0, len(self.history_keys_) - 1)
        found = known & in_history & (self.history_keys_[pos] == keys)
        counts = np.where(found, self.history_counts_[pos], 0.0)
        return np.where(known, counts, np.nan)


def cell_feature_params(params: dict[str, Any]) -> dict[str, Any]:
    """``BusynessFeatures`` arguments for the forecaster's per-cell statistics only."""
    excluded = [*(n for n in REFERENCE_FEATURES if n not in CELL_FEATURES), *PROFILE_FEATURES]
    return {
        **feature_params({**params, "lags_hours": [], "horizon_hours": 168}),
        "exclude_features": tuple(excluded),
    }


def reference_feature_params(params: dict[str, Any]) -> dict[str, Any]:
    """``BusynessFeatures`` arguments of the leaky reference protocol: every feature."""
    return {**feature_params(params), "exclude_features": ()}


def feature_params(params: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of ``BusynessFeatures`` from the feature_engineering parameters."""
    horizon = params.get("horizon_hours") or 24 * max(
        params["validation_days"], params["test_days"]
    )
    return {
        "resolution": params["h3_resolution"],
        "n_clusters": params["n_clusters"],
        "lags_hours": tuple(params.get("lags_hours", (24, 168))),
        "horizon_hours": int(horizon),
        "random_state": params["random_state"],
        "exclude_features": tuple(params.get("exclude_features") or ()),
    }
