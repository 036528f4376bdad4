"""The model server's gRPC face: TF Serving's PredictionService and ModelService on `--port`.

Servicers from tensorflow-serving-api run on the same asyncio loop as the REST API and reach the same loaded
versions through the same lookup and batchers; a ServingError becomes the gRPC status of the same code.
"""

from __future__ import annotations

import logging
import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from localvertex.modelserver.app import ModelServer
from vertex_serving.tfserving import apis
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.tensors import PredictRequest

log = logging.getLogger("modelserver")
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving sets gRPC's message limit to the largest int32


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    async def Predict(self, request, context):
        return await _answer(self.server, "Predict", context, self._predict(request))

    async def Classify(self, request, context):
        return await _answer(self.server, "Classify", context, self._classify(request))

    async def Regress(self, request, context):
        return await _answer(self.server, "Regress", context, self._regress(request))

    async def MultiInference(self, request, context):
        return await _answer(self.server, "MultiInference", context, self._multi_inference(request))

    async def GetModelMetadata(self, request, context):
        return await _answer(self.server, "GetModelMetadata", context, self._metadata(request))

    async def _predict(self, request):
        apis.require_model_spec(request)
        version, loaded = self._lookup(request.model_spec)
        prediction = apis.parse_predict(request, loaded.servable)
        run = PredictRequest(prediction.signature.name, prediction.feeds, False, prediction.batch_size)
        outputs = await self.server.run(loaded, prediction.signature, run)
        return apis.predict_response(request.model_spec.name, version, prediction, outputs)

    async def _classify(self, request):
        apis.require_model_spec(request)
        version, loaded = self._lookup(request.model_spec)
        signature = apis.classify_signature(loaded.servable, request.model_spec.signature_name)
        outputs, rows = await self._run_examples(loaded, signature, request.input)
        return classification_pb2.ClassificationResponse(
            model_spec=apis.model_spec(request.model_spec.name, request.model_spec.signature_name, version),
            result=apis.classification_result(outputs, rows),
        )

    async def _regress(self, request):
        apis.require_model_spec(request)
        version, loaded = self._lookup(request.model_spec)
        signature = apis.regress_signature(loaded.servable, request.model_spec.signature_name)
        outputs, rows = await self._run_examples(loaded, signature, request.input)
        return regression_pb2.RegressionResponse(
            model_spec=apis.model_spec(request.model_spec.name, request.model_spec.signature_name, version),
            result=apis.regression_result(outputs, rows),
        )

    async def _multi_inference(self, request):
        version, loaded = self._lookup(request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec())
        tasks = apis.multi_inference_tasks(request, loaded.servable)
        response = inference_pb2.MultiInferenceResponse()
        for task, (method, signature) in zip(request.tasks, tasks, strict=True):
            outputs, rows = await self._run_examples(loaded, signature, request.input)
            result = response.results.add()
            if method == apis.CLASSIFY_METHOD:
                result.classification_result.CopyFrom(apis.classification_result(outputs, rows))
            else:
                result.regression_result.CopyFrom(apis.regression_result(outputs, rows))
            result.model_spec.CopyFrom(apis.model_spec(task.model_spec.name, task.model_spec.signature_name, version))
        return response

    async def _metadata(self, request):
        apis.check_metadata_request(request)
        version, loaded = self._lookup(request.model_spec)
        return apis.metadata_response(request.model_spec.name, version, loaded.servable)

    async def _run_examples(self, loaded, signature, request_input) -> tuple[dict, int]:
        feeds = {"inputs": apis.examples(request_input)}
        rows = len(feeds["inputs"])
        return await self.server.run(loaded, signature, PredictRequest(signature.name, feeds, False, rows)), rows

    def _lookup(self, spec):
        self.server.ready(spec.name)
        return self.server.models.lookup_spec(spec)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest keeps the stub's UNIMPLEMENTED answer (no config reload here)."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server

    async def GetModelStatus(self, request, context):
        async def status():
            return self.server.models.spec_status(request)

        return await _answer(self.server, "GetModelStatus", context, status())


async def _answer(server: ModelServer, method: str, context, work):
    started = time.perf_counter()
    try:
        response = await work
    except ServingError as e:
        code, message = e.code, e.message
    except Exception as e:  # an internal fault answers INTERNAL and keeps the server serving others
        log.exception("internal error on gRPC %s", method)
        code, message = "INTERNAL", f"Internal: {type(e).__name__}: {e}"
    else:
        code, message = "OK", ""
    api = f"grpc_{method}"
    server.metrics.answered(api, code, time.perf_counter() - started)
    if code == "OK":
        return response
    server.metrics.errors.labels(api, code).inc()
    await context.abort(grpc.StatusCode.__members__.get(code, grpc.StatusCode.UNKNOWN), apis.grpc_message(message))


def grpc_addresses(host: str, port: int, socket_path: str) -> list[str]:
    """Where gRPC listens: `host:port` (loopback only: the caller has checked `host`) when `port` is set, and the
    Unix socket of TF Serving's --grpc_socket_path when that is."""
    return ([f"[{host}]:{port}" if ":" in host else f"{host}:{port}"] if port else []) + (
        [f"unix:{socket_path}"] if socket_path else []
    )


async def start_grpc(server: ModelServer, addresses: list[str]) -> grpc.aio.Server:
    """Serves both services on `addresses` (grpc_addresses)."""
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            *server.settings.grpc_channel_arguments,
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(server), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(server), grpc_server)
    for address in addresses:
        grpc_server.add_insecure_port(address)
    await grpc_server.start()
    return grpc_server
