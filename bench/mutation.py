"""Mutation testing of the rule modules: run mutmut, write the report.

Usage::

    pip install -e '.[mutation]'
    nice -n 19 python bench/mutation.py                # every group, then the report
    nice -n 19 python bench/mutation.py --group parser # one group
    python bench/mutation.py --report                  # only the report
    # re-check some mutants of a group (after a new test):
    nice -n 19 python bench/mutation.py --group rules 'optin_core._core.x_decide*'
    # the diff of each survivor of a group not yet accepted:
    python bench/mutation.py --group log --survivors

The rule modules are mutated group by group (``GROUPS``), each with the
tests written for its rules. Every group's verdicts are kept in
``mutation/results.json``; ``mutation/equivalent.toml`` lists the accepted
equivalent mutants and the survivors left, each with a one-line reason; the
report is ``mutation/report.md``. See ``docs/mutation.md``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "mutation" / "report.md"
EQUIVALENT = ROOT / "mutation" / "equivalent.toml"
#: Each group's last run: when, how long, what it covered, every verdict.
RESULTS = ROOT / "mutation" / "results.json"
#: Which group the mutants/ directory holds (mutmut keeps its state there;
#: the other groups' wait beside it in mutants-<group>/, all ignored by git).
HELD = ROOT / "mutants" / "optin-group.json"


@dataclass(frozen=True, kw_only=True)
class Group:
    """Rule modules, and the tests that are about them.

    A mutant runs only the tests of its group that reach its function; a
    survivor runs all of those, so a group's tests are the ones written
    for its rules, not the whole suite (the service's tests drive the
    consent rules too, but a rule that only they would pin is a gap in
    the rules' own tests)."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]


def _tests(*names: str) -> tuple[str, ...]:
    return tuple(f"tests/test_{name}.py" for name in names)


GROUPS = {
    "rules": Group(
        modules=(
            "src/optin_core/_core.py",
            "src/optin_core/_machine.py",
            "src/optin_core/_levels.py",
        ),
        tests=_tests(
            "core",
            "core_events",
            "core_inputs",
            "machine",
            "machine_pinned",
            "decide_table",
            "rules_pinned",
            "trigger_selection",
            "levels",
            "wording_golden",
            "seed",
            "signup",
            "quiet_hours",
            "identity",
            "stateful",
            "policy",
        ),
    ),
    "log": Group(
        modules=("src/optin_core/_log.py",),
        tests=_tests(
            "log",
            "log_rules",
            "log_records",
            "chain",
            "records",
            "rules_pinned",
            "machine_pinned",
            "levels",
        ),
    ),
    "parser": Group(
        modules=(
            "src/optin_core/_parser.py",
            "src/optin_core/_normalize.py",
            "src/optin_core/_keywords.py",
        ),
        tests=_tests(
            "parser",
            "parser_pinned",
            "parser_corpus",
            "parser_windows",
            "languages",
            "reactions",
            "locale",
            "rules_pinned",
            "catalog",
            "policy",
            "keywords_pinned",
            "keyword_index_pinned",
        ),
    ),
    "service": Group(
        modules=("src/optin_core/_service.py",),
        tests=_tests(
            "service",
            "service_pinned",
            "service_compliance_pinned",
            "service_async",
            "phone",
            "examples",
            "service_stateful",
            "delivery",
            "webhook",
            "quiet_hours",
            "identity",
            "levels",
            "testing_kit",
            "compliance",
            "signup",
        ),
    ),
    # PostgresStore is left out: its tests need a server, which CI starts
    # once per run (tests/test_postgres.py); per mutant it would start one
    # each time. The shared store rules it implements are mutated here,
    # in stores/_base.py, and its suite runs the same contract tests.
    "stores": Group(
        modules=(
            "src/optin_core/stores/_base.py",
            "src/optin_core/stores/memory.py",
            "src/optin_core/stores/sqlite.py",
        ),
        tests=_tests(
            "stores",
            "store_compliance",
            "compliance",
            "service",
            "delivery",
            "store_rules_pinned",
            "memory_store_pinned",
            "sqlite_pinned",
            "sqlite_ops_pinned",
        ),
    ),
}

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


def report(runs: dict[str, Any], notes: dict[str, dict[str, str]]) -> str:
    """The report, from every group's last run and the notes on mutants
    (``[equivalent]``: excluded from the score; ``[gaps]``: survivors left,
    each with why)."""
    equivalent, gaps = notes.get("equivalent", {}), notes.get("gaps", {})
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for run in runs.values():
        for name, status in sorted(run["mutants"].items()):
            module = module_of(name)
            if name in equivalent:
                by_module[module]["equivalent"] += 1
                continue
            by_module[module][status] += 1
            if status == "survived":
                survivors[module].append(name)
    seconds = sum(float(run["seconds"]) for run in runs.values())
    lines = [
        "# Mutation report",
        "",
        "Written by `python bench/mutation.py` (mutmut 3, `[tool.mutmut]` in"
        " `pyproject.toml`; see `docs/mutation.md`).",
        "Score: killed / (killed + survived), equivalent mutants excluded;"
        " a timeout counts as killed (the mutant hung a test).",
        "",
        f"Every group together: {seconds / 60:.0f} minutes of wall clock.",
        "",
        "| group | last run | wall clock | workers | modules | tests |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, run in sorted(runs.items()):
        modules = ", ".join(f"`{Path(m).name}`" for m in run["modules"])
        tests = ", ".join(Path(t).stem.removeprefix("test_") for t in run["tests"])
        lines.append(
            f"| {name} | {run['date']} | {float(run['seconds']):.0f} s "
            f"| {run['workers']} on {run['cpus']} cores | {modules} | {tests} |"
        )
    lines += [
        "",
        "| module | killed | timeout | survived | no tests | not checked "
        "| equivalent | score | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for module, counts in sorted(by_module.items()):
        killed = counts["killed"] + counts["timeout"]
        survived = counts["survived"]
        checked = killed + survived
        score = 100.0 * killed / checked if checked else 100.0
        target = target_of(module)
        verdict = (
            ""
            if target is None
            else f"{target:.0f} %: " + ("met" if score >= target else "not met")
        )
        lines.append(
            f"| `{module}` | {counts['killed']} | {counts['timeout']} | {survived} "
            f"| {counts['no tests']} | {counts['not checked']} "
            f"| {counts['equivalent']} | {score:.1f} % | {verdict} |"
        )
    unchecked = sum(c["not checked"] for c in by_module.values())
    if unchecked:
        lines += [
            "",
            f"**An interrupted run:** {unchecked} mutants were not checked; "
            "the scores count only the checked ones.",
        ]
    listed = {n: why for n, why in equivalent.items() if module_of(n) in by_module}
    verdicts = {n: s for run in runs.values() for n, s in run["mutants"].items()}
    stale = sorted(
        n
        for n in (*listed, *(g for g in gaps if module_of(g) in by_module))
        if verdicts.get(n) not in ("survived", "not checked")
    )
    if stale:
        # Names move when a function changes: an entry must name a survivor.
        lines += ["", "## Stale entries in `mutation/equivalent.toml`", ""]
        lines += [f"- `{n}`: {verdicts.get(n, 'no such mutant')}" for n in stale]
    lines += ["", "## Accepted equivalent mutants", ""]
    if listed:
        lines += [f"- `{name}`: {why}" for name, why in sorted(listed.items())]
    else:
        lines.append("None in the modules run.")
    lines += ["", "## Survivors", ""]
    if not survivors:
        lines.append("None.")
    for module, names in sorted(survivors.items()):
        lines += [f"### `{module}`", ""]
        lines += [
            f"- `{n}`" + (f": {gaps[n]}" if n in gaps else ": not yet looked at")
            for n in names
        ]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def run_group(name: str, group: Group, mutants: list[str], workers: int) -> None:
    """Run one group (or re-check ``mutants`` of it) and store its verdicts."""
    changes = {
        "only_mutate": list(group.modules),
        "pytest_add_cli_args_test_selection": list(group.tests),
    }
    hold(name)
    held = json.loads(HELD.read_text(encoding="utf-8")) if HELD.exists() else None
    if held != changes:
        # mutmut's state is for one configuration: start this group afresh
        # (the names of an unchanged function's mutants stay the same).
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    # Few, fixed Hypothesis examples per mutant (the "mutation" profile of
    # tests/conftest.py): the same mutant gets the same verdict.
    env = {**os.environ, "HYPOTHESIS_PROFILE": "mutation"}
    started = time.monotonic()
    mutmut(["run", "--max-children", str(workers), *mutants], changes, env=env)
    seconds = time.monotonic() - started
    HELD.write_text(json.dumps(changes), encoding="utf-8")
    found = {
        n: s
        for n, s in results(changes).items()
        if in_scope(module_of(n), list(group.modules))
    }
    runs = load_runs()
    if mutants and name in runs:
        # A re-check: the group's other verdicts stand.
        checked = {
            n: s
            for n, s in found.items()
            if any(fnmatch.fnmatch(n, g) for g in mutants)
        }
        found = {**runs[name]["mutants"], **checked}
        seconds += float(runs[name]["seconds"])
    runs[name] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "seconds": round(seconds),
        "cpus": os.cpu_count(),
        "workers": workers,
        "modules": list(group.modules),
        "tests": list(group.tests),
        "mutants": dict(sorted(found.items())),
    }
    RESULTS.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


def recheck_with_every_test(name: str, group: Group, patterns: list[str]) -> None:
    """Run each survivor of group ``name`` matching ``patterns`` (every
    survivor not yet accepted, if none) against every test of the group.

    mutmut runs a mutant only against the tests its stats tie to the
    mutated function, and a function that fills a cache (a keyword index)
    is tied only to the tests that happened to fill it during the stats
    run: the others read the cache. Here the mutant meets them all, the
    caches emptied first (tests/conftest.py). A test failing kills it.
    """
    hold(name)
    held = ROOT / "mutants" / "src"
    for path in (ROOT / "src").rglob("*.py"):
        relative = path.relative_to(ROOT)
        copy = ROOT / "mutants" / relative
        if str(relative) not in group.modules and (
            not copy.exists() or copy.read_bytes() != path.read_bytes()
        ):
            raise SystemExit(
                f"{relative} changed since the group's last run ({held} is "
                f"older): run the group first (python bench/mutation.py "
                f"--group {name})"
            )
    # The tests as they are now (mutmut copied them at its last run).
    shutil.copytree(ROOT / "tests", ROOT / "mutants" / "tests", dirs_exist_ok=True)
    runs = load_runs()
    run = runs[name]
    notes = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))
    accepted = {*notes.get("equivalent", {}), *notes.get("gaps", {})}
    chosen = [
        m
        for m, status in run["mutants"].items()
        if status == "survived"
        and (
            any(fnmatch.fnmatch(m, g) for g in patterns)
            if patterns
            else m not in accepted
        )
    ]
    with open(ROOT / "pyproject.toml", "rb") as f:
        extra = tomllib.load(f)["tool"]["mutmut"]["pytest_add_cli_args"]
    env = {
        **os.environ,
        "HYPOTHESIS_PROFILE": "mutation",
        "PYTHONPATH": str(ROOT / "mutants" / "src"),
    }
    started = time.monotonic()
    for mutant in chosen:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", *extra, *group.tests],
            cwd=ROOT / "mutants",
            env={**env, "MUTANT_UNDER_TEST": mutant},
            capture_output=True,
            check=False,
        )
        # 1: a test failed. 0: every test passed. Anything else (an
        # interrupted or broken session) leaves the verdict as it was.
        if done.returncode == 1:
            run["mutants"][mutant] = "killed"
        print(f"{mutant}: {'killed' if done.returncode == 1 else 'survived'}")
    run["seconds"] = round(float(run["seconds"]) + time.monotonic() - started)
    RESULTS.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


