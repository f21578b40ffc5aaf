"""Run one benchmark step in a fresh interpreter and measure its peak memory.

Each step prints one JSON object as its last stdout line; the peak RSS of the child's
process tree is polled from outside, so steps measured in one run do not share a heap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psutil


def run_step(module: str, step: str, *args: str) -> dict[str, Any]:
    """``python -m module --step step args…``: its JSON result plus ``peak_mb``."""
    command = [sys.executable, "-m", module, "--step", step, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    parent, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise RuntimeError(f"step {step} of {module} failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return {**result, "peak_mb": peak / 2**20}
