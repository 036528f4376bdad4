"""The model server's HTTP face: Vertex AI's predict and health routes, TF Serving's REST API, Prometheus metrics.

One asyncio loop parses and answers requests; TensorFlow runs on worker threads (it releases the GIL), either
request by request or through the batcher, so one slow batch never blocks the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from localvertex.modelserver.batcher import Batcher
from vertex_serving.batching import Batching
from vertex_serving.options import RuntimeOptions
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.examples import format_classify, format_regress, parse_examples
from vertex_serving.tfserving.layout import BATCHING_CONFIG
from vertex_serving.tfserving.servable import Servable, Signature, find_version
from vertex_serving.tfserving.storage import fetch_model
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
_REST = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>predict|classify|regress)|(?P<metadata>/metadata))?"
)
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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelserver_requests", "Requests by API and HTTP status", ["api", "status"], registry=self.registry
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

    def observe_batch(self, rows: int, padded: int) -> None:
        self.batch_size.observe(rows)
        self.padded_rows.inc(padded - rows)


class ModelServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = "LOADING"
        self.servable: Servable | None = None
        self.batchers: dict[str, Batcher] = {}
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 2), thread_name_prefix="predict")

    # Loading -------------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Fetches, loads and warms the model; health turns 200 only after this returns."""
        settings = self.settings
        started = time.perf_counter()
        model_dir, version = find_version(fetch_model(settings.storage_uri, self.cache))
        self.servable = Servable(model_dir, version, settings.options)
        batching = self._batching(model_dir)
        if batching:
            threads = batching.num_batch_threads or os.cpu_count() or 2
            self.batchers = {
                name: Batcher(sig.run, batching, threads, self.metrics.observe_batch)
                for name, sig in self.servable.signatures.items()
            }
            log.info("server-side batching: %s", " ".join(f"{k}={v}" for k, v in vars(batching).items()))
        records = read_warmup_records(model_dir)
        warm_started = time.perf_counter()
        replayed = replay(records, self._warm)
        log.info(
            "model %r version %d loaded from %s in %.2fs; %d warmup requests replayed in %.2fs",
            settings.model_name,
            version,
            settings.storage_uri,
            time.perf_counter() - started,
            replayed,
            time.perf_counter() - warm_started,
        )
        self.state = "AVAILABLE"

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

    def _warm(self, name: str, feeds: dict) -> object:
        signature = self.servable.signature(name)
        check_input_names(set(feeds), signature)
        rows = {a.shape[0] if a.ndim else None for a in feeds.values()}
        size = rows.pop() if len(rows) == 1 else None
        batcher = self.batchers.get(signature.name)
        if batcher and size:
            return batcher.submit(feeds, size).result()
        return signature.run(feeds)

    @property
    def cache(self) -> Path:
        """Where a gs:// model is copied: the user's folder, or one of this process's own that goes with it."""
        return self.settings.cache_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"modelserver-{os.getpid()}"

    def remove_cache(self) -> None:
        if not self.settings.cache_dir:
            shutil.rmtree(self.cache, ignore_errors=True)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.servable:
            self.servable.close()

    # Serving -------------------------------------------------------------------------------------------------

    async def run(self, signature: Signature, request: PredictRequest) -> dict:
        batcher = self.batchers.get(signature.name)
        if batcher and request.batch_size:
            return await batcher.submit(request.feeds, request.batch_size, asyncio.get_running_loop())
        return await asyncio.get_running_loop().run_in_executor(self.executor, signature.run, request.feeds)

    async def predict(self, body: object) -> dict:
        signature = self._ready().signature(signature_name(body))
        request = parse_predict(body, signature)
        outputs = await self.run(signature, request)
        return format_predict(outputs, request.columnar, request.batch_size)

    async def classify_or_regress(self, verb: str, body: object) -> dict:
        signature = self._ready().signature(signature_name(body))
        feeds = {"inputs": parse_examples(body)}
        check_input_names(set(feeds), signature)
        request = PredictRequest(signature.name, feeds, False, len(feeds["inputs"]))
        outputs = await self.run(signature, request)
        return format_classify(outputs) if verb == "classify" else format_regress(outputs)

    def _ready(self) -> Servable:
        if self.state != "AVAILABLE":
            raise ServingError(
                "UNAVAILABLE", f"Model {self.settings.model_name!r} is {self.state.lower()}, not ready yet"
            )
        return self.servable

    def status(self, version: str | None) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        self._check_version(version)
        response = get_model_status_pb2.GetModelStatusResponse()
        entry = response.model_version_status.add(version=self.servable.version if self.servable else 0)
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(self.state)
        entry.status.error_message = ""
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def metadata(self, version: str | None) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        servable = self._ready()
        self._check_version(version)
        spec = model_pb2.ModelSpec(name=self.settings.model_name)
        spec.version.value = servable.version
        defs = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in servable.meta_graph.signature_def.items():
            defs.signature_def[name].CopyFrom(sig)

        def as_dict(message):
            return json_format.MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )

        return {"model_spec": as_dict(spec), "metadata": {"signature_def": as_dict(defs)}}

    def _check_version(self, version: str | None) -> None:
        if version is not None and self.servable and int(version) != self.servable.version:
            raise ServingError(
                "NOT_FOUND", f"Servable not found for request: Specific({self.settings.model_name}, {version})"
            )

    # HTTP ----------------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        s = self.settings
        app.router.add_get(s.health_route, self._health)
        app.router.add_post(s.predict_route, self._handler("vertex_predict", self._vertex_predict))
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/monitoring/prometheus/metrics", self._metrics)
        app.router.add_route("*", "/v1/models/{tail:.*}", self._handler("rest", self._rest))
        return app

    async def _health(self, request: web.Request) -> web.Response:
        if self.state == "AVAILABLE":
            return web.json_response({})
        return web.json_response({"error": f"model is {self.state.lower()}"}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _vertex_predict(self, request: web.Request) -> dict:
        return await self.predict(await _body(request))

    async def _rest(self, request: web.Request) -> dict:
        match = _REST.fullmatch(request.path)
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {request.method} {request.path}")
        name, version, label, verb = match["name"], match["version"], match["label"], match["verb"]
        if name != self.settings.model_name:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        if label:
            raise ServingError("NOT_FOUND", f"Unrecognized servable version label: {label}")
        if verb:
            if request.method != "POST":
                raise ServingError("INVALID_ARGUMENT", f"{verb} takes POST, not {request.method}")
            self._check_version(version)
            body = await _body(request)
            return await (self.predict(body) if verb == "predict" else self.classify_or_regress(verb, body))
        if request.method != "GET":
            raise ServingError("INVALID_ARGUMENT", f"Model status and metadata take GET, not {request.method}")
        return self.metadata(version) if match["metadata"] else self.status(version)

    def _handler(self, api: str, answer):
        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                body, status = orjson.dumps(await answer(request), option=orjson.OPT_SERIALIZE_NUMPY), 200
            except ServingError as e:
                body, status = orjson.dumps({"error": e.message}), e.http_status
                self.metrics.errors.labels(api, e.code).inc()
            except Exception as e:  # an internal fault answers 500 and keeps the server serving others
                log.exception("internal error on %s", request.path)
                body, status = orjson.dumps({"error": f"Internal: {type(e).__name__}: {e}"}), 500
                self.metrics.errors.labels(api, "INTERNAL").inc()
            self.metrics.requests.labels(api, str(status)).inc()
            self.metrics.latency.labels(api).observe(time.perf_counter() - started)
            return web.Response(body=body, status=status, content_type=_JSON)

        return handle


async def _body(request: web.Request) -> object:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large(request.content_length)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(None) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None


def _too_large(size: int | None) -> ServingError:
    sent = f"{size} bytes" if size else "more"
    return ServingError(
        "INVALID_ARGUMENT",
        f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes (sent {sent}): send fewer instances per request",
    )
