"""How fast the local model server is, measured side by side in one run against its limits.

For a tabular MLP and a CNN: the in-process limit (the serving signature called directly at the max batch size),
the server with batching and with batching off, at 1..64 concurrent clients (wrk, a separate process); the
first request after healthy with and without a warmup file under XLA precompilation; the optimize step's choice
against the configured flags; a 64-client soak for errors and memory growth; and the REST hot path against the
previous release's model server (bench/hot_path.py). Medians throughout: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench import models
from bench.hot_path import ROUNDS, compare_with_previous_release
from bench.load import Load, require_wrk, run_load
from bench.models import body
from bench.optimize import chosen_against_configured
from localvertex.modelserver.launch import start_model_server

MAX_BATCH = 32
BATCH_TIMEOUT_MICROS = 2000  # lets the clients of the last batch rejoin the next one
# One batch thread: TensorFlow already spreads each batch over every core (intra-op parallelism).
BATCHING = [
    "--enable_batching=true",
    f"--max_batch_size={MAX_BATCH}",
    f"--batch_timeout_micros={BATCH_TIMEOUT_MICROS}",
    "--num_batch_threads=1",
]


def in_process(model_dir: Path, shape: tuple[int, ...], seconds: float) -> dict:
    """The serving signature called directly: throughput at the max batch size and batch-1 latency."""
    from vertex_serving.options import RuntimeOptions
    from vertex_serving.tfserving.servable import Servable

    servable = Servable(model_dir, 1, RuntimeOptions())
    signature = servable.signature(None)

    def timings(batch: int) -> list[float]:
        x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        signature.run({"x": x})
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            signature.run({"x": x})
            times.append(time.perf_counter() - started)
        return times

    full, single = timings(MAX_BATCH), timings(1)
    servable.close()
    return {"throughput": MAX_BATCH / statistics.median(full), "p50_ms": statistics.median(single) * 1e3}


def serve_and_load(
    model_dir: Path, shape, args: list[str], clients: list[int], seconds: float, work: Path, tag: str
) -> list[Load]:
    server = start_model_server(str(model_dir), args, log_path=work / f"{tag}.log")
    try:
        server.wait_healthy(120)
        payload = body(shape)
        run_load(server.url + "/predict", payload, 4, 2)  # warm connections, caches, allocator
        loads = []
        for c in clients:
            before = _batches(server.url)
            load = run_load(server.url + "/predict", payload, c, seconds)
            after = _batches(server.url)
            rows = after[0] - before[0]
            loads.append(
                dataclasses.replace(load, mean_batch=rows / (after[1] - before[1]) if after[1] > before[1] else None)
            )
        return loads
    finally:
        server.stop()


def first_request(model_dir: Path, shape, with_warmup: bool, work: Path) -> dict:
    """First-request latency after healthy vs the steady median, with XLA precompilation on."""
    from vertex_serving.tfserving.layout import WARMUP_REPEATS
    from vertex_serving.tfserving.warmup import warmup_records, write_warmup_file

    target = work / f"xla-{'warm' if with_warmup else 'cold'}"
    if not target.exists():
        import shutil

        shutil.copytree(model_dir, target)
        if with_warmup:
            samples = {"x": np.random.default_rng(2).random((MAX_BATCH, *shape), dtype=np.float32)}
            write_warmup_file(target, warmup_records(samples, [1, 8, MAX_BATCH], repeats=WARMUP_REPEATS))
    args = [
        "--allow_precompilation=true",
        "--enable_batching=true",
        f"--max_batch_size={MAX_BATCH}",
        f"--allowed_batch_sizes=1,8,{MAX_BATCH}",
    ]
    server = start_model_server(str(target), args, log_path=work / f"{target.name}.log")
    try:
        server.wait_healthy(300)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.connect()  # time the request, not the TCP handshake
        payload = body(shape)

        def call() -> float:
            started = time.perf_counter()
            connection.request("POST", "/predict", payload, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            return (time.perf_counter() - started) * 1e3

        first = [call() for _ in range(3)]
        steady = statistics.median(call() for _ in range(200))
        return {"first_ms": first[0], "next_ms": first[1:], "steady_p50_ms": steady}
    finally:
        server.stop()


def soak(model_dir: Path, shape, seconds: float, work: Path) -> dict:
    server = start_model_server(str(model_dir), BATCHING, log_path=work / "soak.log")
    try:
        server.wait_healthy(120)
        payload = body(shape)
        run_load(server.url + "/predict", payload, 64, 5)
        before = _rss_kib(server.process.pid)
        load = run_load(server.url + "/predict", payload, 64, seconds)
        after = _rss_kib(server.process.pid)
        return {"load": load, "rss_before_mib": before / 1024, "rss_after_mib": after / 1024}
    finally:
        server.stop()


def _batches(url: str) -> tuple[float, float]:
    """Rows and batches run so far, from the server's Prometheus metrics."""
    with urllib.request.urlopen(url + "/metrics") as response:
        text = response.read().decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("modelserver_batch_size_"))
    return float(values.get("modelserver_batch_size_sum", 0)), float(values.get("modelserver_batch_size_count", 0))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="load per measurement point (default 10)")
    parser.add_argument("--soak-seconds", type=float, default=60, help="the 64-client soak (default 60)")
    parser.add_argument("--clients", default="1,8,32,64", help="concurrent clients to measure (default 1,8,32,64)")
    args = parser.parse_args(argv)
    require_wrk()
    clients = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="vsp-bench-"))
    print(f"bench: work folder {work}", flush=True)
    shapes = {"mlp": (models.MLP_FEATURES,), "cnn": models.CNN_SHAPE}
    dirs = {"mlp": models.mlp(work / "mlp"), "cnn": models.cnn(work / "cnn")}

    rows, limits, loads = [], {}, {}
    for name, model_dir in dirs.items():
        print(f"bench: {name}: in-process limit", flush=True)
        limits[name] = in_process(model_dir, shapes[name], min(args.seconds, 5))
        for mode, server_args in (("batching", BATCHING), ("no batching", ["--enable_batching=false"])):
            print(f"bench: {name}: server, {mode}", flush=True)
            loads[name, mode] = serve_and_load(
                model_dir, shapes[name], server_args, clients, args.seconds, work, f"{name}-{mode.replace(' ', '-')}"
            )
            for load in loads[name, mode]:
                rows.append(
                    [
                        name,
                        mode,
                        load.clients,
                        f"{load.throughput:.0f}",
                        f"{load.p50_ms:.2f}",
                        f"{load.p99_ms:.2f}",
                        f"{load.throughput / limits[name]['throughput']:.2f}",
                        f"{load.mean_batch:.1f}" if load.mean_batch else "-",
                        load.errors,
                    ]
                )
    print()
    print(
        tabulate(
            rows,
            headers=["model", "server", "clients", "inst/s", "p50 ms", "p99 ms", "x limit", "mean batch", "errors"],
        )
    )
    print()
    print(
        tabulate(
            [[n, f"{v['throughput']:.0f}", f"{v['p50_ms']:.3f}"] for n, v in limits.items()],
            headers=["model", f"in-process inst/s at batch {MAX_BATCH}", "in-process batch-1 p50 ms"],
        )
    )

    print("\nbench: first request after healthy (XLA precompilation)", flush=True)
    warm = first_request(dirs["cnn"], shapes["cnn"], True, work)
    cold = first_request(dirs["cnn"], shapes["cnn"], False, work)
    print("bench: optimize step, chosen against configured (CNN)", flush=True)
    optimized = chosen_against_configured(dirs["cnn"], shapes["cnn"], work)
    print(f"bench: soak, 64 clients, {args.soak_seconds:g}s", flush=True)
    soaked = soak(dirs["mlp"], shapes["mlp"], args.soak_seconds, work)
    print("bench: REST hot path, current against the previous release (MLP, batching off)", flush=True)
    hot_path = compare_with_previous_release(
        dirs["mlp"], shapes["mlp"], work, rounds=ROUNDS, seconds=min(args.seconds, 2)
    )

    def at(name, mode, c):
        return next((load for load in loads[name, mode] if load.clients == c), None)

    checks = []
    if (cnn32 := at("cnn", "batching", 32)) is not None:
        checks.append(
            [
                "CNN, 32 clients, batching / in-process limit",
                f"{cnn32.throughput / limits['cnn']['throughput']:.2f}",
                ">= 0.80",
            ]
        )
    if (on := at("mlp", "batching", 32)) and (off := at("mlp", "no batching", 32)):
        checks.append(
            [
                "MLP, 32 clients, batching / batching off",
                f"{on.throughput / off.throughput:.2f}",
                ">= 2.00 (batching off runs these short requests on the event loop, no thread hand-off)",
            ]
        )
    for name in dirs:
        for mode in ("no batching", "batching"):
            if (one := at(name, mode, 1)) is not None:
                checks.append(
                    [
                        f"{name.upper()}, 1 client, {mode}: p50 minus in-process batch-1 p50 (ms)",
                        f"{one.p50_ms - limits[name]['p50_ms']:.2f}",
                        "<= 1.00"
                        if mode == "no batching"
                        else f"(includes the {BATCH_TIMEOUT_MICROS} us batch timeout)",
                    ]
                )
    for label, run in (("with warmup", warm), ("no warmup", cold)):
        following = ", ".join(f"{v:.1f}" for v in run["next_ms"])
        checks.append(
            [
                f"CNN + XLA, first request / steady p50, {label}",
                f"{run['first_ms'] / run['steady_p50_ms']:.2f}",
                ("<= 2.00 " if run is warm else "")
                + f"(first {run['first_ms']:.1f} ms, then {following}; p50 {run['steady_p50_ms']:.1f} ms)",
            ]
        )
    checks.append(optimized)
    growth = soaked["rss_after_mib"] / soaked["rss_before_mib"] - 1
    checks.append(
        [
            f"MLP soak, 64 clients, {args.soak_seconds:g}s: errors",
            str(soaked["load"].errors),
            f"== 0 ({soaked['load'].requests} requests)",
        ]
    )
    checks.append(
        [
            "MLP soak: resident memory growth",
            f"{growth:+.1%}",
            f"< 10% ({soaked['rss_before_mib']:.0f} -> {soaked['rss_after_mib']:.0f} MiB)",
        ]
    )
    checks.extend(hot_path)
    print()
    print(tabulate(checks, headers=["ratio", "measured", "target"]))
    return 0
