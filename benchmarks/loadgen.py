"""Load generators for the API benchmark: ``wrk`` when installed, else an asyncio client.

Bounded: each measurement runs for a fixed number of seconds against 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Measurement:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


def _lua_text(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    if "]==]" in text:
        raise ValueError("payload contains the Lua long-bracket terminator")
    return f"[==[{text}]==]"


def _wrk_script(
    method: str, paths: list[str], bodies: list[bytes] | None, headers: dict[str, str]
) -> str:
    header_lines = ", ".join(f'["{k}"] = {_lua_text(v)}' for k, v in headers.items())
    return "\n".join(
        [
            f"local paths = {{{', '.join(_lua_text(p) for p in paths)}}}",
            f"local bodies = {{{', '.join(_lua_text(b) for b in bodies or [])}}}",
            f"local headers = {{{header_lines}}}",
            "local counter = 0",
            "request = function()",
            "  counter = counter + 1",
            "  local body = nil",
            "  if #bodies > 0 then body = bodies[math.random(#bodies)] end",
            f'  return wrk.format("{method}", paths[math.random(#paths)], headers, body)',
            "end",
        ]
    )


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def wrk(
    base: str,
    method: str,
    paths: list[str],
    bodies: list[bytes] | None,
    concurrency: int,
    seconds: float,
    headers: dict[str, str],
) -> Measurement:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            _wrk_script(method, paths, bodies, {"Content-Type": "application/json", **headers})
        )
    command = [
        "wrk",
        "-t",
        str(min(2, concurrency)),
        "-c",
        str(concurrency),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
        "-s",
        script.name,
        base,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Measurement(rps, p50, p99, errors, "wrk")


async def _client_run(
    base: str,
    method: str,
    paths: list[str],
    bodies: list[bytes] | None,
    concurrency: int,
    seconds: float,
    headers: dict[str, str],
) -> Measurement:
    import httpx

    latencies: list[float] = []
    errors = 0
    rng = np.random.default_rng(0)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            path = paths[int(rng.integers(len(paths)))]
            body = bodies[int(rng.integers(len(bodies)))] if bodies else None
            started = time.perf_counter()
            answer = await client.request(
                method,
                base + path,
                content=body,
                headers={"Content-Type": "application/json", **headers},
            )
            latencies.append(time.perf_counter() - started)
            errors += answer.status_code >= 300

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return Measurement(
        len(ms) / elapsed,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        errors,
        "asyncio+httpx",
    )


def measure(
    base: str,
    method: str,
    paths: list[str],
    bodies: list[bytes] | None,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> Measurement:
    """Requests per second and latency percentiles of ``method`` over random ``paths`` (and
    random ``bodies``) at ``concurrency`` for ``seconds``."""
    if shutil.which("wrk"):
        return wrk(base, method, paths, bodies, concurrency, seconds, headers or {})
    return asyncio.run(
        _client_run(base, method, paths, bodies, concurrency, seconds, headers or {})
    )
