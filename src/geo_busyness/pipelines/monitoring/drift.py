"""Drift statistics between a reference sample and a recent one (numpy + scipy, no framework).

Decisions rest on effect sizes, which do not grow with the sample: the population stability
index (PSI) for every feature and the Kolmogorov-Smirnov distance D for numeric ones. P-values
(KS, chi-square) are reported beside them but never decide: with 10^5 rows, any shift too
small to matter is "significant".

PSI = sum over bins of (recent share - reference share) * ln(recent share / reference share),
with shares floored at ``SHARE_FLOOR`` so an empty bin gives a large, finite value. Numeric
features are binned on the reference's quantiles (equal reference mass per bin; tied
quantiles merge), categorical ones by category. Rules of thumb: < 0.1 stable, 0.1-0.25
moderate, > 0.25 a major shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

#: Smallest share a bin is given in the PSI (an empty bin would make it infinite).
SHARE_FLOOR = 1e-4


def psi_from_shares(reference: np.ndarray, recent: np.ndarray) -> float:
    """PSI of two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=float), SHARE_FLOOR, None)
    cur = np.clip(np.asarray(recent, dtype=float), SHARE_FLOOR, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles 1/bins .. (bins-1)/bins, ties merged."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin (-inf, e1), [e1, e2), ..., [ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _clean(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"Drift of {name!r}: no finite values to compare.")
    return array


def numeric_drift(reference: Any, recent: Any, bins: int, name: str = "feature") -> dict[str, Any]:
    """PSI on reference-quantile bins, KS D and its p-value, and the binned shares."""
    ref, cur = _clean(reference, name), _clean(recent, name)
    edges = quantile_edges(ref, bins)
    ref_shares, cur_shares = shares(ref, edges), shares(cur, edges)
    ks = stats.ks_2samp(ref, cur)
    return {
        "kind": "numeric",
        "psi": psi_from_shares(ref_shares, cur_shares),
        "ks_d": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "reference_mean": float(ref.mean()),
        "recent_mean": float(cur.mean()),
        "reference_rows": int(ref.size),
        "recent_rows": int(cur.size),
        "bins": {
            "edges": [float(edge) for edge in edges],
            "reference": ref_shares.round(6).tolist(),
            "recent": cur_shares.round(6).tolist(),
        },
    }


def categorical_drift(
    reference: Any, recent: Any, categories: Sequence[Any] | None = None
) -> dict[str, Any]:
    """PSI over categories, chi-square test of homogeneity (p-value), and the shares.

    ``categories`` fixes the order and the set (values outside it are an error); by default,
    the sorted union of the values seen.
    """
    ref, cur = np.asarray(reference), np.asarray(recent)
    if categories is None:
        categories = np.unique(np.concatenate([ref, cur]))
    categories = np.asarray(categories)
    order = np.argsort(categories, kind="stable")
    ref_counts = _category_counts(ref, categories, order)
    cur_counts = _category_counts(cur, categories, order)
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1 and table.sum(axis=1).all():
        chi2 = stats.chi2_contingency(table, correction=False)
        statistic, p_value = float(chi2.statistic), float(chi2.pvalue)
    else:
        statistic, p_value = 0.0, 1.0
    ref_shares = ref_counts / max(ref_counts.sum(), 1)
    cur_shares = cur_counts / max(cur_counts.sum(), 1)
    return {
        "kind": "categorical",
        "psi": psi_from_shares(ref_shares, cur_shares),
        "chi2": statistic,
        "chi2_p_value": p_value,
        "reference_rows": int(ref_counts.sum()),
        "recent_rows": int(cur_counts.sum()),
        "bins": {
            "categories": [_plain(category) for category in categories],
            "reference": ref_shares.round(6).tolist(),
            "recent": cur_shares.round(6).tolist(),
        },
    }


def _category_counts(values: np.ndarray, categories: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Counts of ``values`` per category (in ``categories`` order)."""
    position = np.searchsorted(categories, values, sorter=order).clip(0, len(categories) - 1)
    index = order[position]
    unknown = categories[index] != values
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} value(s) outside the categories, e.g. {values[unknown][0]!r}."
        )
    return np.bincount(index, minlength=len(categories))


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars to Python)."""
    return value.item() if isinstance(value, np.generic) else value
