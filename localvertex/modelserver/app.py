"""The model server's HTTP face: Vertex AI's predict and health routes, TF Serving's REST API, Prometheus metrics.

One asyncio loop parses and answers requests. TensorFlow runs on worker threads (it releases the GIL), request
by request or through the batcher, so one slow batch never blocks the loop; a run seen to be shorter than the
hand-off to a thread runs on the loop itself (pace.py).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from localvertex.modelserver.batcher import Batcher
from localvertex.modelserver.pace import Pace
from vertex_serving.batching import Batching
from vertex_serving.options import RuntimeOptions
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.examples import (
    classify_signature,
    format_classify,
    format_regress,
    parse_examples,
    regress_signature,
)
from vertex_serving.tfserving.jsondoc import Body, dumps, error_body, fast_body, parse_body
from vertex_serving.tfserving.layout import BATCHING_CONFIG
from vertex_serving.tfserving.model_config import ModelConfig, aspired_versions, read_model_config
from vertex_serving.tfserving.registry import ModelRegistry
from vertex_serving.tfserving.rest import Call, check_preflight, parse_call
from vertex_serving.tfserving.servable import Servable, Signature
from vertex_serving.tfserving.storage import fetch_model, safe_target
from vertex_serving.tfserving.tensors import (
    PredictRequest,
    check_input_names,
    format_predict,
    parse_predict,
    signature_name,
)
from vertex_serving.tfserving.warmup import read_warmup_records, replay

log = logging.getLogger("modelserver")
MAX_BODY_BYTES = 1_572_864  # 1.5 MB: Vertex AI's online prediction payload limit
_JSON = "application/json"
disable_created_metrics()  # `*_created` series only add noise to a scrape


@dataclass
class Settings:
    storage_uri: str
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    host: str = "127.0.0.1"
    port: int = 8080
    predict_route: str = "/predict"
    health_route: str = "/health"
    model_name: str = "default"
    enable_batching: bool | None = None  # None: on when the model ships a batching config or flags set it
    batching_file: str = ""
    batching_flags: dict = field(default_factory=dict)
    cache_dir: Path | None = None
    grpc_port: int = 0  # 0: no gRPC API
    grpc_channel_arguments: tuple = ()  # (key, int or str) pairs for the gRPC server, as TF Serving passes them
    model_config_file: str = ""  # a ModelServerConfig text proto, in place of model_name and storage_uri
    allow_version_labels_for_unavailable_models: bool = False
    grpc_socket_path: str = ""  # gRPC on this Unix socket too
    rest_api_timeout_in_ms: int = 30_000  # bounds each REST request's run (0: none), TF Serving's default
    enable_model_warmup: bool = True
    prometheus_path: str = ""  # a --monitoring_config_file's own metrics path, beside the two always served

    def model_configs(self) -> list[ModelConfig]:
        if self.model_config_file:
            return read_model_config(Path(self.model_config_file), self.allow_version_labels_for_unavailable_models)
        return [ModelConfig(self.model_name, self.storage_uri)]


@dataclass
class Loaded:
    """One loaded model version, the batchers of its signatures and what their runs take."""

    servable: Servable
    batchers: dict[str, Batcher]
    paces: dict[str, Pace] = field(default_factory=dict)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        self.servable.close()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelserver_requests",
            "Requests by API and status (HTTP code, or gRPC status name)",
            ["api", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "modelserver_request_errors",
            "Failed requests by API and status code",
            ["api", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelserver_request_latency_seconds",
            "Time from request to response",
            ["api"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelserver_batch_size",
            "Rows per batch run (before padding)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.padded_rows = Counter(
            "modelserver_batch_padding_rows", "Rows added to reach an allowed batch size", registry=self.registry
        )
        self._answers: dict[tuple[str, str], tuple] = {}

    def answered(self, api: str, status: str, seconds: float) -> None:
        """Counts one answer and its latency; each (api, status)'s series is looked up once, not per request."""
        series = self._answers.get((api, status))
        if series is None:
            series = self._answers[api, status] = (self.requests.labels(api, status), self.latency.labels(api))
        series[0].inc()
        series[1].observe(seconds)

    def observe_batch(self, rows: int, padded: int) -> None:
        self.batch_size.observe(rows)
        self.padded_rows.inc(padded - rows)


