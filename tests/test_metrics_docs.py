"""docs/metrics.md documents every metric; docs/grafana-dashboard.json is a dashboard
Grafana can import (its classic JSON model) and queries only metrics and labels that
PrometheusMetrics produces."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from resilience.metrics._catalog import EVENT_METRICS, LIVE_METRICS, MetricSpec
from resilience.metrics.prometheus import PrometheusMetrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
PANEL_TYPES = {"row", "timeseries", "state-timeline", "stat", "gauge", "bargauge", "table"}
GRID_WIDTH = 24


def exposed_names(spec: MetricSpec) -> dict[str, set[str]]:
    """Series names Prometheus stores for ``spec``, with the labels each one has."""
    labels = set(spec.labels)
    if spec.type == "counter":
        return {f"resilience_{spec.name}_total": labels}
    if spec.type == "histogram":
        base = f"resilience_{spec.name}"
        return {f"{base}_bucket": labels | {"le"}, f"{base}_sum": labels, f"{base}_count": labels}
    return {f"resilience_{spec.name}": labels}


SERIES: dict[str, set[str]] = {}
for _spec in (*EVENT_METRICS, *LIVE_METRICS):
    SERIES.update(exposed_names(_spec))


def test_every_metric_is_documented() -> None:
    page = (ROOT / "docs" / "metrics.md").read_text()
    for spec in (*EVENT_METRICS, *LIVE_METRICS):
        shown = f"resilience_{spec.name}" + ("_total" if spec.type == "counter" else "")
        assert f"`{shown}`" in page, f"{shown} is not in docs/metrics.md"
        assert f"`{spec.otel}`" in page, f"{spec.otel} is not in docs/metrics.md"
        for label in spec.labels:
            assert f"`{label}`" in page


def test_catalogue_names_follow_prometheus_conventions() -> None:
    registry = CollectorRegistry()
    exporter = PrometheusMetrics(registry)
    try:
        for spec in (*EVENT_METRICS, *LIVE_METRICS):
            assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name)
            assert not spec.name.endswith("_total")  # counters get it from the client
            if spec.type == "histogram":
                assert spec.name.endswith("_seconds"), "durations are in base units"
            assert all(re.fullmatch(r"[a-z][a-z_]*", label) for label in spec.labels)
            assert spec.help.endswith(".")
        assert len({s.name for s in (*EVENT_METRICS, *LIVE_METRICS)}) == len(EVENT_METRICS) + len(
            LIVE_METRICS
        )
    finally:
        exporter.close()


def panels() -> list[dict[str, Any]]:
    return list(DASHBOARD["panels"])


def test_dashboard_top_level_fields() -> None:
    assert DASHBOARD["id"] is None  # Grafana assigns one on import
    assert isinstance(DASHBOARD["uid"], str)
    assert 0 < len(DASHBOARD["uid"]) <= 40
    assert DASHBOARD["title"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    assert DASHBOARD["schemaVersion"] >= 36
    assert isinstance(DASHBOARD["version"], int)
    assert set(DASHBOARD["time"]) == {"from", "to"}
    assert isinstance(DASHBOARD["templating"]["list"], list)
    assert isinstance(DASHBOARD["annotations"]["list"], list)
    assert isinstance(DASHBOARD["editable"], bool)


def test_dashboard_variables() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["name"]["type"] == "query"
    assert variables["name"]["datasource"]["uid"] == "${datasource}"


def test_dashboard_panels_are_well_formed_and_do_not_overlap() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels():
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in grid)
        assert grid["h"] > 0
        assert grid["w"] > 0
        assert grid["x"] + grid["w"] <= GRID_WIDTH
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs))
        assert "defaults" in panel["fieldConfig"]
        assert "overrides" in panel["fieldConfig"]


def expressions() -> list[tuple[str, str, str]]:
    return [
        (panel["title"], target["expr"], target["legendFormat"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    types = {p["type"] for p in panels()}
    assert "state-timeline" in types
    text = " ".join(expr for _, expr, _ in expressions())
    assert "resilience_circuit_breaker_state" in text
    assert "resilience_rejections_total" in text
    assert "resilience_retries_total" in text
    assert "histogram_quantile(0.99" in text
    assert "resilience_call_duration_seconds_bucket" in text


@pytest.mark.parametrize(("title", "expr", "legend"), expressions())
def test_dashboard_queries_use_our_metrics_and_labels(title: str, expr: str, legend: str) -> None:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0, "unbalanced parentheses"
    metrics = re.findall(r"\bresilience_[a-z_]+", expr)
    assert metrics
    known: set[str] = set()
    for metric in metrics:
        assert metric in SERIES, f"{metric} is not a metric we export"
        known |= SERIES[metric]
    # Every label the query filters on or groups by exists on its metrics.
    for selector in re.findall(r"\{([^}]*)\}", expr):
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", selector):
            assert label in known, f"{label} in {selector}"
    for grouping in re.findall(r"by \(([^)]*)\)", expr):
        for label in (part.strip() for part in grouping.split(",")):
            assert label in known, f"by {label}"
    for label in re.findall(r"\{\{(\w+)\}\}", legend):
        assert label in known, f"legend {label} in {title!r}"
