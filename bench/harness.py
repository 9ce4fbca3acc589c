"""A small timing harness on ``time.perf_counter_ns``.

A :class:`Workload` runs ``loops`` times a batch of ``ops`` operations. A
:class:`Group` holds a case and the baselines it is compared with; all of its
workloads are calibrated first, then sampled *interleaved*: round ``i`` times
every member once, in an order that alternates (A B C, C B A, A B C, ...), so
that a burst of noise from the other processes on a shared machine hits the
case and its baselines alike. The figure reported is the median ns per
operation over the samples.

The garbage collector stays enabled (the library runs with it), but the
fixtures of a group are moved out of its reach with ``gc.freeze()`` and a full
collection runs before each round, so that one case's garbage is not
collected on another case's clock.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Group",
    "Mode",
    "Result",
    "Workload",
    "machine_info",
    "run_group",
]


@dataclass(frozen=True)
class Mode:
    """How hard to measure."""

    name: str
    #: Target duration of one sample, in ns (loops are calibrated to it).
    sample_ns: int
    #: Samples per workload.
    samples: int
    #: Scale for big fixtures (1.0 = the sizes the targets are stated for).
    scale: float
    #: Upper bound on loops per sample (smoke mode keeps them tiny).
    max_loops: int = 1 << 30


QUICK = Mode("quick", sample_ns=25_000_000, samples=7, scale=1.0)
FULL = Mode("full", sample_ns=40_000_000, samples=21, scale=1.0)
SMOKE = Mode("smoke", sample_ns=1_000_000, samples=3, scale=0.01, max_loops=50)
MODES = {m.name: m for m in (QUICK, FULL, SMOKE)}


@dataclass
class Workload:
    """``run(loops)`` performs ``loops * ops`` operations.

    ``setup(loops)``, if given, runs untimed before every sample with the
    same ``loops`` (to seed fresh rows, reset a record, ...).
    """

    name: str
    run: Callable[[int], object]
    ops: int = 1
    setup: Callable[[int], object] | None = None
    #: Fixed loops per sample (no calibration), for operations that are big
    #: enough on their own (a million records).
    loops: int | None = None
    note: str = ""


@dataclass
class Result:
    name: str
    group: str
    ops_per_loop: int
    loops: int
    samples_ns: list[float]
    note: str = ""
    baseline: str | None = None
    ratio: float | None = None
    other_ratios: dict[str, float] = field(default_factory=dict)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples_ns)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        s = sorted(self.samples_ns)
        if len(s) < 4:
            return (s[-1] - s[0]) / 2 / self.median_ns if self.median_ns else 0.0
        q = statistics.quantiles(s, n=4)
        return (q[2] - q[0]) / 2 / self.median_ns if self.median_ns else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "median_ns": round(self.median_ns, 1),
            "samples": [round(s, 1) for s in self.samples_ns],
            "loops": self.loops,
            "ops_per_loop": self.ops_per_loop,
            "spread": round(self.spread, 4),
            "baseline": self.baseline,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "other_ratios": {k: round(v, 3) for k, v in self.other_ratios.items()},
            "note": self.note,
        }


@dataclass
class Group:
    """A case and its baselines, measured interleaved.

    ``compare`` lists ``(case, baseline)`` pairs; the ratio reported is
    ``median(case) / median(baseline)`` (below 1: the case is faster).
    """

    name: str
    workloads: list[Workload]
    compare: list[tuple[str, str]] = field(default_factory=list)


def _time(w: Workload, loops: int) -> int:
    if w.setup is not None:
        w.setup(loops)
    run = w.run
    t0 = time.perf_counter_ns()
    run(loops)
    return time.perf_counter_ns() - t0


def calibrate(w: Workload, mode: Mode) -> int:
    """Loops such that one sample lasts about ``mode.sample_ns``."""
    if w.loops is not None:
        return max(1, min(w.loops, mode.max_loops))
    _time(w, 1)  # warm up: imports, caches, first-call costs
    loops = 1
    while True:
        elapsed = max(_time(w, loops), 1)
        if elapsed >= mode.sample_ns // 4 or loops >= mode.max_loops:
            break
        loops = min(loops * 4, mode.max_loops)
    loops = max(1, round(loops * mode.sample_ns / elapsed))
    return min(loops, mode.max_loops)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the fixtures built so far out of the collector's scans."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()


def run_group(group: Group, mode: Mode) -> list[Result]:
    """Calibrate, then sample the workloads of ``group`` interleaved."""
    with frozen_heap():
        loops = {w.name: calibrate(w, mode) for w in group.workloads}
        samples: dict[str, list[float]] = {w.name: [] for w in group.workloads}
        order = list(group.workloads)
        for i in range(mode.samples):
            gc.collect()
            for w in order if i % 2 == 0 else reversed(order):
                n = loops[w.name]
                samples[w.name].append(_time(w, n) / (n * w.ops))
    results = {
        w.name: Result(
            name=w.name,
            group=group.name,
            ops_per_loop=w.ops,
            loops=loops[w.name],
            samples_ns=samples[w.name],
            note=w.note,
        )
        for w in group.workloads
    }
    for case, base in group.compare:
        r = results[case]
        ratio = r.median_ns / results[base].median_ns
        if r.baseline is None:
            r.baseline, r.ratio = base, ratio
        else:
            r.other_ratios[base] = ratio
    return list(results.values())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    try:
        load: Sequence[float] | None = os.getloadavg()
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "loadavg": None if load is None else [round(x, 2) for x in load],
    }