class Deadlines:
    """Cancels the futures of requests still running past their deadline.

    One queue in deadline order and one sweep every quarter timeout (at most a second), instead of a timer per
    request on the hot path: a request is cancelled within a quarter of the timeout after its deadline.
    """

    def __init__(self, timeout: float) -> None:
        self._pending: collections.deque[tuple[float, asyncio.Future]] = collections.deque()
        self._tick = min(timeout / 4, 1.0)
        self._sweeping = False

    def watch(self, future: asyncio.Future, deadline: float) -> None:
        pending = self._pending
        while pending and pending[0][1].done():  # answered ones go now: the queue holds the requests in flight
            pending.popleft()
        pending.append((deadline, future))
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        loop, pending = asyncio.get_running_loop(), self._pending
        now = loop.time()
        while pending and (pending[0][1].done() or pending[0][0] <= now):
            pending.popleft()[1].cancel()  # a no-op on a future that is done
        self._sweeping = bool(pending)
        if pending:
            loop.call_later(self._tick, self._sweep)


class ModelServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = "LOADING"
        self.configs = settings.model_configs()
        self.models: ModelRegistry[Loaded] = ModelRegistry({c.name: c.labels for c in self.configs})
        self.metrics = Metrics()
        self.rest_timeout = settings.rest_api_timeout_in_ms / 1000
        self.deadlines = Deadlines(self.rest_timeout)
        self.executor = ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2), thread_name_prefix="predict")

    # Loading -------------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Fetches, loads and warms every configured model version; health turns 200 only after this returns."""
        for config in self.configs:
            cache = safe_target(self.cache, config.name) if self.settings.model_config_file else self.cache
            versions = aspired_versions(config.name, fetch_model(config.base_path, cache), config)
            for version, _ in versions:
                self.models.set_state(config.name, version, "LOADING")
            for version, model_dir in versions:
                try:
                    loaded = self._load_version(config, version, model_dir)
                except Exception as e:
                    error = e if isinstance(e, ServingError) else ServingError("UNKNOWN", f"{type(e).__name__}: {e}")
                    self.models.set_state(config.name, version, "END", error=error)
                    raise
                self.models.set_state(config.name, version, "AVAILABLE", loaded)
        self.state = "AVAILABLE"

    def _load_version(self, config: ModelConfig, version: int, model_dir: Path) -> Loaded:
        started = time.perf_counter()
        servable = Servable(model_dir, version, self.settings.options)
        loaded = Loaded(servable, {}, {name: Pace() for name in servable.signatures})
        batching = self._batching(model_dir)
        if batching:
            threads = batching.num_batch_threads or os.cpu_count() or 2
            loaded.batchers = {
                name: Batcher(sig.run, batching, threads, self.metrics.observe_batch)
                for name, sig in loaded.servable.signatures.items()
            }
            log.info("server-side batching: %s", " ".join(f"{k}={v}" for k, v in vars(batching).items()))
        records = read_warmup_records(model_dir) if self.settings.enable_model_warmup else []
        warm_started = time.perf_counter()
        replayed = replay(records, functools.partial(self._warm, loaded))
        log.info(
            "model %r version %d loaded from %s in %.2fs; %d warmup requests replayed in %.2fs",
            config.name,
            version,
            config.base_path,
            time.perf_counter() - started,
            replayed,
            time.perf_counter() - warm_started,
        )
        return loaded

    def _batching(self, model_dir: Path) -> Batching | None:
        settings = self.settings
        if settings.enable_batching is False:
            return None
        path = Path(settings.batching_file) if settings.batching_file else model_dir / BATCHING_CONFIG
        if not path.exists() and not settings.enable_batching and not settings.batching_flags:
            return None
        batching = Batching.from_text(path.read_text(), str(path)) if path.exists() else Batching(max_batch_size=1000)
        batching = dataclasses.replace(batching, **settings.batching_flags)
        if problems := batching.problems():
            raise ServingError("INVALID_ARGUMENT", f"Batching parameters from {path}: {problems[0]}")
        return batching

    def _warm(self, loaded: Loaded, name: str, feeds: dict) -> object:
        """One warmup request, with no time limit (TF Serving replays with default RunOptions too)."""
        signature = loaded.servable.signature(name)
        check_input_names(set(feeds), signature)
        rows = {a.shape[0] if a.ndim else None for a in feeds.values()}
        size = rows.pop() if len(rows) == 1 else None
        batcher = loaded.batchers.get(signature.name)
        if batcher and size:
            return batcher.submit(feeds, size).result()
        return loaded.paces[signature.name].run(signature.run, feeds, size)  # what it takes tells where to run

    @property
    def cache(self) -> Path:
        """Where a gs:// model is copied: the user's folder, or one of this process's own that goes with it."""
        return self.settings.cache_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"modelserver-{os.getpid()}"

    def remove_cache(self) -> None:
        if not self.settings.cache_dir:
            shutil.rmtree(self.cache, ignore_errors=True)

    def close(self) -> None:
        for loaded in self.models.servables():
            loaded.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # Serving -------------------------------------------------------------------------------------------------

    async def run(self, loaded: Loaded, signature: Signature, request: PredictRequest, timeout: float = 0) -> dict:
        """Runs one request on a loaded version: through its batcher when batching is on, as REST and gRPC both do.

        Past `timeout` seconds (0: none) the request answers DEADLINE_EXCEEDED in TF's words, as a REST call past
        --rest_api_timeout_in_ms does in TF Serving; a run already started finishes on its thread, unread.
        """
        loop = asyncio.get_running_loop()
        batcher = loaded.batchers.get(signature.name)
        if batcher and request.batch_size:
            future = batcher.submit(request.feeds, request.batch_size, loop)
        else:
            pace, rows = loaded.paces[signature.name], request.batch_size
            if pace.inline(rows):
                started = loop.time()
                outputs = pace.run(signature.run, request.feeds, rows, on_loop=True)
                if timeout and loop.time() - started > timeout:
                    raise _timed_out()
                return outputs
            future = loop.run_in_executor(self.executor, pace.run, signature.run, request.feeds, rows)
        if timeout:
            self.deadlines.watch(future, loop.time() + timeout)
        try:
            return await future
        except asyncio.CancelledError:
            if not timeout or asyncio.current_task().cancelling():
                raise  # this request itself was cancelled: the run did not time out
            raise _timed_out() from None

    async def predict(self, body: Body, call: Call | None = None) -> dict:
        name = signature_name(body.value)
        loaded = self._loaded(call)
        signature = loaded.servable.signature(name)
        request = parse_predict(body.value, signature, body.raw)
        outputs = await self.run(loaded, signature, request, self.rest_timeout)
        return format_predict(outputs, request.columnar)

    async def classify_or_regress(self, call: Call, body: Body) -> dict:
        name = signature_name(body.value)
        examples = parse_examples(body.value)
        loaded = self._loaded(call)
        signature = (classify_signature if call.verb == "classify" else regress_signature)(loaded.servable, name)
        request = PredictRequest(signature.name, {"inputs": examples}, False, len(examples))
        outputs = await self.run(loaded, signature, request, self.rest_timeout)
        answer = format_classify if call.verb == "classify" else format_regress
        return answer(outputs, len(examples), signature)

    def _loaded(self, call: Call | None) -> Loaded:
        """The model version a REST call names, by number or label; Vertex AI's route names none: the first model."""
        return self.lookup(call.model, call.version, call.label)[1] if call else self.lookup()[1]

    def lookup(self, name: str = "", version: int | None = None, label: str | None = None) -> tuple[int, Loaded]:
        """The (version, loaded model) a request names; Vertex AI's predict route names none: the first model."""
        name = name or self.configs[0].name
        self.ready(name)
        return self.models.lookup(name, version, label)

    def ready(self, name: str) -> None:
        """Every request but status is refused while the server loads (TF Serving is not listening yet then)."""
        if self.state != "AVAILABLE":
            raise ServingError("UNAVAILABLE", f"Model {name!r} is {self.state.lower()}, not ready yet")

    def status(self, call: Call) -> dict:
        """GetModelStatus: every version, or the one asked for; a version label is not read (TF Serving's too)."""
        from google.protobuf import json_format

        response = self.models.status(call.model, call.version)
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def metadata(self, call: Call) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        number, loaded = self.lookup(call.model, call.version, call.label)
        servable = loaded.servable
        spec = model_pb2.ModelSpec(name=call.model)
        spec.version.value = number
        defs = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.meta_graph.signature_def.items():
            defs.signature_def[key].CopyFrom(sig)

        def as_dict(message):
            return json_format.MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )

        return {"model_spec": as_dict(spec), "metadata": {"signature_def": as_dict(defs)}}

    # HTTP ----------------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        s = self.settings
        app.router.add_get(s.health_route, self._health)
        app.router.add_post(s.predict_route, self._handler("vertex_predict", self._vertex_predict))
        app.router.add_get("/metrics", self._metrics)
        for path in {"/monitoring/prometheus/metrics", s.prometheus_path} - {"", "/metrics"}:
            app.router.add_get(path, self._metrics)
        app.router.add_route("*", "/{v1:[vV]1}/{tail:.*}", self._handler("rest", self._rest))  # TF Serving's
        return app

    async def _health(self, request: web.Request) -> web.Response:
        if self.state == "AVAILABLE":
            return web.json_response({})
        return web.json_response({"error": f"model is {self.state.lower()}"}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _vertex_predict(self, request: web.Request) -> dict:
        return await self.predict(await self._body(request))

    async def _rest(self, request: web.Request) -> dict | web.Response:
        """TF Serving's HttpRestApiHandler::ProcessRequest: JSON errors come before the model is looked up."""
        if request.method == "OPTIONS":
            check_preflight(request.headers.get("Origin", ""))
            return web.Response()
        call = parse_call(request.method, request.rel_url.raw_path)
        if call.verb:
            body = await self._body(request)
            return await (self.predict(body, call) if call.verb == "predict" else self.classify_or_regress(call, body))
        return self.metadata(call) if call.metadata else self.status(call)

    async def _body(self, request: web.Request) -> Body:
        """Strict JSON is parsed here; NaN tokens, deep nesting or errors take a slower parser off the event loop."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise _too_large(request.content_length)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None) from None
        return fast_body(raw) or await asyncio.get_running_loop().run_in_executor(self.executor, parse_body, raw)

    def _handler(self, api: str, answer):
        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                result = await answer(request)
                if isinstance(result, web.Response):
                    return result
                body, status = dumps(result), 200
            except ServingError as e:
                body, status = error_body(e.message), e.http_status
                self.metrics.errors.labels(api, e.code).inc()
            except Exception as e:  # an internal fault answers 500 and keeps the server serving others
                log.exception("internal error on %s", request.path)
                body, status = error_body(f"Internal: {type(e).__name__}: {e}"), 500
                self.metrics.errors.labels(api, "INTERNAL").inc()
            self.metrics.answered(api, str(status), time.perf_counter() - started)
            return web.Response(body=body, status=status, content_type=_JSON)

        return handle


def _timed_out() -> ServingError:
    """A run past --rest_api_timeout_in_ms, in the words of TF's Session::Run timeout."""
    return ServingError("DEADLINE_EXCEEDED", "Timed out waiting for notification")


def _too_large(size: int | None) -> ServingError:
    sent = f"{size} bytes" if size else "more"
    return ServingError(
        "INVALID_ARGUMENT",
        f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes (sent {sent}): send fewer instances per request",
    )
