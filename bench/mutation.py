"""Mutation testing of the rule modules: run mutmut, write the report.

Usage::

    pip install -e '.[mutation]'
    nice -n 19 python bench/mutation.py          # every rule module
    python bench/mutation.py --report            # only the report, from the last run
    # one module, with the tests that reach it (a quick trial, or while
    # killing that module's survivors):
    nice -n 19 python bench/mutation.py --only src/optin_core/_levels.py \\
        --tests tests/test_records.py --tests tests/test_rules_pinned.py

The modules and the tests are configured in ``[tool.mutmut]`` of
``pyproject.toml``; ``--only`` and ``--tests`` narrow them for one run
without editing it. Accepted equivalent mutants, each with a one-line
reason, are in ``mutation/equivalent.toml``; the report is
``mutation/report.md``. See ``docs/mutation.md``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "mutation" / "report.md"
EQUIVALENT = ROOT / "mutation" / "equivalent.toml"
#: What the last run covered (mutmut keeps its own state in mutants/ too).
SCOPE = ROOT / "mutants" / "optin-run.json"

#: The targets of issue 17, by module group (a module's dotted name prefix).
TARGETS = (
    ("optin_core._core", 95.0),
    ("optin_core._machine", 95.0),
    ("optin_core._levels", 95.0),
    ("optin_core._log", 95.0),
    ("optin_core._parser", 90.0),
    ("optin_core._normalize", 90.0),
    ("optin_core._keywords", 90.0),
    ("optin_core._service", 92.0),
    ("optin_core.stores", 92.0),
)

#: Runs mutmut with ``[tool.mutmut]`` narrowed for one run (argv[1]: the
#: fields of mutmut's Config to replace, as JSON; the rest: mutmut's own
#: arguments). mutmut 3 reads its configuration once, through
#: ``mutmut.configuration.config()``; the forked workers inherit it.
_CHILD = """\
import dataclasses, json, sys
from mutmut import configuration
changes = json.loads(sys.argv[1])
configuration._config = dataclasses.replace(configuration.config(), **changes)
from mutmut.__main__ import cli
cli(sys.argv[2:], prog_name="mutmut")
"""


def mutmut(
    args: list[str], changes: dict[str, list[str]], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``mutmut ARGS`` in the project root, with ``changes`` to its config."""
    return subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(changes), *args],
        cwd=ROOT,
        check=True,
        text=True,
        **kwargs,
    )


