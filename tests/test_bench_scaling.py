"""``bench/scaling.py`` runs: tiny points, checked for shape only (timings
are never asserted: the machines that run the tests are shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.scaling import main

from .postgres_server import SESSION


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "scaling.json"
    assert main(["--smoke", "--json", str(out), *args]) == 0
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


@pytest.mark.slow
def test_scaling_smoke_on_postgres_and_sqlite(tmp_path: Path) -> None:
    report = _run(tmp_path, "--dsn", SESSION.admin())
    points = report["points"]
    assert [(p["store"], p["workers"]) for p in points] == [
        ("postgres", 1),
        ("sqlite", 1),
        ("postgres", 2),
        ("sqlite", 2),
    ]
    for point in points:
        assert point["operations"] > 0
        # Every receive delivered its one message.
        assert point["delivered"] == point["operations"]
        assert 0 <= point["p50_ms"] <= point["p99_ms"] <= point["max_ms"]
    settings = report["postgres"]["settings"]
    assert {"fsync", "synchronous_commit", "server_version"} <= set(settings)
    assert report["skipped"] == {}
    names = [t["name"] for t in report["targets"]]
    assert names == [] or all("PostgreSQL" in n for n in names)


def test_scaling_smoke_needs_no_server_for_sqlite(tmp_path: Path) -> None:
    report = _run(tmp_path, "--stores", "sqlite", "--workers", "1")
    assert [p["store"] for p in report["points"]] == ["sqlite"]
    assert report["postgres"] is None
    assert report["targets"] == []
