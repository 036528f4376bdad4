"""`python -m localvertex.modelserver [CONTAINER ARGS]`: configured as Vertex AI configures a serving container.

The `AIP_*` environment gives the port, routes and model location; the container args are the optimized
runtime's flags in their documented forms plus TF Serving's model-server flags. An unknown flag is an error, and
every accepted flag says once what it does here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path

from vertex_serving.catalog import load_catalog
from vertex_serving.errors import UserError
from vertex_serving.options import RuntimeOptions, parse_container_args
from vertex_serving.tfserving.monitoring import prometheus_path
from vertex_serving.tfserving.servable import cpu_has_bf16

log = logging.getLogger("modelserver")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_settings(argv: list[str], env: dict[str, str]):
    from localvertex.modelserver.app import Settings

    options, rest = parse_container_args(argv)
    parser = argparse.ArgumentParser(prog="python -m localvertex.modelserver", description=__doc__.split("\n")[0])
    parser.add_argument("--model_name", default="default", help="TF Serving model name (default: default)")
    parser.add_argument(
        "--model_base_path",
        default=env.get("AIP_STORAGE_URI", ""),
        help="model folder or gs:// URI (default: $AIP_STORAGE_URI)",
    )
    parser.add_argument(
        "--rest_api_port",
        type=int,
        default=int(env.get("AIP_HTTP_PORT", "8080")),
        help="HTTP port (default: $AIP_HTTP_PORT or 8080)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="gRPC port for TF Serving's gRPC API (default: 0, no gRPC; see README)"
    )
    parser.add_argument(
        "--model_config_file",
        default="",
        help="ModelServerConfig text proto: several models and versions (then --model_name and the base path are ignored)",
    )
    _switch(
        parser,
        "--allow_version_labels_for_unavailable_models",
        False,
        "accept version_labels in --model_config_file at startup, before their versions have loaded",
    )
    parser.add_argument(
        "--grpc_channel_arguments",
        type=_channel_arguments,
        default=(),
        help="comma-separated key=value arguments for the gRPC server (e.g. grpc.max_connection_age_ms=2000)",
    )
    parser.add_argument("--grpc_socket_path", default="", help="also serve the gRPC API on this Unix socket")
    parser.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=30_000,
        help="a request still running after this long is cancelled with DEADLINE_EXCEEDED (default 30000; 0: none)",
    )
    _switch(
        parser,
        "--enable_model_warmup",
        True,
        "replay assets.extra/tf_serving_warmup_requests before turning healthy (default true)",
    )
    parser.add_argument(
        "--monitoring_config_file", default="", help="MonitoringConfig text proto: the Prometheus metrics path"
    )
    for flag in ("file_system_poll_wait_seconds", "model_config_file_poll_wait_seconds"):
        parser.add_argument(
            f"--{flag}", type=int, help="accepted; model versions and the config file are read once, at start"
        )
    _switch(
        parser,
        "--prefer_tflite_model",
        False,
        "accepted; the SavedModel is served (TF Serving's fallback when there is no model.tflite)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    _switch(
        parser,
        "--enable_batching",
        None,
        "server-side batching (default: on when the model ships config/batching_parameters_config)",
    )
    parser.add_argument("--batching_parameters_file", default="", help="BatchingParameters text proto")
    parser.add_argument("--max_batch_size", type=int)
    parser.add_argument("--batch_timeout_micros", type=int)
    parser.add_argument(
        "--allowed_batch_sizes", type=_int_list, help="comma-separated, increasing, ending at max_batch_size"
    )
    parser.add_argument("--max_enqueued_batches", type=int)
    parser.add_argument("--num_batch_threads", type=int)
    parser.add_argument("--cache_dir", type=Path, help="where a gs:// model is copied (default: a temporary folder)")
    args = parser.parse_args(rest)
    if not args.model_base_path and not args.model_config_file:
        parser.error("no model: set AIP_STORAGE_URI, --model_base_path or --model_config_file")
    if not 0 <= args.port <= 65535 or (args.port and args.port == args.rest_api_port):
        raise UserError("--port", args.port, "is not a free gRPC port", "give one other than --rest_api_port, or 0")
    if args.rest_api_timeout_in_ms < 0:
        raise UserError(
            "--rest_api_timeout_in_ms", args.rest_api_timeout_in_ms, "is negative", "give milliseconds, or 0 for none"
        )
    if args.host not in LOOPBACK:
        raise UserError(
            "--host", args.host, "is not a loopback address", "remove it: local model servers serve this machine only"
        )
    names = (
        "max_batch_size",
        "batch_timeout_micros",
        "allowed_batch_sizes",
        "max_enqueued_batches",
        "num_batch_threads",
    )
    flags = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    settings = Settings(
        storage_uri=args.model_base_path,
        options=options,
        host=args.host,
        port=args.rest_api_port,
        predict_route=env.get("AIP_PREDICT_ROUTE", "/predict"),
        health_route=env.get("AIP_HEALTH_ROUTE", "/health"),
        model_name=args.model_name,
        enable_batching=args.enable_batching,
        batching_file=args.batching_parameters_file,
        batching_flags=flags,
        cache_dir=args.cache_dir,
        grpc_port=args.port,
        grpc_channel_arguments=args.grpc_channel_arguments,
        model_config_file=args.model_config_file,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        grpc_socket_path=args.grpc_socket_path,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        enable_model_warmup=args.enable_model_warmup,
        prometheus_path=prometheus_path(Path(args.monitoring_config_file)) if args.monitoring_config_file else "",
    )
    for flag in ("file_system_poll_wait_seconds", "model_config_file_poll_wait_seconds"):
        if getattr(args, flag):
            log.info(
                "%s=%d: not polled here; versions and configs are read once: restart to load new ones",
                flag,
                getattr(args, flag),
            )
    if args.prefer_tflite_model:
        log.info("prefer_tflite_model=true: no TF Lite here; the SavedModel is served, TF Serving's fallback")
    settings.model_configs()  # a bad --model_config_file stops the server before it listens, as in TF Serving
    return settings


def describe_flags(options: RuntimeOptions, machine_type: str) -> list[str]:
    """One line per flag about its effect here, so none is silently ignored."""
    lines = []
    if options.allow_precompilation:
        lines.append(
            "allow_precompilation=true: XLA compiles the graph on this CPU; each new batch size compiles on first use, so warm them up"
        )
    if options.allow_compression:
        effect = (
            "bfloat16 mixed precision (oneDNN)"
            if cpu_has_bf16()
            else "no local effect: this CPU has no bfloat16 support"
        )
        lines.append(
            f"allow_compression=true: {effect}; expect top-1 agreement of 99% or more, not bit-identical outputs"
        )
    if options.disable_optimizer:
        lines.append("disable_optimizer=true: graph optimizations are off")
    if options.use_tfrt is not None:
        lines.append(
            f"use_tfrt={str(options.use_tfrt).lower()}: no local effect (TFRT belongs to the optimized runtime's container)"
        )
    if options.saved_model_tags:
        lines.append(f"saved_model_tags={','.join(options.saved_model_tags)}: the MetaGraph loaded")
    if options.tpu_function_aliases:
        lines.append(
            f"converter_options_string: function aliases {list(options.tpu_function_aliases)} must be exported by the model; TPU conversion itself needs a real TPU"
        )
    if machine_type and load_catalog().tpu_chips(machine_type) is not None:
        lines.append(f"machine type {machine_type}: Cloud TPU v5e emulated on this CPU")
    return lines


async def serve(settings) -> int:
    from aiohttp import web

    from localvertex.modelserver.app import ModelServer
    from vertex_serving.tfserving.errors import ServingError

    server = ModelServer(settings)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "listening on http://%s:%d (predict %s, health %s)",
        settings.host,
        settings.port,
        settings.predict_route,
        settings.health_route,
    )
    grpc_server = None
    if settings.grpc_port or settings.grpc_socket_path:
        from localvertex.modelserver.grpc_api import grpc_addresses, start_grpc

        addresses = grpc_addresses(settings.host, settings.grpc_port, settings.grpc_socket_path)
        try:
            grpc_server = await start_grpc(server, addresses)
        except RuntimeError as e:
            flags = f"--port={settings.grpc_port}" if settings.grpc_port else ""
            flags += f" --grpc_socket_path={settings.grpc_socket_path}" if settings.grpc_socket_path else ""
            print(
                f"modelserver: {flags.strip()}: gRPC cannot listen on {' and '.join(addresses)} ({e}): "
                "give a free port, or a socket path in a folder that exists",
                file=sys.stderr,
            )
            await runner.cleanup()
            server.close()
            return 1
        log.info("gRPC PredictionService and ModelService on %s", " and ".join(addresses))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loading = asyncio.ensure_future(loop.run_in_executor(None, server.load))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if loading.done() and loading.exception():
        error = loading.exception()
        reason = error.message if isinstance(error, ServingError) else f"{type(error).__name__}: {error}"
        print(f"modelserver: failed to load the model from {settings.storage_uri}: {reason}", file=sys.stderr)
        code = 1
    else:
        await stopping
        log.info("stopping")
    if grpc_server:
        await grpc_server.stop(grace=1)
    await runner.cleanup()
    server.close()
    server.remove_cache()
    return code


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s modelserver %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, dict(os.environ))
    except UserError as e:
        print(f"modelserver: {e}", file=sys.stderr)
        return 2
    if settings.options.allow_precompilation:
        from vertex_serving.tfserving.servable import enable_xla_on_cpu

        enable_xla_on_cpu()
    for line in describe_flags(settings.options, os.environ.get("AIP_MACHINE_TYPE", "")):
        log.info("%s", line)
    return asyncio.run(serve(settings))


def _switch(parser: argparse.ArgumentParser, flag: str, default: bool | None, help: str) -> None:
    """A TF Serving boolean flag: `--flag`, `--flag=true` or `--flag=false`."""
    parser.add_argument(flag, nargs="?", const=True, default=default, type=_boolean, metavar="{true,false}", help=help)


def _boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return text == "true"


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.strip("'\"").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None


def _channel_arguments(text: str) -> tuple[tuple[str, int | str], ...]:
    """TF Serving's --grpc_channel_arguments: a value that reads as an int32 is passed as one, any other as text."""
    arguments = []
    for part in filter(None, text.split(",")):
        key, equals, value = part.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{part!r} is not key=value (e.g. grpc.max_connection_age_ms=2000)")
        number = int(value) if re.fullmatch(r"\s*[+-]?[0-9]+\s*", value) else None
        arguments.append((key, number if number is not None and -(2**31) <= number < 2**31 else value))
    return tuple(arguments)


if __name__ == "__main__":
    sys.exit(main())