def hold(name: str) -> None:
    """Put group ``name``'s mutmut state in mutants/, where mutmut reads it,
    setting aside the state of the group there."""
    here = ROOT / "mutants"
    if here.exists():
        held = json.loads(HELD.read_text(encoding="utf-8")) if HELD.exists() else {}
        owner = next(
            (
                g
                for g, group in GROUPS.items()
                if held.get("only_mutate") == list(group.modules)
            ),
            None,
        )
        if owner == name:
            return
        if owner is None:
            shutil.rmtree(here)
        else:
            shutil.rmtree(ROOT / f"mutants-{owner}", ignore_errors=True)
            here.rename(ROOT / f"mutants-{owner}")
    kept = ROOT / f"mutants-{name}"
    if kept.exists():
        kept.rename(here)


def show_survivors(name: str) -> None:
    """Print the diff of each survivor of group ``name`` not yet accepted."""
    hold(name)
    notes = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))
    known = {**notes.get("equivalent", {}), **notes.get("gaps", {})}
    run = load_runs().get(name, {"mutants": {}})
    for mutant, status in run["mutants"].items():
        if status == "survived" and mutant not in known:
            mutmut(["show", mutant], {"only_mutate": run["modules"]})
            print(flush=True)


def load_runs() -> dict[str, Any]:
    if not RESULTS.exists():
        return {}
    runs: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        choices=sorted(GROUPS),
        help="run only this group (repeatable); every group by default",
    )
    parser.add_argument(
        "mutants",
        nargs="*",
        help="re-check only these mutants of one --group (names or globs)",
    )
    parser.add_argument(
        "--every-test",
        action="store_true",
        help="re-check the survivors of one --group (these, or every one not "
        "yet accepted) against every test of the group",
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="print the diff of each survivor of one --group not yet accepted",
    )
    args = parser.parse_args()
    if args.survivors:
        if len(args.group) != 1:
            parser.error("name one --group to show the survivors of")
        show_survivors(args.group[0])
        return 0
    if args.every_test:
        if len(args.group) != 1:
            parser.error("name one --group to re-check the survivors of")
        recheck_with_every_test(args.group[0], GROUPS[args.group[0]], args.mutants)
        args.report = True
    if args.mutants and len(args.group) != 1:
        parser.error("name one --group to re-check mutants of")
    if not args.report:
        for name in args.group or list(GROUPS):
            print(f"== group {name}", flush=True)
            run_group(name, GROUPS[name], args.mutants, args.max_children)
    notes = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))
    REPORT.write_text(report(load_runs(), notes), encoding="utf-8")
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
