"""The benchmark runs: its smoke mode, in-process, checked for shape only.

Timings are never asserted here (the machines that run the tests are shared
and noisy); ``bench/run.py --quick`` is for measuring.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from bench.run import main


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
    # Every area is importable: none may be skipped.
    assert report["skipped"] == {}
    assert {"service", "history"} <= groups


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
    assert record["head_json_bytes"] > 0
    assert (
        record["events"] == len(record["triggers"]) == len(record["event_json_bytes"])
    )
    assert record["bytes_per_event"] > 0
    assert record["memory"]["bytes_per_record"] > 0
    groups = {c["group"] for c in report["cases"]}
    assert {"record.head", "record.event"} <= groups


HISTORY_STORES = ("MemoryStore", "SQLiteStore NORMAL")
HISTORY_OPS = ("send_text", "receive")


def _history_name(op: str, store: str, length: int) -> str:
    return f"{op}[{store}, {length:,} events]"


def test_history_cases_and_targets(report: dict[str, Any]) -> None:
    history = report["metrics"]["history"]
    lengths = history["lengths"]
    assert lengths == [10, 1_000, 10_000]
    cases = {c["name"]: c for c in report["cases"]}
    for store in HISTORY_STORES:
        for op in HISTORY_OPS:
            short = _history_name(op, store, lengths[0])
            assert cases[short]["baseline"] is None
            for n in lengths[1:]:
                case = cases[_history_name(op, store, n)]
                assert case["group"].startswith("history.")
                assert case["baseline"] == short
    targets = [t for t in report["targets"] if t["name"].startswith("history:")]
    assert len(targets) == len(HISTORY_STORES) * len(HISTORY_OPS)
    for target in targets:
        assert target["target"] == "<= 1.3x"
        assert isinstance(target["met"], bool)


def test_history_metrics(report: dict[str, Any]) -> None:
    history = report["metrics"]["history"]
    assert {
        "lengths",
        "ops",
        "stores",
        "policy",
        "ops_per_contact",
        "sizes",
        "delivered",
        "ratios",
        "wal_frames_per_op",
        "wal_frames_max",
    } <= set(history)
    # Every timed operation delivered exactly its one message.
    assert len(history["delivered"]) == 3 * len(HISTORY_STORES) * len(HISTORY_OPS)
    for ops, sent in history["delivered"].values():
        assert ops > 0
        assert sent == ops
    for store in HISTORY_STORES:
        for op in HISTORY_OPS:
            ratios = history["ratios"][store][op]
            assert set(ratios["median_ns"]) == {"10", "1000", "10000"}
            for key in ("1000/10", "10000/10"):
                assert isinstance(ratios[key], float | int)
                assert ratios[key] > 0
    # SQLite samples: the WAL frames each operation wrote, and no sample
    # reached the 1,000-frame autocheckpoint.
    sqlite_cases = {
        _history_name(op, "SQLiteStore NORMAL", n)
        for op in HISTORY_OPS
        for n in history["lengths"]
    }
    assert set(history["wal_frames_per_op"]) == sqlite_cases
    assert set(history["wal_frames_max"]) == sqlite_cases
    for name in sqlite_cases:
        assert history["wal_frames_per_op"][name] > 0
        assert 0 < history["wal_frames_max"][name] < 1000
    sqlite = history["sizes"]["SQLiteStore NORMAL"]
    assert sqlite["events"] == 10_000
    for key in (
        "head_row_bytes",
        "event_row_data_bytes_avg",
        "db_file_bytes",
        "db_file_bytes_per_event",
    ):
        assert sqlite[key] > 0
    # The head is bounded: far smaller than one event per logged event.
    assert sqlite["head_row_bytes"] < 10 * sqlite["event_row_data_bytes_avg"]
    assert history["sizes"]["MemoryStore"]["bytes_per_event"] > 0


def test_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--smoke", "--only", "decide", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "smoke"
    assert {c["group"] for c in data["cases"]} == {"decide.yes", "decide.unclear"}
