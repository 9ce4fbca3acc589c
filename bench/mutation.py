"""Mutation testing of the rule modules: run mutmut, write the report.

Usage::

    pip install -e '.[mutation]'
    python bench/mutation.py             # mutmut run, then mutation/report.md
    python bench/mutation.py --report    # only the report, from the last run

The modules and the tests are configured in ``[tool.mutmut]`` of
``pyproject.toml``; accepted equivalent mutants, each with a one-line
reason, in ``mutation/equivalent.toml``. See ``docs/mutation.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "mutation" / "report.md"
EQUIVALENT = ROOT / "mutation" / "equivalent.toml"

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


def results() -> dict[str, str]:
    """``{mutant name: status}`` of the last run (``mutmut results``)."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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


def target_of(module: str) -> float | None:
    for prefix, target in TARGETS:
        if module == prefix or module.startswith(prefix + "."):
            return target
    return None


def report(found: dict[str, str], equivalent: dict[str, str]) -> str:
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
    lines += ["", "## Accepted equivalent mutants", ""]
    if equivalent:
        lines += [f"- `{name}`: {why}" for name, why in sorted(equivalent.items())]
    else:
        lines.append("None yet.")
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
    args = parser.parse_args()
    if not args.report:
        # Fewer Hypothesis examples per mutant (the "dev" profile of
        # tests/conftest.py): a mutant is killed by the first failing one.
        env = {**os.environ, "HYPOTHESIS_PROFILE": "dev"}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mutmut",
                "run",
                "--max-children",
                str(args.max_children),
            ],
            cwd=ROOT,
            check=True,
            env=env,
        )
    equivalent = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8")).get(
        "equivalent", {}
    )
    REPORT.write_text(report(results(), equivalent), encoding="utf-8")
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