def results(changes: dict[str, list[str]]) -> dict[str, str]:
    """``{mutant name: status}`` of the last run (``mutmut results``)."""
    out = mutmut(["results", "--all", "true"], changes, capture_output=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status
    return found


def module_of(mutant: str) -> str:
    """``optin_core._core.x_decide__mutmut_3`` -> ``optin_core._core`` (the
    last dotted part names the mutated function or method)."""
    return mutant.rsplit(".", 1)[0]


def in_scope(module: str, only: list[str]) -> bool:
    """Whether ``module``'s file matches one of the ``only_mutate`` globs."""
    if not only:
        return True
    base = "src/" + module.replace(".", "/")
    paths = (base + ".py", base + "/__init__.py")
    return any(fnmatch.fnmatch(p, glob) for p in paths for glob in only)


def target_of(module: str) -> float | None:
    for prefix, target in TARGETS:
        if module == prefix or module.startswith(prefix + "."):
            return target
    return None


def report(
    found: dict[str, str], equivalent: dict[str, str], scope: dict[str, Any]
) -> str:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in sorted(found.items()):
        module = module_of(name)
        if name in equivalent:
            by_module[module]["equivalent"] += 1
            continue
        by_module[module][status] += 1
        if status == "survived":
            survivors[module].append(name)
    lines = [
        "# Mutation report",
        "",
        f"Written by `python bench/mutation.py` on {datetime.now(UTC):%Y-%m-%d}"
        " (mutmut 3, `[tool.mutmut]` in `pyproject.toml`; see `docs/mutation.md`).",
        "Score: killed / (killed + survived), equivalent mutants excluded.",
        "",
    ]
    if scope:
        only = scope.get("only") or ["every module of `only_mutate`"]
        tests = scope.get("tests") or ["`pytest_add_cli_args_test_selection`"]
        lines += [
            f"Last run: {scope.get('date', '?')}, "
            f"{float(scope.get('seconds', 0)):.0f} s wall clock "
            f"on {scope.get('cpus', '?')} cores, "
            f"{scope.get('max_children', '?')} workers.",
            "Modules: " + ", ".join(f"`{m}`" for m in only) + "  ",
            "Tests: " + ", ".join(f"`{t}`" for t in tests),
            "",
        ]
    lines += [
        "| module | killed | survived | timeout | no tests | not checked "
        "| equivalent | score | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for module, counts in sorted(by_module.items()):
        killed, survived = counts["killed"], counts["survived"]
        checked = killed + survived
        score = 100.0 * killed / checked if checked else 100.0
        target = target_of(module)
        verdict = (
            ""
            if target is None
            else f"{target:.0f} %: " + ("met" if score >= target else "not met")
        )
        lines.append(
            f"| `{module}` | {killed} | {survived} | {counts['timeout']} "
            f"| {counts['no tests']} | {counts['not checked']} "
            f"| {counts['equivalent']} | {score:.1f} % "
            f"| {verdict} |"
        )
    unchecked = sum(c["not checked"] for c in by_module.values())
    if unchecked:
        lines += [
            "",
            f"**An interrupted run:** {unchecked} mutants were not checked; "
            "the scores count only the checked ones.",
        ]
    listed = {n: why for n, why in equivalent.items() if module_of(n) in by_module}
    lines += ["", "## Accepted equivalent mutants", ""]
    if listed:
        lines += [f"- `{name}`: {why}" for name, why in sorted(listed.items())]
    else:
        lines.append("None in the modules run.")
    lines += ["", "## Survivors", ""]
    for module, names in sorted(survivors.items()):
        lines.append(f"- `{module}`: " + ", ".join(f"`{n}`" for n in names))
    if not survivors:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="mutate only these files (replaces only_mutate for this run)",
    )
    parser.add_argument(
        "--tests",
        action="append",
        default=[],
        metavar="PATH",
        help="run only these tests (replaces pytest_add_cli_args_test_selection)",
    )
    parser.add_argument(
        "mutants", nargs="*", help="re-check only these mutants (names or globs)"
    )
    args = parser.parse_args()
    changes: dict[str, list[str]] = {}
    if args.only:
        changes["only_mutate"] = args.only
    if args.tests:
        changes["pytest_add_cli_args_test_selection"] = args.tests
    if args.report:
        scope: dict[str, Any] = (
            json.loads(SCOPE.read_text(encoding="utf-8")) if SCOPE.exists() else {}
        )
        changes.update(scope.get("changes", {}))
    else:
        # Fewer Hypothesis examples per mutant (the "dev" profile of
        # tests/conftest.py): a mutant is killed by the first failing one.
        env = {**os.environ, "HYPOTHESIS_PROFILE": "dev"}
        started = time.monotonic()
        mutmut(
            ["run", "--max-children", str(args.max_children), *args.mutants],
            changes,
            env=env,
        )
        scope = {
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "seconds": round(time.monotonic() - started),
            "cpus": os.cpu_count(),
            "max_children": args.max_children,
            "only": args.only,
            "tests": args.tests,
            "changes": changes,
        }
        SCOPE.write_text(json.dumps(scope, indent=2), encoding="utf-8")
    equivalent = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8")).get(
        "equivalent", {}
    )
    only = changes.get("only_mutate", [])
    found = {n: s for n, s in results(changes).items() if in_scope(module_of(n), only)}
    REPORT.write_text(report(found, equivalent, scope), encoding="utf-8")
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
