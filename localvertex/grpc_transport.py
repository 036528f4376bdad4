"""Vertex AI's gRPC transport over the shared handlers, on 127.0.0.1: one port without TLS (a channel the user
makes), one with localvertex's certificate (what gapic clients and the SDK open from an `api_endpoint`).

The services are the ones the gapic clients call (`google.cloud.aiplatform.v1.ModelService/UploadModel`, ...), plus
`google.longrunning.Operations` on the same ports, which is where a gapic client's operations client polls.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import grpc

from localvertex.errors import VertexError
from localvertex.rest import MAX_REQUEST_BYTES
from localvertex.rpc import Call, Method, decode, encode, invoke
from localvertex.tls import Certificates

log = logging.getLogger("localvertex")


async def serve(methods: list[Method], port: int, tls_port: int, certificates: Certificates) -> grpc.aio.Server:
    """Starts the server on 127.0.0.1:`port` and, with TLS, 127.0.0.1:`tls_port`; the caller stops it."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),  # a second emulator must not share the port
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
        ]
    )
    by_service: dict[str, dict] = defaultdict(dict)
    for method in methods:
        by_service[method.full_service][method.name] = grpc.unary_unary_rpc_method_handler(
            _unary(method),
            request_deserializer=lambda data, kind=method.request: decode(kind, data),
            response_serializer=encode,
        )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(name, handlers) for name, handlers in by_service.items()]
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise OSError(f"localvertex: gRPC port 127.0.0.1:{port} is taken")
    credentials = grpc.ssl_server_credentials([(certificates.key.read_bytes(), certificates.chain.read_bytes())])
    if server.add_secure_port(f"127.0.0.1:{tls_port}", credentials) != tls_port:
        raise OSError(f"localvertex: gRPC port 127.0.0.1:{tls_port} is taken")
    await server.start()
    return server


def _unary(method: Method):
    async def handle(request, context: grpc.aio.ServicerContext):
        call = Call("grpc")
        try:
            response = await invoke(method, request, call)
        except VertexError as e:
            await context.abort(grpc.StatusCode[e.status], e.message)
        except Exception as e:
            log.exception("%s/%s failed", method.full_service, method.name)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        if call.headers:
            await context.send_initial_metadata([(k.lower(), v) for k, v in call.headers.items()])
        return response

    return handle
