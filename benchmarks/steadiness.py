"""How steady the CPU is: a fixed busy loop counted in 5 ms windows on an idle machine.

    python -m benchmarks.steadiness [--seconds 10]

A latency percentile can only be as good as the machine under it. On a virtual machine the
host may run the guest's CPU slower for a few milliseconds at a time without ever pausing
it outright (a probe looking for gaps in time sees nothing); counting the work done in
each short window shows it: a window doing less than half the median's work ran at under
half speed. A task of a few milliseconds that lands in such windows takes several times as
long, whatever the code does, so the API benchmark prints this next to its percentiles.
Last line: ``RESULT median_loops=… below_half_pct=… below_fifth_pct=…``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

#: Long enough for a timer's resolution not to matter, short against a request's p99.
WINDOW_SECONDS = 0.005
#: One unit of work: a few tens of microseconds of plain Python.
_STEPS = 200


@dataclass(frozen=True)
class Steadiness:
    windows: int
    median_loops: int
    below_half_pct: float
    below_fifth_pct: float

    def summary(self) -> str:
        return (
            f"CPU steadiness: {self.below_half_pct:.1f}% of {WINDOW_SECONDS * 1000:g} ms "
            f"windows ran at under half the median speed, {self.below_fifth_pct:.1f}% under a "
            f"fifth ({self.windows:,} windows, idle machine; python -m benchmarks.steadiness)"
        )


def measure_steadiness(seconds: float = 5.0) -> Steadiness:
    """Count the loops done in each window for ``seconds`` (busy: run it alone)."""
    counts: list[int] = []
    state, loops = 0, 0
    start = time.perf_counter()
    window_end = start + WINDOW_SECONDS
    while True:
        for _ in range(_STEPS):
            state = (state * 1103515245 + 12345) & 0xFFFFFFFF
        loops += 1
        now = time.perf_counter()
        if now >= window_end:
            counts.append(loops)
            loops, window_end = 0, now + WINDOW_SECONDS
            if now - start >= seconds:
                break
    median = sorted(counts)[len(counts) // 2]
    return Steadiness(
        windows=len(counts),
        median_loops=median,
        below_half_pct=100 * sum(c < median / 2 for c in counts) / len(counts),
        below_fifth_pct=100 * sum(c < median / 5 for c in counts) / len(counts),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    steadiness = measure_steadiness(args.seconds)
    print(steadiness.summary())
    print(
        f"RESULT median_loops={steadiness.median_loops} "
        f"below_half_pct={steadiness.below_half_pct:.2f} "
        f"below_fifth_pct={steadiness.below_fifth_pct:.2f}"
    )


if __name__ == "__main__":
    main()
