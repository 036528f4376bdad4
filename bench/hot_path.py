"""The REST hot path against the previous release's model server, both running side by side in one run.

The previous release is checked out from this repository's history (`git worktree`) and started with the same
Python and packages, its own source first on the path. Both servers serve the bench's MLP with batching off, so
each request is parse, run, format and answer. Rounds alternate between the two servers; each point's ratio is
the median over rounds of current / previous. Throughput is the user's figure; CPU time per request (the
server process's user+system time over the requests it answered) is the steadier one on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import models
from bench.load import require_wrk, run_load
from bench.models import body
from localvertex.modelserver.launch import ModelServerProcess, start_model_server

# The model server as the release before TF Serving's gRPC API, registry and exact REST behaviour left it.
PREVIOUS_RELEASE = "52a6b5c"
ROOT = Path(__file__).resolve().parents[1]
# (label, route, clients): Vertex AI's predict route and TF Serving's, one client and many.
POINTS = (
    ("Vertex AI /predict, 1 client", "/predict", 1),
    ("Vertex AI /predict, 32 clients", "/predict", 32),
    ("TF Serving :predict, 1 client", "/v1/models/default:predict", 1),
)
ROUNDS = 15  # short alternating rounds: noise that lasts seconds falls on both servers alike
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    throughput: float  # requests per second
    cpu_us: float  # server CPU time per request, microseconds


@contextmanager
def previous_release(ref: str, work: Path):
    """A checkout of `ref` (no new branch) that is removed afterwards; None when this is not a git clone."""
    target = work / f"release-{ref}"
    added = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(target), ref],
        capture_output=True,
        text=True,
    )
    if added.returncode:
        print(f"bench: hot path: cannot check out {ref}: {added.stderr.strip()}", flush=True)
        yield None
        return
    try:
        yield target
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(target)], capture_output=True)


@contextmanager
def serving(model_dir: Path, source: Path | None, log: Path):
    """A model server with batching off; `source` first on the path runs that checkout's server instead."""
    # PYTHONSAFEPATH: the working directory (this checkout) must not come before the release's source on the path.
    env = {"PYTHONPATH": str(source), "PYTHONSAFEPATH": "1"} if source else None
    if source:
        _check_source(source, env)
    server = start_model_server(str(model_dir), ["--enable_batching=false"], log_path=log, env=env)
    try:
        server.wait_healthy(180)
        yield server
    finally:
        server.stop()


def _check_source(source: Path, env: dict[str, str]) -> None:
    """The release's model server, not this checkout's, is the one that environment imports."""
    found = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('localvertex.modelserver.app').origin)"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).is_relative_to(source):
        raise RuntimeError(f"bench: hot path: the previous release's server would import {found}, not {source}")


def cpu_seconds(pid: int) -> float:
    """User plus system time of every thread of `pid` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def measure(server: ModelServerProcess, route: str, payload: bytes, clients: int, seconds: float) -> Sample:
    before = cpu_seconds(server.process.pid)
    load = run_load(server.url + route, payload, clients, seconds)
    used = cpu_seconds(server.process.pid) - before
    if load.errors or not load.requests:
        raise RuntimeError(f"bench: hot path: {load.errors} errors in {load.requests} requests on {server.url}{route}")
    return Sample(load.throughput, used / load.requests * 1e6)


def compare_with_previous_release(
    model_dir: Path, shape, work: Path, rounds: int, seconds: float, ref: str = PREVIOUS_RELEASE
) -> list:
    """Rows for the bench's table: current / previous throughput and CPU per request at each point."""
    with previous_release(ref, work) as source:
        if source is None:
            return [["REST hot path / previous release", "-", f"not measured: {ref} is not in this clone's history"]]
        with (
            serving(model_dir, source, work / "hot-previous.log") as previous,
            serving(model_dir, None, work / "hot-current.log") as current,
        ):
            samples = _alternate({"current": current, "previous": previous}, body(shape), rounds, seconds)
    rows = []
    for point in POINTS:
        now, before = samples["current", point], samples["previous", point]
        speed = _spread([n.throughput / b.throughput for n, b in zip(now, before, strict=True)])
        cpu = _spread([b.cpu_us / n.cpu_us for n, b in zip(now, before, strict=True)])
        rows.append(
            [
                f"MLP, REST hot path, {point[0]}: current / release {ref}, req/s",
                speed,
                f">= 1.00 ({statistics.median(s.throughput for s in now):.0f} vs "
                f"{statistics.median(s.throughput for s in before):.0f} req/s; server CPU per request, previous / "
                f"current: {cpu}, {statistics.median(s.cpu_us for s in now):.0f} vs "
                f"{statistics.median(s.cpu_us for s in before):.0f} us)",
            ]
        )
    return rows


def _alternate(servers: dict[str, ModelServerProcess], payload: bytes, rounds: int, seconds: float) -> dict:
    """Samples per (server, point), the servers taking turns within each round and swapping order each round."""
    for server in servers.values():
        run_load(server.url + "/predict", payload, 4, 2)  # warm connections, caches, allocator
    samples = {(name, point): [] for name in servers for point in POINTS}
    for turn in range(rounds):
        for point in POINTS:
            for name in list(servers)[:: 1 if turn % 2 == 0 else -1]:
                samples[name, point].append(measure(servers[name], point[1], payload, point[2], seconds))
    return samples


def _spread(ratios: list[float]) -> str:
    """The median of paired rounds, and in brackets the middle half of them: how far the machine's noise reaches."""
    if len(ratios) < 2:
        return f"{ratios[0]:.2f}"
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return f"{statistics.median(ratios):.2f} [{low:.2f}, {high:.2f}]"


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.hot_path`: this row alone."""
    from tabulate import tabulate

    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds (default {ROUNDS})")
    parser.add_argument("--seconds", type=float, default=2, help="load per round and point (default 2)")
    parser.add_argument(
        "--ref", default=PREVIOUS_RELEASE, help=f"the release to compare with (default {PREVIOUS_RELEASE})"
    )
    args = parser.parse_args(argv)
    require_wrk()
    work = Path(tempfile.mkdtemp(prefix="vsp-bench-"))
    model_dir = models.mlp(work / "mlp")
    rows = compare_with_previous_release(model_dir, (models.MLP_FEATURES,), work, args.rounds, args.seconds, args.ref)
    print(tabulate(rows, headers=["ratio", "measured", "target"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
