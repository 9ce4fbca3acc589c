"""How long ``import optin_core`` takes: medians over fresh interpreters.

Run ``python bench/import_time.py``. It reports the median wall time of a
whole interpreter running ``pass`` (the baseline: the interpreter's own
start-up) and running ``import optin_core``; for each statement, the median
wall time of running it in a new interpreter, next to a baseline measured in
the same run (``import attrs``, the one dependency every path needs); and the
cumulative ``-X importtime`` figure for ``optin_core`` that the issue's
target (60 ms) is stated in, next to the same figure for the interpreter's
own start-up imports (``python -X importtime -c pass``). Every interpreter
writes and reads its bytecode under a private temporary cache
(``PYTHONPYCACHEPREFIX``), warmed by one untimed run, so stale or missing
``__pycache__`` files (or ``PYTHONDONTWRITEBYTECODE``) never make a run
measure the compiler.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

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


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=env
    )


def process_ms(code: str, runs: int, env: dict[str, str]) -> float:
    """The median wall time of a whole interpreter running ``code``, in ms."""
    _run(["-c", code], env)  # warms the bytecode cache
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        _run(["-c", code], env)
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def wall_ms(code: str, runs: int, env: dict[str, str]) -> float:
    """The median wall time of ``code`` in a fresh interpreter, in ms."""
    _run(["-c", code], env)  # warms the bytecode cache
    samples = []
    for _ in range(runs):
        out = _run(["-c", _TIMED.format(code=code)], env).stdout
        samples.append(float(out))
    return statistics.median(samples)


def importtime_ms(runs: int, env: dict[str, str]) -> float:
    """The median cumulative ``-X importtime`` of ``optin_core``, in ms."""
    _run(["-c", "import optin_core"], env)  # warms the bytecode cache
    samples = []
    for _ in range(runs):
        err = _run(["-X", "importtime", "-c", "import optin_core"], env).stderr
        match = re.search(r"\|\s*(\d+)\s*\|\s*optin_core\s*$", err, re.M)
        if match is None:
            raise SystemExit("no optin_core line in -X importtime's output")
        samples.append(int(match.group(1)) / 1e3)
    return statistics.median(samples)


def startup_importtime_ms(runs: int, env: dict[str, str]) -> float:
    """The median ``-X importtime`` of ``python -c pass``, in ms: the sum of
    its top-level cumulative figures (``encodings``, ``site``, ...), what
    every interpreter imports before any statement runs."""
    _run(["-c", "pass"], env)  # warms the bytecode cache
    samples = []
    for _ in range(runs):
        err = _run(["-X", "importtime", "-c", "pass"], env).stderr
        top = re.findall(r"\|\s*(\d+)\s*\| \S", err)
        samples.append(sum(int(us) for us in top) / 1e3)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optin-import-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        bare = process_ms("pass", args.runs, env)
        whole = process_ms("import optin_core", args.runs, env)
        print(f"{bare:8.1f} ms  baseline: python -c pass (whole process)")
        print(
            f"{whole:8.1f} ms  python -c 'import optin_core' (whole process, "
            f"+{whole - bare:.1f} ms over the baseline)"
        )
        base = wall_ms(STATEMENTS[0], args.runs, env)
        for code in STATEMENTS:
            ms = base if code == STATEMENTS[0] else wall_ms(code, args.runs, env)
            print(f"{ms:8.1f} ms  {ms / base:5.2f}x attrs  {code}")
        startup = startup_importtime_ms(args.runs, env)
        cumulative = importtime_ms(args.runs, env)
    verdict = "met" if cumulative <= 60 else "MISSED"
    print(f"{startup:8.1f} ms  baseline: -X importtime of python -c pass (start-up)")
    print(f"{cumulative:8.1f} ms  -X importtime of optin_core (<= 60: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
