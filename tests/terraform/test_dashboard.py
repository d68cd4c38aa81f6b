"""The dashboard's JSON as the Monitoring API gives it back, so a second plan shows no diff.

The provider compares the dashboard JSON it reads from the API with the configuration's,
ignoring only etag and name. The API drops every field that holds its default (proto3 JSON:
0, "", false, empty lists and objects) and adds chartOptions.mode = COLOR to an xyChart
without chart options. Terraform renders local.dashboard_json (dashboard_layout.tf, no
provider needed) and these tests check both, plus the layout itself. What the API returns
cannot be read here (no project): this is the part of "no diff" that can be checked offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.terraform.test_terraform_cli import needs_terraform
from tests.terraform.tfmodule import evaluate, load_module, scratch_module

FILES = ("variables.tf", "log_metrics.tf", "dashboard_layout.tf")


def _dashboard(tmp_path: Path) -> dict[str, Any]:
    module = scratch_module(tmp_path, *FILES)
    rendered = evaluate(module, "local.dashboard_json", "project_id=certexpiry-test")
    assert isinstance(rendered, str)
    dashboard: dict[str, Any] = json.loads(rendered)
    return dashboard


def _defaulted(value: Any, path: str = "") -> list[str]:
    """Paths of every field holding a value the API would omit from its answer."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_defaulted(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_defaulted(item, f"{path}[{i}]"))
    if value is False or (not isinstance(value, bool) and value in (0, "", [], {})):
        found.append(path)
    return found


def _xy_charts(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [tile["widget"]["xyChart"] for tile in dashboard["mosaicLayout"]["tiles"]]


@needs_terraform
def test_the_dashboard_holds_no_field_the_api_would_drop(tmp_path: Path) -> None:
    """No field of the rendered JSON holds a default value: a tile in the left column or top
    row leaves xPos or yPos out rather than writing 0."""
    dashboard = _dashboard(tmp_path)
    assert _defaulted(dashboard) == []
    tiles = dashboard["mosaicLayout"]["tiles"]
    assert [(t.get("xPos"), t.get("yPos")) for t in tiles[:3]] == [
        (None, None),
        (24, None),
        (None, 16),
    ]


def test_the_check_for_defaults_finds_them() -> None:
    """_defaulted reports zeros, empty strings, false and empty containers, nothing else."""
    sample = {"a": 0, "b": "", "c": False, "d": [], "e": {}, "f": 1, "g": "x", "h": [1]}
    assert sorted(_defaulted(sample)) == [".a", ".b", ".c", ".d", ".e"]


@needs_terraform
def test_every_chart_has_the_chart_options_the_api_adds(tmp_path: Path) -> None:
    """Each xyChart names chartOptions.mode = COLOR, which the API adds when it is missing."""
    charts = _xy_charts(_dashboard(tmp_path))
    assert len(charts) == 11
    assert all(chart["chartOptions"] == {"mode": "COLOR"} for chart in charts)


@needs_terraform
def test_the_tiles_fit_the_grid_without_overlapping(tmp_path: Path) -> None:
    """Two 24-column tiles per row of the 48-column mosaic, none overlapping another; every
    chart reads a metric this stack defines or the trigger subscription's backlog."""
    dashboard = _dashboard(tmp_path)
    layout = dashboard["mosaicLayout"]
    assert layout["columns"] == 48
    cells: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        x, y = tile.get("xPos", 0), tile.get("yPos", 0)
        assert x + tile["width"] <= 48
        covered = {(x + dx, y + dy) for dx in range(tile["width"]) for dy in range(tile["height"])}
        assert not covered & cells, tile["widget"]["title"]
        cells |= covered
    filters = [
        data["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for chart in _xy_charts(dashboard)
        for data in chart["dataSets"]
    ]
    assert all(
        "logging.googleapis.com/user/certexpiry_nightly_sweep_" in f
        or "subscription/oldest_unacked_message_age" in f
        for f in filters
    ), filters


def test_the_dashboard_resource_uses_the_rendered_json() -> None:
    """google_monitoring_dashboard.sweep takes exactly local.dashboard_json."""
    tf = load_module()
    dashboard = tf.resource("google_monitoring_dashboard", "sweep")
    assert dashboard["dashboard_json"] == "${local.dashboard_json}"
