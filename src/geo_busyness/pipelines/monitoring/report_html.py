"""The monitoring report as one self-contained HTML page: inline CSS and SVG, no script, no CDN."""

from __future__ import annotations

import html
from typing import Any

from geo_busyness.report_header import HEADER_CSS, context_from_tags, header_html

from .recent_window import NEWEST_INGESTED, NEWEST_WEEK

#: Bars per chart at most (the largest categories; a city can have hundreds of cells).
MAX_BARS = 30
_WIDTH, _HEIGHT, _PAD, _TOP = 680, 180, 60, 24  # plot bottom at _HEIGHT, labels below
_COLOURS = {"reference": "#8da0cb", "recent": "#fc8d62"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:60rem;color:#222;line-height:1.4}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f4f4f4}.fired{background:#fde2e1}.ok{background:#e6f4ea}
.verdict{padding:.75rem 1rem;border-radius:.4rem;font-weight:600}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem}
figure{margin:1rem 0}figcaption{font-size:.9rem;color:#555}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _esc(value)


def bar_chart(
    labels: list[Any], reference: list[float], recent: list[float], shares: bool = True
) -> str:
    """Grouped bars (reference, recent) per bin, as an inline SVG: shares, or plain values."""
    if len(labels) > MAX_BARS:
        top = sorted(range(len(labels)), key=lambda i: -(reference[i] + recent[i]))[:MAX_BARS]
        keep = sorted(top)
        labels = [labels[i] for i in keep]
        reference, recent = [reference[i] for i in keep], [recent[i] for i in keep]
    peak = max([*reference, *recent, 1e-9])
    axis = f"share (max {peak:.1%})" if shares else f"max {peak:.3g}"
    slot = (_WIDTH - 2 * _PAD) / max(len(labels), 1)
    bar = slot * 0.4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT + 60}"'
        f' role="img"><line x1="{_PAD}" y1="{_HEIGHT}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT}"'
        ' stroke="#999"/>'
        f'<text x="2" y="{_TOP - 10}" font-size="10">{axis}</text>'
    ]
    for i, label in enumerate(labels):
        x = _PAD + i * slot
        for offset, (series, values) in enumerate((("reference", reference), ("recent", recent))):
            height = (_HEIGHT - _TOP) * values[i] / peak
            value = f"{values[i]:.2%}" if shares else f"{values[i]:.3g}"
            parts.append(
                f'<rect x="{x + offset * bar:.1f}" y="{_HEIGHT - height:.1f}" width="{bar:.1f}"'
                f' height="{height:.1f}" fill="{_COLOURS[series]}">'
                f"<title>{_esc(label)} {series}: {value}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{_HEIGHT + 12}" font-size="9" text-anchor="end"'
            f' transform="rotate(-45 {x + bar:.1f} {_HEIGHT + 12})">{_esc(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bin_labels(bins: dict[str, Any]) -> list[str]:
    if "categories" in bins:
        return [str(category) for category in bins["categories"]]
    edges = [f"{edge:.5g}" for edge in bins["edges"]]
    return [*(f"< {edge}" for edge in edges), f">= {edges[-1]}" if edges else "all"]


def _distribution(title: str, result: dict[str, Any]) -> str:
    if "bins" not in result:
        return f"<h3>{_esc(title)}</h3><p>{_esc(result.get('skipped', 'not compared'))}</p>"
    stats = [f"PSI {result['psi']:.3f} (threshold {result['psi_threshold']})"]
    if "ks_d" in result:
        stats.append(f"KS D {result['ks_d']:.3f} (p = {result['ks_p_value']:.2g})")
    if "chi2" in result:
        stats.append(f"chi-square {result['chi2']:.1f} (p = {result['chi2_p_value']:.2g})")
    verdict = "drift" if result["drifted"] else "stable"
    bins = result["bins"]
    chart = bar_chart(_bin_labels(bins), bins["reference"], bins["recent"])
    return (
        f"<figure><figcaption><b>{_esc(title)}</b>: {verdict}; {'; '.join(stats)};"
        f" {result['reference_rows']:,} reference vs {result['recent_rows']:,} recent rows"
        f"</figcaption>{chart}</figure>"
    )


def _parameter_mismatch(mismatches: list[dict[str, Any]]) -> str:
    """A warning paragraph per parameter where the model differs from the run (else nothing)."""
    return "".join(f'<p class="verdict fired">{_esc(item["message"])}</p>' for item in mismatches)


def _holds(text: str, true: bool) -> str:
    return f"{text} ({'true' if true else 'false'})"


def _effect_size_condition(result: dict[str, Any]) -> str:
    """PSI above its threshold, or KS D above its own (either fires)."""
    psi, limit = result["psi"], result["psi_threshold"]
    parts = [_holds(f"PSI {psi:.3f} > {limit:g}", psi > limit)]
    if result.get("ks_d") is not None and result.get("ks_d_threshold") is not None:
        ks, ks_limit = result["ks_d"], result["ks_d_threshold"]
        parts.append(_holds(f"KS D {ks:.3f} > {ks_limit:g}", ks > ks_limit))
    return " or ".join(parts)


def check_condition(check: dict[str, Any], report: dict[str, Any]) -> str:
    """Every condition of a check with its figures and whether it holds, then the verdict:
    e.g. ``|level change| 0.257 > 0.15 (true) and p 0.03 < 0.01 (false): no``."""
    kind, name, figure, limit = check["check"], check["name"], check["figure"], check["threshold"]
    if kind == "feature_drift":
        text = _effect_size_condition(report["event_features"][name])
    elif kind in ("busyness_drift", "predictions_drift"):
        text = _effect_size_condition(report["cell_hours"][name])
    elif kind == "level":
        level = report["level"]
        change, p_value = level["relative_change"], level["p_value"]
        change_limit, p_limit = level["change_threshold"], level["p_value_threshold"]
        text = (
            _holds(
                f"|level change| {abs(change):.3f} > {change_limit:g}", abs(change) > change_limit
            )
            + " and "
            + _holds(f"p {p_value:.2g} < {p_limit:g}", p_value < p_limit)
        )
    elif kind == "bias":
        text = _holds(f"|bias| {abs(figure):.3f} > {limit:g}", abs(figure) > limit)
    elif kind == "data_quality":
        text = _holds(f"reject share increase {figure:+.2f} pp > {limit:g} pp", figure > limit)
    else:  # unseen cells, performance: one figure against one threshold
        text = _holds(f"{name} {_number(figure)} > {_number(limit)}", figure > limit)
    return f"{text}: {'yes' if check['fired'] else 'no'}"


def _checks_table(checks: list[dict[str, Any]], report: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr class="{"fired" if check["fired"] else "ok"}"><td>{_esc(check["check"])}</td>'
        f"<td>{_esc(check['name'])}</td><td>{_esc(check_condition(check, report))}</td>"
        f"<td>{'yes' if check['fired'] else 'no'}</td></tr>"
        for check in checks
    )
    return (
        "<table><tr><th>check</th><th>name</th><th>every condition (holds?): fires?</th>"
        f"<th>fired</th></tr>{rows}</table>"
    )


def _performance(performance: dict[str, Any]) -> str:
    recent, test = performance["recent"], performance["test_window"]
    by_hour = performance["by_hour_of_day"]
    chart = bar_chart(
        by_hour["hour"], by_hour["mean_actual"], by_hour["mean_predicted"], shares=False
    )
    return (
        f"<p>{performance['rows']:,} cell-hours (the model's cells x recent hours, zero-filled);"
        f" mean busyness {performance['recent_mean_actual']:.3f}, mean prediction"
        f" {performance['recent_mean_predicted']:.3f}.</p><table><tr><th></th><th>MAE</th><th>R²</th></tr>"
        f"<tr><td>recent window</td><td>{recent['mae']:.3f}</td><td>{recent['r2']:.3f}</td></tr>"
        f"<tr><td>test window (at registration)</td><td>{test['mae']:.3f}</td>"
        f"<td>{test['r2']:.3f}</td></tr></table>"
        "<figure><figcaption>Mean busyness per cell by UTC hour of day: actual (blue) vs"
        " predicted (orange)</figcaption>"
        f"{chart}</figure>"
    )


def level_section(level: dict[str, Any], bias: dict[str, Any]) -> str:
    """The recent total against the model's profile per local day, and the day-ahead bias."""
    spread = level["day_level_spread"]
    day = (
        f"day-level spread {spread['sd']:.3f} (persistence {spread['persistence']:.2f}) from"
        f" {spread['days']} days of the model's history"
        if spread["sd"] is not None
        else f"no day-level spread ({spread['days']} days of history)"
    )
    by_day = level["by_day"]
    chart = bar_chart(by_day["day"], by_day["expected"], by_day["actual"], shares=False)
    verdict = "fired" if level["fired"] else "ok"
    bias_verdict = "fired" if bias["fired"] else "ok"
    return (
        f'<p class="{verdict}">{level["hours"]:,} recent hours over the model\'s'
        f" {level['cells']:,} cells: {level['actual_total']:,.0f} events vs"
        f" {level['expected_total']:,.0f} expected from its seasonal profile"
        f" ({level['relative_change']:+.1%}; z = {level['z']:.2f}, p = {level['p_value']:.2g};"
        f" thresholds {level['change_threshold']:.0%} and p < {level['p_value_threshold']:g})."
        f" Standard error of the log ratio {level['standard_error']:.3f}: counts and {day}."
        f" The served forecast from the window's start expected"
        f" {level['served_forecast_total']:,.0f} (actual {level['served_forecast_change']:+.1%}"
        " against it).</p>"
        "<figure><figcaption>Events per local day: the model's seasonal profile (blue) vs"
        f" actual (orange)</figcaption>{chart}</figure>"
        f'<p class="{bias_verdict}">Day-ahead forecasts on {bias["rows"]:,} recent cell-hours:'
        f" mean {bias['mean_predicted']:.3f} vs actual {bias['mean_actual']:.3f}, bias"
        f" {bias['bias']:+.1%} (threshold ±{bias['threshold']:.0%}).</p>"
    )


def _quality(data_quality: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr class="{"fired" if shares["drifted"] else "ok"}"><td>{_esc(reason)}</td>'
        f"<td>{shares['reference_share']:.2%}</td><td>{shares['recent_share']:.2%}</td>"
        f"<td>{shares['increase_pp']:+.2f}</td></tr>"
        for reason, shares in data_quality["by_reason"].items()
    )
    note = f"<p>Data quality {_esc(data_quality['note'])}.</p>" if "note" in data_quality else ""
    return (
        f"{note}<p>Rejected: {data_quality['reference_rejected_fraction']:.2%} of"
        f" {data_quality['reference_rows']:,} reference rows,"
        f" {data_quality['recent_rejected_fraction']:.2%} of {data_quality['recent_rows']:,}"
        " recent rows.</p><table><tr><th>reason</th><th>reference</th><th>recent</th>"
        f"<th>change (pp)</th></tr>{rows}</table>"
    )


def _recent_window(window: dict[str, Any]) -> str:
    """Which events were judged: a line only when it is not the separate recent batch."""
    if window.get("source") == NEWEST_INGESTED:
        return (
            f"<p>Recent window: the newest ingested batch {_esc(window['batch'])},"
            f" {_esc(window['start_utc'])} .. {_esc(window['end_utc'])}"
            f" ({window['rows']:,} clean events, ingested {_esc(window.get('ingested_at'))}).</p>"
        )
    if window.get("source") != NEWEST_WEEK:
        return ""
    return (
        f"<p>Recent window: the newest week of clean_events, {_esc(window['start_utc'])} .."
        f" {_esc(window['end_utc'])} ({window['rows']:,} events), since"
        f" {_esc(window['why'])}.</p>"
    )


def render_report_html(report: dict[str, Any], timezone: str | None = None) -> str:
    """The whole report page, opening with the reports' header (``geo_busyness.report_header``): the
    version, its data window, the time zone, its gate and test metrics beside the baseline's.
    ``timezone``: the city's, for the header's dates (the page's own times are UTC)."""
    model = report["model"]
    context = context_from_tags(
        model["model_name"], model["version"], model.get("tags") or {}, timezone or "UTC"
    )
    retrain = report["retrain_recommended"]
    reasons = "".join(f"<li>{_esc(reason)}</li>" for reason in report["reasons"])
    verdict = (
        f'<p class="verdict fired">Retraining recommended</p><ul>{reasons}</ul>'
        if retrain
        else '<p class="verdict ok">No retraining needed: every check is within its threshold.</p>'
    )
    features = "".join(
        _distribution(name, result)
        for name, result in report["event_features"].items()
        if name != "unseen_cells"
    )
    unseen = report["event_features"]["unseen_cells"]
    cell_hours = report["cell_hours"]
    legend = "".join(
        f'<span style="background:{colour}"></span>{series}' for series, colour in _COLOURS.items()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Monitoring: {_esc(model['model_name'])} v{_esc(model['version'])}</title>"
        f"<style>{HEADER_CSS}{_CSS}</style></head><body>"
        + header_html(
            context,
            f"Monitoring report: {model['model_name']} version {model['version']}",
            zone_note="the data window's dates; the times below are UTC",
        )
        + f"<p>Chosen by {_esc(model['chosen_by'])}; reference = its train window"
        f" {_esc(report['reference_window']['start'])} .. {_esc(report['reference_window']['end'])};"
        f" generated {_esc(report['generated_at_utc'])}.</p>"
        f"{_recent_window(report.get('recent_window', {}))}"
        f"{_parameter_mismatch(report.get('model_parameter_mismatch', []))}{verdict}"
        f"<h2>Checks</h2>{_checks_table(report['checks'], report)}"
        f'<h2>Event features</h2><p class="legend">{legend}</p>'
        f"<p>Recent events in cells the model never saw: {unseen['recent_event_share']:.2%}"
        f" ({unseen['recent_unseen_events']:,} events; threshold {unseen['threshold']:.1%}).</p>"
        f"{features}<h2>Cell-hours</h2>"
        f"<p>{cell_hours['reference_hours']:,} reference hours, {cell_hours['recent_hours']:,}"
        f" recent hours; {cell_hours['recent_unseen_cells']} new cell(s) in the recent window.</p>"
        f"{_distribution('busyness per cell-hour (model cells)', cell_hours['busyness'])}"
        f"{_distribution('predicted busyness', cell_hours['predictions'])}"
        f"<h2>Performance</h2>{_performance(report['performance'])}"
        f"<h2>Level and bias</h2>{level_section(report['level'], report['bias'])}"
        f"<h2>Data quality</h2>{_quality(report['data_quality'])}"
        "<p><small>PSI on reference-quantile bins; decisions on effect sizes (PSI, KS D),"
        " p-values shown only, except the level test's (its variance allows for day-level"
        " shocks).</small></p></body></html>"
    )
