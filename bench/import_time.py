"""How long ``import optin_core`` takes: medians over fresh interpreters.

Run ``python bench/import_time.py``. It reports, for each statement, the
median wall time of running it in a new interpreter, next to a baseline
measured in the same run (``import attrs``, the one dependency every path
needs), and the cumulative ``-X importtime`` figure for ``optin_core`` that
the issue's target (60 ms) is stated in. Compile the sources first
(``python -m compileall -q src``) when the environment sets
``PYTHONDONTWRITEBYTECODE``, or every run measures the compiler.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

STATEMENTS = (
    "import attrs",
    "import optin_core",
    "from optin_core import Inbound, Policy, decide",
    "from optin_core import ConsentService, MemoryStore",
    "from optin_core import SQLiteStore",
)

_TIMED = (
    "import time\nt = time.perf_counter()\n{code}\n"
    "print((time.perf_counter() - t) * 1e3)"
)


def wall_ms(code: str, runs: int) -> float:
    """The median wall time of ``code`` in a fresh interpreter, in ms."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _TIMED.format(code=code)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(float(out))
    return statistics.median(samples)


def importtime_ms(runs: int) -> float:
    """The median cumulative ``-X importtime`` of ``optin_core``, in ms."""
    samples = []
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import optin_core"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        match = re.search(r"\|\s*(\d+)\s*\|\s*optin_core\s*$", err, re.M)
        if match is None:
            raise SystemExit("no optin_core line in -X importtime's output")
        samples.append(int(match.group(1)) / 1e3)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base = wall_ms(STATEMENTS[0], args.runs)
    for code in STATEMENTS:
        ms = wall_ms(code, args.runs)
        print(f"{ms:8.1f} ms  {ms / base:5.2f}x attrs  {code}")
    cumulative = importtime_ms(args.runs)
    verdict = "met" if cumulative <= 60 else "MISSED"
    print(f"{cumulative:8.1f} ms  -X importtime of optin_core (<= 60: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
