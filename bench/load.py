"""HTTP load from a separate process: wrk (Debian package `wrk`), one thread, N keep-alive connections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    mean_batch: float | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk is needed to load the server from a separate process: apt-get install wrk")
    return found


def run_load(url: str, body: bytes, clients: int, seconds: float) -> Load:
    with tempfile.TemporaryDirectory() as work:
        script, payload = Path(work) / "post.lua", Path(work) / "body.json"
        script.write_text(_SCRIPT)
        payload.write_bytes(body)
        done = subprocess.run(
            [require_wrk(), "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url],
            env={**os.environ, "BENCH_BODY": str(payload)},
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(line for line in done.stdout.splitlines() if line.startswith("BENCH "))
    stats = json.loads(line.removeprefix("BENCH "))
    return Load(
        clients,
        stats["requests"],
        stats["duration_us"] / 1e6,
        stats["p50_us"] / 1e3,
        stats["p99_us"] / 1e3,
        stats["errors"],
    )
