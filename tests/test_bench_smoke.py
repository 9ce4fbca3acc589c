"""The benchmark runs: its smoke mode, in-process, checked for shape only.

Timings are never asserted here (the machines that run the tests are shared
and noisy); ``bench/run.py --quick`` is for measuring.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from bench.run import main


def _service_available() -> bool:
    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("optin_core._service", "optin_core._stores")
        )
    except ImportError:
        return False


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("bench") / "smoke.json"
    assert main(["--smoke", "--json", str(path)]) == 0
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_machine_and_mode(report: dict[str, Any]) -> None:
    assert report["mode"] == "smoke"
    machine = report["machine"]
    assert {"python", "platform", "cpu", "cores"} <= set(machine)
    assert isinstance(machine["python"], str)
    assert isinstance(machine["cores"], int)


def test_cases_have_the_documented_fields(report: dict[str, Any]) -> None:
    names = {c["name"] for c in report["cases"]}
    assert report["cases"]
    for case in report["cases"]:
        assert {"name", "median_ns", "samples", "baseline", "ratio"} <= set(case)
        assert isinstance(case["median_ns"], float | int)
        assert case["median_ns"] >= 0
        assert isinstance(case["samples"], list)
        assert case["samples"]
        if case["baseline"] is None:
            assert case["ratio"] is None
        else:
            assert case["baseline"] in names
            assert isinstance(case["ratio"], float | int)


def test_every_area_ran(report: dict[str, Any]) -> None:
    groups = {c["group"].split(".")[0] for c in report["cases"]}
    assert {"parse", "decide", "gate", "record"} <= groups
    if _service_available():
        assert report["skipped"] == {}
        assert "service" in groups
    else:
        assert set(report["skipped"]) == {"service"}


def test_targets_have_the_documented_fields(report: dict[str, Any]) -> None:
    names = [t["name"] for t in report["targets"]]
    assert len(names) == len(set(names))
    assert any("1 MB" in n for n in names)
    assert any("python-statemachine" in n for n in names)
    assert any("sendable" in n for n in names)
    for target in report["targets"]:
        assert {"name", "target", "measured", "met"} <= set(target)
        assert isinstance(target["met"], bool)


def test_record_metrics(report: dict[str, Any]) -> None:
    record = report["metrics"]["record"]
    assert record["json_bytes_compact"] > 0
    assert record["memory"]["bytes_per_record"] > 0


def test_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--smoke", "--only", "decide", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "smoke"
    assert {c["group"] for c in data["cases"]} == {"decide.yes", "decide.unclear"}
